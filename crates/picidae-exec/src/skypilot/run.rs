//! One launched SkyPilot job ([`SkyRun`]): its log streamed into the run's log file, driven
//! by the shared remote driver, a spot recovery taken as the run starting over (not as its
//! end), and its end turned into a [`RunOutcome`] with the metrics file and status its
//! trailer carried home.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::cli::{self, SkyJob};
use super::{handle, SkyOptions, Target};
use crate::executor::{ClusterRun, RunHandle};
use crate::framed::{self, LogStream, Phase};
use crate::logs::note_in_log;
use crate::remote::{drive, Observed, RemoteJob, Stop, Timing};
use crate::{ExecError, Fingerprint, RunOutcome, RunRequest};

/// A job the queue no longer lists for this long counts as lost.
const UNKNOWN_LIMIT: Duration = Duration::from_secs(120);
/// A cancelled job still running after this long is an error.
const SETTLE_LIMIT: Duration = Duration::from_secs(600);

/// A launched job. Dropping it leaves the job alone.
#[derive(Debug)]
pub struct SkyRun {
    pub(crate) opts: SkyOptions,
    pub(crate) target: Target,
    pub(crate) job: u64,
    /// The task's nonce (its log frames).
    pub(crate) nonce: String,
    pub(crate) req: RunRequest,
    pub(crate) metrics_path: Option<PathBuf>,
}

impl SkyRun {
    /// SkyPilot's job id.
    pub fn job_id(&self) -> u64 {
        self.job
    }

    /// Waits until the job has printed its header (it runs, on a node SkyPilot provisioned)
    /// and returns that node's fingerprint; `None` when the job ended first, `cancel` was
    /// set, or `limit` passed. The run's timeout does not run while this waits.
    pub fn node_fingerprint(
        &self,
        benchmark_commit: Option<&str>,
        cancel: &AtomicBool,
        limit: Duration,
    ) -> Result<Option<Fingerprint>, ExecError> {
        let look = || {
            let phase = match cli::job(&self.opts, &self.target, self.job)?
                .and_then(|j| j.status)
                .as_deref()
            {
                Some("RUNNING") => Phase::Running,
                Some("SUCCEEDED" | "FAILED" | "CANCELLED") => Phase::Over,
                Some(s) if s.starts_with("FAILED") => Phase::Over,
                _ => Phase::Waiting,
            };
            let log = match phase {
                Phase::Waiting => String::new(),
                _ => cli::logs(&self.opts, &self.target, self.job).unwrap_or_default(),
            };
            Ok((phase, log))
        };
        framed::await_node(
            &self.nonce,
            None,
            look,
            (self.opts.poll_interval, limit),
            cancel,
            benchmark_commit,
        )
    }

    /// Blocks until the job ends, its timeout passes or `cancel` is set (then it is cancelled
    /// first). A job SkyPilot could not start (no resources, a failed setup, a lost
    /// controller) is [`ExecError::SkyJobLost`].
    pub fn wait(self, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        let timing = Timing {
            poll_interval: self.opts.poll_interval,
            timeout: self.req.timeout,
            grace: self.req.grace,
            failure_limit: self.opts.query_failure_limit,
            settle_limit: SETTLE_LIMIT,
            unknown_limit: UNKNOWN_LIMIT,
        };
        let mut watch = Watch {
            run: &self,
            log: LogStream::open(&self.req, &self.nonce, None)?,
            recoveries: None,
            restarts: 0,
        };
        let driven = drive(&mut watch, &timing, cancel)?;
        let (timed_out, cancelled) = (driven.timed_out(), driven.cancelled());
        let (info, log) = driven.end?;
        let restarts = watch.restarts;
        let (stdout, trailer_status) = watch.log.finish(&log, self.metrics_path.as_deref())?;
        let secs = |s: Option<f64>| s.filter(|s| *s > 0.0).map(|s| (s * 1000.0) as i64);
        let (started_at, finished_at, wall_secs) = framed::span(
            driven.started.map(|(_, ms)| ms),
            secs(info.start_at),
            secs(info.end_at),
        );
        let status = info.status.as_deref().unwrap_or("");
        let code = trailer_status.or(match status {
            "SUCCEEDED" => Some(0),
            "FAILED" => Some(1),
            _ => None,
        });
        let (exit_code, signal) = code.map_or((None, None), framed::shell_status);
        let by_someone_else = status == "CANCELLED" && !(timed_out || cancelled);
        Ok(RunOutcome {
            exit_code: if timed_out || cancelled || by_someone_else {
                None
            } else {
                exit_code
            },
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
            restarts,
        })
    }
}

/// The job as the driver sees it.
struct Watch<'a> {
    run: &'a SkyRun,
    log: LogStream,
    /// The recovery count last seen (managed jobs).
    recoveries: Option<u32>,
    restarts: u32,
}

impl Watch<'_> {
    fn lost_error(&self, reason: String) -> <Self as RemoteJob>::End {
        Err(ExecError::SkyJobLost {
            job: handle(&self.run.target, self.run.job, &self.run.nonce),
            reason,
        })
    }

    fn lost(&self, reason: String) -> Observed<<Self as RemoteJob>::End> {
        Observed::Ended(self.lost_error(reason))
    }
}

impl RemoteJob for Watch<'_> {
    type End = Result<(SkyJob, String), ExecError>;

    fn label(&self) -> String {
        format!("skypilot job {}", self.run.job)
    }

    fn observe(&mut self) -> Result<Observed<Self::End>, ExecError> {
        let run = self.run;
        let Some(info) = cli::job(&run.opts, &run.target, run.job)? else {
            return Ok(Observed::Unknown(
                self.lost_error("the queue no longer lists it".into()),
            ));
        };
        let count = info.recovery_count.unwrap_or(0);
        let recovered = self.recoveries.is_some_and(|seen| count > seen);
        self.recoveries = Some(count);
        if recovered {
            self.restarts += 1;
            note_in_log(
                &run.req.stderr_path,
                &format!(
                    "[picidae: the instance was preempted; SkyPilot recovered the job (recovery {count}) and the run starts over]\n"
                ),
            );
            self.log
                .note("\n[picidae: the run starts over on a new instance]\n");
            return Ok(Observed::Restarted);
        }
        let status = info.status.clone().unwrap_or_default();
        let observed = match status.as_str() {
            "INIT" | "PENDING" | "SUBMITTED" | "STARTING" | "SETTING_UP" | "RECOVERING" => {
                Observed::Pending
            }
            "RUNNING" | "CANCELLING" | "WINDING_DOWN" => Observed::Running {
                started_unix_ms: None,
            },
            "SUCCEEDED" | "FAILED" | "CANCELLED" => {
                let log = cli::logs(&run.opts, &run.target, run.job)?;
                self.log.update(&log);
                return Ok(Observed::Ended(Ok((info, log))));
            }
            other => {
                let why = info.failure_reason.as_deref().unwrap_or("no reason given");
                return Ok(self.lost(format!("{other}: {why}")));
            }
        };
        if matches!(observed, Observed::Running { .. }) {
            let log = cli::logs(&run.opts, &run.target, run.job)?;
            self.log.update(&log);
        }
        Ok(observed)
    }

    fn stop(&mut self, _how: Stop) -> Result<(), ExecError> {
        cli::cancel(&self.run.opts, &self.run.target, self.run.job)
    }
}

impl ClusterRun for SkyRun {
    fn node_fingerprint(
        &self,
        benchmark_commit: Option<&str>,
        cancel: &AtomicBool,
        limit: Duration,
    ) -> Result<Option<Fingerprint>, ExecError> {
        SkyRun::node_fingerprint(self, benchmark_commit, cancel, limit)
    }
}

impl RunHandle for SkyRun {
    fn id(&self) -> String {
        handle(&self.target, self.job, &self.nonce)
    }

    fn wait(self: Box<Self>, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        SkyRun::wait(*self, cancel)
    }
}
