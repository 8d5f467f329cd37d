//! One submitted Ray job ([`RayRun`]): its log streamed into the run's log file as it grows,
//! driven by the shared remote driver (the timeout counted from the moment it runs, `stop` on
//! timeout or cancellation), and its end turned into a [`RunOutcome`] with the metrics file
//! the job's trailer carried home.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::api::{RayApi, RayJobInfo};
use super::{ray_start_line, ID_PREFIX};
use crate::executor::{ClusterRun, RunHandle};
use crate::framed::{self, LogStream, Phase};
use crate::remote::{drive, Observed, RemoteJob, Stop, Timing};
use crate::{ExecError, Fingerprint, RunOutcome, RunRequest};

/// A job the cluster does not know for this long counts as lost.
const UNKNOWN_LIMIT: Duration = Duration::from_secs(30);
/// A stopped job still running after this long is an error.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

/// A submitted Ray job. Dropping it leaves the job alone; a restarted coordinator resumes
/// with [`RayExecutor::reattach`](super::RayExecutor::reattach).
#[derive(Debug)]
pub struct RayRun {
    pub(crate) api: RayApi,
    /// The submission id; also the nonce of the job's log frames.
    pub(crate) job_id: String,
    pub(crate) req: RunRequest,
    /// Where the metrics file the job carries home is written.
    pub(crate) metrics_path: Option<PathBuf>,
    pub(crate) poll_interval: Duration,
    pub(crate) query_failure_limit: Duration,
    /// Set when the job was taken over after a restart: its timeout then counts from Ray's
    /// start time, not from the moment this process first saw it running.
    pub(crate) reattached: bool,
}

impl RayRun {
    /// The submission id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Waits until the job has printed its header (it runs, on a node) and returns that
    /// node's fingerprint; `None` when the job ended first, `cancel` was set, or `limit`
    /// passed. The run's timeout does not run while this waits.
    pub fn node_fingerprint(
        &self,
        benchmark_commit: Option<&str>,
        cancel: &AtomicBool,
        limit: Duration,
    ) -> Result<Option<Fingerprint>, ExecError> {
        let noise = ray_start_line(&self.job_id);
        let look = || {
            let phase = match self.api.job(&self.job_id)? {
                Some(info) if is_terminal(&info.status) => Phase::Over,
                Some(info) if info.status == "RUNNING" => Phase::Running,
                _ => Phase::Waiting,
            };
            Ok((phase, self.api.logs(&self.job_id).unwrap_or_default()))
        };
        framed::await_node(
            &self.job_id,
            Some(&noise),
            look,
            (self.poll_interval, limit),
            cancel,
            benchmark_commit,
        )
    }

    /// Blocks until the job ends, its timeout passes or `cancel` is set (then it is stopped
    /// first). Returns [`ExecError::RayJobLost`] when it ended for reasons outside the run
    /// (the cluster lost it, its runtime environment could not be set up).
    pub fn wait(self, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        let timing = Timing {
            poll_interval: self.poll_interval,
            timeout: self.req.timeout,
            grace: self.req.grace,
            failure_limit: self.query_failure_limit,
            settle_limit: SETTLE_LIMIT,
            unknown_limit: UNKNOWN_LIMIT,
        };
        let mut watch = Watch {
            run: &self,
            log: LogStream::open(&self.req, &self.job_id, Some(ray_start_line(&self.job_id)))?,
        };
        let driven = drive(&mut watch, &timing, cancel)?;
        let (timed_out, cancelled) = (driven.timed_out(), driven.cancelled());
        let (info, log) = driven.end?;
        let (stdout, _) = watch.log.finish(&log, self.metrics_path.as_deref())?;
        let (started_at, finished_at, wall_secs) = framed::span(
            driven.started.map(|(_, ms)| ms),
            info.start_time,
            info.end_time,
        );
        let (exit_code, signal) = match info.driver_exit_code {
            // Ray reports a driver killed by a signal as a negative code.
            Some(c) if c < 0 => (None, Some(-c)),
            Some(c) => framed::shell_status(c),
            None => (None, None),
        };
        let by_someone_else = info.status == "STOPPED" && !(timed_out || cancelled);
        Ok(RunOutcome {
            exit_code,
            signal,
            timed_out,
            cancelled: cancelled || by_someone_else,
            over_budget: wall_secs > self.req.time_budget.as_secs_f64(),
            wall_secs,
            peak_rss_kb: None,
            peak_gpu_mb: None,
            stdout_truncated: stdout.truncated,
            stderr_truncated: false,
            stdout_tail: String::from_utf8_lossy(&stdout.tail).into_owned(),
            started_at_unix_ms: started_at,
            finished_at_unix_ms: finished_at,
            restarts: 0,
        })
    }
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "SUCCEEDED" | "FAILED" | "STOPPED")
}

/// The job as the driver sees it: its state and its log, streamed into the local file.
struct Watch<'a> {
    run: &'a RayRun,
    log: LogStream,
}

impl RemoteJob for Watch<'_> {
    type End = Result<(RayJobInfo, String), ExecError>;

    fn label(&self) -> String {
        format!("ray job {}", self.run.job_id)
    }

    fn observe(&mut self) -> Result<Observed<Self::End>, ExecError> {
        let run = self.run;
        let Some(info) = run.api.job(&run.job_id)? else {
            return Ok(Observed::Unknown(Err(ExecError::RayJobLost {
                job_id: run.job_id.clone(),
                reason: "the cluster no longer knows it".into(),
            })));
        };
        // The state first, then the log: a job seen over has printed all it will.
        let log = run.api.logs(&run.job_id)?;
        self.log.update(&log);
        match info.status.as_str() {
            "PENDING" => Ok(Observed::Pending),
            "RUNNING" => Ok(Observed::Running {
                started_unix_ms: if run.reattached {
                    info.start_time
                } else {
                    None
                },
            }),
            "FAILED" if info.driver_exit_code.is_none() => {
                Ok(Observed::Ended(Err(ExecError::RayJobLost {
                    job_id: run.job_id.clone(),
                    reason: format!(
                        "{}: {}",
                        info.error_type.as_deref().unwrap_or("FAILED"),
                        info.message.as_deref().unwrap_or("no message")
                    ),
                })))
            }
            s if is_terminal(s) => Ok(Observed::Ended(Ok((info, log)))),
            other => Err(run.api.error(format!(
                "job {} is in an unknown state {other:?}",
                run.job_id
            ))),
        }
    }

    fn stop(&mut self, _how: Stop) -> Result<(), ExecError> {
        // Ray's own stop sends SIGTERM to the job's processes and SIGKILL a few seconds
        // later; a repeated stop is harmless.
        self.run.api.stop(&self.run.job_id)
    }
}

impl ClusterRun for RayRun {
    fn node_fingerprint(
        &self,
        benchmark_commit: Option<&str>,
        cancel: &AtomicBool,
        limit: Duration,
    ) -> Result<Option<Fingerprint>, ExecError> {
        RayRun::node_fingerprint(self, benchmark_commit, cancel, limit)
    }
}

impl RunHandle for RayRun {
    fn id(&self) -> String {
        format!("{ID_PREFIX}{}", self.job_id)
    }

    fn wait(self: Box<Self>, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        RayRun::wait(*self, cancel)
    }
}
