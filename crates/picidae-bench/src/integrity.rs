//! `picidae-bench integrity` runs the bundled example benchmark twice with the same compute budget and
//! the same sweep proposals: once under Picidae's policy (screen on one seed, verify candidates
//! over several, Welch + Benjamini–Hochberg + noise floor + hidden evaluator), once under plain
//! autoresearch keep/revert (`seeds = 1`). Then it measures every kept change again on fresh
//! seeds with the hidden evaluator — the ground truth neither policy saw — and reports how often
//! each policy kept a change that was not truly better, and how much true improvement each found.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::peer::work_dir;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_agent::sweep::Sampler;
use picidae_agent::AgentSpec;
use picidae_sched::{
    create_program, LoopEvent, LoopOptions, LoopSummary, ProgramOptions, Project, Runner,
};

#[derive(Args)]
pub struct IntegrityArgs {
    /// Runs each policy may spend (baseline included).
    #[arg(long, default_value_t = 60)]
    budget: u64,
    /// Seeds per verified candidate under Picidae's policy (and of its baseline).
    #[arg(long, default_value_t = 3)]
    verify_seeds: u32,
    /// Fresh seeds used to measure each kept change's true (hidden) value.
    #[arg(long, default_value_t = 3)]
    truth_seeds: i64,
    /// Seed of the sweep agent's sampler in the first trial (the same for both policies).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Independent trials (sampler seeds `seed`, `seed + 1`, …); totals are reported.
    #[arg(long, default_value_t = 1)]
    trials: u64,
    /// Where to keep the projects (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

struct PolicyRun {
    runs: i64,
    attempts: u64,
    /// Frontier commits in order (baseline first) with the value the policy believed.
    frontier: Vec<(String, f64)>,
}

/// Totals of one policy over all trials.
#[derive(Default)]
struct Tally {
    runs: i64,
    attempts: u64,
    keeps: usize,
    false_keeps: usize,
    claimed_pct: Vec<f64>,
    true_pct: Vec<f64>,
}

const POLICIES: [&str; 2] = ["picidae", "seeds=1"];

/// Run program `prog` with its own agent until `budget` runs are spent, printing each
/// decision under `label`.
pub(crate) fn run_with_budget(
    project: &mut Project,
    prog: &str,
    budget: u64,
    label: &str,
) -> Result<LoopSummary> {
    let spec: AgentSpec = serde_json::from_value(project.store.program(prog)?.agent)?;
    let mut agent = spec.build();
    let opts = LoopOptions {
        max_runs: Some(budget),
        ..Default::default()
    };
    let mut runner = Runner::new(project, prog)?;
    Ok(runner.run(agent.as_mut(), &opts, &mut |e| {
        if let LoopEvent::Decided {
            seq, status, value, ..
        } = e
        {
            eprintln!(
                "  {label:<6} #{seq:<3} {status:<9} {}",
                value
                    .map(|v| format!("{v:.5}"))
                    .unwrap_or_else(|| "-".into())
            );
        }
    })?)
}

/// A program on `bench` whose agent proposes nothing, seeds = 1: for measuring commits
/// (`Runner::measure`) or holding synthetic attempts.
pub(crate) fn idle_program(
    project: &mut Project,
    name: &str,
    bench: &std::path::Path,
) -> Result<picidae_store::Program> {
    Ok(create_program(
        project,
        &ProgramOptions {
            name: name.into(),
            benchmark: bench.to_path_buf(),
            program_md: None,
            agent: AgentSpec::Command {
                command: "true".into(),
                timeout_secs: 1.0,
            },
            seeds: Some(1),
            baseline_seeds: Some(1),
            min_improvement: None,
            alpha: None,
            concurrency: None,
        },
    )?)
}

pub fn run(args: IntegrityArgs) -> Result<()> {
    let (_tmp, root) = work_dir(&args.dir)?;
    let mut tallies: [Tally; 2] = Default::default();
    for trial in 0..args.trials {
        let dir = root.join(format!("trial-{trial}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        one_trial(&args, &dir, args.seed + trial, &mut tallies)?;
    }

    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "policy",
        "runs",
        "attempts",
        "keeps",
        "false keeps",
        "false-keep rate",
        "claimed gain (val)",
        "true gain (hidden)",
    ]);
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let rate = |t: &Tally| {
        if t.keeps > 0 {
            t.false_keeps as f64 / t.keeps as f64
        } else {
            0.0
        }
    };
    for (name, tally) in POLICIES.iter().zip(&tallies) {
        t.add_row([
            name.to_string(),
            tally.runs.to_string(),
            tally.attempts.to_string(),
            tally.keeps.to_string(),
            tally.false_keeps.to_string(),
            format!("{:.0}%", rate(tally) * 100.0),
            format!("{:+.1}%", mean(&tally.claimed_pct)),
            format!("{:+.1}%", mean(&tally.true_pct)),
        ]);
    }
    println!("{t}");
    let (p, s) = (&tallies[0], &tallies[1]);
    let (pt, st) = (mean(&p.true_pct), mean(&s.true_pct));
    println!(
        "false-keep rate: picidae {:.0}% vs seeds=1 {:.0}%; true hidden improvement: picidae {pt:+.1}% vs seeds=1 {st:+.1}% (ratio {}); overclaim (claimed - true): picidae {:+.1} vs seeds=1 {:+.1} points",
        rate(p) * 100.0,
        rate(s) * 100.0,
        if st.abs() > 1e-9 { format!("{:.2}", pt / st) } else { "-".into() },
        mean(&p.claimed_pct) - pt,
        mean(&s.claimed_pct) - st,
    );
    println!(
        "({} trial(s); each policy {} runs per trial on the same sweep proposals; gains are relative to each policy's baseline; true values: hidden test_loss over {} fresh seeds)",
        args.trials, args.budget, args.truth_seeds
    );
    Ok(())
}

fn one_trial(
    args: &IntegrityArgs,
    dir: &std::path::Path,
    seed: u64,
    tallies: &mut [Tally; 2],
) -> Result<()> {
    let seeds = [args.verify_seeds.max(2), 1];
    for ((name, seeds), tally) in POLICIES.iter().zip(seeds).zip(tallies.iter_mut()) {
        // Each policy gets its own copy of the benchmark and its own project: memory dedups
        // across programs of one benchmark, which would let one policy skip the other's points.
        let prog = name.replace('=', "");
        let pdir = dir.join(&prog);
        std::fs::create_dir_all(&pdir).with_context(|| format!("creating {}", pdir.display()))?;
        let bench = crate::example::write(&pdir)?;
        let visible_goal = picidae_core::Contract::load(&bench)?.primary().goal;
        let mut project = Project::init(&pdir)?;
        create_program(
            &mut project,
            &ProgramOptions {
                name: prog.clone(),
                benchmark: bench.clone(),
                program_md: None,
                agent: AgentSpec::Sweep {
                    sampler: Sampler::Random,
                    seed,
                },
                seeds: Some(seeds),
                baseline_seeds: Some(seeds),
                min_improvement: None,
                alpha: None,
                concurrency: None,
            },
        )?;
        eprintln!(
            "bench integrity: sampler seed {seed}: running {name} with a budget of {} runs",
            args.budget
        );
        let summary = run_with_budget(&mut project, &prog, args.budget, name)?;
        let p = project.store.program(&prog)?;
        let run = PolicyRun {
            runs: project.store.run_count(Some(p.id))?,
            attempts: summary.attempts,
            frontier: project
                .store
                .frontier_history(p.id)?
                .into_iter()
                .map(|m| (m.commit, m.value))
                .collect(),
        };

        // Ground truth: every frontier commit, on the same fresh seeds, hidden metric.
        idle_program(&mut project, "truth", &bench)?;
        let mut runner = Runner::new(&mut project, "truth")?;
        let goal = runner
            .contract()
            .hidden
            .as_ref()
            .map(|h| h.goal)
            .context("the example benchmark has no hidden evaluator")?;
        let mut truth: BTreeMap<String, f64> = BTreeMap::new();
        for (commit, _) in &run.frontier {
            if truth.contains_key(commit) {
                continue;
            }
            eprintln!(
                "bench integrity: measuring {} on {} fresh seeds",
                &commit[..10],
                args.truth_seeds
            );
            let m = runner.measure(commit, 1000, args.truth_seeds, &commit[..10])?;
            let hidden: Vec<f64> = m.iter().filter_map(|x| x.hidden).collect();
            let mean = if hidden.is_empty() {
                f64::NAN
            } else {
                hidden.iter().sum::<f64>() / hidden.len() as f64
            };
            truth.insert(commit.clone(), mean);
        }
        drop(runner);

        tally.runs += run.runs;
        tally.attempts += run.attempts;
        tally.keeps += run.frontier.len().saturating_sub(1);
        tally.false_keeps += run
            .frontier
            .windows(2)
            .filter(|w| !goal.improves(truth[&w[1].0], truth[&w[0].0], 0.0))
            .count();
        let (first, last) = (&run.frontier[0], &run.frontier[run.frontier.len() - 1]);
        tally
            .claimed_pct
            .push(visible_goal.gain(last.1, first.1) / first.1.abs() * 100.0);
        let (t0, t1) = (truth[&first.0], truth[&last.0]);
        tally.true_pct.push(goal.gain(t1, t0) / t0.abs() * 100.0);
    }
    Ok(())
}
