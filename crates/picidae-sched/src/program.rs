//! Creating a research program: benchmark + program.md + agent + policy.
//!
//! The benchmark must be inside a git repository; the program starts from its current `HEAD`
//! (recorded as `refs/picidae/<program>/base`). Uncommitted changes in the benchmark are not
//! part of the program and are reported as an error, so a program never silently starts from
//! something no commit holds.

use std::path::Path;

use picidae_agent::AgentSpec;
use picidae_core::contract::PolicySpec;
use picidae_core::Contract;
use picidae_git::Repo;
use picidae_store::{NewProgram, Program, Store};

use crate::{program_ref, Project, SchedError};

/// What a new program is made of.
#[derive(Debug, Clone)]
pub struct ProgramOptions {
    pub name: String,
    pub benchmark: std::path::PathBuf,
    /// Direction for the agent; when `None`, the benchmark's `program.md` (if any) is used.
    pub program_md: Option<String>,
    pub agent: AgentSpec,
    /// Policy overrides (unset fields use the contract's policy).
    pub seeds: Option<u32>,
    pub baseline_seeds: Option<u32>,
    pub min_improvement: Option<f64>,
    pub alpha: Option<f64>,
    /// Attempts in flight at once (see [`MAX_CONCURRENCY`]).
    pub concurrency: Option<u32>,
}

impl ProgramOptions {
    /// A program whose agent proposes nothing (`true`), one seed each: it only measures
    /// commits it is given ([`crate::Runner::measure`]), and its runs never count as another
    /// program's spend.
    pub fn measuring(name: &str, benchmark: std::path::PathBuf) -> ProgramOptions {
        ProgramOptions {
            name: name.into(),
            benchmark,
            program_md: Some(String::new()),
            agent: AgentSpec::Command {
                command: "true".into(),
                timeout_secs: 1.0,
            },
            seeds: Some(1),
            baseline_seeds: Some(1),
            min_improvement: None,
            alpha: None,
            concurrency: None,
        }
    }
}

/// The most attempts of one program in flight at once.
pub const MAX_CONCURRENCY: u32 = 1000;

pub fn valid_program_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.contains("..")
        && !name.ends_with(".lock")
}

/// The policy in force for a program: the contract's, overridden by the program's own
/// settings (`overrides`, as stored with the program).
pub fn effective_policy(contract: &Contract, overrides: &serde_json::Value) -> PolicySpec {
    let mut p = contract.policy.clone();
    let o = overrides;
    if let Some(s) = o.get("seeds").and_then(|v| v.as_u64()) {
        p.seeds = s.max(1) as u32;
    }
    if let Some(s) = o.get("baseline_seeds").and_then(|v| v.as_u64()) {
        p.baseline_seeds = s.max(1) as u32;
    }
    if let Some(m) = o.get("min_improvement").and_then(|v| v.as_f64()) {
        p.min_improvement = m;
    }
    if let Some(a) = o.get("alpha").and_then(|v| v.as_f64()) {
        p.alpha = a;
    }
    if let Some(n) = o.get("concurrency").and_then(|v| v.as_u64()) {
        p.concurrency = n.clamp(1, u64::from(MAX_CONCURRENCY)) as u32;
    }
    if let Some(n) = o.get("max_seeds").and_then(|v| v.as_u64()) {
        p.max_seeds = n.clamp(1, 1000) as u32;
    }
    if let Some(b) = o.get("sequential").and_then(|v| v.as_bool()) {
        p.sequential = b;
    }
    if let Some(b) = o.get("paired").and_then(|v| v.as_bool()) {
        p.paired = b;
    }
    p
}

/// Check a concurrency a person asked for (`program create/set --concurrency`, the API).
pub fn check_concurrency(n: u32) -> Result<u32, String> {
    if (1..=MAX_CONCURRENCY).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "concurrency must be between 1 and {MAX_CONCURRENCY}, got {n}"
        ))
    }
}

pub fn create_program(project: &mut Project, opts: &ProgramOptions) -> Result<Program, SchedError> {
    if !valid_program_name(&opts.name) {
        return Err(SchedError::BadProgramName(opts.name.clone()));
    }
    let bench =
        std::fs::canonicalize(&opts.benchmark).map_err(|e| SchedError::io(&opts.benchmark, e))?;
    let contract = Contract::load(&bench)?;
    let repo = Repo::open(&bench)?;
    let fail = |message: String| SchedError::Program {
        program: opts.name.clone(),
        message,
    };
    if let AgentSpec::Sweep { .. } = opts.agent {
        if contract.params.is_empty() {
            return Err(fail(
                "the sweep agent needs [[param]] entries in the benchmark's picidae.toml".into(),
            ));
        }
    }
    let head = repo.head_commit()?;
    // Uncommitted changes inside the benchmark directory would not be part of any commit. The
    // project's own directory, when it lies inside the benchmark, is never one of them.
    let project_dir = std::fs::canonicalize(project.dir()).ok().and_then(|d| {
        d.strip_prefix(&bench)
            .ok()
            .map(|r| r.to_string_lossy().into_owned())
    });
    let in_project = |path: &str| {
        project_dir.as_deref().is_some_and(|p| {
            !p.is_empty()
                && path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    };
    let dirty = {
        let wt = repo.worktree(repo.root());
        wt.changed_paths()?
            .into_iter()
            .filter(|c| !c.outside_prefix && !in_project(&c.path))
            .map(|c| c.path)
            .collect::<Vec<_>>()
    };
    if !dirty.is_empty() {
        return Err(fail(format!(
            "the benchmark has uncommitted changes ({}); commit them first so the program starts from a commit",
            dirty.join(", ")
        )));
    }
    let program_md = match &opts.program_md {
        Some(t) => t.clone(),
        None => read_optional(&bench.join("program.md"))?,
    };
    if let AgentSpec::Sweep { .. } = opts.agent {
        // A program.md the sweep cannot follow is refused now, not at every proposal.
        let known: Vec<&str> = contract.params.iter().map(|p| p.name.as_str()).collect();
        picidae_agent::sweep::SweepPlan::parse(&program_md, &known)
            .map_err(|e| fail(e.to_string()))?;
    }
    let mut policy = serde_json::Map::new();
    if let Some(s) = opts.seeds {
        policy.insert("seeds".into(), s.into());
    }
    if let Some(s) = opts.baseline_seeds {
        policy.insert("baseline_seeds".into(), s.into());
    }
    if let Some(m) = opts.min_improvement {
        policy.insert("min_improvement".into(), m.into());
    }
    if let Some(a) = opts.alpha {
        if !(a > 0.0 && a <= 0.5) {
            return Err(fail(format!("alpha must be in (0, 0.5], got {a}")));
        }
        policy.insert("alpha".into(), a.into());
    }
    if let Some(n) = opts.concurrency {
        policy.insert(
            "concurrency".into(),
            check_concurrency(n).map_err(fail)?.into(),
        );
    }
    let merged = effective_policy(&contract, &serde_json::Value::Object(policy.clone()));
    if merged.seeds > 1 && merged.baseline_seeds < 2 {
        return Err(fail(format!(
            "{} seeds per attempt need a baseline of at least 2 seeds to compare against (--baseline-seeds)",
            merged.seeds
        )));
    }
    let program = project.store.create_program(&NewProgram {
        name: opts.name.clone(),
        benchmark_dir: bench.display().to_string(),
        program_md,
        agent: serde_json::to_value(&opts.agent).unwrap_or_default(),
        policy: serde_json::Value::Object(policy),
        base_commit: head.clone(),
    })?;
    repo.update_ref(&program_ref(&opts.name, "base"), &head, None)?;
    Ok(program)
}

fn read_optional(path: &Path) -> Result<String, SchedError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(SchedError::io(path, e)),
    }
}

/// What a retraction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retracted {
    /// The commit the frontier moved back to, when the finding held it.
    pub frontier_moved_to: Option<String>,
    /// Why the frontier ref could not follow the store (the program's loop sets it when it
    /// next starts); `None` when it did, or did not need to.
    pub ref_not_moved: Option<String>,
}

/// Retract a validated finding (the one way a finding is retracted, by the CLI and the API
/// alike); if it held the frontier, the frontier moves back to the latest entry that still
/// stands, in the store and then in git. The store is the source of truth: a ref that cannot
/// be moved is said, not an error.
pub fn retract_finding(
    store: &mut Store,
    clones: &crate::clones::Clones,
    finding_id: i64,
    reason: &str,
) -> Result<Retracted, SchedError> {
    let finding = store.finding(finding_id)?;
    let program = store.program_by_id(finding.program_id)?;
    let moved = store.retract_finding(finding_id, reason)?;
    let ref_not_moved = moved.as_ref().and_then(|commit| {
        let name = program_ref(&program.name, "frontier");
        Repo::open(clones.benchmark_dir(&program))
            .and_then(|repo| repo.update_ref(&name, commit, None))
            .err()
            .map(|e| {
                format!(
                    "the frontier moved back to {commit} in the store, but {name} could not be \
                     moved ({e}); the program's loop sets it when it next starts"
                )
            })
    });
    Ok(Retracted {
        frontier_moved_to: moved,
        ref_not_moved,
    })
}
