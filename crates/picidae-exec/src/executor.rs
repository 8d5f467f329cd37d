//! The executor abstraction: [`Executor`] starts runs, [`RunHandle`] drives
//! one to completion. [`crate::LocalExecutor`] is the local implementation; the remote
//! executors (Slurm, SSH, containers, Ray) implement the same traits.

use std::sync::atomic::AtomicBool;

use std::time::Duration;

use crate::{ExecError, Fingerprint, RunOutcome, RunRequest};

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

/// A started job on a shared cluster (Ray, SkyPilot), which says which node runs it.
pub trait ClusterRun: RunHandle {
    /// Waits until the job runs on a node and returns that node's fingerprint; `None` when
    /// the job ended first, `cancel` was set, `limit` passed or the job never said.
    fn node_fingerprint(
        &self,
        benchmark_commit: Option<&str>,
        cancel: &AtomicBool,
        limit: Duration,
    ) -> Result<Option<Fingerprint>, ExecError>;
}
