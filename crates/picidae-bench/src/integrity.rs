//! `picidae-bench integrity` runs a bundled benchmark twice with the same compute budget and
//! the same sweep proposals: once under Picidae's policy (screen on one seed, verify candidates
//! over several, Welch + Benjamini–Hochberg + noise floor + hidden evaluator), once under plain
//! autoresearch keep/revert (`seeds = 1`). Then it measures every kept change again on fresh
//! seeds with the hidden evaluator — the ground truth neither policy saw — and reports how often
//! each policy kept a change that was not truly better, and how much true improvement each found,
//! with 95% intervals over the trials.
//!
//! Two benchmarks: `tiny-mlp` (the bundled example, [`crate::example`]), where the truth is
//! the hidden `test_loss` averaged over fresh seeds and gains are in % of the baseline; and
//! `noisy-switches` ([`crate::noisy`]), whose true effects are small against seed noise, where
//! the truth is the evaluator's noise-free `true_score` and gains are in score points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::peer::work_dir;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_agent::sweep::Sampler;
use picidae_agent::AgentSpec;
use picidae_core::stats::mean_ci;
use picidae_core::{AttemptKind, Goal};
use picidae_sched::{
    create_program, LoopEvent, LoopOptions, LoopSummary, ProgramOptions, Project, Runner,
};
use picidae_store::AttemptFilter;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Args)]
pub struct IntegrityArgs {
    /// The benchmark both policies run.
    #[arg(long, value_enum, default_value_t = Benchmark::TinyMlp)]
    benchmark: Benchmark,
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

/// The bundled benchmarks the bench can run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Benchmark {
    /// The bundled example: a pure-Python MLP; truth is the hidden `test_loss`.
    TinyMlp,
    /// Ten switches with small true effects under seed noise; truth is `true_score`.
    NoisySwitches,
}

impl Benchmark {
    fn name(self) -> &'static str {
        match self {
            Benchmark::TinyMlp => "tiny-mlp",
            Benchmark::NoisySwitches => crate::noisy::NAME,
        }
    }

    /// Write a fresh copy of the benchmark (its own git repository) under `dir`.
    fn write(self, dir: &Path) -> Result<PathBuf> {
        match self {
            Benchmark::TinyMlp => crate::example::write(dir),
            Benchmark::NoisySwitches => crate::noisy::write(dir),
        }
    }

    /// The hidden metric a commit's true value is read from.
    fn truth_metric(self) -> &'static str {
        match self {
            Benchmark::TinyMlp => "test_loss",
            Benchmark::NoisySwitches => "true_score",
        }
    }

    /// Gains in % of the baseline's value (a score far from zero), or in score points (a
    /// score that can be near zero or negative).
    fn relative(self) -> bool {
        self == Benchmark::TinyMlp
    }

    fn unit(self) -> &'static str {
        if self.relative() {
            "%"
        } else {
            "points"
        }
    }

    /// `new` against `old`, positive when better, in this benchmark's unit.
    fn gain(self, goal: Goal, new: f64, old: f64) -> f64 {
        let g = goal.gain(new, old);
        if self.relative() {
            g / old.abs() * 100.0
        } else {
            g
        }
    }
}

/// The two policies compared, in the order they are reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Picidae's verification policy.
    Picidae,
    /// Plain keep/revert on one seed.
    Seeds1,
}

const POLICIES: [Policy; 2] = [Policy::Picidae, Policy::Seeds1];

impl Policy {
    fn label(self) -> &'static str {
        match self {
            Policy::Picidae => "picidae",
            Policy::Seeds1 => "seeds=1",
        }
    }

    /// The program's name (and its project directory's).
    fn program(self) -> &'static str {
        match self {
            Policy::Picidae => "picidae",
            Policy::Seeds1 => "seeds1",
        }
    }
}

/// Everything that defines a policy's program: the one place to change a policy. Both get the
/// same sweep agent (random sampler, `sampler_seed`) on `benchmark`.
fn policy_options(
    policy: Policy,
    args: &IntegrityArgs,
    benchmark: &Path,
    sampler_seed: u64,
) -> ProgramOptions {
    let seeds = match policy {
        Policy::Picidae => args.verify_seeds.max(2),
        Policy::Seeds1 => 1,
    };
    ProgramOptions {
        name: policy.program().into(),
        benchmark: benchmark.to_path_buf(),
        program_md: None,
        agent: AgentSpec::Sweep {
            sampler: Sampler::Random,
            seed: sampler_seed,
        },
        seeds: Some(seeds),
        baseline_seeds: Some(seeds),
        min_improvement: None,
        alpha: None,
        concurrency: None,
    }
}

/// One policy's outcome in one trial.
struct TrialResult {
    runs: i64,
    attempts: u64,
    keeps: usize,
    false_keeps: usize,
    /// The final frontier against the baseline, as the policy believed (visible metric).
    claimed: f64,
    /// The same, measured on the truth.
    truth: f64,
}

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
        &ProgramOptions::measuring(name, bench.to_path_buf()),
    )?)
}

pub fn run(args: IntegrityArgs) -> Result<()> {
    let (_tmp, root) = work_dir(&args.dir)?;
    let mut results: [Vec<TrialResult>; 2] = Default::default();
    for trial in 0..args.trials {
        let dir = root.join(format!("trial-{trial}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let started = Instant::now();
        let seed = args.seed + trial;
        for (policy, out) in POLICIES.iter().zip(results.iter_mut()) {
            out.push(one_policy(&args, &dir, seed, *policy)?);
        }
        eprintln!(
            "bench integrity: trial {} of {} (sampler seed {seed}) took {:.1} s",
            trial + 1,
            args.trials,
            started.elapsed().as_secs_f64()
        );
    }
    report(&args, &results);
    Ok(())
}

/// One policy in one trial: a fresh project, the loop under its budget, then the truth of
/// every frontier commit.
fn one_policy(args: &IntegrityArgs, dir: &Path, seed: u64, policy: Policy) -> Result<TrialResult> {
    let (name, prog) = (policy.label(), policy.program());
    // Each policy gets its own copy of the benchmark and its own project: memory dedups
    // across programs of one benchmark, which would let one policy skip the other's points.
    let pdir = dir.join(prog);
    std::fs::create_dir_all(&pdir).with_context(|| format!("creating {}", pdir.display()))?;
    let bench = args.benchmark.write(&pdir)?;
    let visible_goal = picidae_core::Contract::load(&bench)?.primary().goal;
    let mut project = Project::init(&pdir)?;
    create_program(&mut project, &policy_options(policy, args, &bench, seed))?;
    eprintln!(
        "bench integrity: sampler seed {seed}: running {name} with a budget of {} runs",
        args.budget
    );
    let summary = run_with_budget(&mut project, prog, args.budget, name)?;
    let p = project.store.program(prog)?;
    let runs = project.store.run_count(Some(p.id))?;
    // Frontier commits in order (baseline first) with the value the policy believed.
    let frontier: Vec<(String, f64)> = project
        .store
        .frontier_history(p.id)?
        .into_iter()
        .map(|m| (m.commit, m.value))
        .collect();

    // Ground truth: every frontier commit, on the same fresh seeds, hidden evaluator.
    idle_program(&mut project, "truth", &bench)?;
    let mut runner = Runner::new(&mut project, "truth")?;
    let goal = runner
        .contract()
        .hidden
        .as_ref()
        .map(|h| h.goal)
        .context("the benchmark has no hidden evaluator")?;
    let mut measured: Vec<&str> = Vec::new();
    for (commit, _) in &frontier {
        if measured.contains(&commit.as_str()) {
            continue;
        }
        measured.push(commit);
        eprintln!(
            "bench integrity: measuring {} on {} fresh seeds",
            &commit[..10],
            args.truth_seeds
        );
        runner.measure(commit, 1000, args.truth_seeds, &commit[..10])?;
    }
    drop(runner);
    let truth = truth_values(&project, "truth", args.benchmark.truth_metric())?;
    let t = |c: &str| truth.get(c).copied().unwrap_or(f64::NAN);

    let (first, last) = (&frontier[0], &frontier[frontier.len() - 1]);
    let b = args.benchmark;
    Ok(TrialResult {
        runs,
        attempts: summary.attempts,
        keeps: frontier.len().saturating_sub(1),
        false_keeps: frontier
            .windows(2)
            .filter(|w| !goal.improves(t(&w[1].0), t(&w[0].0), 0.0))
            .count(),
        claimed: b.gain(visible_goal, last.1, first.1),
        truth: b.gain(goal, t(&last.0), t(&first.0)),
    })
}

/// The mean of hidden metric `metric` over each commit's measurement runs in program `prog`.
fn truth_values(project: &Project, prog: &str, metric: &str) -> Result<BTreeMap<String, f64>> {
    let p = project.store.program(prog)?;
    let filter = AttemptFilter {
        program_id: Some(p.id),
        ..Default::default()
    };
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for a in project.store.attempts(&filter)? {
        if a.kind != AttemptKind::Measure {
            continue;
        }
        let v = values.entry(a.parent_commit.clone()).or_default();
        for r in project.store.runs_of_attempt(a.id)? {
            if let Some(h) = project.store.hidden_result(r.id)? {
                v.extend(
                    h.metrics
                        .get(metric)
                        .copied()
                        .filter(|x| h.ok && x.is_finite()),
                );
            }
        }
    }
    Ok(values.into_iter().map(|(c, v)| (c, mean(&v))).collect())
}

/// Two-sided 95% normal quantile.
const Z95: f64 = 1.959_963_984_540_054;
/// Resamples of the paired bootstrap of the ratio of true gains, and its fixed RNG seed.
const BOOTSTRAP_RESAMPLES: usize = 10_000;
const BOOTSTRAP_SEED: u64 = 20_240_607;

/// Wilson score interval (95%) of `k` successes in `n` trials.
fn wilson(k: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The ratio of mean true gains `num / den` over trials and its 95% percentile interval from a
/// paired bootstrap (trials resampled with replacement, both policies together). Resamples
/// whose denominator is not positive have no meaningful ratio and are left out; how many is
/// returned.
fn ratio_bootstrap(num: &[f64], den: &[f64]) -> (Option<f64>, Option<(f64, f64)>, usize) {
    let point = (mean(den) > 0.0).then(|| mean(num) / mean(den));
    let n = num.len();
    if n < 2 {
        return (point, None, 0);
    }
    let mut rng = StdRng::seed_from_u64(BOOTSTRAP_SEED);
    let mut ratios = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let mut dropped = 0;
    for _ in 0..BOOTSTRAP_RESAMPLES {
        let (mut sn, mut sd) = (0.0, 0.0);
        for _ in 0..n {
            let i = rng.random_range(0..n);
            sn += num[i];
            sd += den[i];
        }
        if sd > 0.0 {
            ratios.push(sn / sd);
        } else {
            dropped += 1;
        }
    }
    if ratios.len() < BOOTSTRAP_RESAMPLES / 2 {
        return (point, None, dropped);
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    (point, Some((at(0.025), at(0.975))), dropped)
}

/// A gain in `unit`: `+12.3%` or `+0.45`.
fn fmt_gain(v: f64, unit: &str) -> String {
    if unit == "%" {
        format!("{v:+.1}%")
    } else {
        format!("{v:+.2}")
    }
}

/// A gain with its interval, `+0.45 [+0.12, +0.78]`; `[-]` without one (fewer than 2 trials).
fn with_interval(point: f64, ci: Option<(f64, f64)>, unit: &str) -> String {
    let digits = if unit == "%" { 1 } else { 2 };
    match ci {
        Some((lo, hi)) => format!("{} [{lo:+.digits$}, {hi:+.digits$}]", fmt_gain(point, unit)),
        None => format!("{} [-]", fmt_gain(point, unit)),
    }
}

fn report(args: &IntegrityArgs, results: &[Vec<TrialResult>; 2]) {
    let b = args.benchmark;
    let unit = b.unit();
    let (visible, truth_metric) = match b {
        Benchmark::TinyMlp => ("val_loss", "hidden test_loss"),
        Benchmark::NoisySwitches => ("score", "true_score"),
    };
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "policy".to_string(),
        "runs".into(),
        "attempts".into(),
        "keeps".into(),
        "false keeps".into(),
        "false-keep rate [95% Wilson]".into(),
        format!("claimed gain ({visible}, {unit})"),
        format!("true gain ({truth_metric}, {unit}) [95% t]"),
    ]);
    let rate = |r: &[TrialResult]| {
        let keeps: usize = r.iter().map(|x| x.keeps).sum();
        let false_keeps: usize = r.iter().map(|x| x.false_keeps).sum();
        (keeps, false_keeps)
    };
    for (policy, r) in POLICIES.iter().zip(results) {
        let (keeps, false_keeps) = rate(r);
        let fk = match wilson(false_keeps, keeps) {
            Some((lo, hi)) => format!(
                "{:.0}% [{:.0}%, {:.0}%]",
                false_keeps as f64 / keeps as f64 * 100.0,
                lo * 100.0,
                hi * 100.0
            ),
            None => "- (no keeps)".into(),
        };
        let truth: Vec<f64> = r.iter().map(|x| x.truth).collect();
        let claimed: Vec<f64> = r.iter().map(|x| x.claimed).collect();
        let true_ci = mean_ci(&truth, 0.95).map(|(_, lo, hi)| (lo, hi));
        t.add_row([
            policy.label().to_string(),
            r.iter().map(|x| x.runs).sum::<i64>().to_string(),
            r.iter().map(|x| x.attempts).sum::<u64>().to_string(),
            keeps.to_string(),
            false_keeps.to_string(),
            fk,
            fmt_gain(mean(&claimed), unit),
            with_interval(mean(&truth), true_ci, unit),
        ]);
    }
    println!("{t}");

    let [p, s] = results;
    let pt: Vec<f64> = p.iter().map(|x| x.truth).collect();
    let st: Vec<f64> = s.iter().map(|x| x.truth).collect();
    let diffs: Vec<f64> = pt.iter().zip(&st).map(|(a, b)| a - b).collect();
    let (ratio, ratio_ci, dropped) = ratio_bootstrap(&pt, &st);
    let ratio_text = match (ratio, ratio_ci) {
        (Some(r), Some((lo, hi))) => format!("{r:.2} [{lo:.2}, {hi:.2}]"),
        (Some(r), None) => format!("{r:.2} [-]"),
        (None, _) => "- (seeds=1 found no true gain)".into(),
    };
    println!(
        "true gain, picidae / seeds=1: {ratio_text} (95% paired bootstrap over trials, {BOOTSTRAP_RESAMPLES} resamples, RNG seed {BOOTSTRAP_SEED}{})",
        if dropped > 0 {
            format!("; {dropped} resamples with seeds=1 gain <= 0 left out")
        } else {
            String::new()
        }
    );
    let diff_ci = mean_ci(&diffs, 0.95).map(|(_, lo, hi)| (lo, hi));
    let points = if b.relative() {
        "percentage points"
    } else {
        "score points"
    };
    let digits = if b.relative() { 1 } else { 2 };
    let diff_text = match diff_ci {
        Some((lo, hi)) => format!(
            "{:+.digits$} [{lo:+.digits$}, {hi:+.digits$}]",
            mean(&diffs)
        ),
        None => format!("{:+.digits$} [-]", mean(&diffs)),
    };
    println!(
        "true gain, picidae - seeds=1: {diff_text} {points} (95% t-interval of the per-trial differences)"
    );
    let overclaim =
        |r: &[TrialResult]| mean(&r.iter().map(|x| x.claimed - x.truth).collect::<Vec<_>>());
    println!(
        "overclaim (claimed - true gain): picidae {:+.digits$} vs seeds=1 {:+.digits$} {points}",
        overclaim(p),
        overclaim(s)
    );
    let truth_how = match b {
        Benchmark::TinyMlp => format!(
            "true values: hidden test_loss over {} fresh seeds; gains in % of each policy's baseline",
            args.truth_seeds
        ),
        Benchmark::NoisySwitches => format!(
            "true values: the evaluator's noise-free true_score ({} fresh seed(s)); gains in score points over each policy's baseline",
            args.truth_seeds
        ),
    };
    println!(
        "({} trial(s) of {}; each policy {} runs per trial on the same sweep proposals; false-keep intervals are over keeps, gain intervals over trials; {truth_how})",
        args.trials,
        b.name(),
        args.budget,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval() {
        assert_eq!(wilson(0, 0), None);
        let (lo, hi) = wilson(0, 10).unwrap();
        assert_eq!(lo, 0.0);
        assert!((hi - 0.2775).abs() < 1e-4, "{hi}");
        let (lo, hi) = wilson(5, 21).unwrap();
        assert!(
            (lo - 0.1063).abs() < 1e-3 && (hi - 0.4511).abs() < 1e-3,
            "{lo} {hi}"
        );
    }

    #[test]
    fn ratio_of_gains() {
        let (r, ci, dropped) = ratio_bootstrap(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert_eq!((r, ci, dropped), (Some(1.0), Some((1.0, 1.0)), 0));
        let (r, ci, _) = ratio_bootstrap(&[0.5, 1.0, 0.4, 0.6], &[1.0, 1.2, 0.8, 1.0]);
        let (lo, hi) = ci.unwrap();
        assert!(lo < r.unwrap() && r.unwrap() < hi);
        assert_eq!(ratio_bootstrap(&[1.0], &[0.0]).0, None);
    }

    #[test]
    fn gains_per_benchmark() {
        assert_eq!(
            Benchmark::NoisySwitches.gain(Goal::Maximize, 0.5, -0.25),
            0.75
        );
        assert_eq!(Benchmark::TinyMlp.gain(Goal::Minimize, 0.05, 0.1), 50.0);
    }
}
