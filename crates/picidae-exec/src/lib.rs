//! picidae-exec: executing experiment runs.
//!
//! This crate owns everything between "a run has been scheduled" and "here
//! is what happened": spawning the run's command, streaming and capping its
//! logs, enforcing the hard timeout, honouring cancellation, measuring wall
//! time and peak memory, and recording the machine the run executed on.
//!
//! * [`request`] — [`RunRequest`], the description of one run.
//! * [`outcome`] — [`RunOutcome`], the serialisable result of one run.
//! * [`local`] — [`LocalExecutor`] / [`RunningChild`], the local executor: one
//!   session per run, found and killed whole even when it daemonizes, with
//!   [`Limits`] on memory and processes (std threads, no async runtime).
//! * [`executor`] — the [`Executor`] / [`RunHandle`] traits every executor implements.
//! * [`process`] — process / process-group helpers ([`process_alive`],
//!   [`kill_group`]) also used to clean up runs orphaned by a coordinator crash.
//! * [`fingerprint`] — [`Fingerprint`], the hardware/software identity of a
//!   machine; runs are only compared within one fingerprint.
//! * [`sandbox`] — [`Sandbox`] / [`SandboxSpec`]: bubblewrap isolation of
//!   local runs (filesystem view, network), applied before spawning.
//! * [`ssh`] — [`SshExecutor`]: runs on a remote host over SSH (sync the
//!   checkout, launch detached, poll, stream logs back, reattach).
//! * `call` — helper processes (`ssh`, `tar`, a container CLI) run with a time limit and
//!   their output collected; the executors' wall clock.
//! * [`shell`] — POSIX shell quoting for generated command lines.
//! * [`slurm`] — [`SlurmExecutor`]: submits runs as Slurm batch jobs, polls
//!   job states in batches, enforces timeouts and cancellation with
//!   `scancel`, and reattaches to jobs after a coordinator restart.
//! * [`container`] — [`ContainerExecutor`]: runs each run in a Docker or
//!   Podman container (same-path bind mounts, no network by default,
//!   resource limits), through the runtime's CLI; reattaches after a
//!   coordinator restart.
//! * `remote` — the one wait driver of every remote executor (poll, timeout counted from the
//!   run's start, cancel, term-then-kill, a retry window for an unreachable engine); each
//!   executor only says how to look at and stop its run.
//! * [`ray`] — [`ray::RayExecutor`]: runs as jobs of a Ray cluster through its Jobs API
//!   (checkout uploaded as a package, framed log, refusal of jobs no node can hold,
//!   re-adoption by submission id).
//! * `framed` — a remote job's one log stream with Picidae's frames in it (the node's
//!   identity before the command, the metrics file and status after it), read back so a run
//!   cannot forge them into hiding its report (Ray, SkyPilot).
//! * [`skypilot`] — [`skypilot::SkyExecutor`]: runs as SkyPilot tasks through the `sky` CLI
//!   (on a warm cluster with `sky exec`, or as managed jobs whose spot recoveries restart the
//!   run instead of failing it).
//! * `upload` — what of a checkout is sent to a remote engine (no hidden files, no links).
//! * `probe` — a machine's identity read through a shell script (SSH hosts, Ray nodes).
//! * [`gpu`] — [`gpu::GpuProbe`]: a local run's peak GPU memory, sampled with `nvidia-smi`.
//! * [`error`] — [`ExecError`].

mod call;
mod cgroup;
pub mod container;
pub mod error;
pub mod executor;
pub mod fingerprint;
mod framed;
pub mod gpu;
pub mod local;
mod logs;
pub mod outcome;
mod probe;
pub mod process;
pub mod ray;
pub(crate) mod remote;
pub mod request;
pub mod safe_fs;
pub mod sandbox;
pub mod shell;
pub mod skypilot;
pub mod slurm;
pub mod ssh;
#[cfg(feature = "testing")]
pub mod testing;
mod upload;
pub mod work;

pub use container::{
    ContainerExecutor, ContainerOutcome, ContainerRun, ContainerRuntime, ContainerSpec,
    ContainerState, RuntimeKind,
};
pub use error::ExecError;
pub use executor::{ClusterRun, Executor, RunHandle};
pub use fingerprint::{Fingerprint, GpuInfo};
pub use local::{
    Limits, LocalExecutor, RunningChild, POLL_INTERVAL, RUN_TOKEN_VAR, STDOUT_TAIL_BYTES,
};
pub use outcome::RunOutcome;
pub use process::{group_alive, kill_group, process_alive};
pub use request::{JobSpec, RunRequest};
pub use sandbox::{Sandbox, SandboxSpec};
pub use slurm::{
    SlurmDisposition, SlurmExecutor, SlurmJobInfo, SlurmJobSpec, SlurmJobState, SlurmOptions,
    SlurmResources, SlurmRun,
};
pub use ssh::{SshExecutor, SshRun, SshSettings, SshTarget};
