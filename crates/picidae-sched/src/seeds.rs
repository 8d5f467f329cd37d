//! Running an attempt's seeds: those it still lacks, one after another or several at once,
//! each recorded as it ends: a `impl Runner` block.

use std::sync::atomic::AtomicBool;

use picidae_core::RunStatus;
use picidae_git::Repo;
use picidae_store::{Attempt, RunResult};

use crate::executors::ExecutorSpec;
use crate::run::RunCtx;
use crate::runner::{patch_hash, Events, LoopEvent, LoopOptions, Runner, SeedResult};
use crate::{Project, SchedError};

impl Runner<'_> {
    /// Run the seeds `0..n` an attempt still lacks (finished, non-cancelled runs count), each
    /// recorded as it ends. `None` when cancelled.
    pub(crate) fn run_seeds(
        &mut self,
        attempt: &Attempt,
        n: i64,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Option<Vec<SeedResult>>, SchedError> {
        self.run_seed_range(attempt, 0, n, opts, events)
    }

    /// Run the seeds `first..first + n`, as [`run_seeds`](Self::run_seeds).
    pub(crate) fn run_seed_range(
        &mut self,
        attempt: &Attempt,
        first: i64,
        n: i64,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Option<Vec<SeedResult>>, SchedError> {
        let range = first..first + n;
        let runs = self.project.store.all_runs_of_attempt(attempt.id)?;
        // A run a person cancelled counts as done (its seed is never run again); one cancelled
        // because the harness stopped does not.
        let cancelled: Vec<i64> = runs
            .iter()
            .filter(|r| r.status == RunStatus::Cancelled)
            .map(|r| r.id)
            .collect();
        let by_user = self.project.store.cancel_requested_runs(&cancelled)?;
        let mut results: Vec<SeedResult> = runs
            .into_iter()
            .filter(|r| {
                r.status.is_terminal()
                    && (r.status != RunStatus::Cancelled || by_user.contains(&r.id))
                    && range.contains(&r.seed)
            })
            .map(|r| SeedResult {
                seed: r.seed,
                run_id: r.id,
                status: r.status,
                value: r.primary_value,
            })
            .collect();
        let missing: Vec<i64> = range
            .clone()
            .filter(|s| !results.iter().any(|r| r.seed == *s))
            .collect();
        let mut done: Vec<(i64, (i64, RunResult))> = Vec::new();
        if opts.parallel > 1 && missing.len() > 1 {
            for batch in missing.chunks(opts.parallel) {
                if opts.shutdown.cancelled() {
                    return Ok(None);
                }
                for (seed, r) in batch.iter().zip(self.execute_parallel(
                    attempt,
                    batch,
                    opts.shutdown.cancel_flag(),
                    events,
                )) {
                    done.push((*seed, r?));
                }
            }
        }
        for seed in missing {
            if opts.shutdown.cancelled() {
                return Ok(None);
            }
            let (run_id, result) = match done.iter().position(|(s, _)| *s == seed) {
                Some(i) => done.swap_remove(i).1,
                None => self.execute_run(attempt, seed, opts.shutdown.cancel_flag(), events)?,
            };
            self.project.store.finish_run(run_id, &result)?;
            let status = result.status.unwrap_or(RunStatus::Crashed);
            events(&LoopEvent::RunFinished {
                seq: attempt.seq,
                run_id,
                status,
                value: result.primary_value,
                wall_secs: result.wall_secs.unwrap_or(0.0),
            });
            if status == RunStatus::Cancelled
                && self
                    .project
                    .store
                    .cancel_requested_runs(&[run_id])?
                    .is_empty()
            {
                return Ok(None);
            }
            results.push(SeedResult {
                seed,
                run_id,
                status,
                value: result.primary_value,
            });
        }
        results.sort_by_key(|r| r.seed);
        Ok(Some(results))
    }

    /// What a run of this program needs, for executing it here or on a thread.
    pub(crate) fn run_ctx(&self) -> RunCtx {
        RunCtx {
            program: self.program.name.clone(),
            project_tag: patch_hash(&self.project.root().display().to_string())[..8].to_string(),
            base_commit: self.program.base_commit.clone(),
            contract: self.contract.clone(),
            executor: self.executor.clone(),
            screen_executor: ExecutorSpec::screen_of(&self.program),
            data_dir: self.data_dir.clone(),
            lease_owner: self.lease_owner.clone(),
            host: self.host.clone(),
            fp_hash: self.fp_hash.clone(),
            fp_json: self.fp_json.clone(),
            slots: self.slots.clone(),
            resources: self.resources.clone(),
            cancels: self.cancels.clone(),
        }
    }

    /// Execute one seed of an attempt here (see [`RunCtx::execute_run`]).
    pub(crate) fn execute_run(
        &mut self,
        attempt: &Attempt,
        seed: i64,
        cancel: &AtomicBool,
        events: Events<'_>,
    ) -> Result<(i64, RunResult), SchedError> {
        let ctx = self.run_ctx();
        ctx.execute_run(
            self.project,
            &self.repo,
            attempt,
            seed,
            cancel,
            events,
            Some(&mut self.run_checkout),
        )
    }

    /// Execute several seeds of an attempt at once, each on a thread with its own store
    /// connection and checkout; their events reach `events` from this thread as they happen.
    /// Results come back in the order of `seeds`, not yet stored.
    pub(crate) fn execute_parallel(
        &mut self,
        attempt: &Attempt,
        seeds: &[i64],
        cancel: &AtomicBool,
        events: Events<'_>,
    ) -> Vec<Result<(i64, RunResult), SchedError>> {
        let ctx = self.run_ctx();
        let root = self.project.root().to_path_buf();
        let bench = self.project.benchmark_dir(&self.program);
        let (tx, rx) = std::sync::mpsc::channel::<LoopEvent>();
        std::thread::scope(|scope| {
            let handles: Vec<_> = seeds
                .iter()
                .map(|&seed| {
                    let (ctx, root, bench, tx) = (&ctx, &root, &bench, tx.clone());
                    scope.spawn(move || {
                        let mut project = Project::open(root)?;
                        let repo = Repo::open(bench)?;
                        let mut send = |e: &LoopEvent| {
                            let _ = tx.send(e.clone());
                        };
                        ctx.execute_run(&mut project, &repo, attempt, seed, cancel, &mut send, None)
                    })
                })
                .collect();
            drop(tx);
            // Forward events until every run has ended (the channel closes with the last one).
            for e in rx.iter() {
                events(&e);
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(SchedError::Program {
                            program: ctx.program.clone(),
                            message: "a run thread panicked".into(),
                        })
                    })
                })
                .collect()
        })
    }
}
