//! One submitted Slurm job ([`SlurmRun`]): polled until it ends, terminated
//! on timeout or cancellation (`scancel`, SIGTERM then SIGKILL), and turned
//! into a [`RunOutcome`] (or [`ExecError::SlurmJobLost`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::log_files::{cap_log, read_tail};
use super::query::{query_jobs, scancel};
use super::{SlurmDisposition, SlurmJobInfo, SlurmJobState, SlurmOptions, ID_PREFIX};
use crate::call::now_unix_ms;
use crate::executor::RunHandle;
use crate::local::STDOUT_TAIL_BYTES;
use crate::{ExecError, RunOutcome, RunRequest};

/// How often cancel flag and timeout are checked between two queries.
const WAKE_INTERVAL: Duration = Duration::from_millis(50);
/// After SIGKILL, `scancel` is repeated this often until the job is over.
const KILL_RETRY: Duration = Duration::from_secs(5);
/// A killed job that is still not finished after this long is an error.
const KILL_SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// A job that no Slurm source knows for this long counts as lost.
const UNKNOWN_LIMIT: Duration = Duration::from_secs(30);

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
