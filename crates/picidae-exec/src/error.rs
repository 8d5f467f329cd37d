//! The error type of this crate.
//!
//! Every fallible operation returns [`ExecError`]. A run that fails, times
//! out or is killed is *not* an error: that is a [`crate::RunOutcome`].
//! Errors mean Picidae itself could not do its job (bad request, cannot open
//! a log file, cannot spawn, cannot wait).

use std::io;
use std::path::PathBuf;

/// Errors raised by the executor and the fingerprint collector.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The [`crate::RunRequest`] is malformed (missing cwd, bad env var name...).
    #[error("invalid run request: {0}")]
    InvalidRequest(String),

    /// A log file (or its parent directory) could not be created.
    #[error("cannot open log file {}: {source}", path.display())]
    LogFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The child process could not be started.
    #[error("failed to spawn `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },

    /// A log reader thread could not be started.
    #[error("cannot start log reader thread: {0}")]
    Thread(#[source] io::Error),

    /// Waiting for / reaping the child failed.
    #[error("failed to wait for pid {pid}: {source}")]
    Wait {
        pid: i32,
        #[source]
        source: io::Error,
    },

    /// Basic system information (uname) could not be read.
    #[error("cannot read system information: {0}")]
    System(String),

    /// A sandbox could not be built (bad [`crate::SandboxSpec`] path,
    /// `bwrap` missing).
    #[error("sandbox: {0}")]
    Sandbox(String),

    /// An SSH operation failed: the host stayed unreachable past the retry
    /// limit, or a remote step (sync, launch, signal, fetch) failed.
    #[error("ssh {host}: {message}")]
    Ssh { host: String, message: String },

    /// A local file or directory used by a remote executor (logs, fetched
    /// artifacts) could not be written.
    #[error("local file {}: {source}", path.display())]
    LocalIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A Slurm client command (`sbatch`, `squeue`, `scontrol`, `scancel`,
    /// `sacct`, `sinfo`) could not be run, failed, or printed something
    /// unexpected.
    #[error("slurm {command}: {message}")]
    Slurm { command: String, message: String },

    /// A Slurm job ended or stalled for reasons outside the run's control
    /// (`NODE_FAIL`, `PREEMPTED`, `BOOT_FAIL`, held, or no longer known to
    /// Slurm). Not an outcome of the run: it should be requeued.
    #[error("slurm job {job_id} lost ({state}); the run should be requeued")]
    SlurmJobLost { job_id: String, state: String },

    /// A container runtime command (`docker`/`podman` `run`, `inspect`,
    /// `stop`, `kill`, `logs`, `rm`, `info`) could not be run, failed, or
    /// printed something unexpected.
    #[error("{command}: {message}")]
    Container { command: String, message: String },

    /// A container vanished before its end was observed, or was created but
    /// never started. Not an outcome of the run: it should be requeued.
    #[error("container {container} lost ({reason}); the run should be requeued")]
    ContainerLost { container: String, reason: String },

    /// A remote run could not be watched or stopped: its engine stayed unreachable, or a
    /// killed run would not end.
    #[error("{run}: {message}")]
    Remote { run: String, message: String },

    /// A call to a Ray cluster's Jobs API failed or answered something unexpected.
    #[error("ray {address}: {message}")]
    Ray { address: String, message: String },

    /// The engine cannot place the run as asked (more GPUs than any node has, say). Not a
    /// failure of the attempt's code: the reason is recorded with the run.
    #[error("{executor} refuses the run: {reason}")]
    Refused { executor: String, reason: String },

    /// A Ray job ended for reasons outside the run's control (its node died, the job was
    /// lost with the cluster). Not an outcome of the run: it should be requeued.
    #[error("ray job {job_id} lost ({reason}); the run should be requeued")]
    RayJobLost { job_id: String, reason: String },

    /// A SkyPilot job ended for reasons outside the run's control (no resources, a failed
    /// setup, a lost controller, gone from the queue). Not an outcome of the run.
    #[error("skypilot job {job} lost ({reason}); the run should be requeued")]
    SkyJobLost { job: String, reason: String },
}
