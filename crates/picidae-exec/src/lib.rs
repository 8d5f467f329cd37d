//! picidae-exec: executing experiment runs.
//!
//! This crate owns everything between "a run has been scheduled" and "here
//! is what happened": spawning the run's command, streaming and capping its
//! logs, enforcing the hard timeout, honouring cancellation, measuring wall
//! time and peak memory, and recording the machine the run executed on.
//!
//! * [`request`] — [`RunRequest`], the description of one run.
//! * [`outcome`] — [`RunOutcome`], the serialisable result of one run.
//! * [`local`] — [`LocalExecutor`] / [`RunningChild`], the local, process-group
//!   based executor (std threads, no async runtime).
//! * [`executor`] — the [`Executor`] / [`RunHandle`] traits that remote
//!   executors (Slurm, SSH, containers) will implement.
//! * [`process`] — process / process-group helpers ([`process_alive`],
//!   [`kill_group`]) also used to clean up runs orphaned by a coordinator crash.
//! * [`fingerprint`] — [`Fingerprint`], the hardware/software identity of a
//!   machine; runs are only compared within one fingerprint.
//! * [`error`] — [`ExecError`].

pub mod error;
pub mod executor;
pub mod fingerprint;
pub mod local;
mod logs;
pub mod outcome;
pub mod process;
pub mod request;

pub use error::ExecError;
pub use executor::{Executor, RunHandle};
pub use fingerprint::{Fingerprint, GpuInfo};
pub use local::{LocalExecutor, RunningChild, POLL_INTERVAL, STDOUT_TAIL_BYTES};
pub use outcome::RunOutcome;
pub use process::{group_alive, kill_group, process_alive};
pub use request::RunRequest;
