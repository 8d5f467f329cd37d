//! Agents: whatever proposes the next attempt.
//!
//! An agent receives an [`AgentContext`] (the program's direction, the contract, the frontier's
//! visible numbers, the history of earlier attempts) and edits files in its own checkout of the
//! frontier. It returns a [`Proposal`]: the hypothesis it is testing and, for parameter sweeps,
//! the assignment it wrote. The harness, not the agent, then checks the boundary, commits the
//! change and runs it, so an agent can never spend compute on an edit the contract forbids.
//!
//! Built in: [`sweep::SweepAgent`] (no LLM; samples declared parameters at random or with
//! [`tpe`], a Tree-structured Parzen Estimator) and [`command::CommandAgent`] (runs any program
//! in the checkout). [`adapters`] configures the command agent for coding-agent CLIs (Claude
//! Code, Codex, Aider), which run with the user's own CLI and API key; [`prompt`] renders the
//! one prompt every command agent gets.

pub mod adapters;
pub mod command;
pub mod prompt;
pub mod sweep;
pub mod tpe;

use std::path::Path;
use std::time::Duration;

use picidae_core::{Assignment, AttemptStatus, Contract};
use serde::{Deserialize, Serialize};

/// The agent's writable scratch directory inside its attempt directory.
pub const SCRATCH_DIR: &str = "scratch";

/// Errors an agent can report. None of them loses the attempt: the harness records it as a
/// failed proposal with this message.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent configuration: {0}")]
    Config(String),
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Param(#[from] picidae_core::params::ParamError),
    /// A file the harness writes or reads where the agent could have planted a link.
    #[error(transparent)]
    Unsafe(#[from] picidae_exec::safe_fs::SafeFsError),
    #[error("agent command failed to start: {0}")]
    Spawn(#[from] picidae_exec::ExecError),
    #[error("agent command timed out after {0:.1}s")]
    TimedOut(f64),
    #[error("agent command exited with {0}")]
    Exited(String),
    #[error("the sweep space is exhausted: no untried assignment found")]
    Exhausted,
    /// The agent said it has nothing left to propose (a [`command::DONE_LINE`] line); the loop
    /// ends as it does when a sweep is exhausted.
    #[error("the agent said it has nothing more to propose")]
    Done,
    #[error(
        "`{binary}` was not found on PATH. The {product} agent runs your own `{binary}` CLI \
         with your own API key or login (Picidae includes no LLM access): install it, sign in, \
         and make sure `{binary}` is on the PATH picidae runs with"
    )]
    MissingBinary { binary: String, product: String },
}

/// One earlier attempt as an agent may see it: visible numbers only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: i64,
    pub hypothesis: String,
    pub status: AttemptStatus,
    pub params: Option<Assignment>,
    pub value: Option<f64>,
}

/// Another attempt of the program, queued or running while the agent works: so it does not
/// propose the same idea again (the duplicate gate would refuse an exact repeat anyway).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InFlight {
    pub seq: i64,
    pub status: AttemptStatus,
    pub hypothesis: String,
    pub params: Option<Assignment>,
    /// Its change as a unified diff, cut after [`IN_FLIGHT_DIFF_LINES`] lines.
    pub diff: String,
}

/// The most lines of an in-flight attempt's diff an agent is shown.
pub const IN_FLIGHT_DIFF_LINES: usize = 40;

/// What an agent is given for one proposal.
pub struct AgentContext<'a> {
    pub program: &'a str,
    pub program_md: &'a str,
    pub contract: &'a Contract,
    /// The benchmark directory inside the agent's own checkout of the frontier.
    pub workspace: &'a Path,
    /// The frontier's primary-metric value.
    pub frontier_value: Option<f64>,
    /// The frontier's visible metric values (mean over its succeeded runs), by name. Never a
    /// hidden metric.
    pub frontier_metrics: &'a [(String, f64)],
    /// The frontier attempt's parameter assignment, where it has one: the current value of
    /// parameters passed as environment variables (those of files are read from the files).
    pub frontier_params: Option<&'a Assignment>,
    /// Earlier attempts of this program, oldest first.
    pub history: &'a [HistoryEntry],
    /// Attempts of this program queued or running now (with `concurrency > 1` or a pipeline).
    pub in_flight: &'a [InFlight],
    /// Sequence number the attempt will get.
    pub attempt_seq: i64,
    /// The attempt's own directory (`.picidae/attempts/<program>/<seq>/`), owned by the harness:
    /// the prompt, context, captured output and transcript are written there, never through a
    /// path the agent chose. The agent may read it, not write it (inside the agent sandbox).
    pub attempt_dir: &'a Path,
    /// The agent's own scratch directory, [`SCRATCH_DIR`] inside `attempt_dir` (outside the
    /// checkout), writable by the agent. The harness never writes or reads anything there.
    pub scratch: &'a Path,
    /// The memory's brief for this program (validated findings, refuted ideas, how to ask).
    pub memory: &'a str,
    /// Ideas a human (or another agent) queued for this program, oldest first.
    pub followups: &'a [String],
    /// The project's root directory, for `picidae --project DIR mcp` (the memory over MCP).
    pub project_dir: Option<&'a Path>,
}

/// What an agent proposes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Proposal {
    pub hypothesis: String,
    pub params: Option<Assignment>,
    /// Captured transcript (stdout/stderr of a command agent).
    pub transcript: Option<String>,
    /// What the proposal cost, where the agent reports it (`COST_USD:` / `TOKENS:` lines).
    #[serde(default)]
    pub cost: AgentCost,
}

/// An agent's own account of what a proposal cost; charged to the program's money budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentCost {
    pub usd: Option<f64>,
    pub tokens: Option<i64>,
}

/// An agent configuration as stored with a program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AgentSpec {
    /// Built-in parameter sweep.
    Sweep {
        #[serde(default)]
        sampler: sweep::Sampler,
        #[serde(default)]
        seed: u64,
    },
    /// Any command run in the checkout.
    Command {
        command: String,
        #[serde(default = "default_agent_timeout")]
        timeout_secs: f64,
    },
    /// A coding-agent CLI, configured by [`adapters`]: the user's own `claude`, `codex` or
    /// `aider`.
    Adapter {
        adapter: adapters::AdapterKind,
        /// Seconds before the CLI is killed (default: the adapter's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<f64>,
        /// Extra arguments for the CLI (e.g. `--model ...`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
    },
}

fn default_agent_timeout() -> f64 {
    600.0
}

impl AgentSpec {
    pub fn build(&self) -> Box<dyn Agent> {
        match self {
            AgentSpec::Sweep { sampler, seed } => Box::new(sweep::SweepAgent::new(*sampler, *seed)),
            AgentSpec::Command {
                command,
                timeout_secs,
            } => Box::new(command::CommandAgent::new(
                command.clone(),
                Duration::from_secs_f64(timeout_secs.max(0.001)),
            )),
            AgentSpec::Adapter {
                adapter,
                timeout_secs,
                args,
            } => Box::new(adapter.adapter().agent(
                timeout_secs.map(|t| Duration::from_secs_f64(t.max(0.001))),
                args,
            )),
        }
    }

    /// Short label for tables and logs.
    pub fn label(&self) -> String {
        match self {
            AgentSpec::Sweep { sampler, .. } => format!("sweep:{}", sampler.as_str()),
            AgentSpec::Command { .. } => "command".into(),
            AgentSpec::Adapter { adapter, .. } => adapter.as_str().into(),
        }
    }
}

/// Anything that can propose attempts.
pub trait Agent: Send {
    /// Name recorded as the attempt's proposer.
    fn name(&self) -> String;
    /// Edit files under `ctx.workspace` and describe the change.
    fn propose(&mut self, ctx: &AgentContext<'_>) -> Result<Proposal, AgentError>;
    /// Whether the agent can work here at all (e.g. its CLI is installed), checked before a loop
    /// starts so a missing tool is one clear error rather than a failed attempt after another.
    fn preflight(&self) -> Result<(), AgentError> {
        Ok(())
    }
    /// The prompt this agent would be given for `ctx`, if it takes one (`picidae agent prompt`).
    fn prompt(&self, _ctx: &AgentContext<'_>) -> Option<String> {
        None
    }
    /// Whether queued follow-up ideas are given to (and consumed by) this agent.
    fn uses_followups(&self) -> bool {
        true
    }
    /// Whether this agent needs its own checkout of the frontier to work in. An agent that only
    /// sets environment parameters edits no file, so the harness can skip the checkout (and the
    /// commit) entirely: the fast path of pure hyperparameter sweeps.
    fn needs_checkout(&self, _contract: &Contract) -> bool {
        true
    }
}
