//! `picidae-bench agents`: how much a model-based sampler buys over random search.
//!
//! Runs the bundled example benchmark (tiny-mlp) with the sweep agent once per sampler (random,
//! then TPE) and trial, at the same run budget and under plain keep/revert (`seeds = 1`), so the
//! only difference between the two is how the next point is chosen. Within a trial both samplers
//! share the agent seed, so TPE's random startup proposes the same points random search does.
//! Each run gets its own project: the memory deduplicates across programs of one benchmark,
//! which would let one sampler skip the other's points. The final frontier's visible value is
//! compared per trial; optionally, each final frontier is measured again on fresh seeds with the
//! hidden evaluator, the ground truth neither loop saw.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_agent::sweep::Sampler;
use picidae_agent::AgentSpec;
use picidae_core::Goal;
use picidae_sched::{create_program, ProgramOptions, Project, Runner};

#[derive(Args)]
pub struct AgentsArgs {
    /// Runs each sampler may spend per trial (baseline included).
    #[arg(long, default_value_t = 40)]
    budget: u64,
    /// Independent trials (agent seeds `seed`, `seed + 1`, …).
    #[arg(long, default_value_t = 3)]
    trials: u64,
    /// Agent seed of the first trial (the same for both samplers).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fresh seeds on which each final frontier is measured with the hidden evaluator
    /// (0: skip the hidden measurement).
    #[arg(long, default_value_t = 3)]
    truth_seeds: i64,
    /// Where to keep the projects (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

const SAMPLERS: [Sampler; 2] = [Sampler::Random, Sampler::Tpe];

/// One sampler's loop in one trial.
struct Trial {
    runs: i64,
    attempts: u64,
    kept: u64,
    failed: u64,
    /// The final frontier's visible primary value.
    visible: f64,
    /// The final frontier's hidden value (mean over the truth seeds), if measured.
    hidden: Option<f64>,
}

pub fn run(args: AgentsArgs) -> Result<()> {
    let (_tmp, root) = crate::peer::work_dir(&args.dir)?;
    let mut results: [Vec<Trial>; 2] = Default::default();
    let mut goals = (Goal::Minimize, Goal::Minimize);
    for trial in 0..args.trials {
        let seed = args.seed + trial;
        for (sampler, out) in SAMPLERS.iter().zip(results.iter_mut()) {
            let dir = root.join(format!("trial-{trial}")).join(sampler.as_str());
            let (t, g) = one_loop(&args, &dir, *sampler, seed)?;
            goals = g;
            out.push(t);
        }
    }
    report(&args, &results, goals);
    Ok(())
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn best(v: &[f64], goal: Goal) -> f64 {
    v.iter().copied().fold(f64::NAN, |b, x| {
        if b.is_nan() || goal.improves(x, b, 0.0) {
            x
        } else {
            b
        }
    })
}

fn fmt_values(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.5}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints the table and the comparison; `goals` are the visible and the hidden metric's.
fn report(args: &AgentsArgs, results: &[Vec<Trial>; 2], goals: (Goal, Goal)) {
    let visible: Vec<Vec<f64>> = results
        .iter()
        .map(|ts| ts.iter().map(|t| t.visible).collect())
        .collect();
    let hidden: Vec<Vec<f64>> = results
        .iter()
        .map(|ts| ts.iter().filter_map(|t| t.hidden).collect())
        .collect();
    let with_hidden = args.truth_seeds > 0 && hidden.iter().all(|h| !h.is_empty());

    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![
        "sampler",
        "runs",
        "attempts",
        "kept",
        "failed",
        "mean val_loss",
        "best val_loss",
        "per trial (val_loss)",
    ];
    if with_hidden {
        header.extend(["mean test_loss (hidden)", "per trial (test_loss)"]);
    }
    t.set_header(header);
    for (i, (sampler, ts)) in SAMPLERS.iter().zip(results).enumerate() {
        let mut row = vec![
            sampler.as_str().to_string(),
            ts.iter().map(|t| t.runs).sum::<i64>().to_string(),
            ts.iter().map(|t| t.attempts).sum::<u64>().to_string(),
            ts.iter().map(|t| t.kept).sum::<u64>().to_string(),
            ts.iter().map(|t| t.failed).sum::<u64>().to_string(),
            format!("{:.5}", mean(&visible[i])),
            format!("{:.5}", best(&visible[i], goals.0)),
            fmt_values(&visible[i]),
        ];
        if with_hidden {
            row.push(format!("{:.5}", mean(&hidden[i])));
            row.push(fmt_values(&hidden[i]));
        }
        t.add_row(row);
    }
    println!("{t}");
    println!("{}", compare("val_loss", &visible[0], &visible[1], goals.0));
    if with_hidden {
        println!(
            "{}",
            compare("hidden test_loss", &hidden[0], &hidden[1], goals.1)
        );
    }
    println!(
        "({} trial(s); each sampler {} runs per trial, seeds = 1 keep/revert, the same agent seed \
         for both; values are each trial's final frontier{})",
        args.trials,
        args.budget,
        if with_hidden {
            format!(
                "; hidden: mean over {} fresh seeds of that frontier",
                args.truth_seeds
            )
        } else {
            String::new()
        }
    );
}

/// One line: TPE against random on the trials' values of one metric.
fn compare(metric: &str, random: &[f64], tpe: &[f64], goal: Goal) -> String {
    let (r, p) = (mean(random), mean(tpe));
    let wins = random
        .iter()
        .zip(tpe)
        .filter(|(r, p)| goal.improves(**p, **r, 0.0))
        .count();
    let ratio = if r.abs() > 1e-12 {
        format!("{:.3}", p / r)
    } else {
        "-".into()
    };
    format!(
        "{metric}: tpe {p:.5} vs random {r:.5} (tpe/random {ratio}, gain {:+.5}, {:+.1}%; tpe better in {wins} of {} trials)",
        goal.gain(p, r),
        goal.gain(p, r) / r.abs() * 100.0,
        random.len().min(tpe.len()),
    )
}

/// Runs one sampler's loop in a fresh project under `dir`; returns it with the goals of the
/// visible and the hidden metric.
fn one_loop(
    args: &AgentsArgs,
    dir: &Path,
    sampler: Sampler,
    seed: u64,
) -> Result<(Trial, (Goal, Goal))> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bench = crate::example::write(dir)?;
    let visible_goal = picidae_core::Contract::load(&bench)?.primary().goal;
    let mut project = Project::init(dir)?;
    let prog = sampler.as_str().to_string();
    create_program(
        &mut project,
        &ProgramOptions {
            name: prog.clone(),
            benchmark: bench.clone(),
            program_md: None,
            agent: AgentSpec::Sweep { sampler, seed },
            seeds: Some(1),
            baseline_seeds: Some(1),
            min_improvement: None,
            alpha: None,
            concurrency: None,
        },
    )?;
    eprintln!(
        "bench agents: seed {seed}: sweep:{sampler} with a budget of {} runs",
        args.budget
    );
    let summary = crate::integrity::run_with_budget(&mut project, &prog, args.budget, &prog)?;
    let p = project.store.program(&prog)?;
    let runs = project.store.run_count(Some(p.id))?;
    let visible = p.frontier_value.unwrap_or(f64::NAN);

    let mut hidden_goal = Goal::Minimize;
    let mut hidden = None;
    if let (true, Some(commit)) = (args.truth_seeds > 0, p.frontier_commit.as_deref()) {
        crate::integrity::idle_program(&mut project, "truth", &bench)?;
        let mut runner = Runner::new(&mut project, "truth")?;
        hidden_goal = runner
            .contract()
            .hidden
            .as_ref()
            .map(|h| h.goal)
            .context("the example benchmark has no hidden evaluator")?;
        eprintln!(
            "bench agents: measuring sweep:{sampler}'s frontier {} on {} fresh seeds",
            &commit[..commit.len().min(10)],
            args.truth_seeds
        );
        let m = runner.measure(commit, 1000, args.truth_seeds, "final frontier")?;
        let values: Vec<f64> = m
            .iter()
            .filter_map(|x| x.hidden)
            .filter(|v| v.is_finite())
            .collect();
        hidden = (!values.is_empty()).then(|| mean(&values));
    }
    Ok((
        Trial {
            runs,
            attempts: summary.attempts,
            kept: summary.kept,
            failed: summary.failed,
            visible,
            hidden,
        },
        (visible_goal, hidden_goal),
    ))
}
