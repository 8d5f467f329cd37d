//! The arena: program.md files run against each other on one benchmark under one budget, and
//! scored on what they truly found.
//!
//! [`create_arena`] makes one program per entry and trial, each on a clone of the benchmark of
//! its own (so no entry's attempts count as another's history or duplicates), with the same
//! agent, executor, policy and budget; only the program.md differs (or what the caller
//! varies on purpose). Running them is the caller's (the CLI interleaves them one attempt at
//! a time). [`score_arena`] measures, on fresh seeds, the hidden evaluator's value of each
//! program's base and final frontier (and of each commit it kept, for its false keeps) and
//! ranks the entries by true gain per unit of budget, with a confidence interval over trials.
//! Measurements run in a separate `…-truth` program per clone, so they never count as an
//! entry's spend, and are kept in the store (`arena_truth`) so a score is read, not redone.

mod progress;

pub use progress::{arena_progress, ProgressPoint, TrialProgress};

use std::collections::BTreeMap;
use std::path::PathBuf;

use picidae_agent::AgentSpec;
use picidae_core::Goal;
use picidae_git::Repo;
use picidae_store::{Arena, ArenaBudget, ArenaEntry, ArenaResult};
use serde::Serialize;

use crate::{create_program, ExecutorSpec, ProgramOptions, Project, Runner, SchedError};

/// The first seed of truth measurements: far from the seeds the entries ran.
pub const TRUTH_FIRST_SEED: i64 = 100_000;

/// One entry: its program.md and what it changes of the arena's shared settings (when the
/// user compares agents or policies rather than program.md files alone).
#[derive(Debug, Clone, PartialEq)]
pub struct EntrySpec {
    pub label: String,
    pub program_md: String,
    /// Its own agent instead of the arena's.
    pub agent: Option<AgentSpec>,
    /// Policy overrides on top of the arena's (the keys of a program's own settings).
    pub policy: serde_json::Map<String, serde_json::Value>,
}

impl EntrySpec {
    /// An entry that differs only in its program.md.
    pub fn text(label: &str, program_md: &str) -> EntrySpec {
        EntrySpec {
            label: label.to_string(),
            program_md: program_md.to_string(),
            agent: None,
            policy: Default::default(),
        }
    }
}

/// What an arena is made of.
#[derive(Debug, Clone)]
pub struct ArenaOptions {
    pub name: String,
    pub benchmark: PathBuf,
    /// One per entry.
    pub entries: Vec<EntrySpec>,
    pub agent: AgentSpec,
    pub executor: ExecutorSpec,
    pub budget: (ArenaBudget, f64),
    pub trials: u32,
    pub seeds: Option<u32>,
    pub baseline_seeds: Option<u32>,
}

fn arena_error(name: &str, message: impl Into<String>) -> SchedError {
    SchedError::Program {
        program: format!("arena {name}"),
        message: message.into(),
    }
}

/// The program of `label`'s trial `trial` in arena `name`.
pub fn entry_program_name(name: &str, label: &str, trial: i64) -> String {
    format!("{name}-{label}-{trial}")
}

/// Make the arena: a clone of the benchmark and a program per entry and trial, all with the
/// same agent, executor, policy and budget.
pub fn create_arena(project: &mut Project, opts: &ArenaOptions) -> Result<Arena, SchedError> {
    let name = &opts.name;
    if !crate::program::valid_program_name(name) || name.contains('.') {
        return Err(arena_error(
            name,
            "use letters, digits, '-' and '_' for an arena's name",
        ));
    }
    if opts.entries.len() < 2 {
        return Err(arena_error(name, "an arena needs at least two entries"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in &opts.entries {
        check_label(name, &e.label)?;
        if !seen.insert(e.label.clone()) {
            return Err(arena_error(
                name,
                format!("entry {:?} is given twice", e.label),
            ));
        }
    }
    if opts.trials == 0 {
        return Err(arena_error(name, "--trials must be at least 1"));
    }
    let budget = opts.budget.1;
    if !(budget.is_finite() && budget > 0.0) {
        return Err(arena_error(name, "the budget must be a positive number"));
    }
    if project.store.arena(name)?.is_some() {
        return Err(arena_error(name, "an arena by that name exists already"));
    }
    let source = Repo::open(&opts.benchmark)?;
    let shared = Shared {
        agent: opts.agent.clone(),
        executor: serde_json::to_value(&opts.executor).unwrap_or_default(),
        policy: serde_json::json!({}),
        seeds: (opts.seeds, opts.baseline_seeds),
        budget: opts.budget,
    };
    let mut entries = Vec::new();
    for trial in 1..=i64::from(opts.trials) {
        // Trials outermost: entry order inside a trial is the order programs are created,
        // the same in every trial.
        for e in &opts.entries {
            entries.push(entry_program(project, &source, (name, trial), e, &shared)?);
        }
    }
    let bench_dir = source.bench_dir().display().to_string();
    Ok(project.store.create_arena(
        name,
        &bench_dir,
        opts.budget,
        i64::from(opts.trials),
        &entries,
    )?)
}

/// What every program of an arena shares.
struct Shared {
    agent: AgentSpec,
    executor: serde_json::Value,
    /// Policy overrides copied key by key (an entry added later copies the first entry's).
    policy: serde_json::Value,
    seeds: (Option<u32>, Option<u32>),
    budget: (ArenaBudget, f64),
}

/// One entry's program in one trial: a clone of the benchmark, the program on it with the
/// shared settings (but for what the entry sets itself) and the entry's program.md, its budget.
fn entry_program(
    project: &mut Project,
    source: &Repo,
    (name, trial): (&str, i64),
    entry: &EntrySpec,
    shared: &Shared,
) -> Result<ArenaEntry, SchedError> {
    let (label, text) = (entry.label.as_str(), entry.program_md.as_str());
    let program = entry_program_name(name, label, trial);
    let clone = project
        .dir()
        .join("arenas")
        .join(name)
        .join(format!("{label}-{trial}"));
    let bench = source.clone_to(&clone)?;
    let p = create_program(
        project,
        &ProgramOptions {
            name: program.clone(),
            benchmark: bench,
            program_md: Some(text.to_string()),
            agent: agent_for_trial(entry.agent.as_ref().unwrap_or(&shared.agent), trial),
            seeds: shared.seeds.0,
            baseline_seeds: shared.seeds.1,
            min_improvement: None,
            alpha: None,
            concurrency: None,
        },
    )?;
    let store = &mut project.store;
    store.set_program_executor(&program, &shared.executor)?;
    let entry_policy = entry.policy.iter();
    for (key, value) in shared
        .policy
        .as_object()
        .into_iter()
        .flatten()
        .chain(entry_policy)
    {
        store.set_program_policy(&program, key, Some(value.clone()))?;
    }
    let (kind, budget) = shared.budget;
    match kind {
        ArenaBudget::Runs => store.set_program_max_runs(&program, Some(budget.floor() as i64))?,
        ArenaBudget::GpuHours => {
            store.set_program_cost_budget(&program, Some(Some(budget)), None, None)?
        }
    }
    Ok(ArenaEntry {
        label: label.to_string(),
        trial,
        program_id: p.id,
        program_md: text.to_string(),
    })
}

/// Enter a new program.md into an existing arena (the next round): one program per trial,
/// with the settings of the arena's first program. Returns the programs made.
pub fn add_entry(
    project: &mut Project,
    name: &str,
    label: &str,
    text: &str,
) -> Result<Vec<String>, SchedError> {
    let arena = project
        .store
        .arena(name)?
        .ok_or_else(|| arena_error(name, "no such arena"))?;
    let entries = project.store.arena_entries(arena.id)?;
    check_label(name, label)?;
    if entries.iter().any(|e| e.label == label) {
        return Err(arena_error(name, format!("entry {label:?} exists already")));
    }
    let first = entries
        .iter()
        .min_by_key(|e| e.program_id)
        .ok_or_else(|| arena_error(name, "the arena has no entries"))?;
    let template = project.store.program_by_id(first.program_id)?;
    let agent: AgentSpec = serde_json::from_value(template.agent.clone())
        .map_err(|e| arena_error(name, format!("unreadable agent of {}: {e}", template.name)))?;
    let shared = Shared {
        agent,
        executor: template.executor.clone(),
        policy: template.policy.clone(),
        seeds: (None, None),
        budget: (arena.budget_kind, arena.budget),
    };
    let source = Repo::open(&arena.benchmark_dir)?;
    let mut added = Vec::new();
    for trial in 1..=arena.trials {
        added.push(entry_program(
            project,
            &source,
            (name, trial),
            &EntrySpec::text(label, text),
            &shared,
        )?);
    }
    project.store.add_arena_entries(arena.id, &added)?;
    Ok(added
        .iter()
        .map(|e| entry_program_name(name, label, e.trial))
        .collect())
}

/// The agent of trial `trial`: a sweep's seed moves on by trial, so trials are independent
/// draws while the entries of one trial share theirs (a paired comparison). Other agents are
/// the same in every trial.
fn agent_for_trial(agent: &AgentSpec, trial: i64) -> AgentSpec {
    match agent {
        AgentSpec::Sweep { sampler, seed } => AgentSpec::Sweep {
            sampler: *sampler,
            seed: seed.wrapping_add((trial - 1).max(0) as u64),
        },
        other => other.clone(),
    }
}

fn check_label(name: &str, label: &str) -> Result<(), SchedError> {
    let ok = !label.is_empty()
        && label.len() <= 32
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(arena_error(
            name,
            format!("entry label {label:?}: use letters, digits and '_' (at most 32)"),
        ))
    }
}

/// One entry's program in one trial, scored.
#[derive(Debug, Clone, Serialize)]
pub struct TrialScore {
    pub trial: i64,
    pub program: String,
    pub runs: i64,
    pub gpu_hours: f64,
    /// Hidden truth (mean over fresh seeds) of the base commit and of the final frontier.
    pub base: Option<f64>,
    pub frontier: Option<f64>,
    /// Truth gain of the frontier over the base (positive: better), and per unit of budget.
    pub gain: Option<f64>,
    pub rate: Option<f64>,
    /// Frontier moves, and those the truth did not confirm (no true improvement).
    pub keeps: usize,
    pub false_keeps: usize,
}

/// One entry over its trials.
#[derive(Debug, Clone, Serialize)]
pub struct EntryScore {
    pub label: String,
    pub trials: Vec<TrialScore>,
    /// Mean rate over trials, with its 95% confidence interval (two trials or more).
    pub rate: Option<f64>,
    pub rate_low: Option<f64>,
    pub rate_high: Option<f64>,
    pub keeps: usize,
    pub false_keeps: usize,
    pub runs: i64,
    pub gpu_hours: f64,
}

/// An arena's ranking, best entry first.
#[derive(Debug, Clone, Serialize)]
pub struct ArenaScore {
    pub arena: Arena,
    /// What the truth is: the hidden evaluator's primary metric, or the visible one (on fresh
    /// seeds) when the benchmark has no hidden evaluator.
    pub truth_metric: String,
    pub hidden: bool,
    /// What a rate is per: `run` or `GPU-hour`.
    pub per: String,
    pub seeds: i64,
    pub entries: Vec<EntryScore>,
}

/// Score the arena (see the module docs): commits not measured yet are measured on `seeds`
/// fresh seeds; `progress` hears about each measurement.
pub fn score_arena(
    project: &mut Project,
    name: &str,
    seeds: i64,
    progress: &mut dyn FnMut(&str),
) -> Result<ArenaScore, SchedError> {
    let arena = project
        .store
        .arena(name)?
        .ok_or_else(|| arena_error(name, "no such arena"))?;
    let entries = project.store.arena_entries(arena.id)?;
    let mut truth = Truth {
        arena_id: arena.id,
        seeds,
        goal: None,
        hidden: false,
        metric: String::new(),
    };
    let mut by_label: BTreeMap<String, Vec<TrialScore>> = BTreeMap::new();
    for e in &entries {
        let t = score_trial(project, e, &mut truth, progress)?;
        by_label.entry(e.label.clone()).or_default().push(t);
    }
    let per_gpu_hour = arena.budget_kind == ArenaBudget::GpuHours
        && by_label.values().flatten().all(|t| t.gpu_hours > 0.0);
    let mut scored: Vec<EntryScore> = by_label
        .into_iter()
        .map(|(label, mut trials)| {
            for t in &mut trials {
                let spend = if per_gpu_hour {
                    t.gpu_hours
                } else {
                    t.runs as f64
                };
                t.rate = t.gain.filter(|_| spend > 0.0).map(|g| g / spend);
            }
            let rates: Vec<f64> = trials.iter().filter_map(|t| t.rate).collect();
            let ci = picidae_core::stats::mean_ci(&rates, 0.95);
            let mean = (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
            EntryScore {
                label,
                rate: mean,
                rate_low: ci.map(|c| c.1),
                rate_high: ci.map(|c| c.2),
                keeps: trials.iter().map(|t| t.keeps).sum(),
                false_keeps: trials.iter().map(|t| t.false_keeps).sum(),
                runs: trials.iter().map(|t| t.runs).sum(),
                gpu_hours: trials.iter().map(|t| t.gpu_hours).sum(),
                trials,
            }
        })
        .collect();
    // Best rate first; equal rates in label order, so a ranking reads the same every time.
    scored.sort_by(|a, b| {
        b.rate
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&a.rate.unwrap_or(f64::NEG_INFINITY))
            .then_with(|| a.label.cmp(&b.label))
    });
    let score = ArenaScore {
        arena,
        truth_metric: truth.metric,
        hidden: truth.hidden,
        per: if per_gpu_hour { "GPU-hour" } else { "run" }.into(),
        seeds,
        entries: scored,
    };
    project
        .store
        .put_arena_results(score.arena.id, &results_of(&score))?;
    Ok(score)
}

/// The ranking as stored: each entry's aggregate, in rank order.
fn results_of(score: &ArenaScore) -> Vec<ArenaResult> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    score
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| ArenaResult {
            label: e.label.clone(),
            rank: i as i64 + 1,
            entries: score.entries.len() as i64,
            per: score.per.clone(),
            truth_metric: score.truth_metric.clone(),
            hidden: score.hidden,
            seeds: score.seeds,
            trials: e.trials.len() as i64,
            rate: e.rate,
            rate_low: e.rate_low,
            rate_high: e.rate_high,
            keeps: e.keeps as i64,
            false_keeps: e.false_keeps as i64,
            runs: e.runs,
            gpu_hours: e.gpu_hours,
            scored_at: now,
        })
        .collect()
}

/// The truth of commits, measured once per arena.
struct Truth {
    arena_id: i64,
    seeds: i64,
    /// Set by the first measurement (from the contract).
    goal: Option<Goal>,
    hidden: bool,
    metric: String,
}

impl Truth {
    /// The truth of `commit`, measured in `truth_program` (on the clone that holds it) unless
    /// kept already.
    fn of(
        &mut self,
        project: &mut Project,
        truth_program: &str,
        commit: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<f64>, SchedError> {
        if self.goal.is_none() {
            let runner = Runner::new(project, truth_program)?;
            let c = runner.contract();
            match &c.hidden {
                Some(h) => {
                    self.goal = Some(h.goal);
                    self.hidden = true;
                    self.metric = h.primary().unwrap_or("hidden").to_string();
                }
                None => {
                    self.goal = Some(c.primary().goal);
                    self.metric = c.primary_metric.clone();
                }
            }
        }
        if let Some((value, _)) = project.store.arena_truth(self.arena_id, commit)? {
            return Ok(value);
        }
        progress(&format!(
            "measuring {} on {} fresh seeds",
            &commit[..commit.len().min(10)],
            self.seeds
        ));
        let hidden = self.hidden;
        let ms = Runner::new(project, truth_program)?.measure(
            commit,
            TRUTH_FIRST_SEED,
            self.seeds,
            "arena truth",
        )?;
        let values: Vec<f64> = ms
            .iter()
            .filter_map(|m| if hidden { m.hidden } else { m.visible })
            .filter(|v| v.is_finite())
            .collect();
        let value = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        project
            .store
            .put_arena_truth(self.arena_id, commit, value, values.len() as i64)?;
        Ok(value)
    }
}

/// The idle program that measures truth on the clone of `program` (created on first use).
fn truth_program(
    project: &mut Project,
    program: &picidae_store::Program,
) -> Result<String, SchedError> {
    let name = format!("{}-truth", program.name);
    if project.store.program(&name).is_err() {
        create_program(
            project,
            &ProgramOptions::measuring(&name, PathBuf::from(&program.benchmark_dir)),
        )?;
        let executor = project.store.program(&program.name)?.executor;
        project.store.set_program_executor(&name, &executor)?;
    }
    Ok(name)
}

fn score_trial(
    project: &mut Project,
    e: &ArenaEntry,
    truth: &mut Truth,
    progress: &mut dyn FnMut(&str),
) -> Result<TrialScore, SchedError> {
    let p = project.store.program_by_id(e.program_id)?;
    let spend = project.store.program_spend(p.id)?;
    let tp = truth_program(project, &p)?;
    let base = truth.of(project, &tp, &p.base_commit, progress)?;
    // Each move of the frontier, from the base on: a keep the truth did not confirm is false.
    let moves = project.store.frontier_history(p.id)?;
    let mut previous = base;
    let (mut keeps, mut false_keeps) = (0, 0);
    for m in moves.iter().filter(|m| m.commit != p.base_commit) {
        let t = truth.of(project, &tp, &m.commit, progress)?;
        keeps += 1;
        let goal = truth.goal.unwrap_or(Goal::Minimize);
        let confirmed =
            matches!((t, previous), (Some(t), Some(prev)) if goal.improves(t, prev, 0.0));
        if !confirmed {
            false_keeps += 1;
        }
        previous = t;
    }
    let frontier = match &p.frontier_commit {
        Some(c) if *c != p.base_commit => truth.of(project, &tp, c, progress)?,
        _ => base,
    };
    let goal = truth.goal.unwrap_or(Goal::Minimize);
    let gain = match (frontier, base) {
        (Some(f), Some(b)) => Some(goal.gain(f, b)),
        _ => None,
    };
    Ok(TrialScore {
        trial: e.trial,
        program: p.name,
        runs: spend.runs,
        gpu_hours: spend.gpu_hours,
        base,
        frontier,
        gain,
        rate: None,
        keeps,
        false_keeps,
    })
}
