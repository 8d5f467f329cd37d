//! Picidae's core: the benchmark contract, the domain nouns, metric parsing and guards, and
//! parameter handling for the sweep agents.
//!
//! This crate does no I/O beyond reading a contract file, so every rule here is testable
//! in isolation and shared unchanged by the store, the executors, the agents and the scheduler.

pub mod contract;
pub mod domain;
pub mod metric_lines;
pub mod metrics;
pub mod params;
pub mod program_md;
pub mod results_tsv;
pub mod sequential;
pub mod stats;

pub use contract::{
    Contract, ContractError, ContractIssue, ScreenSpec, CONTRACT_FILE, SCREEN_SEED,
};
pub use domain::{
    AttemptKind, AttemptStatus, Boundary, BoundaryViolation, ProgramStatus, RunBreach, RunStatus,
    WorkState,
};
pub use metrics::{Goal, MetricSource, MetricSpec, MetricValues, Violation};
pub use params::{Assignment, ParamDomain, ParamSpec};
