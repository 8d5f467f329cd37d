//! `picidae demo`: the bundled example benchmark, end to end, on the embedded defaults
//! (SQLite store, local executor, built-in sweep agent).
//!
//! The benchmark's files are compiled into the binary ([`crate::example`]), so the demo works
//! from any directory: it writes them to `<dir>/tiny-mlp`, makes that a git repository, creates
//! a project in `<dir>`, and runs the sweep program.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use picidae_agent::sweep::Sampler;
use picidae_agent::AgentSpec;
use picidae_sched::{create_program, ProgramOptions, Project};

#[derive(Args)]
pub struct DemoArgs {
    /// Where to put the demo project (must not exist, or be empty).
    #[arg(long, default_value = "picidae-demo")]
    dir: PathBuf,
    /// Number of attempts after the baseline.
    #[arg(long, short = 'n', default_value_t = 30)]
    attempts: u64,
    /// Seed of the sweep agent's sampler.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one line per event instead of a progress bar.
    #[arg(long)]
    plain: bool,
}

pub fn run(args: DemoArgs) -> Result<()> {
    if args.dir.exists()
        && std::fs::read_dir(&args.dir)
            .with_context(|| format!("reading {}", args.dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} already exists and is not empty; pass --dir to choose another place",
            args.dir.display()
        );
    }
    let bench = crate::example::write(&args.dir)?;
    let mut project = Project::init(&args.dir)?;
    create_program(
        &mut project,
        &ProgramOptions {
            name: "tiny-mlp-sweep".into(),
            benchmark: bench.clone(),
            program_md: None,
            agent: AgentSpec::Sweep {
                sampler: Sampler::Random,
                seed: args.seed,
            },
            seeds: None,
            baseline_seeds: None,
            min_improvement: None,
            alpha: None,
            concurrency: None,
        },
    )?;
    println!(
        "demo project in {}: program tiny-mlp-sweep, {} attempts with the random sweep agent",
        args.dir.display(),
        args.attempts
    );
    let summary = crate::run_loop(
        &mut project,
        "tiny-mlp-sweep",
        Some(args.attempts),
        None,
        (0, 1),
        args.plain,
    )?;
    if let (Some(b), Some(f)) = (summary.baseline, summary.frontier) {
        println!(
            "improvement found: val_loss {b:.4} → {f:.4} ({:.1}% lower)",
            (b - f) / b * 100.0
        );
    }
    let store = &project.store;
    let p = store.program("tiny-mlp-sweep")?;
    let findings = store.findings(Some(p.id), None)?;
    let validated = findings
        .iter()
        .filter(|f| f.state == picidae_core::domain::FindingState::Validated)
        .count();
    println!(
        "findings: {validated} validated, {} refuted or held (each verified over the contract's seeds against the baseline)",
        findings.len() - validated
    );
    let d = args.dir.display();
    println!("next: `picidae --project {d} results`, `… findings`, `… report -p tiny-mlp-sweep`, `… show tiny-mlp-sweep <N>`");
    Ok(())
}
