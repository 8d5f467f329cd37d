//! What a program's agent is given for a turn, read from the store: the frontier's visible
//! metric values and parameters, the memory's brief, and (for `picidae agent prompt`) the whole
//! [`AgentContext`] of the next turn, built the way [`crate::Runner`] builds it, without taking
//! the program's lock, making a checkout or running anything.

use std::path::PathBuf;

use picidae_agent::{AgentContext, HistoryEntry, InFlight, IN_FLIGHT_DIFF_LINES};
use picidae_core::{Assignment, Contract, RunStatus};
use picidae_store::{AttemptFilter, Program, Store};

use crate::{Project, SchedError};

/// Entries of each list in the memory's brief.
pub(crate) const BRIEF_LIMIT: usize = 5;

/// The memory's brief for `program` (what the agent gets under "What memory says").
pub(crate) fn memory_brief(store: &Store, program: &str) -> Result<String, SchedError> {
    Ok(picidae_memory::program_brief(store, program, BRIEF_LIMIT)?)
}

/// The frontier attempt's parameter assignment, when the contract has environment parameters
/// (otherwise parameters live in files and need no tracking).
pub(crate) fn frontier_params(
    store: &Store,
    program: &Program,
    contract: &Contract,
) -> Result<Option<Assignment>, SchedError> {
    if !contract.params.iter().any(|p| p.is_env()) {
        return Ok(None);
    }
    let Some(id) = program.frontier_attempt_id else {
        return Ok(None);
    };
    let a = store.attempt(id)?;
    Ok(a.params.and_then(|p| serde_json::from_value(p).ok()))
}

/// The frontier's visible metric values: for each metric of the contract that is not hidden,
/// the mean over the frontier attempt's succeeded runs.
pub(crate) fn frontier_metrics(
    store: &Store,
    program: &Program,
    contract: &Contract,
) -> Result<Vec<(String, f64)>, SchedError> {
    let Some(id) = program.frontier_attempt_id else {
        return Ok(Vec::new());
    };
    let hidden: &[String] = contract
        .hidden
        .as_ref()
        .map(|h| h.metrics.as_slice())
        .unwrap_or(&[]);
    let runs: Vec<_> = store
        .runs_of_attempt(id)?
        .into_iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .collect();
    Ok(contract
        .metrics
        .keys()
        .filter(|name| !hidden.contains(name))
        .filter_map(|name| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.metrics.get(name).copied())
                .filter(|v| v.is_finite())
                .collect();
            (!values.is_empty()).then(|| {
                (
                    name.clone(),
                    values.iter().sum::<f64>() / values.len() as f64,
                )
            })
        })
        .collect())
}

/// The program's attempts queued or running now, with the start of each one's diff, for the
/// agent's turn (`except`: the attempt the turn is for).
pub(crate) fn in_flight(
    store: &Store,
    repo: &picidae_git::Repo,
    program: &Program,
    except: Option<i64>,
) -> Result<Vec<InFlight>, SchedError> {
    let mut out = Vec::new();
    for a in store.undecided_attempts(program.id)? {
        if Some(a.id) == except || a.status == picidae_core::AttemptStatus::Proposed {
            continue;
        }
        let diff = match &a.commit {
            Some(c) if *c != a.parent_commit => repo.show_patch(c).unwrap_or_default(),
            _ => String::new(),
        };
        let mut cut: String = diff
            .lines()
            .take(IN_FLIGHT_DIFF_LINES)
            .collect::<Vec<_>>()
            .join("\n");
        if diff.lines().count() > IN_FLIGHT_DIFF_LINES {
            cut.push_str("\n[... diff cut]");
        }
        out.push(InFlight {
            seq: a.seq,
            status: a.status,
            hypothesis: a.hypothesis.clone(),
            params: a.params.and_then(|p| serde_json::from_value(p).ok()),
            diff: cut,
        });
    }
    Ok(out)
}

/// Everything a program's next agent turn would be given.
pub struct NextTurn {
    pub program: Program,
    pub contract: Contract,
    pub history: Vec<HistoryEntry>,
    pub in_flight: Vec<InFlight>,
    pub memory: String,
    pub followups: Vec<String>,
    pub frontier_params: Option<Assignment>,
    pub frontier_metrics: Vec<(String, f64)>,
    /// The sequence number the next attempt would get.
    pub attempt_seq: i64,
    /// Where that attempt's prompt, context and transcript would be written.
    pub attempt_dir: PathBuf,
    /// The agent's scratch directory inside it.
    pub scratch: PathBuf,
    /// The benchmark directory (the agent would get its own checkout of the frontier).
    pub workspace: PathBuf,
    pub project_dir: PathBuf,
}

impl NextTurn {
    pub fn context(&self) -> AgentContext<'_> {
        AgentContext {
            program: &self.program.name,
            program_md: &self.program.program_md,
            contract: &self.contract,
            workspace: &self.workspace,
            frontier_value: self.program.frontier_value,
            frontier_metrics: &self.frontier_metrics,
            frontier_params: self.frontier_params.as_ref(),
            history: &self.history,
            in_flight: &self.in_flight,
            attempt_seq: self.attempt_seq,
            attempt_dir: &self.attempt_dir,
            scratch: &self.scratch,
            memory: &self.memory,
            followups: &self.followups,
            project_dir: Some(&self.project_dir),
        }
    }
}

/// The inputs of `program`'s next agent turn, from the store. `uses_followups` is the agent's
/// [`picidae_agent::Agent::uses_followups`]: only such agents are given the queued ideas.
pub fn next_turn(
    project: &Project,
    program: &str,
    uses_followups: bool,
) -> Result<NextTurn, SchedError> {
    let store = &project.store;
    let program = store.program(program)?;
    let repo = picidae_git::Repo::open(project.benchmark_dir(&program))?;
    let (contract, _) = crate::contract_source::program_contract(&repo, &program)?;
    let history: Vec<HistoryEntry> = store
        .attempts(&AttemptFilter {
            program_id: Some(program.id),
            ..Default::default()
        })?
        .iter()
        .map(crate::runner::history_entry)
        .collect();
    let followups = if uses_followups {
        store
            .open_followups(program.id)?
            .into_iter()
            .map(|f| f.text)
            .collect()
    } else {
        Vec::new()
    };
    let attempt_seq = history.iter().map(|h| h.seq).max().unwrap_or(0) + 1;
    let in_flight = in_flight(store, &repo, &program, None)?;
    Ok(NextTurn {
        in_flight,
        memory: memory_brief(store, &program.name)?,
        frontier_params: frontier_params(store, &program, &contract)?,
        frontier_metrics: frontier_metrics(store, &program, &contract)?,
        attempt_dir: project.attempt_dir(&program.name, attempt_seq),
        scratch: project
            .attempt_dir(&program.name, attempt_seq)
            .join(picidae_agent::SCRATCH_DIR),
        workspace: project.benchmark_dir(&program),
        project_dir: project.root().to_path_buf(),
        attempt_seq,
        followups,
        history,
        contract,
        program,
    })
}
