//! One submitted Slurm job ([`SlurmRun`]): polled until it ends, terminated
//! on timeout or cancellation (`scancel`, SIGTERM then SIGKILL), and turned
//! into a [`RunOutcome`] (or [`ExecError::SlurmJobLost`]).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::log_files::{cap_log, read_tail};
use super::query::{query_jobs, scancel};
use super::{SlurmDisposition, SlurmJobInfo, SlurmJobState, SlurmOptions, ID_PREFIX};
use crate::call::now_unix_ms;
use crate::executor::RunHandle;
use crate::local::STDOUT_TAIL_BYTES;
use crate::remote::{drive, Observed, RemoteJob, Stop, StopReason, Timing};
use crate::{ExecError, RunOutcome, RunRequest};

/// A job that no Slurm source knows for this long counts as lost.
const UNKNOWN_LIMIT: Duration = Duration::from_secs(30);
/// A killed job that is still not finished after this long is an error.
const KILL_SETTLE_LIMIT: Duration = Duration::from_secs(300);

/// A submitted Slurm job. Dropping it leaves the job alone.
#[derive(Debug)]
pub struct SlurmRun {
    pub(crate) job_id: String,
    pub(crate) opts: SlurmOptions,
    pub(crate) req: RunRequest,
    pub(crate) stdout_path: PathBuf,
    pub(crate) stderr_path: PathBuf,
    /// Set when this process submitted the job.
    pub(crate) submitted_at_unix_ms: Option<i64>,
}

/// A job as the remote driver sees it: its state queries and `scancel`.
struct Watch<'a> {
    run: &'a SlurmRun,
}

impl RemoteJob for Watch<'_> {
    /// The job's last state, or why it counts as lost.
    type End = Result<SlurmJobInfo, ExecError>;

    fn label(&self) -> String {
        format!("slurm job {}", self.run.job_id)
    }

    fn observe(&mut self) -> Result<Observed<Self::End>, ExecError> {
        let run = self.run;
        let Some(info) = query_jobs(std::slice::from_ref(&run.job_id))?.remove(&run.job_id) else {
            return Ok(Observed::Unknown(Err(ExecError::SlurmJobLost {
                job_id: run.job_id.clone(),
                state: "UNKNOWN".into(),
            })));
        };
        if info.state.is_terminal() {
            return Ok(Observed::Ended(Ok(info)));
        }
        if !info.state.has_started() {
            return Ok(Observed::Pending);
        }
        Ok(Observed::Running {
            started_unix_ms: Some(run.start_ms(&info)),
        })
    }

    fn stop(&mut self, how: Stop) -> Result<(), ExecError> {
        match how {
            Stop::Term => scancel(&self.run.job_id, Some("TERM")),
            Stop::Kill => {
                let killed = scancel(&self.run.job_id, Some("KILL"));
                scancel(&self.run.job_id, None).and(killed)
            }
        }
    }
}

impl SlurmRun {
    /// The Slurm job id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Blocks until the job is finished, the request's timeout (counted from
    /// the job's start) fires, or `cancel` becomes true; in the last two
    /// cases the job is terminated first (SIGTERM, `grace`, SIGKILL), by the
    /// shared remote driver.
    /// Returns [`ExecError::SlurmJobLost`] for jobs that ended or stalled for
    /// reasons outside the run's control.
    pub fn wait(self, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        let timing = Timing {
            poll_interval: self.opts.poll_interval,
            timeout: self.req.timeout,
            grace: self.req.grace,
            failure_limit: self.opts.query_failure_limit,
            settle_limit: KILL_SETTLE_LIMIT,
            unknown_limit: UNKNOWN_LIMIT,
        };
        let mut watch = Watch { run: &self };
        let driven = drive(&mut watch, &timing, cancel)?;
        let info = match driven.end {
            Ok(info) => info,
            // A job Picidae stopped and Slurm then forgot is over, not lost.
            Err(lost) if driven.stopped.is_none() => return Err(lost),
            Err(_) => SlurmJobInfo {
                job_id: self.job_id.clone(),
                state: SlurmJobState::Cancelled,
                exit_code: None,
                signal: None,
                start_unix: None,
                end_unix: None,
                reason: None,
            },
        };
        let kill = driven.stopped;
        self.finish(info, driven.started, kill)
    }

    /// The job's start in Unix ms, from Slurm's start time (never before our own submission).
    fn start_ms(&self, info: &SlurmJobInfo) -> i64 {
        let now_ms = now_unix_ms();
        let mut start_ms = info
            .start_unix
            .filter(|s| *s > 0)
            .map(|s| s.saturating_mul(1000))
            .unwrap_or(now_ms);
        if let Some(sub) = self.submitted_at_unix_ms {
            start_ms = start_ms.max(sub);
        }
        start_ms
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
        kill: Option<StopReason>,
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
        let timed_out = kill == Some(StopReason::Timeout)
            || (kill.is_none() && disposition == SlurmDisposition::TimedOut);
        let cancelled = kill == Some(StopReason::Cancel)
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
            restarts: 0,
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
