//! `picidae`: the command-line front end. Parses arguments, finds the project, and hands work to
//! the scheduler; errors become messages here (anyhow at the edge only).

mod agents;
mod client;
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
mod results;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use picidae_agent::adapters::AdapterKind;
use picidae_agent::sweep::Sampler;
use picidae_agent::AgentSpec;
use picidae_core::Contract;
use picidae_sched::{create_program, ExecutorSpec, LoopOptions, ProgramOptions, Project, Runner};

#[derive(Parser)]
#[command(
    name = "picidae",
    version,
    about = "Scheduler, memory and cockpit for auto-research",
    long_about = "Picidae runs research programs: an agent proposes a change to a benchmark, \
                  Picidae checks it against the benchmark's contract, runs it under a fixed \
                  budget, and keeps it only if the primary metric improves. Every attempt, kept \
                  or not, is a git commit and a row in the store."
)]
struct Cli {
    /// Project directory (default: the nearest directory at or above the current one that
    /// holds `.picidae/`).
    #[arg(long, global = true, env = "PICIDAE_PROJECT")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project (a `.picidae/` directory with an embedded SQLite store, or with
    /// `--store` a PostgreSQL one).
    Init {
        /// Directory to create the project in.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Keep the store in this PostgreSQL database (`postgres://user@host:port/db`) instead
        /// of the embedded SQLite file: several coordinators, on one machine or many, can then
        /// share its programs. Written to `.picidae/store.url` (readable by its owner only).
        #[arg(long, value_name = "URL", env = "PICIDAE_STORE")]
        store: Option<String>,
    },
    /// Validate a benchmark's picidae.toml and summarise it.
    Check {
        /// Benchmark directory (or the contract file itself).
        #[arg(default_value = ".")]
        benchmark: PathBuf,
    },
    /// Manage research programs.
    #[command(subcommand)]
    Program(ProgramCmd),
    /// Run a program's keep/revert loop.
    Run {
        program: String,
        /// Stop after this many new attempts (without it, the loop never stops by itself;
        /// Ctrl-C finishes the attempt in flight, a second Ctrl-C cancels the run in flight).
        #[arg(long, short = 'n')]
        max_attempts: Option<u64>,
        /// Start no new attempt once this many runs have been spent (a compute budget).
        #[arg(long)]
        max_runs: Option<u64>,
        /// Proposals to keep ready ahead of the runs: the agent thinks while runs execute.
        #[arg(long, default_value_t = 0)]
        pipeline: usize,
        /// Seeds of one attempt (a baseline's, a candidate's verification) to run at once.
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// Print one line per event instead of a progress bar.
        #[arg(long)]
        plain: bool,
    },
    /// Stop a queued or running run: the request is recorded in the store and the loop or
    /// coordinator running it stops it within about a second; its seed is not run again.
    Cancel {
        /// The run's id (see `picidae show` or the cockpit).
        run: i64,
    },
    /// Print the results table.
    Results {
        #[arg(long, short)]
        program: Option<String>,
        #[arg(long)]
        json: bool,
        /// Show only the last N attempts.
        #[arg(long)]
        last: Option<usize>,
        /// Print hypotheses on one line each instead of wrapping them at 60 characters.
        #[arg(long)]
        full: bool,
    },
    /// Show one attempt: hypothesis, runs with every metric, and its diff.
    Show {
        program: String,
        seq: i64,
        /// The attempt, its runs, its finding and its diff as JSON, without hidden-evaluator
        /// results or files (safe to hand to an agent).
        #[arg(long)]
        json: bool,
    },
    /// Act on one attempt.
    #[command(subcommand)]
    Attempt(AttemptCmd),
    /// Export results in other tools' formats.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Import results from other tools' formats.
    #[command(subcommand)]
    Import(ImportCmd),
    /// List, show and retract findings (validated claims with their evidence).
    Findings {
        #[command(subcommand)]
        command: Option<FindingsCmd>,
        #[arg(long, short)]
        program: Option<String>,
        /// Only findings in this state (candidate, verifying, validated, refuted, retracted).
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check programs' store records against each other and against their git refs (attempt,
    /// frontier and base refs, commits, decisions, runs, findings, frontier); `--repair`
    /// restores refs from the store.
    Fsck(fsck::FsckArgs),
    /// Query what was tried and what happened.
    #[command(subcommand)]
    Memory(MemoryCmd),
    /// Write a Markdown report: ranked findings with evidence, refuted ideas, suspicions.
    Report {
        #[arg(long, short)]
        program: String,
        /// Output file (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// The hidden evaluator.
    #[command(subcommand)]
    Evaluator(EvaluatorCmd),
    /// Run every active program at once on a shared pool of slots (the coordinator).
    Serve {
        /// Runs that may execute at the same time.
        #[arg(long, default_value_t = 1)]
        slots: usize,
        /// Address of the HTTP API (reads open, mutations need a token from `picidae token create`).
        #[arg(long, default_value = "127.0.0.1:7420")]
        listen: String,
        /// Do not serve the HTTP API.
        #[arg(long)]
        no_api: bool,
        /// Proposals each program keeps ready ahead of free slots (0: propose, then run).
        #[arg(long, default_value_t = 2)]
        pipeline: usize,
        #[command(flatten)]
        capacity: serve::CapacityArgs,
    },
    /// API tokens for mutating calls.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Move the project's store to another backend.
    #[command(subcommand)]
    Migrate(migrate::MigrateCmd),
    /// Serve Picidae's memory to coding agents over MCP (stdio) until the client disconnects.
    ///
    /// Tools: search_memory, get_attempt, list_findings, frontier. Register it with an agent,
    /// e.g. `claude mcp add picidae -- picidae --project DIR mcp`.
    Mcp,
    /// What a program's agent is given.
    #[command(subcommand)]
    Agent(agents::AgentCmd),
    /// Run the bundled example benchmark end to end: a fresh project, a sweep program, 30
    /// attempts, and the improvement found.
    Demo(demo::DemoArgs),
}

#[derive(Subcommand)]
enum FindingsCmd {
    /// One finding with its evidence and history.
    Show { id: i64 },
    /// Retract a validated finding (the frontier moves back if it held it).
    Retract {
        id: i64,
        #[arg(long)]
        reason: String,
    },
    /// Sign off a validated finding (recorded in its history; it stays validated).
    Approve {
        id: i64,
        /// What the approval rests on, kept with it.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand)]
enum MemoryCmd {
    /// Full-text search over hypotheses, diffs, files, symbols and parameters, with outcomes.
    Search {
        query: String,
        #[arg(long, short)]
        program: Option<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Attempts like a given one.
    Similar {
        program: String,
        seq: i64,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// A short answer for a prompt: how often ideas like this were tried, and how they went.
    Summary {
        query: String,
        #[arg(long, short)]
        program: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Rebuild the index and dedup keys of every attempt from git.
    Reindex,
}

#[derive(Subcommand)]
enum EvaluatorCmd {
    /// Run the evaluator on the contract's gold cases and report agreement.
    Calibrate {
        #[arg(long, short)]
        program: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token; its secret is printed once.
    Create {
        name: String,
        /// Reads only: the token cannot pause, re-weight, budget or queue ideas.
        #[arg(long)]
        read_only: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum ProgramCmd {
    /// Create a program: benchmark + program.md + agent + policy.
    Create(CreateArgs),
    /// List programs with their frontier.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Pause a program: its attempt in flight finishes, no new one starts.
    Pause { name: String },
    /// Resume a paused program.
    Resume { name: String },
    /// Change a program's fair-share weight or run budget while it runs.
    Set {
        name: String,
        #[arg(long)]
        weight: Option<f64>,
        /// No new attempt starts once the program has used this many runs.
        #[arg(long)]
        max_runs: Option<i64>,
        /// Remove the run budget.
        #[arg(long, conflicts_with = "max_runs")]
        no_max_runs: bool,
        #[command(flatten)]
        cost: serve::CostBudgetArgs,
    },
    /// Queue an idea for the program's next agent turn.
    Followup { name: String, text: String },
    /// Delete a program: its attempts, runs, findings and memory rows in the store, its run
    /// and attempt files under `.picidae/`, and its `refs/picidae/NAME/` refs. Refused while
    /// its loop runs.
    Delete { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum AgentKind {
    /// The built-in parameter sweep (no LLM).
    Sweep,
    /// Any command run in the attempt's checkout (`--agent-command`).
    Command,
    /// Claude Code: your own `claude` CLI and Anthropic key or login.
    Claude,
    /// Codex: your own `codex` CLI and OpenAI key or login.
    Codex,
    /// Aider: your own `aider` CLI and model API key.
    Aider,
}

#[derive(Args)]
struct CreateArgs {
    name: String,
    /// Benchmark directory (inside a git repository, with a picidae.toml).
    #[arg(long, short)]
    benchmark: PathBuf,
    #[arg(long, value_enum, default_value = "sweep")]
    agent: AgentKind,
    /// For `--agent command`: the command to run in the attempt's checkout.
    #[arg(long = "agent-command")]
    agent_command: Option<String>,
    /// For `--agent command|claude|codex|aider`: seconds before the agent is killed (default:
    /// 600 for a command; 1800 for claude and codex, 900 for aider).
    #[arg(long)]
    agent_timeout: Option<f64>,
    /// For `--agent claude|codex|aider`: an extra argument for the CLI, e.g.
    /// `--agent-arg=--model --agent-arg=sonnet` (repeatable).
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    agent_args: Vec<String>,
    /// For `--agent sweep`: how the next point is chosen (`random`, or `tpe`: a Tree-structured
    /// Parzen Estimator over the program's history).
    #[arg(long, default_value = "random")]
    sampler: Sampler,
    /// For `--agent sweep`: the random seed of the sampler.
    #[arg(long, default_value_t = 0)]
    sweep_seed: u64,
    /// Direction for the agent (default: the benchmark's program.md).
    #[arg(long)]
    program_md: Option<PathBuf>,
    /// Where runs execute: `local`; Slurm batch jobs: `slurm` or `slurm:PARTITION`; an SSH
    /// host: `ssh://USER@HOST[:PORT]/REMOTE/ROOT[?identity=KEY_FILE&option=NAME=VALUE]`; a
    /// container per run: `docker:IMAGE` or `podman:IMAGE` (`[?host=DAEMON_ADDRESS]`).
    #[arg(long, default_value = "local")]
    executor: String,
    /// Seeds per attempt (overrides the contract's policy).
    #[arg(long)]
    seeds: Option<u32>,
    /// Seeds for the baseline (overrides the contract's policy).
    #[arg(long)]
    baseline_seeds: Option<u32>,
    /// Minimum improvement of the primary metric to keep an attempt.
    #[arg(long)]
    min_improvement: Option<f64>,
    /// False-discovery rate for findings (Benjamini–Hochberg q threshold).
    #[arg(long)]
    alpha: Option<f64>,
}

#[derive(Subcommand)]
enum ExportCmd {
    /// autoresearch's results.tsv (commit, primary metric, memory_gb, status, description).
    ResultsTsv {
        #[arg(long, short)]
        program: String,
        /// Output file (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Name the metric column `val_bpb`, as autoresearch does, instead of after the
        /// program's primary metric.
        #[arg(long)]
        autoresearch_header: bool,
    },
}

#[derive(Subcommand)]
enum AttemptCmd {
    /// Verify an attempt's change again: the program's next proposal, before its agent's turn,
    /// replays the change onto the current frontier and verifies it under the program's
    /// policy. Only an attempt whose finding was refuted for lack of power or because a seed
    /// failed may be retried. (A program created with more `--seeds` re-verifies a
    /// lack-of-power idea by itself: its memory does not call it a duplicate.)
    Retry { program: String, seq: i64 },
}

#[derive(Subcommand)]
enum ImportCmd {
    /// Read an autoresearch results.tsv into a program's history.
    ResultsTsv {
        file: PathBuf,
        #[arg(long, short)]
        program: String,
    },
    /// Read an autoresearch session: its branch's commits joined with its results.tsv (rows of
    /// commits reset away are imported too). Re-importing adds nothing.
    Autoresearch {
        #[arg(long, short)]
        program: String,
        /// A directory in the session's git work tree.
        #[arg(long)]
        repo: PathBuf,
        /// The session branch (default: HEAD).
        #[arg(long)]
        branch: Option<String>,
        /// Skip commits reachable from this revision (default: the program's base commit, when
        /// the repository has it).
        #[arg(long)]
        since: Option<String>,
        /// The session's results.tsv (default: DIR/results.tsv, when present).
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Rewrite an autoresearch-style program.md so its instructions match what Picidae does
    /// (branch, commit, run, read run.log, results.tsv, keep/revert, timeout, loop forever);
    /// everything else is kept byte for byte. Each rewrite is listed on stderr. Needs no
    /// project.
    ProgramMd {
        file: PathBuf,
        /// Write the result here (may be FILE itself; default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Read pi-autoresearch's log (.auto/log.jsonl, formerly autoresearch.jsonl): one attempt
    /// per result line. Any bad line rejects the whole file.
    PiLog {
        file: PathBuf,
        #[arg(long, short)]
        program: String,
        /// Import only this segment (0-based; a segment starts at each config header).
        #[arg(long)]
        segment: Option<usize>,
        /// Resolve abbreviated commits to full shas in this repository.
        #[arg(long)]
        repo: Option<PathBuf>,
    },
}

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

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init { dir, store } => {
            let dir = cli.project.clone().unwrap_or(dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let p = Project::init_with_store(&dir, store.as_deref())?;
            println!(
                "initialised Picidae project in {} (store: {} {})",
                p.dir().display(),
                p.store.backend().as_str(),
                picidae_store::redact_url(&p.store_location())
            );
            exclude_project_dir(&p.dir());
        }
        Command::Check { benchmark } => return check(&benchmark),
        Command::Program(ProgramCmd::Create(args)) => {
            let mut project = open_project(&cli.project)?;
            let agent = match args.agent {
                AgentKind::Sweep => AgentSpec::Sweep {
                    sampler: args.sampler,
                    seed: args.sweep_seed,
                },
                AgentKind::Command => AgentSpec::Command {
                    command: args
                        .agent_command
                        .clone()
                        .context("--agent command needs --agent-command '<command line>'")?,
                    timeout_secs: args.agent_timeout.unwrap_or(600.0),
                },
                AgentKind::Claude => {
                    agents::adapter_spec(AdapterKind::Claude, args.agent_timeout, &args.agent_args)
                }
                AgentKind::Codex => {
                    agents::adapter_spec(AdapterKind::Codex, args.agent_timeout, &args.agent_args)
                }
                AgentKind::Aider => {
                    agents::adapter_spec(AdapterKind::Aider, args.agent_timeout, &args.agent_args)
                }
            };
            if args
                .agent_timeout
                .is_some_and(|t| !(t.is_finite() && t > 0.0))
            {
                bail!("--agent-timeout must be a positive number of seconds");
            }
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
                },
            )?;
            project
                .store
                .set_program_executor(&p.name, &serde_json::to_value(&executor)?)?;
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
        Command::Program(ProgramCmd::Set {
            name,
            weight,
            max_runs,
            no_max_runs,
            cost,
        }) => {
            serve::set(
                &mut open_project(&cli.project)?,
                &name,
                weight,
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
            capacity,
        } => {
            let project = open_project(&cli.project)?;
            let root = project.root().to_path_buf();
            drop(project);
            serve::run(
                &root,
                (slots, pipeline),
                capacity.resolve()?,
                (!no_api).then_some(listen.as_str()),
            )?;
        }
        Command::Token(cmd) => {
            let mut project = open_project(&cli.project)?;
            match cmd {
                TokenCmd::Create { name, read_only } => {
                    let (t, secret) = project.store.create_token(&name, read_only)?;
                    println!(
                        "token {} ({}{})",
                        t.id,
                        t.name,
                        if t.read_only { ", read-only" } else { "" }
                    );
                    println!("{secret}");
                    eprintln!("keep the secret: it is not stored and cannot be shown again");
                }
                TokenCmd::List => {
                    for t in project.store.tokens()? {
                        println!(
                            "{}\t{}\t{}\t{}",
                            t.id,
                            t.name,
                            if t.read_only {
                                "read-only"
                            } else {
                                "read-write"
                            },
                            if t.revoked { "revoked" } else { "active" }
                        );
                    }
                }
                TokenCmd::Revoke { id } => {
                    project.store.revoke_token(id)?;
                    println!("token {id} revoked");
                }
            }
        }
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
        Command::Demo(args) => demo::run(args)?,
        Command::Attempt(AttemptCmd::Retry { program, seq }) => {
            let mut project = open_project(&cli.project)?;
            let author = std::env::var("USER").unwrap_or_else(|_| "cli".into());
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

fn check(benchmark: &Path) -> Result<ExitCode> {
    match Contract::load(benchmark) {
        Ok(mut c) => {
            picidae_sched::contract_source::apply_sandbox_defaults(&mut c);
            println!("{}: ok", c.name);
            let measured = c
                .run
                .budget_metric
                .as_ref()
                .map(|m| format!(" of {m} as the run reports it"))
                .unwrap_or_default();
            println!(
                "  run:      {} (budget {:.1}s{measured}, timeout {:.1}s, grace {:.1}s)",
                c.run.command,
                c.run.time_budget.as_secs_f64(),
                c.run.timeout.as_secs_f64(),
                c.run.grace.as_secs_f64()
            );
            println!("  editable: {}", c.boundary.editable.join(", "));
            let p = c.primary();
            println!("  primary:  {} ({})", p.name, p.goal);
            println!(
                "  metrics:  {}",
                c.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            if !c.params.is_empty() {
                println!(
                    "  params:   {}",
                    c.params
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            println!(
                "  policy:   seeds {}, baseline seeds {}",
                c.policy.seeds, c.policy.baseline_seeds
            );
            if let Some(h) = &c.hidden {
                println!("  hidden:   {} → {}", h.command, h.metrics.join(", "));
                println!(
                    "  guards:   {}",
                    if c.policy.verifies() {
                        format!(
                            "every kept attempt: a candidate the visible evidence validates over {} seeds is kept only if the hidden evaluator agrees",
                            c.policy.seeds
                        )
                    } else {
                        "every kept attempt: at one seed, a run that beats the frontier is kept only if the hidden evaluator agrees on it against the frontier's runs".to_string()
                    }
                );
            }
            let on = |b: bool| if b { "sandboxed" } else { "not sandboxed" };
            println!(
                "  sandbox:  runs {}, command agents {}",
                on(c.run.sandbox),
                on(c.boundary.sandbox_agents)
            );
            if let Some(exposed) = picidae_sched::contract_source::exposure(&c) {
                println!("  warning:  {exposed}");
            }
            let dir = match benchmark.parent() {
                _ if benchmark.is_dir() => benchmark,
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let files = benchmark_files(dir);
            for glob in c.boundary.unmatched_globs(&files) {
                println!(
                    "  warning:  boundary.editable glob {glob:?} matches no file of the benchmark"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            let n = e.issues().len();
            if n > 0 {
                eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
            }
            Ok(ExitCode::FAILURE)
        }
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

/// The files under a benchmark directory, relative to it and `/`-separated; git's and
/// Picidae's own directories left out, links not followed.
fn benchmark_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            match entry.file_type() {
                Ok(t) if t.is_dir() => {
                    if name != ".git" && name != picidae_sched::project::PROJECT_DIR {
                        pending.push((entry.path(), rel));
                    }
                }
                Ok(_) => files.push(rel),
                Err(_) => {}
            }
        }
    }
    files
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
        let stop = opts.stop.clone();
        let cancel = opts.cancel.clone();
        // Installing twice (demo then run) is impossible in one process; ignore the error.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                cancel.store(true, Ordering::SeqCst);
                eprintln!("\npicidae: cancelling the run in flight");
            } else {
                eprintln!(
                    "\npicidae: stopping after the attempt in flight (Ctrl-C again to cancel it)"
                );
            }
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
