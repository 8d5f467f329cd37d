//! The store's error type, and its `Result`.

use crate::db::DbError;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DbError),
    #[error("cannot open the store at {location}: {source}")]
    Open { location: String, source: DbError },
    #[error("schema migration failed: {0}")]
    Migration(String),
    #[error("{0:?} is not a store location: give a SQLite file path or a postgres:// URL")]
    BadLocation(String),
    #[error("no program named {0:?}")]
    NoSuchProgram(String),
    #[error("a program named {0:?} already exists")]
    ProgramExists(String),
    #[error("no attempt {0}")]
    NoSuchAttempt(i64),
    #[error("no run {0}")]
    NoSuchRun(i64),
    #[error("run {0} is already finished; refusing to record it twice")]
    RunAlreadyFinished(i64),
    #[error("no finding {0}")]
    NoSuchFinding(i64),
    #[error("finding {id} cannot move from {from} to {to}")]
    BadTransition { id: i64, from: String, to: String },
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// A decision would advance the frontier from an attempt that no longer holds it (another
    /// attempt was kept, or a finding retracted, since this one was judged).
    #[error("attempt {attempt} was judged against frontier attempt {expected:?}, but the frontier is now attempt {actual:?}")]
    FrontierMoved {
        attempt: i64,
        expected: Option<i64>,
        actual: Option<i64>,
    },
    #[error("program {program:?} has {} run(s) running ({}); stop its loop first", runs.len(), runs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "))]
    ProgramRunning { program: String, runs: Vec<i64> },

    /// An arena by that name exists already.
    #[error("arena {0:?} exists already")]
    ArenaExists(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
