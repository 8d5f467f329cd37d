//! The rows the store hands out and takes in for programs and attempts: a stored program,
//! an attempt, what a new one is made of, a decision, a frontier move, a listing's filter.

use picidae_core::{AttemptKind, AttemptStatus, ProgramStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Program {
    pub id: i64,
    pub name: String,
    /// Absolute path of the benchmark directory.
    pub benchmark_dir: String,
    pub program_md: String,
    /// Agent configuration (JSON, owned by the agent crate).
    pub agent: serde_json::Value,
    /// Policy overrides (JSON).
    pub policy: serde_json::Value,
    /// The commit the program started from.
    pub base_commit: String,
    pub frontier_attempt_id: Option<i64>,
    pub frontier_commit: Option<String>,
    pub frontier_value: Option<f64>,
    pub status: ProgramStatus,
    /// Why the harness paused the program (repeated agent failures), until it is resumed.
    pub paused_reason: Option<String>,
    pub created_at: i64,
    /// Fair-share weight among programs competing for slots.
    pub weight: f64,
    /// Run budget: no new attempt starts once the program has used this many runs.
    pub max_runs: Option<i64>,
    /// GPU-hour budget (GPUs held × wall time of the program's runs).
    pub max_gpu_hours: Option<f64>,
    /// Money budget: GPU-hours at `gpu_hour_usd` plus the cost agents reported.
    pub max_usd: Option<f64>,
    /// Price of one GPU-hour, for the money budget.
    pub gpu_hour_usd: f64,
    /// Where the program's runs execute (JSON owned by the scheduler; `null`: locally).
    pub executor: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct NewProgram {
    pub name: String,
    pub benchmark_dir: String,
    pub program_md: String,
    pub agent: serde_json::Value,
    pub policy: serde_json::Value,
    pub base_commit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub id: i64,
    pub program_id: i64,
    pub seq: i64,
    pub kind: AttemptKind,
    pub status: AttemptStatus,
    pub parent_commit: String,
    pub commit: Option<String>,
    pub hypothesis: String,
    pub proposer: String,
    pub params: Option<serde_json::Value>,
    pub patch_hash: Option<String>,
    pub touched: Vec<String>,
    /// Why it was rejected (boundary violations, agent failure), as JSON.
    pub rejection: Option<serde_json::Value>,
    /// Aggregate of its runs' primary metric (mean over valid runs).
    pub primary_value: Option<f64>,
    pub note: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    /// The attempt whose change this one carries onto a newer frontier (a replay of a stale
    /// attempt, a retry, or a merge candidate).
    pub replay_of: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub program_id: i64,
    pub kind: AttemptKind,
    pub parent_commit: String,
    pub hypothesis: String,
    pub proposer: String,
    pub params: Option<serde_json::Value>,
}

/// An attempt made outside Picidae, as imported.
#[derive(Debug, Clone)]
pub struct ImportedAttempt {
    pub commit: String,
    pub status: AttemptStatus,
    pub primary_value: Option<f64>,
    /// Peak GPU memory in MiB as the session logged it (autoresearch's `memory_gb`).
    pub peak_gpu_mb: Option<i64>,
    pub hypothesis: String,
    /// Where it came from (file name), recorded as the proposer.
    pub source: String,
}

/// How an attempt is decided.
#[derive(Debug, Clone)]
pub struct Decision {
    pub status: AttemptStatus,
    pub primary_value: Option<f64>,
    pub note: Option<String>,
    /// When set, the program's frontier moves to this attempt's commit with this value.
    pub advance_frontier: bool,
    /// The frontier attempt this decision was judged against. When set, advancing is refused
    /// with [`StoreError::FrontierMoved`] (and nothing is written) if the program's frontier
    /// is no longer it; `None` advances unconditionally (imports, the baseline).
    pub judged_against: Option<i64>,
}

/// One move of a program's frontier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrontierMove {
    /// The attempt whose commit became the frontier.
    pub attempt_id: i64,
    pub commit: String,
    /// The value the frontier had from then on.
    pub value: f64,
    /// When (ms since the Unix epoch).
    pub at: i64,
}

/// Filters for listing attempts.
#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    pub program_id: Option<i64>,
    pub status: Option<AttemptStatus>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}
