//! The executor abstraction: [`Executor`] starts runs, [`RunHandle`] drives
//! one to completion. [`crate::LocalExecutor`] is the local implementation; the remote
//! executors (Slurm, SSH, containers, Ray) implement the same traits.

use std::sync::atomic::AtomicBool;

use crate::{ExecError, RunOutcome, RunRequest};

/// Something that can start runs.
pub trait Executor: Send + Sync {
    /// Short name for logs ("local", "slurm", ...).
    fn name(&self) -> &str;

    /// Starts `req` and returns a handle as soon as the run is running.
    fn spawn(&self, req: &RunRequest) -> Result<Box<dyn RunHandle>, ExecError>;
}

/// A started run.
pub trait RunHandle: Send {
    /// Executor-specific identifier to persist for crash recovery
    /// (e.g. `local:<pgid>`, a Slurm job id).
    fn id(&self) -> String;

    /// Blocks until the run finishes, times out, or `cancel` becomes true.
    fn wait(self: Box<Self>, cancel: &AtomicBool) -> Result<RunOutcome, ExecError>;
}
