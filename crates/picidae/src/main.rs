//! `picidae`: the command-line front end. Parses arguments, finds the project, and hands work to
//! the scheduler; errors become messages here (anyhow at the edge only).

mod agents;
mod arena;
mod check;
mod cli;
mod client;
mod contribute;
mod delete;
mod demo;
mod example;
mod findings;
mod fsck;
mod import;
mod import_program_md;
mod memory;
mod migrate;
mod progress;
mod recheck;
mod results;
mod serve;
mod submit;
mod tokens;
mod turn;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::*;
use picidae_agent::AgentSpec;
use picidae_sched::{create_program, ExecutorSpec, LoopOptions, ProgramOptions, Project, Runner};

/// When set, `picidae` parses its command line, exits 0 if it parsed (2 with clap's message
/// otherwise) and does nothing else: how the documentation's commands are checked.
const CHECK_ARGS_ENV: &str = "PICIDAE_CHECK_ARGS";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PICIDAE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if std::env::var_os(CHECK_ARGS_ENV).is_some() {
        // The command line parsed: that is all that was asked (the docs' commands are checked
        // this way).
        return ExitCode::SUCCESS;
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn open_project(cli_project: &Option<PathBuf>) -> Result<Project> {
    Ok(match cli_project {
        Some(p) => Project::open(p)?,
        None => Project::discover(Path::new("."))?,
    })
}

/// Set (or, with `None`, clear) where a program's screen-stage runs execute.
fn set_screen_executor(project: &mut Project, name: &str, spec: Option<&str>) -> Result<()> {
    let value = match spec {
        Some(text) => {
            let parsed =
                ExecutorSpec::parse(text).map_err(|e| anyhow::anyhow!("--screen-executor {e}"))?;
            println!(
                "{name}: screen-stage runs execute on {} from its loop's next start",
                parsed.label()
            );
            Some(serde_json::Value::String(text.trim().to_string()))
        }
        None => {
            println!("{name}: screen-stage runs execute where its other runs do");
            None
        }
    };
    project
        .store
        .set_program_policy(name, picidae_sched::SCREEN_EXECUTOR_KEY, value)?;
    Ok(())
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init { dir, store, clones } => {
            let dir = cli.project.clone().unwrap_or(dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut p = Project::init_with_store(&dir, store.as_deref())?;
            for c in &clones {
                let (recorded, local) = c
                    .split_once('=')
                    .with_context(|| format!("--clone {c:?}: expected RECORDED=LOCAL"))?;
                let local = picidae_sched::clones::Clones::link(&p.dir(), recorded, local.as_ref())
                    .with_context(|| format!("--clone {c:?}"))?;
                println!(
                    "benchmark {recorded}: this project's clone is {}",
                    local.display()
                );
            }
            if !clones.is_empty() {
                p = Project::open(&dir)?;
            }
            println!(
                "initialised Picidae project in {} (store: {} {})",
                p.dir().display(),
                p.store.backend().as_str(),
                picidae_store::redact_url(&p.store_location())
            );
            exclude_project_dir(&p.dir());
        }
        Command::Check { benchmark } => return check::check(&benchmark),
        Command::Program(ProgramCmd::Create(args)) => {
            let mut project = open_project(&cli.project)?;
            let agent = agents::agent_spec(&args.agent)?;
            agents::warn_if_missing(&agent);
            let executor = ExecutorSpec::parse(&args.executor)
                .map_err(|e| anyhow::anyhow!("--executor {e}"))?;
            let program_md = args
                .program_md
                .as_ref()
                .map(|p| {
                    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
                })
                .transpose()?;
            let p = create_program(
                &mut project,
                &ProgramOptions {
                    name: args.name.clone(),
                    benchmark: args.benchmark.clone(),
                    program_md,
                    agent,
                    seeds: args.seeds,
                    baseline_seeds: args.baseline_seeds,
                    min_improvement: args.min_improvement,
                    alpha: args.alpha,
                    concurrency: args.concurrency,
                },
            )?;
            project
                .store
                .set_program_executor(&p.name, &serde_json::to_value(&executor)?)?;
            if let Some(screen) = &args.screen_executor {
                set_screen_executor(&mut project, &p.name, Some(screen))?;
            }
            if args.program_md.is_none() && p.program_md.trim().is_empty() {
                eprintln!(
                    "warning: no program.md in {}: the agent gets no direction beyond the contract \
                     (add one, or pass --program-md FILE)",
                    p.benchmark_dir
                );
            }
            println!(
                "created program {} on {} at {} (runs: {})",
                p.name,
                p.benchmark_dir,
                &p.base_commit[..12.min(p.base_commit.len())],
                executor.label()
            );
        }
        Command::Program(ProgramCmd::Pause { name }) => {
            serve::pause(&mut open_project(&cli.project)?, &name, false)?;
        }
        Command::Program(ProgramCmd::Resume { name }) => {
            serve::pause(&mut open_project(&cli.project)?, &name, true)?;
        }
        Command::Program(ProgramCmd::Open {
            name,
            quota_runs,
            quota_gpu_hours,
            quota_usd,
            max_patch_kb,
        }) => {
            anyhow::ensure!(max_patch_kb > 0, "--max-patch-kb: must be at least 1");
            for (flag, v) in [
                ("--quota-gpu-hours", quota_gpu_hours),
                ("--quota-usd", quota_usd),
            ] {
                anyhow::ensure!(
                    v.is_none_or(|v| v.is_finite() && v > 0.0),
                    "{flag}: must be a positive number"
                );
            }
            let quota = picidae_store::Quota {
                runs: quota_runs,
                gpu_hours: quota_gpu_hours,
                usd: quota_usd,
            };
            let mut project = open_project(&cli.project)?;
            project.store.open_program(&name, quota, max_patch_kb)?;
            let terms: Vec<String> = [
                quota_runs.map(|q| format!("{q} runs")),
                quota_gpu_hours.map(|q| format!("{q} GPU-hours")),
                quota_usd.map(|q| format!("${q}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            let quota = if terms.is_empty() {
                "no quota".to_string()
            } else {
                format!("{} each", terms.join(", "))
            };
            println!("program {name} is open to contributors ({quota}, patches up to {max_patch_kb} KiB)");
        }
        Command::Program(ProgramCmd::Close { name }) => {
            open_project(&cli.project)?.store.close_program(&name)?;
            println!("program {name} is closed to new contributions");
        }
        Command::Program(ProgramCmd::Set {
            name,
            weight,
            concurrency,
            executor,
            screen_executor,
            no_screen_executor,
            max_runs,
            no_max_runs,
            cost,
        }) => {
            if screen_executor.is_some() || no_screen_executor {
                set_screen_executor(
                    &mut open_project(&cli.project)?,
                    &name,
                    screen_executor.as_deref(),
                )?;
            }
            if let Some(e) = executor {
                let spec =
                    ExecutorSpec::parse(&e).map_err(|e| anyhow::anyhow!("--executor {e}"))?;
                let mut project = open_project(&cli.project)?;
                project.store.program(&name)?;
                project
                    .store
                    .set_program_executor(&name, &serde_json::to_value(&spec)?)?;
                println!(
                    "{name}: runs execute on {} from its loop's next start",
                    spec.label()
                );
            }
            serve::set(
                &mut open_project(&cli.project)?,
                &name,
                (weight, concurrency),
                (max_runs, no_max_runs),
                &cost,
            )?;
        }
        Command::Program(ProgramCmd::Followup { name, text }) => {
            serve::followup(&mut open_project(&cli.project)?, &name, &text)?;
        }
        Command::Program(ProgramCmd::Delete { name }) => {
            let d = delete::delete_program(&mut open_project(&cli.project)?, &name)?;
            for w in &d.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "deleted program {name}: {} attempts, {} runs, {} findings, {} refs",
                d.attempts, d.runs, d.findings, d.refs
            );
        }
        Command::Serve {
            slots,
            listen,
            no_api,
            pipeline,
            worker_lease,
            private_reads,
            capacity,
        } => {
            let project = open_project(&cli.project)?;
            let root = project.root().to_path_buf();
            drop(project);
            serve::run(
                &root,
                (slots, pipeline),
                capacity.resolve()?,
                (!no_api).then_some(serve::Api {
                    listen: &listen,
                    worker_lease: std::time::Duration::try_from_secs_f64(worker_lease)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .context("--worker-lease: expected a positive number of seconds")?,
                    private_reads,
                }),
            )?;
        }
        Command::Token(cmd) => {
            let mut project = open_project(&cli.project)?;
            tokens::run(&mut project, cmd)?;
        }
        Command::Worker(args) => worker::run(args)?,
        Command::Submit(args) => submit::run(args)?,
        Command::Fetch(args) => submit::fetch(args)?,
        Command::Contribute(args) => contribute::run(args)?,
        Command::Program(ProgramCmd::List { json }) => {
            let project = open_project(&cli.project)?;
            results::list_programs(&project, json)?;
        }
        Command::Run {
            program,
            max_attempts,
            max_runs,
            pipeline,
            parallel,
            plain,
        } => {
            let mut project = open_project(&cli.project)?;
            run_loop(
                &mut project,
                &program,
                max_attempts,
                max_runs,
                (pipeline, parallel),
                plain,
            )?;
        }
        Command::Results {
            program,
            json,
            last,
            full,
        } => {
            let project = open_project(&cli.project)?;
            results::print_results(&project, program.as_deref(), json, last, full)?;
        }
        Command::Show { program, seq, json } => {
            let project = open_project(&cli.project)?;
            if json {
                results::show_attempt_json(&project, &program, seq)?;
            } else {
                results::show_attempt(&project, &program, seq)?;
            }
        }
        Command::Export(ExportCmd::ResultsTsv {
            program,
            output,
            autoresearch_header,
        }) => {
            let project = open_project(&cli.project)?;
            let export = results::export_tsv(&project, &program, autoresearch_header)?;
            match output {
                Some(path) => std::fs::write(&path, &export.text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{}", export.text),
            }
            if !export.unmeasured.is_empty() {
                let seqs: Vec<String> = export.unmeasured.iter().map(|s| format!("#{s}")).collect();
                eprintln!(
                    "note: {} attempt(s) of {program} left out, with no measured value: {}",
                    seqs.len(),
                    seqs.join(", ")
                );
            }
        }
        Command::Import(ImportCmd::ResultsTsv { file, program }) => {
            let mut project = open_project(&cli.project)?;
            let (n, skipped) = results::import_tsv(&mut project, &program, &file)?;
            println!(
                "imported {n} attempts into {program}{}",
                skipped_note(skipped)
            );
        }
        Command::Import(ImportCmd::Autoresearch {
            program,
            repo,
            branch,
            since,
            results,
        }) => {
            let mut project = open_project(&cli.project)?;
            let s = import::import_autoresearch(
                &mut project,
                &import::AutoresearchImport {
                    program: program.clone(),
                    repo,
                    branch,
                    since,
                    results,
                },
            )?;
            println!("read {s}");
            println!(
                "imported {} attempts into {program}{}",
                s.imported,
                skipped_note(s.skipped)
            );
        }
        Command::Import(ImportCmd::ProgramMd { file, output }) => {
            let n = import_program_md::import_program_md(&file, output.as_deref())?;
            if let Some(out) = &output {
                println!("{} instruction(s) rewritten; wrote {}", n, out.display());
            }
        }
        Command::Import(ImportCmd::PiLog {
            file,
            program,
            segment,
            repo,
        }) => {
            let mut project = open_project(&cli.project)?;
            let s = import::import_pi_log(
                &mut project,
                &import::PiLogImport {
                    program: program.clone(),
                    file,
                    segment,
                    repo,
                },
            )?;
            if s.metrics.len() > 1 && segment.is_none() {
                println!(
                    "note: the log has {} segments (primary metrics: {}); --segment N imports one",
                    s.metrics.len(),
                    s.metrics.join(", ")
                );
            }
            println!(
                "imported {} attempts into {program}{}",
                s.imported,
                skipped_note(s.skipped)
            );
        }
        Command::Findings {
            command,
            program,
            state,
            json,
        } => match command {
            None => {
                let project = open_project(&cli.project)?;
                let state = state
                    .map(|s| s.parse::<picidae_core::domain::FindingState>())
                    .transpose()?;
                findings::list(&project, program.as_deref(), state, json)?;
            }
            Some(FindingsCmd::Show { id }) => {
                findings::show(&open_project(&cli.project)?, id)?;
            }
            Some(FindingsCmd::Retract { id, reason }) => {
                findings::retract(&mut open_project(&cli.project)?, id, &reason)?;
            }
            Some(FindingsCmd::Recheck {
                program,
                seeds,
                first_seed,
                no_ablation,
                parallel,
                json,
            }) => {
                let opts = picidae_sched::recheck::RecheckOptions {
                    seeds,
                    first_seed,
                    ablation: !no_ablation,
                    run: LoopOptions {
                        parallel,
                        ..Default::default()
                    },
                };
                recheck::run(&mut open_project(&cli.project)?, &program, &opts, json)?;
            }
            Some(FindingsCmd::Approve { id, note }) => {
                findings::approve(&mut open_project(&cli.project)?, id, note.as_deref())?;
            }
        },
        Command::Fsck(args) => return fsck::run(&open_project(&cli.project)?, &args),
        Command::Memory(cmd) => {
            let project = open_project(&cli.project)?;
            match cmd {
                MemoryCmd::Search {
                    query,
                    program,
                    limit,
                    json,
                } => memory::search(&project, &query, program.as_deref(), limit, json)?,
                MemoryCmd::Similar {
                    program,
                    seq,
                    limit,
                    json,
                } => memory::similar(&project, &program, seq, limit, json)?,
                MemoryCmd::Summary {
                    query,
                    program,
                    limit,
                } => memory::summary(&project, &query, program.as_deref(), limit)?,
                MemoryCmd::Programs {
                    query,
                    benchmark,
                    limit,
                    json,
                } => memory::programs(&project, &query, benchmark.as_deref(), limit, json)?,
                MemoryCmd::Reindex => {
                    let n = memory::reindex(&project)?;
                    println!("indexed {n} attempts");
                }
            }
        }
        Command::Report { program, output } => {
            let project = open_project(&cli.project)?;
            let text = findings::report(&project, &program)?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
        }
        Command::Evaluator(EvaluatorCmd::Calibrate { program, json }) => {
            let mut project = open_project(&cli.project)?;
            if !findings::calibrate(&mut project, &program, json)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Mcp => {
            let project = open_project(&cli.project)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the MCP server's runtime")?;
            runtime.block_on(picidae_server::serve_stdio(project.store))?;
        }
        Command::Agent(cmd) => agents::run(&open_project(&cli.project)?, cmd)?,
        Command::Arena(cmd) => arena::run(&mut open_project(&cli.project)?, cmd)?,
        Command::Demo(args) => demo::run(args)?,
        Command::Attempt(AttemptCmd::Retry { program, seq }) => {
            let mut project = open_project(&cli.project)?;
            let author = findings::cli_author();
            let (req, new) =
                picidae_memory::retry::request_retry(&mut project.store, &program, seq, &author)?;
            if new {
                println!(
                    "retry of {program} #{seq} requested (request {}): the program's next proposal verifies it again",
                    req.id
                );
            } else {
                println!(
                    "retry of {program} #{seq} was already requested (request {}); it is still waiting",
                    req.id
                );
            }
        }
        Command::Cancel { run } => {
            let mut project = open_project(&cli.project)?;
            match project.store.request_run_cancel(run)? {
                Some(_) => println!(
                    "cancel requested for run {run}: the loop running it stops it within about a second"
                ),
                None => anyhow::bail!("run {run} has already finished; there is nothing to cancel"),
            }
        }
        Command::Migrate(cmd) => migrate::run(open_project(&cli.project)?, cmd)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn skipped_note(skipped: usize) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(" ({skipped} already imported, skipped)")
    }
}

/// A project directory inside a git work tree (often the benchmark's own repository) is never
/// a change of that repository: it goes into the repository's `info/exclude`.
fn exclude_project_dir(dir: &Path) {
    let Ok(repo) = picidae_git::Repo::open(dir) else {
        return;
    };
    match repo.exclude_dir(dir) {
        Ok(true) => println!(
            "added {} to {}",
            dir.display(),
            repo.common_dir().join("info").join("exclude").display()
        ),
        Ok(false) => {}
        Err(e) => eprintln!(
            "warning: could not exclude {} from the git repository at {}: {e}",
            dir.display(),
            repo.root().display()
        ),
    }
}

/// Run a program's loop with a progress display and Ctrl-C handling.
pub(crate) fn run_loop(
    project: &mut Project,
    program: &str,
    max_attempts: Option<u64>,
    max_runs: Option<u64>,
    (pipeline, parallel): (usize, usize),
    plain: bool,
) -> Result<picidae_sched::LoopSummary> {
    let opts = LoopOptions {
        max_attempts,
        max_runs,
        pipeline,
        parallel,
        ..Default::default()
    };
    {
        let shutdown = opts.shutdown.clone();
        // Installing twice (demo then run) is impossible in one process; ignore the error.
        let _ = ctrlc::set_handler(move || match shutdown.escalate() {
            picidae_sched::Mode::Cancel => eprintln!("\npicidae: cancelling the run in flight"),
            _ => eprintln!(
                "\npicidae: stopping after the attempt in flight (Ctrl-C again to cancel it)"
            ),
        });
    }
    let stored = project.store.program(program)?;
    let spec: AgentSpec = serde_json::from_value(stored.agent.clone())
        .with_context(|| format!("program {program}: unreadable agent configuration"))?;
    let mut agent = spec.build();
    agent.preflight()?;
    let mut runner = Runner::new(project, program)?;
    for notice in runner.notices() {
        eprintln!("picidae: {notice}");
    }
    let primary = runner.contract().primary_metric.clone();
    let mut display = progress::Display::new(max_attempts, &primary, plain);
    let summary = runner.run(agent.as_mut(), &opts, &mut |e| display.event(e));
    display.finish();
    let summary = summary?;
    if summary.attempts == 0 && summary.stopped.is_none() && max_attempts != Some(0) {
        bail!("no attempt was made");
    }
    progress::print_summary(&summary, &primary);
    Ok(summary)
}
