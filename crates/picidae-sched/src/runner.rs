//! The keep/revert loop of one program. Its recovery after a crash is in `recover.rs`, the
//! next proposal in `propose.rs`, the judgement of a candidate in `judging.rs`.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use picidae_agent::{Agent, HistoryEntry};
use picidae_core::contract::PolicySpec;
use picidae_core::domain::FindingState;
use picidae_core::stats::{summarize, Summary};
use picidae_core::{
    Assignment, AttemptKind, AttemptStatus, Contract, ProgramStatus, RunBreach, RunStatus,
};
use picidae_exec::{Fingerprint, LocalExecutor, RunOutcome, RunRequest};
use picidae_git::Repo;
use picidae_store::{
    Attempt, AttemptFilter, Decision, Evidence, NewAttempt, NoiseFloor, Program, RunResult,
};
use serde_json::json;
use sha2::Digest;

use crate::cancels::{RunCancels, Watch, CANCELLED_BY_USER, WATCH_POLL};
use crate::contract_source::{exposure, program_contract};
use crate::driver::WorkerJob;
use crate::executors::ExecutorSpec;
use crate::merge::Conclusion;
use crate::program::effective_policy;
use crate::resources::ResourcePool;
use crate::run::{KeptCheckout, RunCtx};
use crate::slots::SlotPool;
use crate::verify::Judgement;
use crate::{program_ref, Project, SchedError};

/// How long the optional setup step may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3600);

/// Options of one invocation of the loop.
#[derive(Debug, Clone, Default)]
pub struct LoopOptions {
    /// Stop after this many new attempts (resumed ones are not counted). `None` = never stop.
    pub max_attempts: Option<u64>,
    /// Start no new attempt once this many runs have been spent in this invocation.
    pub max_runs: Option<u64>,
    /// Finish the attempt in flight, then stop.
    pub stop: Arc<AtomicBool>,
    /// Kill the run in flight and stop; its attempt is resumed next time.
    pub cancel: Arc<AtomicBool>,
    /// Slots shared with other programs (the coordinator's); every run holds one.
    pub slots: Option<Arc<SlotPool>>,
    /// The machine's GPUs, CPUs and memory, shared with other programs (the coordinator's);
    /// every run holds what its contract declares, and sees only its own GPUs.
    pub resources: Option<Arc<ResourcePool>>,
    /// Proposals to keep ready ahead of the runs (0: propose, then run, in turn). With a
    /// depth, the agent works in a thread of its own while runs execute.
    pub pipeline: usize,
    /// Runs of one attempt (its seeds: a baseline's, a candidate's verification) that may
    /// execute at once (0 or 1: one after another). Under a coordinator every run still
    /// holds a slot, so the slots bound this too.
    pub parallel: usize,
    /// The flags of this loop's runs in flight, set when a person asks for a run to be
    /// cancelled (see [`RunCancels`]) or when `cancel` is set; whoever passes them polls the
    /// store for requests (the coordinator does). `None`: the loop polls on a thread of its own.
    pub run_cancels: Option<Arc<RunCancels>>,
}

/// What the loop reports as it goes (for progress displays and logs).
#[derive(Debug, Clone, PartialEq)]
pub enum LoopEvent {
    Recovered {
        runs_interrupted: usize,
        /// Remote runs still alive on their executor, waited for again.
        runs_readopted: usize,
        attempts_resumed: usize,
        attempts_failed: usize,
    },
    Setup {
        cached: bool,
        secs: f64,
    },
    RunStarted {
        seq: i64,
        run_id: i64,
        seed: i64,
    },
    RunFinished {
        seq: i64,
        run_id: i64,
        status: RunStatus,
        value: Option<f64>,
        wall_secs: f64,
    },
    Proposed {
        seq: i64,
        hypothesis: String,
    },
    Rejected {
        seq: i64,
        status: AttemptStatus,
        reason: String,
    },
    Calibrated {
        passed: bool,
        rank_correlation: Option<f64>,
        max_error: Option<f64>,
    },
    Verifying {
        seq: i64,
        finding_id: i64,
        seeds: u32,
    },
    Judged {
        seq: i64,
        finding_id: i64,
        state: FindingState,
        reason: String,
    },
    Decided {
        seq: i64,
        kind: AttemptKind,
        status: AttemptStatus,
        value: Option<f64>,
        frontier: Option<f64>,
        hypothesis: String,
    },
}

/// Counts for one invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoopSummary {
    pub attempts: u64,
    pub kept: u64,
    pub discarded: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Won against the frontier they were built on after it had moved: merged onto the new
    /// one as merge candidates (counted again when those are decided).
    pub merged: u64,
    pub baseline: Option<f64>,
    pub frontier: Option<f64>,
    /// Why the loop ended before `max_attempts`, if it did.
    pub stopped: Option<String>,
}

/// One seed of a [`Runner::measure`]ment: the visible primary metric and the hidden one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub seed: i64,
    pub visible: Option<f64>,
    pub hidden: Option<f64>,
}

/// One seed's outcome within an attempt.
#[derive(Debug, Clone)]
pub(crate) struct SeedResult {
    pub(crate) seed: i64,
    pub(crate) run_id: i64,
    pub(crate) status: RunStatus,
    pub(crate) value: Option<f64>,
}

impl LoopSummary {
    /// Attempts decided for good: a merged one waits for its merge candidate's verdict.
    pub(crate) fn decided(&self) -> u64 {
        self.attempts - self.merged
    }

    /// Count what an attempt that ran came to.
    pub(crate) fn finish(&mut self, f: &Finish) {
        match f {
            Finish::Decided(status) => self.count(*status),
            Finish::Merged(candidate) => {
                self.count(AttemptStatus::Merged);
                if let Some(status) = candidate {
                    self.count(*status);
                }
            }
            Finish::Interrupted => self.attempts += 1,
        }
    }

    pub(crate) fn count(&mut self, status: AttemptStatus) {
        self.attempts += 1;
        match status {
            AttemptStatus::Kept => self.kept += 1,
            AttemptStatus::Discarded => self.discarded += 1,
            AttemptStatus::Merged => self.merged += 1,
            AttemptStatus::Rejected | AttemptStatus::Duplicate => self.rejected += 1,
            _ => self.failed += 1,
        }
    }
}

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
    fp_json: String,
    pub(crate) host: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) history: Vec<HistoryEntry>,
    /// Hidden results by the content hash of the artifacts they scored (`judging`).
    pub(crate) hidden_cache: std::collections::HashMap<String, picidae_store::HiddenResult>,
    /// Shared slots for this invocation, if any.
    slots: Option<Arc<SlotPool>>,
    /// Shared machine resources for this invocation, if any.
    resources: Option<Arc<ResourcePool>>,
    /// This process's name on the leases of the runs it starts.
    pub(crate) lease_owner: String,
    /// Where the program's runs execute.
    pub(crate) executor: ExecutorSpec,
    /// The run checkout kept between runs (`run.reuse_checkout`) and the commit it holds.
    run_checkout: KeptCheckout,
    /// The cancel flags of this loop's runs in flight (set while [`Runner::run`] runs).
    cancels: Option<Arc<RunCancels>>,
    /// See [`Runner::notices`].
    notices: Vec<String>,
    /// Held for the runner's lifetime: one loop per program at a time.
    _lock: Option<std::fs::File>,
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
        let repo = Repo::open(&program.benchmark_dir)?;
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
        let repo = Repo::open(&parts.program.benchmark_dir)?;
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
                let w = c.watch(&store_path, opts.cancel.clone(), WATCH_POLL);
                self.cancels = Some(c);
                Some(w)
            }
        };
        let runs_at_start = self.project.store.run_count(Some(self.program.id))?;
        let resumed = self.recover(events)?;
        self.setup(events)?;
        self.load_history()?;
        let concurrent = opts.pipeline > 0 || self.policy.concurrency > 1;
        // With several in flight, the driver resumes explorations alongside new ones.
        let mut carried: Vec<Attempt> = Vec::new();
        for attempt in resumed {
            if self.interrupted(opts) {
                break;
            }
            if concurrent && attempt.kind == AttemptKind::Explore {
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
        if concurrent {
            self.run_concurrent(agent, opts, events, (&mut summary, carried), runs_at_start)?;
            return self.finish_summary(summary);
        }
        loop {
            if let Some(max) = opts.max_attempts {
                if summary.decided() >= max {
                    break;
                }
            }
            if let Some(why) = self.should_stop(opts, runs_at_start)? {
                summary.stopped = Some(self.paused_because.take().unwrap_or(why));
                break;
            }
            match self.explore_one(agent, opts, events)? {
                Some(f @ (Finish::Decided(_) | Finish::Merged(_))) => {
                    summary.finish(&f);
                    // Paused by this turn: say why even when it was the last one allowed.
                    if let Some(why) = self.paused_because.take() {
                        summary.stopped = Some(why);
                        break;
                    }
                }
                Some(Finish::Interrupted) => {
                    summary.attempts += 1;
                    summary.stopped = Some("cancelled".into());
                    break;
                }
                None => {
                    summary.stopped = Some("the agent has nothing more to propose".into());
                    break;
                }
            }
        }
        self.finish_summary(summary)
    }

    /// Why no new attempt may start now, if so: the invocation's run budget, a pause, the
    /// program's run budget, or a stop request. Steering is read from the store.
    fn should_stop(
        &self,
        opts: &LoopOptions,
        runs_at_start: i64,
    ) -> Result<Option<String>, SchedError> {
        let used = self.project.store.run_count(Some(self.program.id))?;
        if let Some(max) = opts.max_runs {
            if (used - runs_at_start) as u64 >= max {
                return Ok(Some(format!("run budget of {max} runs spent")));
            }
        }
        let now = self.project.store.program_by_id(self.program.id)?;
        if now.status == ProgramStatus::Paused {
            return Ok(Some("paused".into()));
        }
        if let Some(max) = now.max_runs {
            if used >= max {
                return Ok(Some(format!(
                    "the program's run budget is spent ({used} of {max} runs)"
                )));
            }
        }
        if now.max_gpu_hours.is_some() || now.max_usd.is_some() {
            let spent = self.project.store.program_spend(self.program.id)?;
            if let Some(max) = now.max_gpu_hours {
                if spent.gpu_hours >= max {
                    return Ok(Some(format!(
                        "the program's GPU-hour budget is spent ({:.3} of {max} GPU-hours)",
                        spent.gpu_hours
                    )));
                }
            }
            if let Some(max) = now.max_usd {
                if spent.usd >= max {
                    return Ok(Some(format!(
                        "the program's money budget is spent (${:.2} of ${max:.2}: {:.3} GPU-hours at ${:.2}, agents ${:.2})",
                        spent.usd, spent.gpu_hours, now.gpu_hour_usd, spent.agent_usd
                    )));
                }
            }
        }
        if opts.stop.load(Ordering::SeqCst) || opts.cancel.load(Ordering::SeqCst) {
            return Ok(Some("stop requested".into()));
        }
        Ok(None)
    }

    fn finish_summary(&mut self, mut s: LoopSummary) -> Result<LoopSummary, SchedError> {
        self.program = self.project.store.program_by_id(self.program.id)?;
        s.frontier = self.program.frontier_value;
        if s.baseline.is_none() {
            s.baseline = self.baseline_value()?;
        }
        Ok(s)
    }

    fn baseline_value(&self) -> Result<Option<f64>, SchedError> {
        Ok(self
            .project
            .store
            .frontier_history(self.program.id)?
            .first()
            .map(|h| h.value))
    }

    fn interrupted(&self, opts: &LoopOptions) -> bool {
        opts.stop.load(Ordering::SeqCst) || opts.cancel.load(Ordering::SeqCst)
    }

    // ------------------------------------------------------------------ setup

    fn setup(&mut self, events: Events<'_>) -> Result<(), SchedError> {
        let cache = self
            .data_dir
            .parent()
            .unwrap_or(&self.data_dir)
            .to_path_buf();
        let hidden = cache.join("hidden");
        for d in [&self.data_dir, &hidden] {
            std::fs::create_dir_all(d).map_err(|e| SchedError::io(d, e))?;
        }
        let Some(setup) = self.contract.setup.clone() else {
            return Ok(());
        };
        let marker = cache.join(".setup-done");
        let stamp = format!("{}\n{}\n", self.program.base_commit, setup.command);
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(stamp.as_str()) {
            events(&LoopEvent::Setup {
                cached: true,
                secs: 0.0,
            });
            return Ok(());
        }
        let started = Instant::now();
        let wt_path = self.project.worktree_dir(&self.program.name, "setup");
        let _ = self.repo.remove_worktree(&wt_path);
        let wt = self
            .repo
            .add_worktree(&wt_path, &self.program.base_commit)?;
        let log = cache.join("setup.log");
        let req = RunRequest {
            command: setup.command.clone(),
            cwd: wt.bench_dir(),
            env: vec![
                ("PICIDAE_DATA".into(), self.data_dir.display().to_string()),
                ("PICIDAE_HIDDEN".into(), hidden.display().to_string()),
            ],
            time_budget: SETUP_TIMEOUT,
            timeout: SETUP_TIMEOUT,
            grace: self.contract.run.grace,
            stdout_path: log.clone(),
            stderr_path: log.clone(),
            log_cap_bytes: self.contract.run.log_cap_bytes,
        };
        let cancel = AtomicBool::new(false);
        let outcome = LocalExecutor::new().spawn(&req)?.wait(&cancel);
        let _ = self.repo.remove_worktree(&wt_path);
        let outcome = outcome?;
        if !outcome.succeeded() {
            return Err(SchedError::SetupFailed {
                status: describe_exit(&outcome),
                log,
            });
        }
        std::fs::write(&marker, stamp).map_err(|e| SchedError::io(&marker, e))?;
        events(&LoopEvent::Setup {
            cached: false,
            secs: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    // ------------------------------------------------------------------ baseline

    fn baseline(&mut self, opts: &LoopOptions, events: Events<'_>) -> Result<(), SchedError> {
        let base = self.frontier_commit();
        let attempt = self.project.store.insert_attempt(&NewAttempt {
            program_id: self.program.id,
            kind: AttemptKind::Baseline,
            parent_commit: base.clone(),
            hypothesis: "baseline".into(),
            proposer: "picidae".into(),
            params: None,
        })?;
        self.project
            .store
            .set_attempt_commit(attempt.id, &base, &patch_hash(""), &[], None)?;
        let attempt = self.project.store.attempt(attempt.id)?;
        match self.run_attempt(&attempt, opts, events)? {
            Finish::Decided(AttemptStatus::Kept) => Ok(()),
            Finish::Decided(_) => {
                let runs = self.project.store.runs_of_attempt(attempt.id)?;
                let last = runs.last();
                let reason = last
                    .map(|r| {
                        let mut s = format!("run {} {}", r.id, r.status);
                        if !r.violations.is_empty() {
                            s.push_str(&format!(" ({})", r.violations.join("; ")));
                        }
                        if let Some(e) = &r.error {
                            s.push_str(&format!(" ({e})"));
                        }
                        s
                    })
                    .unwrap_or_else(|| "no run".into());
                let log = last
                    .and_then(|r| r.log_dir.clone())
                    .map(PathBuf::from)
                    .unwrap_or_default();
                Err(SchedError::BaselineFailed { reason, log })
            }
            Finish::Interrupted => Ok(()),
            Finish::Merged(_) => Err(SchedError::Program {
                program: self.program.name.clone(),
                message: "the baseline cannot be merged".into(),
            }),
        }
    }

    // ------------------------------------------------------------------ exploration

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

    // ------------------------------------------------------------------ runs

    /// Run an attempt's seeds and decide it: baseline (all its seeds, then it is the noise
    /// floor), plain keep/revert (`seeds = 1`), or screening plus verification.
    pub(crate) fn run_attempt(
        &mut self,
        attempt: &Attempt,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        let finish = self.run_and_decide(attempt, opts, events)?;
        if matches!(finish, Finish::Decided(_)) && self.flag_sandbox_violation(attempt)? {
            let a = self.project.store.attempt(attempt.id)?;
            events(&LoopEvent::Rejected {
                seq: a.seq,
                status: AttemptStatus::Rejected,
                reason: a.note.unwrap_or_default(),
            });
            return Ok(Finish::Decided(AttemptStatus::Rejected));
        }
        Ok(finish)
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

    /// A finding for `attempt_id` against the current frontier, under verification (`why`
    /// says how it got there).
    pub(crate) fn open_finding(
        &mut self,
        attempt_id: i64,
        why: &str,
    ) -> Result<picidae_store::Finding, SchedError> {
        let incumbent = self.program.frontier_attempt_id.unwrap_or(attempt_id);
        let f = self.project.store.create_finding(
            self.program.id,
            attempt_id,
            incumbent,
            &self.contract.primary_metric,
            Some(&self.fp_hash),
        )?;
        self.project
            .store
            .move_finding(f.id, FindingState::Verifying, None, why)?;
        Ok(f)
    }

    /// Screen on one seed; a candidate that beats the frontier gets the policy's remaining
    /// seeds at once (verification before new exploration) and is judged statistically.
    fn verify_attempt(
        &mut self,
        attempt: &Attempt,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        let goal = self.contract.primary().goal;
        let mut finding = self.project.store.finding_for_attempt(attempt.id)?;
        if finding.is_none() {
            let Some(screen) = self.run_seeds(attempt, 1, opts, events)? else {
                return Ok(Finish::Interrupted);
            };
            let first = &screen[0];
            let frontier = self.program.frontier_value.unwrap_or(f64::NAN);
            let beats = first.status == RunStatus::Succeeded
                && first
                    .value
                    .is_some_and(|v| goal.improves(v, frontier, self.policy.min_improvement));
            if !beats {
                let mut d = self.plain_decision(attempt, &screen);
                if d.status == AttemptStatus::Discarded {
                    d.note =
                        Some("screened out: did not beat the frontier on its first seed".into());
                }
                return self.settle(attempt, d, None, events);
            }
            let f = self.open_finding(
                attempt.id,
                &format!("queued {} more seeds", self.policy.seeds - 1),
            )?;
            events(&LoopEvent::Verifying {
                seq: attempt.seq,
                finding_id: f.id,
                seeds: self.policy.seeds,
            });
            finding = Some(self.project.store.finding(f.id)?);
        }
        let finding = finding.ok_or_else(|| SchedError::Program {
            program: self.program.name.clone(),
            message: format!("attempt {} lost its finding", attempt.seq),
        })?;
        let Some(results) = self.run_seeds(attempt, self.policy.seeds as i64, opts, events)? else {
            return Ok(Finish::Interrupted);
        };
        let judgement = if let Some(bad) = results.iter().find(|r| r.status != RunStatus::Succeeded)
        {
            Judgement {
                validated: false,
                blocked: false,
                evidence: Evidence {
                    n_candidate: Some(results.len() as i64),
                    ..Default::default()
                },
                reason: if bad.status == RunStatus::Cancelled {
                    format!(
                        "not verified: seed {} (run {}) was {CANCELLED_BY_USER}",
                        bad.seed, bad.run_id
                    )
                } else {
                    format!("seed {} ended {}", bad.seed, bad.status)
                },
            }
        } else {
            self.judge_candidate(&finding, &results)?
        };
        let state = if judgement.validated {
            FindingState::Validated
        } else if judgement.blocked {
            FindingState::Verifying
        } else {
            FindingState::Refuted
        };
        let values: Vec<f64> = results.iter().filter_map(|r| r.value).collect();
        let mean = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        let d = Decision {
            status: if judgement.validated {
                AttemptStatus::Kept
            } else {
                AttemptStatus::Discarded
            },
            primary_value: mean,
            note: Some(format!(
                "finding {} {state}: {}",
                finding.id, judgement.reason
            )),
            advance_frontier: judgement.validated,
            judged_against: self.program.frontier_attempt_id,
        };
        let conclusion = Conclusion {
            finding_id: finding.id,
            state,
            evidence: judgement.evidence,
            reason: judgement.reason,
        };
        self.settle(attempt, d, Some(conclusion), events)
    }

    /// Re-measure a commit on fresh seeds `first..first + n`, visible and hidden metric per seed,
    /// recorded as an attempt of kind `measure` that is never compared with the frontier. For
    /// ground truth in benchmarks of the policy itself.
    pub fn measure(
        &mut self,
        commit: &str,
        first: i64,
        n: i64,
        label: &str,
    ) -> Result<Vec<Measurement>, SchedError> {
        self.setup(&mut |_| {})?;
        let attempt = self.project.store.insert_attempt(&NewAttempt {
            program_id: self.program.id,
            kind: AttemptKind::Measure,
            parent_commit: commit.to_string(),
            hypothesis: format!("measure {label}"),
            proposer: "picidae".into(),
            params: None,
        })?;
        self.project
            .store
            .set_attempt_commit(attempt.id, commit, &patch_hash(""), &[], None)?;
        let attempt = self.project.store.attempt(attempt.id)?;
        let opts = LoopOptions::default();
        let results = self
            .run_seed_range(&attempt, first, n, &opts, &mut |_| {})?
            .unwrap_or_default();
        let mut out = Vec::new();
        for r in &results {
            let hidden = if self.contract.hidden.is_some() {
                self.hidden_values(&[r.run_id])?.first().copied()
            } else {
                None
            };
            out.push(Measurement {
                seed: r.seed,
                visible: r.value.filter(|_| r.status == RunStatus::Succeeded),
                hidden,
            });
        }
        self.project.store.decide_attempt(
            attempt.id,
            &Decision {
                status: AttemptStatus::Discarded,
                primary_value: None,
                note: Some("measurement".into()),
                advance_frontier: false,
                judged_against: None,
            },
        )?;
        Ok(out)
    }

    /// Run the setup step if needed (exposed for `picidae evaluator calibrate`).
    pub fn prepare(&mut self, events: Events<'_>) -> Result<(), SchedError> {
        self.setup(events)
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

    /// Run the seeds `0..n` an attempt still lacks (finished, non-cancelled runs count), each
    /// recorded as it ends. `None` when cancelled.
    fn run_seeds(
        &mut self,
        attempt: &Attempt,
        n: i64,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Option<Vec<SeedResult>>, SchedError> {
        self.run_seed_range(attempt, 0, n, opts, events)
    }

    /// Run the seeds `first..first + n`, as [`run_seeds`](Self::run_seeds).
    fn run_seed_range(
        &mut self,
        attempt: &Attempt,
        first: i64,
        n: i64,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Option<Vec<SeedResult>>, SchedError> {
        let range = first..first + n;
        let runs = self.project.store.runs_of_attempt(attempt.id)?;
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
                if opts.cancel.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                for (seed, r) in
                    batch
                        .iter()
                        .zip(self.execute_parallel(attempt, batch, &opts.cancel, events))
                {
                    done.push((*seed, r?));
                }
            }
        }
        for seed in missing {
            if opts.cancel.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let (run_id, result) = match done.iter().position(|(s, _)| *s == seed) {
                Some(i) => done.swap_remove(i).1,
                None => self.execute_run(attempt, seed, &opts.cancel, events)?,
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

    /// Keep/revert on the mean of the seeds; any failed seed fails the attempt.
    fn plain_decision(&self, attempt: &Attempt, results: &[SeedResult]) -> Decision {
        let values: Vec<f64> = results
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .filter_map(|r| r.value)
            .collect();
        let mean = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        if values.len() < results.len() || mean.is_none() {
            let statuses: Vec<String> = results.iter().map(|r| r.status.to_string()).collect();
            // Only a run a person cancelled reaches a decision as `cancelled`.
            let note = match results.iter().find(|r| r.status == RunStatus::Cancelled) {
                Some(r) => format!(
                    "run {} (seed {}) {CANCELLED_BY_USER}; runs: {}",
                    r.run_id,
                    r.seed,
                    statuses.join(", ")
                ),
                None => format!("runs: {}", statuses.join(", ")),
            };
            return Decision {
                status: AttemptStatus::Failed,
                primary_value: mean,
                note: Some(note),
                advance_frontier: false,
                judged_against: None,
            };
        }
        let mean = mean.unwrap_or(f64::NAN);
        let goal = self.contract.primary().goal;
        let better = attempt.kind == AttemptKind::Baseline
            || match self.program.frontier_value {
                Some(f) => goal.improves(mean, f, self.policy.min_improvement),
                None => true,
            };
        Decision {
            status: if better {
                AttemptStatus::Kept
            } else {
                AttemptStatus::Discarded
            },
            primary_value: Some(mean),
            note: None,
            advance_frontier: better,
            // The baseline measures the frontier; everything else must beat the one it was
            // judged against, still in place when it is recorded (`merge.rs`).
            judged_against: if attempt.kind == AttemptKind::Baseline {
                None
            } else {
                self.program.frontier_attempt_id
            },
        }
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

    /// What a run of this program needs, for executing it here or on a thread.
    pub(crate) fn run_ctx(&self) -> RunCtx {
        RunCtx {
            program: self.program.name.clone(),
            project_tag: patch_hash(&self.project.root().display().to_string())[..8].to_string(),
            base_commit: self.program.base_commit.clone(),
            contract: self.contract.clone(),
            executor: self.executor.clone(),
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
    fn execute_run(
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
    fn execute_parallel(
        &mut self,
        attempt: &Attempt,
        seeds: &[i64],
        cancel: &AtomicBool,
        events: Events<'_>,
    ) -> Vec<Result<(i64, RunResult), SchedError>> {
        let ctx = self.run_ctx();
        let root = self.project.root().to_path_buf();
        let bench = self.program.benchmark_dir.clone();
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

    /// Reject an attempt whose run was stopped by the sandbox, or changed a non-editable file
    /// of its checkout while it ran: it reached for what the contract keeps from it (a
    /// boundary violation), whatever its metrics would have been.
    pub(crate) fn flag_sandbox_violation(&mut self, attempt: &Attempt) -> Result<bool, SchedError> {
        let breached: Vec<(RunBreach, String)> = self
            .project
            .store
            .runs_of_attempt(attempt.id)?
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

/// Take the program's exclusive lock (an OS file lock, released when the process dies), so two
/// loops never drive one program and recovery never mistakes a live loop's run for an orphan.
/// The name this process puts on the leases of its runs: host and process id.
pub fn lease_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether the coordinator named `owner` (see [`lease_owner`]) may still be alive: always for
/// another host (only its heartbeat can tell), and for this host when its process lives.
pub(crate) fn lease_holder_alive(owner: &str) -> bool {
    let me = lease_owner();
    let my_host = me.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
    match owner.rsplit_once(':') {
        Some((host, pid)) if host == my_host => pid
            .parse::<i32>()
            .map(picidae_exec::process_alive)
            .unwrap_or(false),
        _ => true,
    }
}

/// A lease not renewed for this long belongs to a dead coordinator; its runs are recovered
/// and its programs taken over: 30 s, or `PICIDAE_LEASE_EXPIRY_SECS`.
pub fn lease_expiry() -> std::time::Duration {
    static EXPIRY: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *EXPIRY.get_or_init(|| {
        let secs = std::env::var("PICIDAE_LEASE_EXPIRY_SECS")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(30);
        std::time::Duration::from_secs(secs)
    })
}

pub(crate) fn lock_program(project: &Project, program: &str) -> Result<std::fs::File, SchedError> {
    let dir = project.dir().join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| SchedError::io(&dir, e))?;
    let path = dir.join(format!("{program}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SchedError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SchedError::Busy(program.to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(SchedError::io(&path, e)),
    }
}

fn describe_exit(o: &RunOutcome) -> String {
    if o.timed_out {
        "timed out".into()
    } else if let Some(s) = o.signal {
        format!("killed by signal {s}")
    } else {
        format!("exit code {}", o.exit_code.unwrap_or(-1))
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
