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
}
