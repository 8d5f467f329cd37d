//! Picidae's scheduler: turns an agent's proposals into decided, recorded attempts.
//!
//! - [`project`] owns the on-disk layout of a project (store, run logs, checkouts, caches).
//! - [`program`] creates research programs (benchmark + program.md + agent + policy).
//! - [`agent_turn`] reads what an agent is given for a turn (frontier values, memory brief) from
//!   the store, and builds the next turn's context without running anything.
//! - [`runner`] is the keep/revert loop: baseline, propose, boundary check, commit, run each
//!   seed in its own checkout, decide, advance the frontier.
//! - [`fsck`] checks a program's store records against each other and its git refs, restores
//!   refs from the store, and keeps a loop from starting on a store in doubt.
//! - `recover` (private) is the loop's recovery after a crash: closing or re-adopting the runs a
//!   dead loop left, resuming undecided attempts, honouring cancel requests made meanwhile.
//! - [`replay`] replays an earlier attempt's change onto the frontier as a new attempt, for a
//!   retry and for a queued attempt that went stale.
//! - [`retry`] turns a person's retry request into an attempt that verifies an earlier
//!   attempt's change again on the current frontier.
//!
//! The store is the source of truth: every step is recorded before the next begins, so a
//! `kill -9` at any instant loses at most the run in flight, which the next start finds, kills
//! if still alive, marks as crashed and runs again.

mod admission;
pub mod agent_turn;
pub mod arena;
pub mod artifacts;
mod baseline;
pub mod cancels;
mod carry;
pub mod clones;
pub mod contract_source;
pub mod contribute;
pub mod coordinator;
mod decide;
mod driver;
pub mod executors;
pub mod fsck;
pub mod hidden;
mod judging;
mod lease;
mod lifecycle;
mod loop_api;
pub mod merge;
pub mod noise;
mod outcome;
pub mod power;
pub mod program;
pub mod project;
mod propose;
pub(crate) mod readonly;
pub mod recheck;
mod recover;
mod remote;
pub mod replay;
pub mod resources;
pub mod retry;
mod run;
pub mod runner;
mod screen;
mod seeds;
mod setup;
pub mod shutdown;
pub mod slots;
mod stepwise;
pub mod verify;
mod work_watch;
pub mod workers;

use std::path::{Path, PathBuf};

pub use agent_turn::{next_turn, NextTurn};
pub use cancels::RunCancels;
pub use executors::{ExecutorSpec, SCREEN_EXECUTOR_KEY};
pub use fsck::{fsck, fsck_project, Check, Problem, Repair, Report, Subject};
pub use power::{power, program_power, Power};
pub use program::{
    check_concurrency, create_program, retract_finding, ProgramOptions, Retracted, MAX_CONCURRENCY,
};
pub use project::Project;
pub use resources::{Capacity, ResourcePool};
pub use runner::{LoopEvent, LoopOptions, LoopSummary, Runner};
pub use shutdown::{Mode, Shutdown};
pub use slots::SlotPool;

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error("no Picidae project at {0} (run `picidae init` there first)")]
    NoProject(PathBuf),
    #[error("project store: {0}")]
    ProjectStore(String),
    #[error(transparent)]
    Store(#[from] picidae_store::StoreError),
    #[error(transparent)]
    Contract(#[from] picidae_core::ContractError),
    #[error("git: {0}")]
    Git(#[from] picidae_git::GitError),
    #[error(transparent)]
    Memory(#[from] picidae_memory::MemoryError),
    #[error("executor: {0}")]
    Exec(#[from] picidae_exec::ExecError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid program name {0:?}: use letters, digits, '-', '_' and '.'")]
    BadProgramName(String),
    #[error("program {program}: {message}")]
    Program { program: String, message: String },
    #[error("program {0} is already being run by another picidae process")]
    Busy(String),
    #[error("setup command failed ({status}); see {log}")]
    SetupFailed { status: String, log: PathBuf },
    #[error("baseline failed: {reason}; see {log}")]
    BaselineFailed { reason: String, log: PathBuf },
    #[error("{}", fsck::refusal(.program, .problems))]
    Inconsistent {
        program: String,
        problems: Vec<fsck::Problem>,
    },
}

impl SchedError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SchedError {
        SchedError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The git ref namespace of a program.
pub fn program_ref(program: &str, leaf: &str) -> String {
    format!("refs/picidae/{program}/{leaf}")
}

/// The ref holding an attempt's commit.
pub fn attempt_ref(program: &str, seq: i64) -> String {
    program_ref(program, &format!("attempts/{seq:06}"))
}
