//! `picidae-bench dispatch`: how many attempts per second the harness can dispatch, and what
//! each costs beyond the run itself, side by side with Optuna.
//!
//! Both sides optimise the same function through the same subprocess: `/bin/sh -c` running
//! `awk` on a parameter `X` passed in the environment, printing `loss: …`. Optuna (from PyPI)
//! uses its SQLite storage and a random sampler; Picidae uses its store (SQLite), the random
//! sweep agent on an environment parameter, `seeds = 1` keep/revert, a reused run checkout and a
//! pipelined proposer. Each side records every trial durably in its own database. The per-attempt
//! overhead is wall time per attempt minus the mean wall time of the subprocess itself.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_agent::sweep::Sampler;
use picidae_agent::AgentSpec;
use picidae_git::{Identity, Repo};
use picidae_sched::{create_program, LoopEvent, LoopOptions, ProgramOptions, Project, Runner};

#[derive(Args)]
pub struct DispatchArgs {
    /// Trials (attempts) each side runs.
    #[arg(long, default_value_t = 2000)]
    pub runs: u64,
    /// Proposals Picidae keeps ready ahead of its runs (0: the proposer runs between runs, which
    /// is faster than a proposer thread when runs last milliseconds and cores are few).
    #[arg(long, default_value_t = 0)]
    pub pipeline: usize,
    /// Trials in flight at once: Picidae's `concurrency`, Optuna's worker processes on one
    /// SQLite study.
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    /// Skip the Optuna peer (reports Picidae alone).
    #[arg(long)]
    pub no_peer: bool,
    /// Python interpreter with Optuna installed (`pip install optuna`).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Where to keep the projects (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

/// The objective both sides run, through `/bin/sh -c`.
const OBJECTIVE: &str =
    r#"awk -v x="$X" 'BEGIN { printf "loss: %.9f\n", (x - 0.3) * (x - 0.3) + 0.01 }'"#;

const CONTRACT: &str = r#"[benchmark]
name = "dispatch"
description = "A trivial objective: the cost of dispatching attempts, not of running them."

[boundary]
editable = ["notes.md"]

[run]
command = '''OBJECTIVE'''
time_budget = 5.0
timeout = 30.0
grace = 1.0
reuse_checkout = true

[metrics.loss]
goal = "minimize"
source = "stdout"

[[param]]
name = "x"
env = "X"
default = 0.0
min = -1.0
max = 1.0

[policy]
seeds = 1
baseline_seeds = 1
"#;

struct Side {
    name: String,
    /// Trials in flight at once.
    workers: u32,
    trials: u64,
    wall: f64,
    run_secs: f64,
    best: f64,
}

impl Side {
    fn rate(&self) -> f64 {
        self.trials as f64 / self.wall
    }
    /// Worker time not spent in the subprocess, per trial.
    fn overhead_ms(&self) -> f64 {
        (self.wall * f64::from(self.workers) - self.run_secs) / self.trials as f64 * 1000.0
    }
}

pub fn run(args: DispatchArgs) -> Result<()> {
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let (_tmp, root) = crate::peer::work_dir(&args.dir)?;
    let mut sides = vec![picidae_side(&args, &root.join("picidae"))?];
    if !args.no_peer {
        sides.push(optuna_side(&args, &root.join("optuna"))?);
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "system",
        "trials",
        "wall (s)",
        "trials/s",
        "overhead per trial (ms)",
        "subprocess per trial (ms)",
        "best loss",
    ]);
    for s in &sides {
        t.add_row([
            s.name.clone(),
            s.trials.to_string(),
            format!("{:.2}", s.wall),
            format!("{:.1}", s.rate()),
            format!("{:.2}", s.overhead_ms()),
            format!("{:.2}", s.run_secs / s.trials.max(1) as f64 * 1000.0),
            format!("{:.5}", s.best),
        ]);
    }
    println!("{t}");
    if let [p, o] = &sides[..] {
        println!(
            "picidae dispatches {:.1}x the trials/s of optuna ({:.1} vs {:.1}); per-trial overhead {:.2} ms vs {:.2} ms",
            p.rate() / o.rate(),
            p.rate(),
            o.rate(),
            p.overhead_ms(),
            o.overhead_ms()
        );
    }
    println!(
        "(same objective through /bin/sh -c on both sides; {} worker(s) each; every trial recorded in SQLite; objective: {OBJECTIVE})",
        args.workers
    );
    Ok(())
}

fn picidae_side(args: &DispatchArgs, dir: &Path) -> Result<Side> {
    let bench = dir.join("dispatch");
    std::fs::create_dir_all(&bench).with_context(|| format!("creating {}", bench.display()))?;
    std::fs::write(
        bench.join("picidae.toml"),
        CONTRACT.replace("OBJECTIVE", OBJECTIVE),
    )?;
    std::fs::write(bench.join("notes.md"), "# dispatch benchmark\n")?;
    Repo::init(&bench, "dispatch benchmark", Identity::default())?;
    let mut project = Project::init(dir)?;
    create_program(
        &mut project,
        &ProgramOptions {
            name: "dispatch".into(),
            benchmark: bench.clone(),
            program_md: None,
            agent: AgentSpec::Sweep {
                sampler: Sampler::Random,
                seed: 1,
            },
            seeds: Some(1),
            baseline_seeds: Some(1),
            min_improvement: None,
            alpha: None,
            concurrency: Some(args.workers),
        },
    )?;
    let spec: AgentSpec = serde_json::from_value(project.store.program("dispatch")?.agent)?;
    let mut agent = spec.build();
    let opts = LoopOptions {
        // The baseline is one more attempt; every attempt is one run.
        max_runs: Some(args.runs + 1),
        pipeline: args.pipeline,
        ..Default::default()
    };
    eprintln!(
        "bench dispatch: picidae, {} attempts, {} in flight",
        args.runs, args.workers
    );
    let mut runner = Runner::new(&mut project, "dispatch")?;
    // Setup and the baseline are not dispatch: run them before the clock starts.
    runner.prepare(&mut |_| {})?;
    let mut run_secs = 0.0;
    let mut finished = 0u64;
    let start = Instant::now();
    let summary = runner.run(agent.as_mut(), &opts, &mut |e| {
        if let LoopEvent::RunFinished { wall_secs, .. } = e {
            run_secs += wall_secs;
            finished += 1;
        }
    })?;
    let wall = start.elapsed().as_secs_f64();
    drop(runner);
    let runs = project.store.run_count(None)?;
    if finished == 0 {
        bail!("picidae ran nothing: {:?}", summary.stopped);
    }
    Ok(Side {
        name: format!("picidae ({runs} runs in store)"),
        workers: args.workers,
        trials: finished,
        wall,
        run_secs,
        best: summary.frontier.unwrap_or(f64::NAN),
    })
}

fn optuna_side(args: &DispatchArgs, dir: &Path) -> Result<Side> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("bench dispatch: optuna, {} trials", args.runs);
    let v = crate::peer::python_peer(
        &args.python,
        dir,
        "peer.py",
        crate::peer::OPTUNA_DISPATCH,
        &[
            args.runs.to_string().as_ref(),
            dir.join("optuna.db").as_os_str(),
            OBJECTIVE.as_ref(),
            args.workers.to_string().as_ref(),
        ],
        "the Optuna peer failed (install it with `pip install optuna`, or pass --no-peer)",
    )?;
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Ok(Side {
        name: format!("optuna {} (sqlite)", v["version"].as_str().unwrap_or("?")),
        workers: args.workers,
        trials: v["trials"].as_u64().unwrap_or(0),
        wall: num("wall"),
        run_secs: num("run_secs"),
        best: num("best"),
    })
}
