//! The Slurm executor: runs a [`RunRequest`] as a Slurm batch job.
//!
//! This module owns everything Picidae does through the Slurm client
//! commands: writing the batch script, submitting it with `sbatch`, querying
//! job states (`squeue`, then `scontrol show job`, then the completion log
//! via `sacct -c`), signalling and cancelling with `scancel`, and turning a
//! finished job into a [`RunOutcome`]. It also owns the mapping from Slurm's
//! job states to what the scheduler should make of them ([`SlurmJobState`],
//! [`SlurmDisposition`]).
//!
//! Lifecycle of a run:
//!
//! 1. [`SlurmExecutor::spawn_with`] validates the request, creates the log
//!    files, writes `<stdout file name>.sbatch` next to the stdout log (the
//!    script `cd`s to `cwd`, exports `env`, then
//!    `exec /bin/sh -c <command>`), and submits it with
//!    `sbatch --parsable`. Slurm writes stdout/stderr straight into the log
//!    files. The job's own `--time` limit is the request's `timeout + grace`
//!    rounded up to minutes: a backstop only, since Picidae owns budgets.
//! 2. [`SlurmRun::wait`] polls the job every
//!    [`SlurmOptions::poll_interval`]. The request's `timeout` counts from the
//!    moment the job started running (time spent pending in the queue is not
//!    charged). On timeout or cancellation the job's processes get SIGTERM
//!    (`scancel --signal=TERM --full`), then after `grace` SIGKILL and a plain
//!    `scancel`.
//! 3. When the job is finished, the stdout tail is read from the log file and
//!    each log file longer than `log_cap_bytes` is truncated to the cap plus
//!    a marker line.
//!
//! Dropping a [`SlurmRun`] without waiting does **not** cancel the job: the
//! job keeps running under Slurm, and a restarted coordinator resumes waiting
//! on it with [`SlurmExecutor::reattach`] using the persisted
//! [`RunHandle::id`] (`slurm:<jobid>`).
//!
//! Jobs that end for reasons outside the run's control (`NODE_FAIL`,
//! `PREEMPTED`, `BOOT_FAIL`, held by Slurm, or forgotten by Slurm) are not
//! outcomes: [`SlurmRun::wait`] returns [`ExecError::SlurmJobLost`] so the
//! scheduler can requeue the run. Jobs are submitted with `--no-requeue` by
//! default so Slurm does not rerun them behind Picidae's back.
//!
//! All time fields are requested as Unix seconds (`SLURM_TIME_FORMAT=%s`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::call::now_unix_ms;
use crate::executor::{Executor, RunHandle};
use crate::local::STDOUT_TAIL_BYTES;
use crate::logs::truncation_marker;
use crate::shell::quote;
use crate::{ExecError, RunOutcome, RunRequest};

/// Default pause between two state queries of one waiting run.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default job name when neither the options nor the job spec give one.
pub const DEFAULT_JOB_NAME: &str = "picidae";
/// Prefix of [`RunHandle::id`] for Slurm runs.
pub const ID_PREFIX: &str = "slurm:";

/// `squeue --Format` fields, in the order [`parse_squeue`] expects them.
const SQUEUE_FORMAT: &str = "JobID:|,State:|,exit_code:|,StartTime:|,EndTime:|,Reason:|";
/// `sacct` fields, in the order [`parse_sacct`] expects them.
const SACCT_FORMAT: &str = "JobID,State,ExitCode,Start,End";
/// Job ids per `squeue` / `sacct` call.
const QUERY_CHUNK: usize = 200;
/// How often cancel flag and timeout are checked between two queries.
const WAKE_INTERVAL: Duration = Duration::from_millis(50);
/// After SIGKILL, `scancel` is repeated this often until the job is over.
const KILL_RETRY: Duration = Duration::from_secs(5);
/// A killed job that is still not finished after this long is an error.
const KILL_SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// A job that no Slurm source knows for this long counts as lost.
const UNKNOWN_LIMIT: Duration = Duration::from_secs(30);
/// Longest `--time` passed to Slurm, in minutes (one year).
const MAX_TIME_MINUTES: u64 = 365 * 24 * 60;

// ---------------------------------------------------------------------------
// Job states
// ---------------------------------------------------------------------------

/// A Slurm job state, as printed by `squeue`, `scontrol` and `sacct`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SlurmJobState {
    /// Waiting for resources or priority.
    Pending,
    /// Resources allocated, nodes being readied.
    Configuring,
    /// Running.
    Running,
    /// Finished, resources being released.
    Completing,
    /// Suspended by an administrator or gang scheduling.
    Suspended,
    /// Stopped (SIGSTOP), still holding its resources.
    Stopped,
    /// Being resized.
    Resizing,
    /// Being signalled.
    Signaling,
    /// Staging out data (burst buffers).
    StageOut,
    /// Requeued, will become pending again.
    Requeued,
    /// Requeued to a federation sibling.
    RequeueFed,
    /// Requeued and held: will not run until released.
    RequeueHold,
    /// Requeued and held after a special exit code.
    SpecialExit,
    /// Held because its reservation was deleted.
    ResvDelHold,
    /// Revoked: a federation sibling runs it instead.
    Revoked,
    /// Exited with status 0.
    Completed,
    /// Exited with a non-zero status or failed to launch.
    Failed,
    /// Cancelled (`scancel`).
    Cancelled,
    /// Reached its Slurm time limit.
    Timeout,
    /// Killed by the out-of-memory handler.
    OutOfMemory,
    /// A node it ran on failed.
    NodeFail,
    /// Preempted by a higher-priority job.
    Preempted,
    /// A node could not be booted for it.
    BootFail,
    /// Reached its `--deadline`.
    Deadline,
    /// A state this module does not know (upper-cased text).
    Other(String),
}

/// What Picidae should make of a job state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SlurmDisposition {
    /// Queued or running: keep waiting.
    Active,
    /// Finished with status 0.
    Succeeded,
    /// The run failed (non-zero exit, launch failure, out of memory).
    Failed,
    /// The run hit a time limit.
    TimedOut,
    /// The run was cancelled.
    Cancelled,
    /// The job ended or stalled for reasons outside the run (node failure,
    /// preemption, boot failure, held): requeue the run.
    Lost,
}

impl SlurmJobState {
    /// Parses a state as printed by any Slurm command: long (`RUNNING`) or
    /// compact (`R`) form, any case, ignoring trailing decorations such as
    /// `CANCELLED by 0` or a truncation `+`.
    pub fn parse(text: &str) -> SlurmJobState {
        let word = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+')
            .to_ascii_uppercase();
        use SlurmJobState::*;
        match word.as_str() {
            "PENDING" | "PD" => Pending,
            "CONFIGURING" | "CF" => Configuring,
            "RUNNING" | "R" => Running,
            "COMPLETING" | "CG" => Completing,
            "SUSPENDED" | "S" => Suspended,
            "STOPPED" | "ST" => Stopped,
            "RESIZING" | "RS" => Resizing,
            "SIGNALING" | "SI" => Signaling,
            "STAGE_OUT" | "SO" => StageOut,
            "REQUEUED" | "RQ" => Requeued,
            "REQUEUE_FED" | "RF" => RequeueFed,
            "REQUEUE_HOLD" | "RH" => RequeueHold,
            "SPECIAL_EXIT" | "SE" => SpecialExit,
            "RESV_DEL_HOLD" | "RD" => ResvDelHold,
            "REVOKED" | "RV" => Revoked,
            "COMPLETED" | "CD" => Completed,
            "FAILED" | "F" => Failed,
            "CANCELLED" | "CA" => Cancelled,
            "TIMEOUT" | "TO" => Timeout,
            "OUT_OF_MEMORY" | "OOM" => OutOfMemory,
            "NODE_FAIL" | "NF" => NodeFail,
            "PREEMPTED" | "PR" => Preempted,
            "BOOT_FAIL" | "BF" => BootFail,
            "DEADLINE" | "DL" => Deadline,
            _ => Other(word),
        }
    }

    /// The state's long Slurm name.
    pub fn as_str(&self) -> &str {
        use SlurmJobState::*;
        match self {
            Pending => "PENDING",
            Configuring => "CONFIGURING",
            Running => "RUNNING",
            Completing => "COMPLETING",
            Suspended => "SUSPENDED",
            Stopped => "STOPPED",
            Resizing => "RESIZING",
            Signaling => "SIGNALING",
            StageOut => "STAGE_OUT",
            Requeued => "REQUEUED",
            RequeueFed => "REQUEUE_FED",
            RequeueHold => "REQUEUE_HOLD",
            SpecialExit => "SPECIAL_EXIT",
            ResvDelHold => "RESV_DEL_HOLD",
            Revoked => "REVOKED",
            Completed => "COMPLETED",
            Failed => "FAILED",
            Cancelled => "CANCELLED",
            Timeout => "TIMEOUT",
            OutOfMemory => "OUT_OF_MEMORY",
            NodeFail => "NODE_FAIL",
            Preempted => "PREEMPTED",
            BootFail => "BOOT_FAIL",
            Deadline => "DEADLINE",
            Other(s) => s,
        }
    }

    /// True when Slurm is done with the job: it will not run (again) by
    /// itself. Held states (`REQUEUE_HOLD`, `SPECIAL_EXIT`, `RESV_DEL_HOLD`)
    /// count as terminal because only an operator can release them, and
    /// `REVOKED` because the job runs on another cluster. Unknown states are
    /// not terminal.
    pub fn is_terminal(&self) -> bool {
        use SlurmJobState::*;
        matches!(
            self,
            Completed
                | Failed
                | Cancelled
                | Timeout
                | OutOfMemory
                | NodeFail
                | Preempted
                | BootFail
                | Deadline
                | RequeueHold
                | SpecialExit
                | ResvDelHold
                | Revoked
        )
    }

    /// True when the job's processes have started (or already finished).
    pub fn has_started(&self) -> bool {
        use SlurmJobState::*;
        !matches!(
            self,
            Pending | Configuring | Requeued | RequeueFed | RequeueHold | ResvDelHold | Other(_)
        )
    }

    /// True for held states: the job still exists in the queue and must be
    /// cancelled if Picidae gives up on it.
    pub fn is_held(&self) -> bool {
        use SlurmJobState::*;
        matches!(self, RequeueHold | SpecialExit | ResvDelHold)
    }

    /// How Picidae counts a job in this state.
    pub fn disposition(&self) -> SlurmDisposition {
        use SlurmJobState::*;
        match self {
            Pending | Configuring | Running | Completing | Suspended | Stopped | Resizing
            | Signaling | StageOut | Requeued | RequeueFed | Other(_) => SlurmDisposition::Active,
            Completed => SlurmDisposition::Succeeded,
            Failed | OutOfMemory => SlurmDisposition::Failed,
            Timeout | Deadline => SlurmDisposition::TimedOut,
            Cancelled => SlurmDisposition::Cancelled,
            NodeFail | Preempted | BootFail | RequeueHold | SpecialExit | ResvDelHold | Revoked => {
                SlurmDisposition::Lost
            }
        }
    }
}

impl fmt::Display for SlurmJobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a state query learned about one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJobInfo {
    /// The job id as Slurm prints it.
    pub job_id: String,
    /// Current state.
    pub state: SlurmJobState,
    /// Exit status of the batch script, when it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended the batch script, when one did.
    pub signal: Option<i32>,
    /// Start time (Unix seconds). For pending jobs this may be Slurm's
    /// expected start; only meaningful once the state has started.
    pub start_unix: Option<i64>,
    /// End time (Unix seconds). For running jobs this is the time-limit
    /// end; only meaningful once the state is terminal.
    pub end_unix: Option<i64>,
    /// Slurm's reason text (`None` when it prints `None`).
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// Resources requested for one job. `None` leaves Slurm's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmResources {
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--mem`, in megabytes.
    pub memory_mb: Option<u64>,
    /// `--gres=gpu:<n>`.
    pub gpus: Option<u32>,
}

/// Per-submission settings for [`SlurmExecutor::spawn_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJobSpec {
    /// `--job-name` (e.g. the run id). `None` uses
    /// [`SlurmOptions::job_name`].
    pub name: Option<String>,
    /// Resources for this job.
    pub resources: SlurmResources,
}

/// Settings of a [`SlurmExecutor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmOptions {
    /// `--partition`; `None` uses the cluster's default partition.
    pub partition: Option<String>,
    /// Extra `sbatch` arguments, passed verbatim before the script path
    /// (e.g. `--account=x`, `--qos=y`).
    pub extra_args: Vec<String>,
    /// Pause between two state queries of a waiting run.
    pub poll_interval: Duration,
    /// Job name used when a [`SlurmJobSpec`] gives none.
    pub job_name: String,
    /// Resources used by [`Executor::spawn`].
    pub resources: SlurmResources,
    /// Let Slurm requeue the job itself (node failure, preemption). Off by
    /// default: Picidae requeues lost runs itself.
    pub requeue: bool,
    /// How long [`SlurmRun::wait`] tolerates failing Slurm queries (e.g. a
    /// restarting controller) before giving up with an error.
    pub query_failure_limit: Duration,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            partition: None,
            extra_args: Vec::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            job_name: DEFAULT_JOB_NAME.to_string(),
            resources: SlurmResources::default(),
            requeue: false,
            query_failure_limit: Duration::from_secs(300),
        }
    }
}

// ---------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------

/// Runs commands as Slurm batch jobs through the Slurm client commands found
/// on `PATH`.
#[derive(Debug, Clone, Default)]
pub struct SlurmExecutor {
    opts: SlurmOptions,
}

impl SlurmExecutor {
    /// Creates an executor with these options.
    pub fn new(opts: SlurmOptions) -> SlurmExecutor {
        SlurmExecutor { opts }
    }

    /// The executor's options.
    pub fn options(&self) -> &SlurmOptions {
        &self.opts
    }

    /// Checks that the Slurm client commands exist and the controller
    /// answers (`sinfo`).
    pub fn check_cluster() -> Result<(), ExecError> {
        run_slurm(
            "sinfo",
            &["-h".to_string(), "-o".to_string(), "%P".to_string()],
        )
        .map(|_| ())
    }

    /// Submits `req` with `spec` and returns a handle on the job as soon as
    /// `sbatch` has accepted it (the job may still be pending).
    pub fn spawn_with(&self, req: &RunRequest, spec: &SlurmJobSpec) -> Result<SlurmRun, ExecError> {
        req.validate()?;
        let cwd = fs::canonicalize(&req.cwd).map_err(|e| {
            ExecError::InvalidRequest(format!("cannot resolve cwd {}: {e}", req.cwd.display()))
        })?;
        let cwd_str = path_str(&cwd, "cwd")?;
        for (k, _) in &req.env {
            if !is_shell_name(k) {
                return Err(ExecError::InvalidRequest(format!(
                    "environment variable name {k:?} is not a shell identifier"
                )));
            }
        }
        let stdout_path = absolute(&req.stdout_path)?;
        let stderr_path = absolute(&req.stderr_path)?;
        let shared = stdout_path == stderr_path;
        create_log(&stdout_path)?;
        if !shared {
            create_log(&stderr_path)?;
        }

        let script_path = script_path_for(&stdout_path);
        let script = batch_script(cwd_str, &req.env, &req.command);
        fs::write(&script_path, script).map_err(|source| ExecError::LocalIo {
            path: script_path.clone(),
            source,
        })?;

        let name = spec.name.as_deref().unwrap_or(&self.opts.job_name);
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name={}", sanitize_job_name(name)),
            format!(
                "--output={}",
                escape_pattern(path_str(&stdout_path, "stdout path")?)?
            ),
        ];
        if !shared {
            args.push(format!(
                "--error={}",
                escape_pattern(path_str(&stderr_path, "stderr path")?)?
            ));
        }
        args.push(format!(
            "--time={}",
            time_limit_minutes(req.timeout.saturating_add(req.grace))
        ));
        args.push(format!("--chdir={cwd_str}"));
        args.push("--open-mode=truncate".to_string());
        if !self.opts.requeue {
            args.push("--no-requeue".to_string());
        }
        if let Some(p) = &self.opts.partition {
            args.push(format!("--partition={p}"));
        }
        args.extend(resource_args(&spec.resources));
        args.extend(self.opts.extra_args.iter().cloned());
        args.push(path_str(&script_path, "script path")?.to_string());

        let submitted_at_unix_ms = now_unix_ms();
        let out = run_slurm("sbatch", &args)?;
        let job_id = parse_sbatch_parsable(&out).ok_or_else(|| ExecError::Slurm {
            command: "sbatch".into(),
            message: format!("unexpected output {:?}", out.trim()),
        })?;
        tracing::info!(job_id = %job_id, name, "submitted slurm job");
        Ok(SlurmRun {
            job_id,
            opts: self.opts.clone(),
            req: req.clone(),
            stdout_path,
            stderr_path,
            submitted_at_unix_ms: Some(submitted_at_unix_ms),
        })
    }

    /// Resumes waiting on an already submitted job (after a coordinator
    /// restart). `job_id` is a Slurm job id or a persisted
    /// [`RunHandle::id`] (`slurm:<jobid>`); `req` is the request the job was
    /// submitted for (its timeout, grace, log paths and cap apply). The
    /// timeout counts from the job's start time as recorded by Slurm.
    pub fn reattach(
        &self,
        job_id: &str,
        req: &RunRequest,
    ) -> Result<Box<dyn RunHandle>, ExecError> {
        Ok(Box::new(self.reattach_run(job_id, req)?))
    }

    /// [`SlurmExecutor::reattach`], returning the concrete handle.
    pub fn reattach_run(&self, job_id: &str, req: &RunRequest) -> Result<SlurmRun, ExecError> {
        let job_id = normalize_job_id(job_id)?;
        Ok(SlurmRun {
            job_id,
            opts: self.opts.clone(),
            req: req.clone(),
            stdout_path: absolute(&req.stdout_path)?,
            stderr_path: absolute(&req.stderr_path)?,
            submitted_at_unix_ms: None,
        })
    }

    /// States of many jobs with one `squeue` call (per 200 ids), falling back
    /// to `scontrol show job` and then `sacct -c` for jobs `squeue` no longer
    /// lists. Keys are the ids as given (`123` or `slurm:123`); jobs that no
    /// source knows are absent. Fails when an id is malformed or when
    /// `squeue` itself fails (e.g. the controller is unreachable).
    pub fn poll<S: AsRef<str>>(
        &self,
        job_ids: &[S],
    ) -> Result<HashMap<String, SlurmJobState>, ExecError> {
        Ok(self
            .query(job_ids)?
            .into_iter()
            .map(|(k, v)| (k, v.state))
            .collect())
    }

    /// Like [`SlurmExecutor::poll`], with exit status and times.
    pub fn query<S: AsRef<str>>(
        &self,
        job_ids: &[S],
    ) -> Result<HashMap<String, SlurmJobInfo>, ExecError> {
        // Normalised id -> the caller's spellings of it.
        let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
        for id in job_ids {
            let given = id.as_ref().to_string();
            let norm = normalize_job_id(&given)?;
            wanted.entry(norm).or_default().push(given);
        }
        let ids: Vec<String> = wanted.keys().cloned().collect();
        let found = query_jobs(&ids)?;
        let mut out = HashMap::new();
        for (norm, info) in found {
            if let Some(keys) = wanted.get(&norm) {
                for k in keys {
                    out.insert(k.clone(), info.clone());
                }
            }
        }
        Ok(out)
    }

    /// Sends `signal` (e.g. `"TERM"`) to all processes of the job, or
    /// cancels it when `signal` is `None`.
    pub fn cancel(&self, job_id: &str, signal: Option<&str>) -> Result<(), ExecError> {
        scancel(&normalize_job_id(job_id)?, signal)
    }
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &str {
        "slurm"
    }

    fn spawn(&self, req: &RunRequest) -> Result<Box<dyn RunHandle>, ExecError> {
        let spec = SlurmJobSpec {
            name: None,
            resources: self.opts.resources,
        };
        Ok(Box::new(self.spawn_with(req, &spec)?))
    }
}

// ---------------------------------------------------------------------------
// Running job
// ---------------------------------------------------------------------------

/// A submitted Slurm job. Dropping it leaves the job alone.
#[derive(Debug)]
pub struct SlurmRun {
    job_id: String,
    opts: SlurmOptions,
    req: RunRequest,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    /// Set when this process submitted the job.
    submitted_at_unix_ms: Option<i64>,
}

/// Why Picidae is terminating a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillReason {
    Timeout,
    Cancel,
}

/// Where the termination of a job stands.
#[derive(Debug)]
struct Kill {
    reason: KillReason,
    term_at: Instant,
    killed_at: Option<Instant>,
    last_scancel: Instant,
}

impl SlurmRun {
    /// The Slurm job id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Blocks until the job is finished, the request's timeout (counted from
    /// the job's start) fires, or `cancel` becomes true; in the last two
    /// cases the job is terminated first (SIGTERM, `grace`, SIGKILL).
    /// Returns [`ExecError::SlurmJobLost`] for jobs that ended or stalled for
    /// reasons outside the run's control.
    pub fn wait(self, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        let ids = [self.job_id.clone()];
        let mut started: Option<(Instant, i64)> = None;
        let mut kill: Option<Kill> = None;
        let mut last_query_ok = Instant::now();
        let mut unknown_since: Option<Instant> = None;

        let info = loop {
            match query_jobs(&ids) {
                Ok(mut found) => {
                    last_query_ok = Instant::now();
                    match found.remove(&self.job_id) {
                        Some(info) => {
                            unknown_since = None;
                            if started.is_none() && info.state.has_started() {
                                started = Some(self.start_point(&info));
                            }
                            if info.state.is_terminal() {
                                break info;
                            }
                        }
                        None => {
                            let since = *unknown_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= UNKNOWN_LIMIT {
                                return Err(ExecError::SlurmJobLost {
                                    job_id: self.job_id.clone(),
                                    state: "UNKNOWN".into(),
                                });
                            }
                        }
                    }
                }
                Err(err) => {
                    if last_query_ok.elapsed() >= self.opts.query_failure_limit {
                        return Err(err);
                    }
                    tracing::warn!(job_id = %self.job_id, error = %err, "slurm query failed; retrying");
                }
            }

            // Act on cancel / timeout, then sleep until the next query,
            // waking often enough to notice both promptly.
            let next_query = Instant::now() + self.opts.poll_interval;
            loop {
                self.drive_kill(&mut kill, started, cancel)?;
                let now = Instant::now();
                if now >= next_query {
                    break;
                }
                thread::sleep(WAKE_INTERVAL.min(next_query - now));
            }
        };

        self.finish(info, started, kill.map(|k| k.reason))
    }

    /// Start of the run as (local instant, Unix ms), from Slurm's start time
    /// (never before our own submission, never in the future).
    fn start_point(&self, info: &SlurmJobInfo) -> (Instant, i64) {
        let now_ms = now_unix_ms();
        let mut start_ms = info
            .start_unix
            .filter(|s| *s > 0)
            .map(|s| s.saturating_mul(1000))
            .unwrap_or(now_ms);
        if let Some(sub) = self.submitted_at_unix_ms {
            start_ms = start_ms.max(sub);
        }
        start_ms = start_ms.min(now_ms);
        let ago = Duration::from_millis(u64::try_from(now_ms - start_ms).unwrap_or(0));
        let instant = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
        (instant, start_ms)
    }

    /// Starts or advances the termination of the job when the cancel flag is
    /// set or the timeout has passed.
    fn drive_kill(
        &self,
        kill: &mut Option<Kill>,
        started: Option<(Instant, i64)>,
        cancel: &AtomicBool,
    ) -> Result<(), ExecError> {
        let now = Instant::now();
        match kill {
            None => {
                let reason = if cancel.load(Ordering::SeqCst) {
                    KillReason::Cancel
                } else if started.is_some_and(|(t0, _)| now.duration_since(t0) >= self.req.timeout)
                {
                    KillReason::Timeout
                } else {
                    return Ok(());
                };
                tracing::info!(job_id = %self.job_id, ?reason, "terminating slurm job");
                if started.is_some() {
                    self.scancel_logged(Some("TERM"));
                    *kill = Some(Kill {
                        reason,
                        term_at: now,
                        killed_at: None,
                        last_scancel: now,
                    });
                } else {
                    // Nothing runs yet: just remove it from the queue.
                    self.scancel_logged(None);
                    *kill = Some(Kill {
                        reason,
                        term_at: now,
                        killed_at: Some(now),
                        last_scancel: now,
                    });
                }
            }
            Some(k) => match k.killed_at {
                None => {
                    if now.duration_since(k.term_at) >= self.req.grace {
                        self.scancel_logged(Some("KILL"));
                        self.scancel_logged(None);
                        k.killed_at = Some(now);
                        k.last_scancel = now;
                    }
                }
                Some(at) => {
                    if now.duration_since(at) >= KILL_SETTLE_LIMIT {
                        return Err(ExecError::Slurm {
                            command: "scancel".into(),
                            message: format!(
                                "job {} still not finished {}s after being cancelled",
                                self.job_id,
                                KILL_SETTLE_LIMIT.as_secs()
                            ),
                        });
                    }
                    if now.duration_since(k.last_scancel) >= KILL_RETRY {
                        self.scancel_logged(None);
                        k.last_scancel = now;
                    }
                }
            },
        }
        Ok(())
    }

    /// `scancel`, logging (not returning) failures: the next state query
    /// shows whether it took effect, and the kill is retried.
    fn scancel_logged(&self, signal: Option<&str>) {
        if let Err(err) = scancel(&self.job_id, signal) {
            tracing::warn!(job_id = %self.job_id, error = %err, "scancel failed");
        }
    }

    /// Builds the outcome of a finished job and caps its logs.
    fn finish(
        self,
        info: SlurmJobInfo,
        started: Option<(Instant, i64)>,
        kill: Option<KillReason>,
    ) -> Result<RunOutcome, ExecError> {
        let disposition = info.state.disposition();
        if disposition == SlurmDisposition::Lost && kill.is_none() {
            if info.state.is_held() {
                self.scancel_logged(None);
            }
            return Err(ExecError::SlurmJobLost {
                job_id: self.job_id,
                state: info.state.as_str().to_string(),
            });
        }

        let now_ms = now_unix_ms();
        let started_at_unix_ms = match started {
            Some((_, ms)) => ms,
            None => info
                .start_unix
                .filter(|s| *s > 0)
                .map(|s| s.saturating_mul(1000))
                .or(self.submitted_at_unix_ms)
                .unwrap_or(now_ms)
                .min(now_ms),
        };
        let finished_at_unix_ms = info
            .end_unix
            .filter(|s| *s > 0)
            .map(|s| s.saturating_mul(1000))
            .unwrap_or(now_ms)
            .clamp(started_at_unix_ms, now_ms.max(started_at_unix_ms));
        let wall_secs = (finished_at_unix_ms - started_at_unix_ms) as f64 / 1000.0;

        let stdout_tail = read_tail(&self.stdout_path, STDOUT_TAIL_BYTES)?;
        let shared = self.stdout_path == self.stderr_path;
        let (stdout_truncated, stderr_truncated) = if shared {
            // Both streams share one file: allow a cap for each.
            let t = cap_log(&self.stdout_path, self.req.log_cap_bytes.saturating_mul(2))?;
            (t, t)
        } else {
            (
                cap_log(&self.stdout_path, self.req.log_cap_bytes)?,
                cap_log(&self.stderr_path, self.req.log_cap_bytes)?,
            )
        };

        // A job cancelled before it ran reports a raw status of 0: it did
        // not exit at all.
        let (exit_code, signal) = if info.state == SlurmJobState::Cancelled && info.signal.is_none()
        {
            (None, None)
        } else {
            (info.exit_code, info.signal)
        };
        let timed_out = kill == Some(KillReason::Timeout)
            || (kill.is_none() && disposition == SlurmDisposition::TimedOut);
        let cancelled = kill == Some(KillReason::Cancel)
            || (kill.is_none() && disposition == SlurmDisposition::Cancelled);
        Ok(RunOutcome {
            exit_code,
            signal,
            timed_out,
            cancelled,
            over_budget: wall_secs > self.req.time_budget.as_secs_f64(),
            wall_secs,
            peak_rss_kb: None,
            peak_gpu_mb: None,
            stdout_truncated,
            stderr_truncated,
            stdout_tail,
            started_at_unix_ms,
            finished_at_unix_ms,
        })
    }
}

impl RunHandle for SlurmRun {
    fn id(&self) -> String {
        format!("{ID_PREFIX}{}", self.job_id)
    }

    fn wait(self: Box<Self>, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        SlurmRun::wait(*self, cancel)
    }
}

// ---------------------------------------------------------------------------
// Slurm commands
// ---------------------------------------------------------------------------

/// Runs a Slurm client command and returns its stdout. A non-zero exit is an
/// error carrying stderr.
fn run_slurm(program: &str, args: &[String]) -> Result<String, ExecError> {
    let out = Command::new(program)
        .args(args)
        .env("SLURM_TIME_FORMAT", "%s")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ExecError::Slurm {
            command: program.to_string(),
            message: format!("cannot run: {e}"),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ExecError::Slurm {
            command: program.to_string(),
            message: format!("{}: {}", out.status, stderr.trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True for the error Slurm gives when none of the listed jobs is known.
fn is_invalid_job_id(err: &ExecError) -> bool {
    matches!(err, ExecError::Slurm { message, .. } if message.contains("Invalid job id"))
}

fn scancel(job_id: &str, signal: Option<&str>) -> Result<(), ExecError> {
    let mut args = Vec::new();
    if let Some(sig) = signal {
        args.push(format!("--signal={sig}"));
        args.push("--full".to_string());
    }
    args.push(job_id.to_string());
    run_slurm("scancel", &args).map(|_| ())
}

/// Queries `ids` (normalised): `squeue`, then `scontrol` for the missing,
/// then `sacct -c` for the still missing.
fn query_jobs(ids: &[String]) -> Result<HashMap<String, SlurmJobInfo>, ExecError> {
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut found: HashMap<String, SlurmJobInfo> = HashMap::new();
    for chunk in ids.chunks(QUERY_CHUNK) {
        let args = vec![
            "-h".to_string(),
            "-t".to_string(),
            "all".to_string(),
            "-j".to_string(),
            chunk.join(","),
            "-O".to_string(),
            SQUEUE_FORMAT.to_string(),
        ];
        match run_slurm("squeue", &args) {
            Ok(text) => {
                for info in parse_squeue(&text) {
                    if wanted.contains(info.job_id.as_str()) {
                        found.insert(info.job_id.clone(), info);
                    }
                }
            }
            Err(err) if is_invalid_job_id(&err) => {}
            Err(err) => return Err(err),
        }
    }

    let missing: Vec<&String> = ids.iter().filter(|id| !found.contains_key(*id)).collect();
    let mut still_missing = Vec::new();
    for id in missing {
        match run_slurm("scontrol", &["show".into(), "job".into(), id.clone()]) {
            Ok(text) => match parse_scontrol_job(&text) {
                Some(info) if info.job_id == *id => {
                    found.insert(id.clone(), info);
                }
                _ => still_missing.push(id.clone()),
            },
            Err(err) => {
                if !is_invalid_job_id(&err) {
                    tracing::debug!(job_id = %id, error = %err, "scontrol show job failed");
                }
                still_missing.push(id.clone());
            }
        }
    }

    for chunk in still_missing.chunks(QUERY_CHUNK) {
        let args = vec![
            "-c".to_string(),
            "-n".to_string(),
            "-P".to_string(),
            "-o".to_string(),
            SACCT_FORMAT.to_string(),
            "-j".to_string(),
            chunk.join(","),
        ];
        match run_slurm("sacct", &args) {
            Ok(text) => {
                for info in parse_sacct(&text) {
                    if wanted.contains(info.job_id.as_str()) {
                        found.insert(info.job_id.clone(), info);
                    }
                }
            }
            Err(err) => tracing::debug!(error = %err, "sacct -c failed"),
        }
    }
    Ok(found)
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// The job id from `sbatch --parsable` output (`<id>` or `<id>;<cluster>`).
pub fn parse_sbatch_parsable(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// Parses `squeue -h -O JobID:|,State:|,exit_code:|,StartTime:|,EndTime:|,Reason:|`
/// output (times as Unix seconds, exit code as a raw wait status).
pub fn parse_squeue(text: &str) -> Vec<SlurmJobInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.splitn(6, '|').map(str::trim).collect();
        if fields.len() < 5 || fields[0].is_empty() {
            continue;
        }
        let state = SlurmJobState::parse(fields[1]);
        let (exit_code, signal) = match fields[2].parse::<i64>() {
            Ok(raw) if state.has_started() => decode_wait_status(raw),
            _ => (None, None),
        };
        let reason = fields
            .get(5)
            .map(|r| r.trim_end_matches('|').trim())
            .filter(|r| !r.is_empty() && *r != "None" && *r != "(null)")
            .map(str::to_string);
        out.push(SlurmJobInfo {
            job_id: fields[0].to_string(),
            state,
            exit_code,
            signal,
            start_unix: parse_time(fields[3]),
            end_unix: parse_time(fields[4]),
            reason,
        });
    }
    out
}

/// Parses `scontrol show job <id>` output (first job only).
pub fn parse_scontrol_job(text: &str) -> Option<SlurmJobInfo> {
    let mut kv: HashMap<&str, &str> = HashMap::new();
    for token in text.split_whitespace() {
        if let Some((k, v)) = token.split_once('=') {
            if k == "JobId" && kv.contains_key("JobId") {
                break; // a second job
            }
            kv.entry(k).or_insert(v);
        }
    }
    let job_id = kv.get("JobId")?.to_string();
    let state = SlurmJobState::parse(kv.get("JobState")?);
    let (exit_code, signal) = if state.has_started() {
        kv.get("ExitCode")
            .and_then(|v| decode_exit_pair(v))
            .unwrap_or((None, None))
    } else {
        (None, None)
    };
    Some(SlurmJobInfo {
        job_id,
        state,
        exit_code,
        signal,
        start_unix: kv.get("StartTime").and_then(|v| parse_time(v)),
        end_unix: kv.get("EndTime").and_then(|v| parse_time(v)),
        reason: kv
            .get("Reason")
            .filter(|r| **r != "None" && **r != "(null)")
            .map(|r| r.to_string()),
    })
}

/// Parses `sacct -c -n -P -o JobID,State,ExitCode,Start,End` output. Job
/// steps (`123.batch`) are skipped; for a job listed twice (requeued) the
/// last line wins.
pub fn parse_sacct(text: &str) -> Vec<SlurmJobInfo> {
    let mut by_id: Vec<SlurmJobInfo> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        if fields.len() < 5 || fields[0].is_empty() || fields[0].contains('.') {
            continue;
        }
        let state = SlurmJobState::parse(fields[1]);
        let (exit_code, signal) = decode_exit_pair(fields[2]).unwrap_or((None, None));
        let info = SlurmJobInfo {
            job_id: fields[0].to_string(),
            state,
            exit_code,
            signal,
            start_unix: parse_time(fields[3]),
            end_unix: parse_time(fields[4]),
            reason: None,
        };
        by_id.retain(|i| i.job_id != info.job_id);
        by_id.push(info);
    }
    by_id
}

/// Splits a raw wait status into (exit code, signal).
pub fn decode_wait_status(raw: i64) -> (Option<i32>, Option<i32>) {
    let sig = (raw & 0x7f) as i32;
    if sig != 0 {
        (None, Some(sig))
    } else {
        (Some(((raw >> 8) & 0xff) as i32), None)
    }
}

/// Splits Slurm's `<exit>:<signal>` into (exit code, signal).
pub fn decode_exit_pair(text: &str) -> Option<(Option<i32>, Option<i32>)> {
    let (code, sig) = text.trim().split_once(':')?;
    let code: i32 = code.parse().ok()?;
    let sig: i32 = sig.parse().ok()?;
    Some(if sig != 0 {
        (None, Some(sig))
    } else {
        (Some(code), None)
    })
}

/// A time printed with `SLURM_TIME_FORMAT=%s`: positive Unix seconds, or
/// `None` for `N/A`, `Unknown`, `None`, `0`.
fn parse_time(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok().filter(|t| *t > 0)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Strips the `slurm:` prefix and checks the id is plausible.
fn normalize_job_id(id: &str) -> Result<String, ExecError> {
    let id = id.trim();
    let id = id.strip_prefix(ID_PREFIX).unwrap_or(id);
    let ok = !id.is_empty()
        && id.as_bytes()[0].is_ascii_digit()
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'_' || b == b'+');
    if ok {
        Ok(id.to_string())
    } else {
        Err(ExecError::InvalidRequest(format!(
            "invalid slurm job id {id:?}"
        )))
    }
}

fn is_shell_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The batch script for one run.
fn batch_script(cwd: &str, env: &[(String, String)], command: &str) -> String {
    let mut s = String::from("#!/bin/sh\n# One Picidae run, submitted with sbatch.\n");
    s.push_str(&format!("cd {} || exit 125\n", quote(cwd)));
    for (k, v) in env {
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    s.push_str(&format!("exec /bin/sh -c {}\n", quote(command)));
    s
}

/// `<dir of stdout>/<stdout file name>.sbatch`.
fn script_path_for(stdout_path: &Path) -> PathBuf {
    let mut name = stdout_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "run".into());
    name.push(".sbatch");
    stdout_path.with_file_name(name)
}

/// Keeps job names to characters every Slurm tool prints unambiguously.
fn sanitize_job_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        DEFAULT_JOB_NAME.to_string()
    } else {
        cleaned
    }
}

/// Escapes `%` in an `--output` / `--error` path so Slurm does not expand
/// it; a backslash would switch expansion off altogether, so it is refused.
fn escape_pattern(path: &str) -> Result<String, ExecError> {
    if path.contains('\\') || path.contains('\n') {
        return Err(ExecError::InvalidRequest(format!(
            "log path {path:?} contains a backslash or newline"
        )));
    }
    Ok(path.replace('%', "%%"))
}

/// `--time` in whole minutes, rounded up, at least 1.
fn time_limit_minutes(limit: Duration) -> u64 {
    let secs = limit
        .as_secs()
        .saturating_add(u64::from(limit.subsec_nanos() > 0));
    secs.div_ceil(60).clamp(1, MAX_TIME_MINUTES)
}

fn resource_args(r: &SlurmResources) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(mb) = r.memory_mb {
        args.push(format!("--mem={mb}"));
    }
    if let Some(n) = r.gpus {
        args.push(format!("--gres=gpu:{n}"));
    }
    if let Some(n) = r.cpus {
        args.push(format!("--cpus-per-task={n}"));
    }
    args
}

fn path_str<'a>(path: &'a Path, what: &str) -> Result<&'a str, ExecError> {
    path.to_str().ok_or_else(|| {
        ExecError::InvalidRequest(format!("{what} {} is not valid UTF-8", path.display()))
    })
}

fn absolute(path: &Path) -> Result<PathBuf, ExecError> {
    std::path::absolute(path).map_err(|source| ExecError::LogFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates (truncates) a log file and its parent directories, so that an
/// unwritable location fails at submission rather than inside Slurm.
fn create_log(path: &Path) -> Result<(), ExecError> {
    let err = |source| ExecError::LogFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    File::create(path).map(|_| ()).map_err(err)
}

/// The last `max` bytes of `path`, lossily decoded, not starting inside a
/// UTF-8 sequence. A missing file gives an empty tail.
fn read_tail(path: &Path, max: usize) -> Result<String, ExecError> {
    let err = |source| ExecError::LocalIo {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(err(e)),
    };
    let len = file.metadata().map_err(err)?.len();
    let start = len.saturating_sub(max as u64);
    file.seek(SeekFrom::Start(start)).map_err(err)?;
    let mut buf = Vec::with_capacity(max.min(len as usize));
    file.take(max as u64).read_to_end(&mut buf).map_err(err)?;
    if start > 0 {
        let skip = buf
            .iter()
            .take(3)
            .take_while(|b| (**b & 0xC0) == 0x80)
            .count();
        buf.drain(..skip);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Truncates `path` to `cap` bytes followed by the truncation marker when it
/// is longer than `cap`. Returns whether it truncated.
fn cap_log(path: &Path, cap: u64) -> Result<bool, ExecError> {
    let err = |source| ExecError::LocalIo {
        path: path.to_path_buf(),
        source,
    };
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(e)),
    };
    if len <= cap {
        return Ok(false);
    }
    let mut file = OpenOptions::new().write(true).open(path).map_err(err)?;
    file.set_len(cap).map_err(err)?;
    file.seek(SeekFrom::End(0)).map_err(err)?;
    file.write_all(truncation_marker(cap).as_bytes())
        .map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_state_and_maps_it() {
        use SlurmDisposition as D;
        use SlurmJobState as S;
        let cases = [
            ("PENDING", S::Pending, false, D::Active),
            ("CONFIGURING", S::Configuring, false, D::Active),
            ("RUNNING", S::Running, false, D::Active),
            ("COMPLETING", S::Completing, false, D::Active),
            ("SUSPENDED", S::Suspended, false, D::Active),
            ("STOPPED", S::Stopped, false, D::Active),
            ("RESIZING", S::Resizing, false, D::Active),
            ("SIGNALING", S::Signaling, false, D::Active),
            ("STAGE_OUT", S::StageOut, false, D::Active),
            ("REQUEUED", S::Requeued, false, D::Active),
            ("REQUEUE_FED", S::RequeueFed, false, D::Active),
            ("REQUEUE_HOLD", S::RequeueHold, true, D::Lost),
            ("SPECIAL_EXIT", S::SpecialExit, true, D::Lost),
            ("RESV_DEL_HOLD", S::ResvDelHold, true, D::Lost),
            ("REVOKED", S::Revoked, true, D::Lost),
            ("COMPLETED", S::Completed, true, D::Succeeded),
            ("FAILED", S::Failed, true, D::Failed),
            ("CANCELLED", S::Cancelled, true, D::Cancelled),
            ("TIMEOUT", S::Timeout, true, D::TimedOut),
            ("OUT_OF_MEMORY", S::OutOfMemory, true, D::Failed),
            ("NODE_FAIL", S::NodeFail, true, D::Lost),
            ("PREEMPTED", S::Preempted, true, D::Lost),
            ("BOOT_FAIL", S::BootFail, true, D::Lost),
            ("DEADLINE", S::Deadline, true, D::TimedOut),
        ];
        for (text, state, terminal, disposition) in cases {
            let parsed = SlurmJobState::parse(text);
            assert_eq!(parsed, state, "{text}");
            assert_eq!(parsed.as_str(), text);
            assert_eq!(parsed.to_string(), text);
            assert_eq!(parsed.is_terminal(), terminal, "{text}");
            assert_eq!(parsed.disposition(), disposition, "{text}");
            // Active states are exactly the non-terminal ones.
            assert_eq!(disposition == D::Active, !terminal, "{text}");
        }
        assert_eq!(SlurmJobState::parse("CANCELLED by 0"), S::Cancelled);
        assert_eq!(SlurmJobState::parse("cancelled+"), S::Cancelled);
        assert_eq!(SlurmJobState::parse("PD"), S::Pending);
        assert_eq!(SlurmJobState::parse("OOM"), S::OutOfMemory);
        assert_eq!(SlurmJobState::parse("NF"), S::NodeFail);
        let other = SlurmJobState::parse("launch_failed");
        assert_eq!(other, S::Other("LAUNCH_FAILED".into()));
        assert!(!other.is_terminal());
        assert_eq!(other.disposition(), D::Active);
        assert!(!S::Pending.has_started() && S::Running.has_started());
        assert!(S::Completed.has_started() && S::RequeueHold.is_held());
    }

    #[test]
    fn parses_squeue_output() {
        // Captured from Slurm 22.05 with SLURM_TIME_FORMAT=%s.
        let text = "2|CANCELLED|15|1795472208|1795472211|None|\n\
                    1|FAILED|768|1795472208|1795472208|NonZeroExitCode|\n\
                    3|RUNNING|0|1795472299|1795472419|None|\n\
                    7|PENDING|0|N/A|N/A|Resources|\n\
                    8|COMPLETED|0|1795472300|1795472301|None|\n\n";
        let jobs = parse_squeue(text);
        assert_eq!(jobs.len(), 5);
        let by: HashMap<_, _> = jobs.iter().map(|j| (j.job_id.as_str(), j)).collect();
        assert_eq!(by["1"].state, SlurmJobState::Failed);
        assert_eq!((by["1"].exit_code, by["1"].signal), (Some(3), None));
        assert_eq!(by["1"].reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!((by["2"].exit_code, by["2"].signal), (None, Some(15)));
        assert_eq!(by["2"].end_unix, Some(1795472211));
        assert_eq!(by["2"].reason, None);
        assert_eq!(by["3"].state, SlurmJobState::Running);
        assert_eq!(by["3"].start_unix, Some(1795472299));
        assert_eq!(by["7"].state, SlurmJobState::Pending);
        assert_eq!((by["7"].exit_code, by["7"].start_unix), (None, None));
        assert_eq!(by["7"].reason.as_deref(), Some("Resources"));
        assert_eq!(by["8"].exit_code, Some(0));
    }

    #[test]
    fn parses_scontrol_output() {
        let text = "JobId=1 JobName=t1\n   UserId=root(0) GroupId=root(0) MCS_label=N/A\n   \
            JobState=FAILED Reason=NonZeroExitCode Dependency=(null)\n   \
            Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0\n   \
            RunTime=00:00:00 TimeLimit=00:01:00 TimeMin=N/A\n   \
            SubmitTime=1795472208 EligibleTime=1795472208\n   \
            StartTime=1795472208 EndTime=1795472209 Deadline=N/A\n   \
            Command=/tmp/x/j.sh\n   WorkDir=/tmp/x\n   StdOut=/tmp/x/o1\n\n";
        let info = parse_scontrol_job(text).unwrap();
        assert_eq!(info.job_id, "1");
        assert_eq!(info.state, SlurmJobState::Failed);
        assert_eq!((info.exit_code, info.signal), (Some(3), None));
        assert_eq!(info.start_unix, Some(1795472208));
        assert_eq!(info.end_unix, Some(1795472209));
        assert_eq!(info.reason.as_deref(), Some("NonZeroExitCode"));

        let pending = "JobId=9 JobName=x\n   JobState=PENDING Reason=Priority\n   \
            ExitCode=0:0\n   StartTime=Unknown EndTime=Unknown\n";
        let info = parse_scontrol_job(pending).unwrap();
        assert_eq!(info.state, SlurmJobState::Pending);
        assert_eq!(
            (info.exit_code, info.start_unix, info.end_unix),
            (None, None, None)
        );
        assert!(parse_scontrol_job("slurm_load_jobs error: Invalid job id specified").is_none());
    }

    #[test]
    fn parses_sacct_completion_log() {
        let text = "1|FAILED|3:0|1795472208|1795472208\n\
                    2|CANCELLED by 0|0:15|1795472208|1795472211\n\
                    2.batch|CANCELLED|0:15|1795472208|1795472211\n\
                    4|NODE_FAIL|0:0|1795472100|1795472150\n\
                    4|COMPLETED|0:0|1795472200|1795472250\n";
        let jobs = parse_sacct(text);
        assert_eq!(jobs.len(), 3);
        let by: HashMap<_, _> = jobs.iter().map(|j| (j.job_id.as_str(), j)).collect();
        assert_eq!((by["1"].exit_code, by["1"].signal), (Some(3), None));
        assert_eq!(by["2"].state, SlurmJobState::Cancelled);
        assert_eq!((by["2"].exit_code, by["2"].signal), (None, Some(15)));
        assert_eq!(by["4"].state, SlurmJobState::Completed, "last line wins");
        assert_eq!(by["4"].start_unix, Some(1795472200));
    }

    #[test]
    fn parses_sbatch_output_and_job_ids() {
        assert_eq!(parse_sbatch_parsable("42\n").as_deref(), Some("42"));
        assert_eq!(parse_sbatch_parsable("42;cluster\n").as_deref(), Some("42"));
        assert_eq!(
            parse_sbatch_parsable("sbatch: warning: x\n43\n").as_deref(),
            Some("43")
        );
        assert_eq!(parse_sbatch_parsable("Submitted batch job 42"), None);
        assert_eq!(parse_sbatch_parsable(""), None);
        assert_eq!(normalize_job_id("slurm:12").unwrap(), "12");
        assert_eq!(normalize_job_id(" 12_3 ").unwrap(), "12_3");
        assert!(normalize_job_id("slurm:").is_err());
        assert!(normalize_job_id("12;rm").is_err());
        assert!(normalize_job_id("-1").is_err());
    }

    #[test]
    fn decodes_exit_statuses() {
        assert_eq!(decode_wait_status(0), (Some(0), None));
        assert_eq!(decode_wait_status(768), (Some(3), None));
        assert_eq!(decode_wait_status(1792), (Some(7), None));
        assert_eq!(decode_wait_status(15), (None, Some(15)));
        assert_eq!(decode_wait_status(9 | 0x80), (None, Some(9)));
        assert_eq!(decode_exit_pair("3:0"), Some((Some(3), None)));
        assert_eq!(decode_exit_pair("0:9"), Some((None, Some(9))));
        assert_eq!(decode_exit_pair("x"), None);
    }

    #[test]
    fn builds_submission_pieces() {
        assert_eq!(time_limit_minutes(Duration::from_secs(0)), 1);
        assert_eq!(time_limit_minutes(Duration::from_secs(3)), 1);
        assert_eq!(time_limit_minutes(Duration::from_secs(60)), 1);
        assert_eq!(time_limit_minutes(Duration::from_millis(60_500)), 2);
        assert_eq!(time_limit_minutes(Duration::from_secs(61)), 2);
        assert_eq!(time_limit_minutes(Duration::MAX), MAX_TIME_MINUTES);
        assert_eq!(sanitize_job_name("run-42"), "run-42");
        assert_eq!(sanitize_job_name("a b\n,c"), "a_b__c");
        assert_eq!(sanitize_job_name(""), DEFAULT_JOB_NAME);
        assert_eq!(escape_pattern("/a/50%/x").unwrap(), "/a/50%%/x");
        assert!(escape_pattern("/a\\b").is_err());
        assert!(is_shell_name("_A1") && !is_shell_name("1A") && !is_shell_name("A-B"));
        let args = resource_args(&SlurmResources {
            cpus: Some(4),
            memory_mb: Some(2048),
            gpus: Some(1),
        });
        assert_eq!(args, ["--mem=2048", "--gres=gpu:1", "--cpus-per-task=4"]);
        assert!(resource_args(&SlurmResources::default()).is_empty());
        assert_eq!(
            script_path_for(Path::new("/l/run1/stdout.log")),
            Path::new("/l/run1/stdout.log.sbatch")
        );
    }

    #[test]
    fn batch_script_round_trips_through_sh() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("it's a dir");
        fs::create_dir(&cwd).unwrap();
        let env = vec![
            ("PLAIN".to_string(), "v".to_string()),
            (
                "TRICKY".to_string(),
                "a 'b' \"c\" $HOME `id`\nline2".to_string(),
            ),
        ];
        let script = batch_script(
            cwd.to_str().unwrap(),
            &env,
            "printf '%s|%s|%s' \"$PLAIN\" \"$TRICKY\" \"$(pwd)\"",
        );
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!(
                "v|a 'b' \"c\" $HOME `id`\nline2|{}",
                fs::canonicalize(&cwd).unwrap().display()
            )
        );
    }

    #[test]
    fn tail_and_cap_of_log_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        assert_eq!(read_tail(&path, 10).unwrap(), "");
        assert!(!cap_log(&path, 10).unwrap());
        fs::write(&path, "0123456789abcdef").unwrap();
        assert_eq!(read_tail(&path, 4).unwrap(), "cdef");
        assert!(!cap_log(&path, 16).unwrap());
        assert!(cap_log(&path, 5).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("01234{}", truncation_marker(5)));
        // A tail never starts inside a UTF-8 sequence.
        fs::write(&path, "xé☃").unwrap();
        assert_eq!(read_tail(&path, 4).unwrap(), "☃");
    }
}
