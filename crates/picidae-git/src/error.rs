//! The crate's error type.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong while driving git. Never a panic.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git` program could not be started (not installed, not on `PATH`, ...).
    #[error("could not run `git {}`: {source}", .args.join(" "))]
    Spawn {
        /// The git arguments (after the hardening `-c` options).
        args: Vec<String>,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// git ran and exited unsuccessfully.
    #[error("`git {}` failed ({status}): {stderr}", .args.join(" "))]
    Command {
        /// The git arguments (after the hardening `-c` options).
        args: Vec<String>,
        /// git's exit status.
        status: ExitStatus,
        /// git's standard error, trimmed.
        stderr: String,
    },
    /// The path is not inside a git work tree (or does not exist).
    #[error("{} is not inside a git work tree: {detail}", .path.display())]
    NotAWorkTree {
        /// The path that was given.
        path: PathBuf,
        /// Why (git's message, or ours).
        detail: String,
    },
    /// A compare-and-swap ref update found the ref at another value.
    #[error(
        "ref {name} was not updated: expected {}, found {}",
        .expected.as_deref().unwrap_or("no ref"),
        .actual.as_deref().unwrap_or("no ref")
    )]
    RefConflict {
        /// The ref name.
        name: String,
        /// The value the caller expected (`None`: the ref should not exist).
        expected: Option<String>,
        /// The value the ref actually has (`None`: it does not exist).
        actual: Option<String>,
    },
    /// A caller-supplied argument was rejected before running git
    /// (a rev starting with `-`, a ref name outside `refs/`, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A filesystem operation done by this crate (not by git) failed.
    #[error("I/O error at {}: {source}", .path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// git's output could not be understood.
    #[error("unexpected output from git: {0}")]
    Parse(String),
}

/// Shorthand for this crate's results.
pub type Result<T, E = GitError> = std::result::Result<T, E>;

impl GitError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GitError::Io {
            path: path.into(),
            source,
        }
    }
}
