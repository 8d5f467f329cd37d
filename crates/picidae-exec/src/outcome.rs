//! [`RunOutcome`]: the serialisable record of how a run ended.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happened to one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Exit status of the command's shell, if it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that terminated the shell, if it was killed by one.
    pub signal: Option<i32>,
    /// The hard timeout was reached and the group was terminated.
    pub timed_out: bool,
    /// The run was cancelled via the cancel flag and the group was terminated.
    pub cancelled: bool,
    /// Wall time exceeded the request's `time_budget` (informational).
    pub over_budget: bool,
    /// Wall-clock duration from spawn to reaping, in seconds.
    pub wall_secs: f64,
    /// Peak resident memory in KiB: the max of the reaped child's
    /// `ru_maxrss` and sampled sums of VmRSS over the process group.
    pub peak_rss_kb: Option<u64>,
    /// Peak GPU memory in MiB, summed over the run's processes, where the executor can
    /// measure it (the local executor, with `nvidia-smi`; see the `gpu` module).
    #[serde(default)]
    pub peak_gpu_mb: Option<u64>,
    /// stdout exceeded `log_cap_bytes` and the log file was truncated.
    pub stdout_truncated: bool,
    /// stderr exceeded `log_cap_bytes` and the log file was truncated.
    pub stderr_truncated: bool,
    /// The last (up to) 64 KiB of stdout, lossily decoded as UTF-8,
    /// independent of log truncation.
    pub stdout_tail: String,
    /// Spawn time, milliseconds since the Unix epoch.
    pub started_at_unix_ms: i64,
    /// Reap time, milliseconds since the Unix epoch.
    pub finished_at_unix_ms: i64,
    /// Times the engine started the run over on a new machine (a preempted spot instance
    /// SkyPilot recovered); the wall time is the last start's.
    #[serde(default)]
    pub restarts: u32,
}

impl RunOutcome {
    /// The outcome of a run whose process never ran: cancelled before it started, or not
    /// started at all (`exit_code` 127, as a shell reports a command it cannot run).
    pub fn not_run(cancelled: bool) -> RunOutcome {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        RunOutcome {
            exit_code: (!cancelled).then_some(127),
            signal: None,
            timed_out: false,
            cancelled,
            over_budget: false,
            wall_secs: 0.0,
            peak_rss_kb: None,
            peak_gpu_mb: None,
            stdout_truncated: false,
            stderr_truncated: false,
            stdout_tail: String::new(),
            started_at_unix_ms: now,
            finished_at_unix_ms: now,
            restarts: 0,
        }
    }

    /// True when the command exited with status 0 and was neither timed out
    /// nor cancelled. Being over budget does not count as failure.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && self.signal.is_none() && !self.timed_out && !self.cancelled
    }

    /// Wall time as a [`Duration`].
    pub fn wall(&self) -> Duration {
        Duration::try_from_secs_f64(self.wall_secs).unwrap_or_default()
    }
}
