//! [`RunRequest`]: everything the executor needs to start one run; [`JobSpec`]: what a job
//! on a shared cluster (Ray, SkyPilot) asks of it besides.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Description of a single run.
///
/// The command is executed as `/bin/sh -c <command>` in `cwd`, in its own
/// process group, with stdin connected to `/dev/null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// Shell command line, run via `/bin/sh -c`.
    pub command: String,
    /// Working directory (the run's own checkout). Must exist.
    pub cwd: PathBuf,
    /// Extra environment variables, added to (overriding) the inherited
    /// environment.
    pub env: Vec<(String, String)>,
    /// The experiment's intended wall-clock budget. Only recorded: the
    /// outcome's `over_budget` is set when the wall time exceeds it.
    pub time_budget: Duration,
    /// Hard limit. When reached, the whole process group gets SIGTERM, then
    /// `grace` later SIGKILL.
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL (timeout and cancellation).
    pub grace: Duration,
    /// Where stdout is streamed. Parent directories are created.
    pub stdout_path: PathBuf,
    /// Where stderr is streamed. Parent directories are created. May equal
    /// `stdout_path` (both streams are then appended to one file; the cap
    /// applies to each stream separately).
    pub stderr_path: PathBuf,
    /// Maximum number of bytes written to each log file; past it a single
    /// marker line is written and the rest of the stream is drained and
    /// discarded.
    pub log_cap_bytes: u64,
}

impl RunRequest {
    /// Checks the request without touching the filesystem beyond `cwd`.
    pub(crate) fn validate(&self) -> Result<(), crate::ExecError> {
        use crate::ExecError::InvalidRequest;
        if self.command.trim().is_empty() {
            return Err(InvalidRequest("command is empty".into()));
        }
        if self.command.contains('\0') {
            return Err(InvalidRequest("command contains a NUL byte".into()));
        }
        if !self.cwd.is_dir() {
            return Err(InvalidRequest(format!(
                "cwd {} is not an existing directory",
                self.cwd.display()
            )));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(InvalidRequest(format!(
                    "invalid environment variable name {k:?}"
                )));
            }
            if v.contains('\0') {
                return Err(InvalidRequest(format!(
                    "environment variable {k} contains a NUL byte"
                )));
            }
        }
        if self.stdout_path.as_os_str().is_empty() || self.stderr_path.as_os_str().is_empty() {
            return Err(InvalidRequest("log paths must not be empty".into()));
        }
        Ok(())
    }
}

/// What one run's job asks of a shared cluster (Ray, SkyPilot), and where its metrics file
/// comes home.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSpec {
    /// The job's name (the run's); engines that need unique ids add a random suffix.
    pub name: String,
    /// CPUs, GPUs (0: none asked) and memory in MiB.
    pub cpus: u32,
    pub gpus: u32,
    pub memory_mb: Option<u64>,
    /// The local path of the run's `$PICIDAE_METRICS`: the job's metrics file is written
    /// there when it ends.
    pub metrics_path: Option<PathBuf>,
}
