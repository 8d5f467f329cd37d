//! Recovery of one program's loop after a crash: a second `impl Runner` block.
//!
//! This module owns what [`Runner::run`] does first, before anything new is dispatched: closing
//! or re-adopting the runs a dead loop left (a remote run is waited for again through its
//! executor, a local one is killed if still alive and recorded as cancelled), resuming the
//! undecided attempts that have a commit (those without one are recorded as failed), and
//! honouring the cancel requests a person made while no loop ran the program.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_exec::{RunOutcome, RunRequest};
use picidae_store::{Attempt, RunResult};
use serde_json::json;

use crate::cancels::CANCELLED_BY_USER;
use crate::remote::fetch_remote_outputs;
use crate::runner::{lease_expiry, lease_holder_alive, Events, LoopEvent, Runner};
use crate::{program_ref, ExecutorSpec, SchedError};

impl Runner<'_> {
    /// Close what a dead harness left open; return the attempts to resume.
    pub(crate) fn recover(&mut self, events: Events<'_>) -> Result<Vec<Attempt>, SchedError> {
        let pid = self.program.id;
        let mut runs_interrupted = 0;
        let mut runs_readopted = 0;
        // A run whose lease another coordinator still renews is alive there: leave it alone.
        // A lease of a dead process on this host is dead however fresh its heartbeat.
        let foreign: Vec<i64> = self
            .project
            .store
            .live_foreign_leases(&self.lease_owner, lease_expiry().as_millis() as i64)?
            .into_iter()
            .filter(|(_, owner)| lease_holder_alive(owner))
            .map(|(id, _)| id)
            .collect();
        let unfinished = self.project.store.unfinished_runs(Some(pid))?;
        let ids: Vec<i64> = unfinished.iter().map(|r| r.id).collect();
        // Runs a person asked to cancel are stopped and closed as cancelled by them: their
        // seeds count as done and never run again.
        let asked = self.project.store.cancel_requested_runs(&ids)?;
        for run in unfinished {
            let by_user = asked.contains(&run.id);
            if foreign.contains(&run.id) {
                return Err(SchedError::Program {
                    program: self.program.name.clone(),
                    message: format!(
                        "run {} is held by another live coordinator (its lease was renewed within {} s); not recovering it",
                        run.id,
                        lease_expiry().as_secs()
                    ),
                });
            }
            // A remote run outlives the coordinator on its executor: wait for it again rather
            // than run its seed twice. A run offered to workers is waited for even before a
            // worker claimed it (its work item stays on offer).
            let offered = run.executor_ref.as_deref().is_some_and(|h| {
                h.starts_with("workers:")
                    || h.starts_with(picidae_exec::ray::ID_PREFIX)
                    || h.starts_with(picidae_exec::skypilot::ID_PREFIX)
            });
            if (run.status == RunStatus::Running || offered) && run.executor_ref.is_some() {
                match self.readopt(&run, by_user) {
                    Ok(mut result) => {
                        if by_user && result.status == Some(RunStatus::Cancelled) {
                            result.error = Some(CANCELLED_BY_USER.into());
                        }
                        self.project.store.finish_run(run.id, &result)?;
                        runs_readopted += 1;
                        continue;
                    }
                    Err(e) => tracing::warn!("run {} could not be re-adopted: {e}", run.id),
                }
            }
            if run.status == RunStatus::Running && run.host.as_deref() == Some(self.host.as_str()) {
                if let Some(pgid) = run.pgid {
                    // The group outlives the harness (it has its own process group): end it.
                    picidae_exec::kill_group(pgid as i32, self.contract.run.grace);
                }
            }
            let error = if by_user {
                "cancelled by user (recorded on recovery: the harness stopped before it could)"
            } else if run.status == RunStatus::Running {
                "interrupted: the harness stopped while this run was in flight; its seed is run again"
            } else {
                "interrupted: the harness stopped before this run started"
            };
            self.project.store.finish_run(
                run.id,
                &RunResult {
                    status: Some(RunStatus::Cancelled),
                    error: Some(error.into()),
                    ..Default::default()
                },
            )?;
            runs_interrupted += 1;
        }
        let mut resume = Vec::new();
        let mut failed = 0;
        for a in self.project.store.undecided_attempts(pid)? {
            if a.kind == AttemptKind::Measure {
                self.project.store.reject_attempt(
                    a.id,
                    AttemptStatus::Failed,
                    &json!({"interrupted": "measurement interrupted"}),
                    "interrupted measurement",
                )?;
                failed += 1;
            } else if a.commit.is_some() {
                resume.push(a);
            } else {
                self.project.store.reject_attempt(
                    a.id,
                    AttemptStatus::Failed,
                    &json!({"interrupted": "the harness stopped before the change was committed"}),
                    "interrupted before commit",
                )?;
                failed += 1;
            }
        }
        // The store is the source of truth for the frontier; bring the git ref in line with it.
        if let Some(commit) = &self.program.frontier_commit {
            self.repo
                .update_ref(&program_ref(&self.program.name, "frontier"), commit, None)?;
        }
        let wt_root = self.project.worktree_dir(&self.program.name, "");
        if wt_root.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&wt_root) {
                for e in entries.flatten() {
                    let _ = self.repo.remove_worktree(e.path());
                }
            }
        }
        self.repo.prune_worktrees()?;
        if runs_interrupted + runs_readopted + resume.len() + failed > 0 {
            events(&LoopEvent::Recovered {
                runs_interrupted,
                runs_readopted,
                attempts_resumed: resume.len(),
                attempts_failed: failed,
            });
        }
        Ok(resume)
    }

    /// Wait again for a remote run a dead coordinator started, and classify its outcome.
    /// With `cancel`, the run is stopped through its executor (a person asked for it).
    fn readopt(&mut self, run: &picidae_store::Run, cancel: bool) -> Result<RunResult, SchedError> {
        let handle = run.executor_ref.clone().unwrap_or_default();
        let run_dir = self.project.run_dir(&self.program.name, run.id);
        std::fs::create_dir_all(&run_dir).map_err(|e| SchedError::io(&run_dir, e))?;
        let spec = &self.contract.run;
        let req = RunRequest {
            command: spec.command.clone(),
            cwd: run_dir.clone(),
            env: Vec::new(),
            time_budget: self.contract.stage_budget(run.seed).0,
            timeout: self.contract.stage_budget(run.seed).1,
            grace: spec.grace,
            stdout_path: run_dir.join("stdout.log"),
            stderr_path: run_dir.join("stderr.log"),
            log_cap_bytes: spec.log_cap_bytes,
        };
        let stop = AtomicBool::new(cancel);
        // A screen-stage run went to the program's screen executor, when it has one.
        let executor = match ExecutorSpec::screen_of(&self.program) {
            Some(screen) if run.seed == picidae_core::SCREEN_SEED => screen,
            _ => self.executor.clone(),
        };
        let outcome = if let (Some(_), ExecutorSpec::Workers { pool }) =
            (handle.strip_prefix("workers:"), &executor)
        {
            // The work item is still in the store: wait for it again.
            let pool = pool.clone();
            crate::workers::offer_and_wait(
                self.project,
                (run.id, &pool),
                None,
                &run_dir,
                &stop,
                || {},
            )?
        } else if let Some(job) = handle.strip_prefix("slurm:") {
            let ex = executor.slurm().ok_or_else(|| self.no_executor())?;
            ex.reattach_run(job, &req)?.wait(&stop)?
        } else if handle.starts_with("ssh:") {
            let ex = executor.ssh().ok_or_else(|| self.no_executor())??;
            // `ssh:<host>:<remote dir>`; the directory is absolute.
            let dir = handle
                .find(":/")
                .map(|i| &handle[i + 1..])
                .ok_or_else(|| self.no_executor())?;
            let outcome = ex.reattach(dir, &req)?.wait(&stop)?;
            fetch_remote_outputs(&ex, dir, &run_dir);
            outcome
        } else if handle.starts_with(picidae_exec::ray::ID_PREFIX) {
            let ex = executor.ray().ok_or_else(|| self.no_executor())??;
            ex.reattach(&handle, &req, Some(run_dir.join("metrics.jsonl")))?
                .wait(&stop)?
        } else if handle.starts_with(picidae_exec::skypilot::ID_PREFIX) {
            let ex = executor.skypilot().ok_or_else(|| self.no_executor())?;
            ex.reattach(&handle, &req, Some(run_dir.join("metrics.jsonl")))?
                .wait(&stop)?
        } else if let Some(id) = handle
            .strip_prefix("docker:")
            .or_else(|| handle.strip_prefix("podman:"))
        {
            let ex = executor
                .container(&self.contract.run, None, Vec::new())
                .ok_or_else(|| self.no_executor())?;
            ex.reattach_run(id, &req)?.wait(&stop)?
        } else {
            return Err(self.no_executor());
        };
        tracing::info!("re-adopted run {} ({handle})", run.id);
        Ok(self.classify(&outcome, &run_dir))
    }

    fn no_executor(&self) -> SchedError {
        self.run_ctx().no_executor()
    }

    fn classify(&self, o: &RunOutcome, run_dir: &Path) -> RunResult {
        self.run_ctx().classify(o, run_dir)
    }
}
