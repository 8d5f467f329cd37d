//! The keep/revert loop of one program. Its recovery after a crash is in `recover.rs`, the
//! next proposal in `propose.rs`, the judgement of a candidate in `judging.rs`, recording a
//! decision (and merging a winner whose frontier moved) in `merge.rs`; the loop itself, for
//! one attempt in flight or several, is `driver.rs`. The states of an attempt are listed in
//! ARCHITECTURE.md ("One attempt, as data").
//!
//! One iteration: record a new attempt → the agent edits its own checkout of the frontier →
//! the harness lists what changed and checks it against the boundary (a violation is committed
//! as evidence and rejected without any run) → commit on `refs/picidae/<program>/attempts/N` →
//! run each seed in its own checkout under the contract's budget → decide (mean of the seeds'
//! primary metric against the frontier) → advance the frontier in the same transaction as the
//! last run's result.
//!
//! Stopping: `stop` lets the attempt in flight finish and be decided; `cancel` kills the run in
//! flight (recorded as cancelled) and leaves its attempt undecided, to be resumed on the next
//! start. Recovery on start (`recover.rs`): runs left `running` by a dead harness are killed if
//! still alive and recorded as cancelled; undecided attempts with a commit are resumed (missing
//! seeds run), those without one are recorded as failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use picidae_agent::{Agent, HistoryEntry};
use picidae_core::contract::PolicySpec;
use picidae_core::stats::{summarize, Summary};
use picidae_core::{Assignment, AttemptKind, AttemptStatus, Contract, RunBreach};
use picidae_exec::Fingerprint;
use picidae_git::Repo;
use picidae_store::{Attempt, AttemptFilter, Decision, NoiseFloor, Program};
use serde_json::json;
use sha2::Digest;

use crate::cancels::{RunCancels, Watch, WATCH_POLL};
use crate::contract_source::{exposure, program_contract};
use crate::driver::WorkerJob;
use crate::executors::ExecutorSpec;
use crate::program::effective_policy;
use crate::resources::ResourcePool;
use crate::run::KeptCheckout;
use crate::slots::SlotPool;
use crate::{program_ref, Project, SchedError};

pub use crate::lease::{lease_expiry, lease_owner};
pub(crate) use crate::lease::{lease_holder_alive, lock_program};
pub(crate) use crate::loop_api::SeedResult;
pub use crate::loop_api::{LoopEvent, LoopOptions, LoopSummary, Measurement};

/// What proposing produced.
pub(crate) enum Proposed {
    /// The agent has nothing new.
    Exhausted,
    /// Decided without a run (failed agent, no change, boundary, duplicate).
    Decided(AttemptStatus),
    /// Checked, committed and queued.
    Ready(Box<Attempt>),
}

pub(crate) enum Finish {
    Decided(AttemptStatus),
    /// It won on a frontier that moved meanwhile and was merged onto the new one
    /// (`merge.rs`); the merge candidate's status when it was decided at once (a conflict).
    Merged(Option<AttemptStatus>),
    Interrupted,
}

/// The loop for one program.
pub struct Runner<'p> {
    pub(crate) project: &'p mut Project,
    pub(crate) program: Program,
    pub(crate) contract: Contract,
    pub(crate) repo: Repo,
    pub(crate) policy: PolicySpec,
    pub(crate) fp_hash: String,
    pub(crate) fp_json: String,
    pub(crate) host: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) history: Vec<HistoryEntry>,
    /// Hidden results by the content hash of the artifacts they scored (`judging`).
    pub(crate) hidden_cache: std::collections::HashMap<String, picidae_store::HiddenResult>,
    /// Shared slots for this invocation, if any.
    pub(crate) slots: Option<Arc<SlotPool>>,
    /// Shared machine resources for this invocation, if any.
    pub(crate) resources: Option<Arc<ResourcePool>>,
    /// This process's name on the leases of the runs it starts.
    pub(crate) lease_owner: String,
    /// Where the program's runs execute.
    pub(crate) executor: ExecutorSpec,
    /// The run checkout kept between runs (`run.reuse_checkout`) and the commit it holds.
    pub(crate) run_checkout: KeptCheckout,
    /// The cancel flags of this loop's runs in flight (set while [`Runner::run`] runs).
    pub(crate) cancels: Option<Arc<RunCancels>>,
    /// See [`Runner::notices`].
    pub(crate) notices: Vec<String>,
    /// Held for the runner's lifetime: one loop per program at a time.
    pub(crate) _lock: Option<std::fs::File>,
    /// Agent turns that failed in a row (reset by any turn that returns).
    pub(crate) agent_failures: u32,
    /// Why this runner paused the program (after [`AGENT_FAILURE_LIMIT`] failed turns).
    pub(crate) paused_because: Option<String>,
    /// Which of a concurrent loop's proposers this is (each has its own agent checkout).
    pub(crate) proposer: usize,
}

/// See [`Runner::parts`].
pub(crate) struct RunnerParts {
    program: Program,
    contract: Contract,
    policy: PolicySpec,
    fp_hash: String,
    fp_json: String,
    host: String,
    data_dir: PathBuf,
    slots: Option<Arc<SlotPool>>,
    resources: Option<Arc<ResourcePool>>,
    lease_owner: String,
    executor: ExecutorSpec,
    cancels: Option<Arc<RunCancels>>,
}

/// After this many agent turns in a row fail, the loop pauses the program.
pub const AGENT_FAILURE_LIMIT: u32 = 5;

/// The delay after the first failed agent turn (doubled after each further one, at most
/// [`AGENT_BACKOFF_MAX`]); `PICIDAE_AGENT_BACKOFF_MS` overrides it.
pub const AGENT_BACKOFF_BASE: Duration = Duration::from_secs(2);

/// The longest delay between failed agent turns.
pub const AGENT_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How long to wait before the next agent turn after `failures` failed turns in a row.
pub fn agent_backoff(failures: u32) -> Duration {
    let base = std::env::var("PICIDAE_AGENT_BACKOFF_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(AGENT_BACKOFF_BASE);
    backoff_delay(base, failures)
}

/// `base` doubled for each failure after the first, at most [`AGENT_BACKOFF_MAX`] (or `base`
/// when that is longer); nothing after no failure.
fn backoff_delay(base: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    base.saturating_mul(factor).min(AGENT_BACKOFF_MAX.max(base))
}

pub(crate) type Events<'e> = &'e mut dyn FnMut(&LoopEvent);

impl<'p> Runner<'p> {
    /// Load the program, its contract and its repository.
    pub fn new(project: &'p mut Project, program: &str) -> Result<Runner<'p>, SchedError> {
        Runner::open(project, program, true)
    }

    /// `locked = false` is for the proposer thread of a concurrent loop (`driver.rs`), whose
    /// main runner holds the program's lock.
    pub(crate) fn open(
        project: &'p mut Project,
        program: &str,
        locked: bool,
    ) -> Result<Runner<'p>, SchedError> {
        let program = project.store.program(program)?;
        let lock = if locked {
            Some(lock_program(project, &program.name)?)
        } else {
            None
        };
        let repo = Repo::open(project.benchmark_dir(&program))?;
        // A program another coordinator drove may hold commits this clone lacks.
        crate::carry::fetch_commits(&project.store, &repo, &program)?;
        let (contract, contract_notice) = program_contract(&repo, &program)?;
        let executor = ExecutorSpec::from_stored(&program.executor).map_err(|message| {
            SchedError::Program {
                program: program.name.clone(),
                message,
            }
        })?;
        let notices: Vec<String> = contract_notice
            .into_iter()
            .chain(exposure(&contract))
            .collect();
        let policy = effective_policy(&contract, &program.policy);
        let fp = Fingerprint::collect(Some(&program.base_commit))?;
        let fp_hash = fp.hash();
        let fp_json = serde_json::to_string(&fp).unwrap_or_default();
        let data_dir = project.cache_dir(&program.name, &fp_hash).join("data");
        Ok(Runner {
            host: fp.hostname.clone(),
            project,
            program,
            contract,
            repo,
            policy,
            fp_hash,
            fp_json,
            data_dir,
            history: Vec::new(),
            hidden_cache: Default::default(),
            slots: None,
            resources: None,
            lease_owner: lease_owner(),
            executor,
            run_checkout: None,
            cancels: None,
            notices,
            _lock: lock,
            agent_failures: 0,
            paused_because: None,
            proposer: 0,
        })
    }

    /// What a worker thread's runner shares with this one (`driver.rs`): everything but the
    /// store connection and the repository handle, which each thread opens for itself. The
    /// program is this runner's view of it: a worker judges its attempt against that frontier.
    pub(crate) fn parts(&self) -> RunnerParts {
        RunnerParts {
            program: self.program.clone(),
            contract: self.contract.clone(),
            policy: self.policy.clone(),
            fp_hash: self.fp_hash.clone(),
            fp_json: self.fp_json.clone(),
            host: self.host.clone(),
            data_dir: self.data_dir.clone(),
            slots: self.slots.clone(),
            resources: self.resources.clone(),
            lease_owner: self.lease_owner.clone(),
            executor: self.executor.clone(),
            cancels: self.cancels.clone(),
        }
    }

    /// A runner for a worker thread, without the program's lock (the driver holds it).
    pub(crate) fn from_parts(
        project: &'p mut Project,
        parts: RunnerParts,
    ) -> Result<Runner<'p>, SchedError> {
        let repo = Repo::open(project.benchmark_dir(&parts.program))?;
        Ok(Runner {
            project,
            program: parts.program,
            contract: parts.contract,
            repo,
            policy: parts.policy,
            fp_hash: parts.fp_hash,
            fp_json: parts.fp_json,
            host: parts.host,
            data_dir: parts.data_dir,
            history: Vec::new(),
            hidden_cache: Default::default(),
            slots: parts.slots,
            resources: parts.resources,
            lease_owner: parts.lease_owner,
            executor: parts.executor,
            run_checkout: None,
            cancels: parts.cancels,
            notices: Vec::new(),
            _lock: None,
            agent_failures: 0,
            paused_because: None,
            proposer: 0,
        })
    }

    /// `attempt`, to run on a worker thread under `opts` (`driver.rs`).
    /// It is judged against the frontier it was built on (`program_as_built`).
    pub(crate) fn worker_job(
        &self,
        attempt: Box<Attempt>,
        opts: &LoopOptions,
    ) -> Result<WorkerJob, SchedError> {
        let mut opts = opts.clone();
        opts.run_cancels = self.cancels.clone();
        let mut parts = self.parts();
        parts.program = self.program_as_built(&attempt)?;
        Ok(WorkerJob {
            parts,
            attempt: *attempt,
            opts,
        })
    }

    /// The name of this proposer's agent checkout under the program's worktrees.
    pub(crate) fn agent_checkout(&self) -> String {
        match self.proposer {
            0 => "agent".into(),
            n => format!("agent-{n}"),
        }
    }

    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// What a person should know before this loop runs: a working-tree contract that is not
    /// the program's, and what agents and runs can read without a sandbox.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub fn policy(&self) -> &PolicySpec {
        &self.policy
    }

    /// Run the loop until `max_attempts` new attempts are decided, the agent has nothing more
    /// to propose, or a stop is requested.
    pub fn run(
        &mut self,
        agent: &mut dyn Agent,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<LoopSummary, SchedError> {
        crate::fsck::before_start(&self.project.store, &self.repo, &self.program.name)?;
        let mut summary = LoopSummary::default();
        self.slots = opts.slots.clone();
        self.resources = opts.resources.clone();
        // Cancel requests for single runs: polled by the coordinator when it passes the flags,
        // otherwise by a thread of this loop's own (stopped when this function returns).
        let _watch: Option<Watch> = match &opts.run_cancels {
            Some(c) => {
                self.cancels = Some(c.clone());
                None
            }
            None => {
                let c = Arc::new(RunCancels::new());
                let store_path = self.project.dir().join(crate::project::STORE_FILE);
                let w = c.watch(&store_path, opts.shutdown.cancel_flag().clone(), WATCH_POLL);
                self.cancels = Some(c);
                Some(w)
            }
        };
        let runs_at_start = self.project.store.run_count(Some(self.program.id))?;
        let resumed = self.recover(events)?;
        self.setup(events)?;
        self.load_history()?;
        // The driver resumes explorations alongside new ones.
        let mut carried: Vec<Attempt> = Vec::new();
        for attempt in resumed {
            if self.interrupted(opts) {
                break;
            }
            if attempt.kind == AttemptKind::Explore {
                if attempt.status == AttemptStatus::Running {
                    carried.push(attempt);
                } else {
                    self.requeue(&attempt, events)?;
                }
                continue;
            }
            if let Finish::Interrupted = self.resume(&attempt, opts, events)? {
                summary.stopped = Some("cancelled".into());
                return self.finish_summary(summary);
            }
        }
        self.calibrate_if_needed(events)?;
        if self.program.frontier_value.is_none() || self.noise_floor()?.is_none() {
            // First start, or a new environment: measure the frontier here, over several
            // seeds; it is the noise floor and the reference for this fingerprint.
            self.baseline(opts, events)?;
            if self.noise_floor()?.is_none() {
                summary.stopped = Some("cancelled during the baseline".into());
                return self.finish_summary(summary);
            }
        }
        summary.baseline = self.baseline_value()?;
        self.run_concurrent(agent, opts, events, (&mut summary, carried), runs_at_start)?;
        self.finish_summary(summary)
    }

    fn finish_summary(&mut self, mut s: LoopSummary) -> Result<LoopSummary, SchedError> {
        self.program = self.project.store.program_by_id(self.program.id)?;
        s.frontier = self.program.frontier_value;
        if s.baseline.is_none() {
            s.baseline = self.baseline_value()?;
        }
        Ok(s)
    }

    pub(crate) fn baseline_value(&self) -> Result<Option<f64>, SchedError> {
        Ok(self
            .project
            .store
            .frontier_history(self.program.id)?
            .first()
            .map(|h| h.value))
    }

    fn interrupted(&self, opts: &LoopOptions) -> bool {
        opts.shutdown.draining()
    }

    // ------------------------------------------------------------------ exploration

    /// Bring the history up to date with the store: attempts that were undecided are read
    /// again, newer ones appended (a concurrent loop's proposer, between turns).
    pub(crate) fn refresh_history(&mut self) -> Result<(), SchedError> {
        let mut seen = std::collections::HashSet::new();
        // Newest entry per attempt (one is pushed again when it is decided).
        self.history.reverse();
        self.history.retain(|h| seen.insert(h.seq));
        self.history.reverse();
        for h in self.history.iter_mut().filter(|h| !h.status.is_final()) {
            if let Some(a) = self.project.store.attempt_by_seq(self.program.id, h.seq)? {
                *h = history_entry(&a);
            }
        }
        let last = self.history.iter().map(|h| h.seq).max().unwrap_or(0);
        for a in self.project.store.attempts_after(self.program.id, last)? {
            self.history.push(history_entry(&a));
        }
        Ok(())
    }

    pub(crate) fn load_history(&mut self) -> Result<(), SchedError> {
        let attempts = self.project.store.attempts(&AttemptFilter {
            program_id: Some(self.program.id),
            ..Default::default()
        })?;
        self.history = attempts.iter().map(history_entry).collect();
        Ok(())
    }

    /// Continue an attempt a dead harness left undecided. One that never started running may
    /// not have passed the memory gate yet: it does now, before any compute.
    fn resume(
        &mut self,
        attempt: &Attempt,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        let not_started = matches!(
            attempt.status,
            AttemptStatus::Proposed | AttemptStatus::Queued
        );
        if not_started {
            match self.replay_if_stale(attempt, events)? {
                None => {}
                // Stale: it is rejected, and its replay onto the frontier runs in its place.
                Some(Proposed::Ready(replay)) => return self.run_attempt(&replay, opts, events),
                Some(_) => return Ok(Finish::Decided(AttemptStatus::Rejected)),
            }
        }
        if self.resume_gate(attempt, events)? {
            return Ok(Finish::Decided(AttemptStatus::Duplicate));
        }
        // One that was running is judged against the frontier it was built on; a win there
        // is merged onto the frontier of now (`merge.rs`).
        self.program = self.program_as_built(attempt)?;
        let finish = self.run_attempt(attempt, opts, events);
        self.program = self.project.store.program_by_id(self.program.id)?;
        finish
    }

    /// The memory gate for an attempt committed but never queued (the harness stopped in
    /// between): whether it is a duplicate (and so decided).
    pub(crate) fn resume_gate(
        &mut self,
        attempt: &Attempt,
        events: Events<'_>,
    ) -> Result<bool, SchedError> {
        if attempt.kind == AttemptKind::Explore && attempt.status == AttemptStatus::Proposed {
            if let Some(commit) = &attempt.commit {
                // A param-only attempt runs its parent's code and has no patch of its own.
                let patch = if commit == &attempt.parent_commit {
                    String::new()
                } else {
                    self.repo.show_patch(commit)?
                };
                // A code change carries the frontier's environment parameters only so that
                // its runs get them: they are not its idea, and must not make it a duplicate.
                let inherited =
                    !patch.is_empty() && self.contract.params.iter().any(|p| p.is_env());
                let params: Option<Assignment> = attempt
                    .params
                    .as_ref()
                    .filter(|_| !inherited)
                    .and_then(|p| serde_json::from_value(p.clone()).ok());
                return self.memory_gate(attempt, &patch, params.as_ref(), events);
            }
        }
        Ok(false)
    }

    /// The program as it was when `attempt` was built: its frontier the attempt's parent (as
    /// the frontier history has it), where that is no longer the frontier.
    pub(crate) fn program_as_built(&self, attempt: &Attempt) -> Result<Program, SchedError> {
        let mut p = self.program.clone();
        if attempt.kind != AttemptKind::Explore || attempt.parent_commit == self.frontier_commit() {
            return Ok(p);
        }
        let history = self.project.store.frontier_history(p.id)?;
        if let Some(m) = history
            .iter()
            .rev()
            .find(|m| m.commit == attempt.parent_commit)
        {
            p.frontier_attempt_id = Some(m.attempt_id);
            p.frontier_commit = Some(m.commit.clone());
            p.frontier_value = Some(m.value);
        }
        Ok(p)
    }

    pub(crate) fn push_history(&mut self, attempt_id: i64) -> Result<(), SchedError> {
        let a = self.project.store.attempt(attempt_id)?;
        self.history.push(history_entry(&a));
        Ok(())
    }

    /// Run an attempt's seeds and decide it: baseline (all its seeds, then it is the noise
    /// floor), plain keep/revert (`seeds = 1`), or screening plus verification.
    pub(crate) fn run_attempt(
        &mut self,
        attempt: &Attempt,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        let finish = self.run_and_decide(attempt, opts, events)?;
        if matches!(finish, Finish::Decided(_)) && self.reject_breached(attempt, events)? {
            return Ok(Finish::Decided(AttemptStatus::Rejected));
        }
        Ok(finish)
    }

    /// [`flag_sandbox_violation`](Self::flag_sandbox_violation), saying so in `events`;
    /// whether it rejected the attempt.
    pub(crate) fn reject_breached(
        &mut self,
        attempt: &Attempt,
        events: Events<'_>,
    ) -> Result<bool, SchedError> {
        if !self.flag_sandbox_violation(attempt)? {
            return Ok(false);
        }
        let a = self.project.store.attempt(attempt.id)?;
        events(&LoopEvent::Rejected {
            seq: a.seq,
            status: AttemptStatus::Rejected,
            reason: a.note.unwrap_or_default(),
        });
        Ok(true)
    }

    fn run_and_decide(
        &mut self,
        attempt: &Attempt,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        self.project.store.start_attempt(attempt.id)?;
        if attempt.kind == AttemptKind::Baseline {
            let Some(results) =
                self.run_seeds(attempt, self.policy.baseline_seeds as i64, opts, events)?
            else {
                return Ok(Finish::Interrupted);
            };
            let d = self.plain_decision(attempt, &results);
            self.project.store.decide_attempt(attempt.id, &d)?;
            if d.status == AttemptStatus::Kept {
                let values: Vec<f64> = results.iter().filter_map(|r| r.value).collect();
                let s = summarize(&values).unwrap_or(Summary {
                    n: 0,
                    mean: f64::NAN,
                    std: 0.0,
                    min: f64::NAN,
                    max: f64::NAN,
                });
                self.project.store.set_noise_floor(&NoiseFloor {
                    program_id: self.program.id,
                    fingerprint: self.fp_hash.clone(),
                    attempt_id: attempt.id,
                    n: s.n as i64,
                    mean: s.mean,
                    std: s.std,
                    created_at: picidae_store::now_ms(),
                })?;
            }
            return self.after_decision(attempt, d, events);
        }
        if !self.policy.verifies() {
            let Some(results) = self.run_seeds(attempt, 1, opts, events)? else {
                return Ok(Finish::Interrupted);
            };
            let mut d = self.plain_decision(attempt, &results);
            self.hidden_guard(attempt, &results, &mut d)?;
            return self.settle(attempt, d, None, events);
        }
        self.verify_attempt(attempt, opts, events)
    }

    /// The commit new work builds on: the frontier, or the base before there is one.
    pub(crate) fn frontier_commit(&self) -> String {
        self.program
            .frontier_commit
            .clone()
            .unwrap_or_else(|| self.program.base_commit.clone())
    }

    pub(crate) fn noise_floor(&self) -> Result<Option<NoiseFloor>, SchedError> {
        Ok(self
            .project
            .store
            .noise_floor(self.program.id, &self.fp_hash)?)
    }

    pub(crate) fn after_decision(
        &mut self,
        attempt: &Attempt,
        d: Decision,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        let old = self.program.frontier_commit.clone();
        self.program = self.project.store.program_by_id(self.program.id)?;
        if d.advance_frontier {
            if let Some(new) = &self.program.frontier_commit {
                let r = program_ref(&self.program.name, "frontier");
                if self.repo.update_ref(&r, new, old.as_deref()).is_err() {
                    // The ref drifted (e.g. edited by hand): the store wins.
                    self.repo.update_ref(&r, new, None)?;
                }
            }
        }
        let a = self.project.store.attempt(attempt.id)?;
        self.history.push(history_entry(&a));
        events(&LoopEvent::Decided {
            seq: a.seq,
            kind: a.kind,
            status: a.status,
            value: a.primary_value,
            frontier: self.program.frontier_value,
            hypothesis: a.hypothesis.clone(),
        });
        Ok(Finish::Decided(d.status))
    }

    /// Reject an attempt whose run was stopped by the sandbox, or changed a non-editable file
    /// of its checkout while it ran: it reached for what the contract keeps from it (a
    /// boundary violation), whatever its metrics would have been.
    pub(crate) fn flag_sandbox_violation(&mut self, attempt: &Attempt) -> Result<bool, SchedError> {
        let breached: Vec<(RunBreach, String)> = self
            .project
            .store
            .all_runs_of_attempt(attempt.id)?
            .into_iter()
            .filter_map(|r| r.breach.map(|b| (b, r.error.unwrap_or_default())))
            .collect();
        let Some((first, note)) = breached.first().cloned() else {
            return Ok(false);
        };
        let evidence: Vec<String> = breached.into_iter().map(|(_, e)| e).collect();
        let kind = match first {
            RunBreach::RewroteProtected => "run-time write",
            RunBreach::SandboxDenied => "sandbox",
        };
        self.project.store.reject_attempt(
            attempt.id,
            AttemptStatus::Rejected,
            &json!({ "boundary": kind, "evidence": evidence }),
            &note,
        )?;
        Ok(true)
    }
}

pub(crate) fn one_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("").trim();
    if l.is_empty() {
        "(no hypothesis)".into()
    } else {
        l.chars().take(200).collect()
    }
}

/// Exact patch hash (sha256 of the patch text).
pub fn patch_hash(patch: &str) -> String {
    hex::encode(sha2::Sha256::digest(patch.as_bytes()))
}

pub(crate) fn history_entry(a: &Attempt) -> HistoryEntry {
    HistoryEntry {
        seq: a.seq,
        hypothesis: a.hypothesis.clone(),
        status: a.status,
        params: a
            .params
            .as_ref()
            .and_then(|p| serde_json::from_value::<Assignment>(p.clone()).ok()),
        value: a.primary_value,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{backoff_delay, AGENT_BACKOFF_MAX};

    #[test]
    fn agent_backoff_doubles_and_is_bounded() {
        let base = Duration::from_secs(2);
        let delays: Vec<u64> = (0..6).map(|n| backoff_delay(base, n).as_secs()).collect();
        assert_eq!(delays, [0, 2, 4, 8, 16, 32]);
        assert_eq!(backoff_delay(base, 7), AGENT_BACKOFF_MAX);
        assert_eq!(backoff_delay(base, u32::MAX), AGENT_BACKOFF_MAX);
        let long = Duration::from_secs(300);
        assert_eq!(backoff_delay(long, 3), long);
    }
}
