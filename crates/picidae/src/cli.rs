//! The command line: every verb, its flags and its help, as clap parses them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use picidae_agent::sweep::Sampler;

use crate::{agents, arena, demo, fsck, migrate, serve};

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
pub(crate) struct Cli {
    /// Project directory (default: the nearest directory at or above the current one that
    /// holds `.picidae/`).
    #[arg(long, global = true, env = "PICIDAE_PROJECT")]
    pub(crate) project: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// This project's own clone of a benchmark that programs in the shared store recorded
        /// at another path (another machine's): `RECORDED=LOCAL`, repeatable. Commits travel
        /// between clones through the store. Written to `.picidae/benchmarks.toml`.
        #[arg(long = "clone", value_name = "RECORDED=LOCAL")]
        clones: Vec<String>,
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
        /// How long a remote worker keeps a run without a heartbeat before it is offered
        /// again, in seconds.
        #[arg(long, default_value_t = 30.0, value_name = "SECS")]
        worker_lease: f64,
        /// Reads need a token too (a read-only or write token; a worker's or a contributor's
        /// is refused). A hub open to contributors needs it: attempts hold their patches.
        #[arg(long)]
        private_reads: bool,
        #[command(flatten)]
        capacity: serve::CapacityArgs,
    },
    /// Run a coordinator's runs on this machine, talking to it only over its HTTP API (for
    /// programs whose executor is `workers` or `workers:POOL`).
    Worker(crate::worker::WorkerArgs),
    /// Send a change to a hub's open program as a contribution (a contributor token).
    Submit(crate::submit::SubmitArgs),
    /// Make a local repository of a hub's open program's frontier, without its hidden files.
    Fetch(crate::submit::FetchArgs),
    /// Research a hub's open program on your own machine and budget: fetch its frontier,
    /// run your agent there, and submit each attempt you keep as a claim.
    Contribute(crate::contribute::ContributeArgs),
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
    /// program.md files against each other: one program per entry and trial under the same
    /// budget, ranked by true (hidden-evaluator) gain per run or GPU-hour.
    #[command(subcommand)]
    Arena(arena::ArenaCmd),
    /// Run the bundled example benchmark end to end: a fresh project, a sweep program, 30
    /// attempts, and the improvement found.
    Demo(demo::DemoArgs),
}

#[derive(Subcommand)]
pub(crate) enum FindingsCmd {
    /// One finding with its evidence and history.
    Show { id: i64 },
    /// Retract a validated finding (the frontier moves back if it held it).
    Retract {
        id: i64,
        #[arg(long)]
        reason: String,
    },
    /// Re-measure a program's kept chain on fresh seeds, and remove each kept change from the
    /// frontier in turn (ablation): which changes still carry the gain.
    Recheck {
        program: String,
        /// Fresh seeds per commit (at least 2).
        #[arg(long, default_value_t = 5)]
        seeds: i64,
        /// The first fresh seed (the loop itself never uses seeds this high).
        #[arg(long, default_value_t = 1000)]
        first_seed: i64,
        /// Only re-measure the chain; no ablation.
        #[arg(long)]
        no_ablation: bool,
        /// Seeds of one commit to run at once.
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        #[arg(long)]
        json: bool,
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
pub(crate) enum MemoryCmd {
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
    /// Program.md files of every arena with how they did (rank, true gain per unit of budget,
    /// false keeps), best first: what worked, for whoever writes the next one.
    Programs {
        /// Words the text should contain (every program.md when absent).
        #[arg(default_value = "")]
        query: String,
        /// Only arenas on this benchmark directory.
        #[arg(long, short)]
        benchmark: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the index and dedup keys of every attempt from git.
    Reindex,
}

#[derive(Subcommand)]
pub(crate) enum EvaluatorCmd {
    /// Run the evaluator on the contract's gold cases and report agreement.
    Calibrate {
        #[arg(long, short)]
        program: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Create a token; its secret is printed once.
    Create {
        name: String,
        /// Reads only: the token cannot pause, re-weight, budget or queue ideas.
        #[arg(long, conflicts_with_all = ["worker", "contributor"])]
        read_only: bool,
        /// A worker's token (`picidae worker --token`): it may take runs and report them,
        /// nothing else.
        #[arg(long, conflicts_with = "contributor")]
        worker: bool,
        /// A contributor's token: it may read open programs' public frontiers and
        /// leaderboards and submit contributions, nothing else.
        #[arg(long)]
        contributor: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
pub(crate) enum ProgramCmd {
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
    /// Open a program to contributors: they submit what they kept, the program's loop
    /// verifies it before it counts.
    Open {
        name: String,
        /// Runs each contributor's verifications may spend (queued claims count one each).
        #[arg(long)]
        quota_runs: Option<i64>,
        /// GPU-hours each contributor's verifications may spend.
        #[arg(long)]
        quota_gpu_hours: Option<f64>,
        /// Dollars each contributor's verifications may spend: their GPU-hours at the
        /// program's `--gpu-hour-usd` price.
        #[arg(long)]
        quota_usd: Option<f64>,
        /// The largest patch accepted, in KiB.
        #[arg(long, default_value_t = 64)]
        max_patch_kb: i64,
    },
    /// Close a program to new contributions (those queued are still verified).
    Close { name: String },
    /// Change a program's fair-share weight, concurrency or budgets while it runs.
    Set {
        name: String,
        #[arg(long)]
        weight: Option<f64>,
        /// Attempts of the program in flight at once.
        #[arg(long)]
        concurrency: Option<u32>,
        /// Where its runs execute from its loop's next start (as `program create
        /// --executor`: local, slurm[:PARTITION], ssh://…, docker:IMAGE, ray://HEAD:PORT,
        /// skypilot[:CLUSTER][?…], workers[:POOL]).
        #[arg(long)]
        executor: Option<String>,
        /// Where screen-stage runs (the contract's `[screen]`) execute, when elsewhere than
        /// the other runs: a cheaper executor class, as `--executor` spells one.
        #[arg(long)]
        screen_executor: Option<String>,
        /// Screen-stage runs execute where the other runs do again.
        #[arg(long, conflicts_with = "screen_executor")]
        no_screen_executor: bool,
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
pub(crate) enum AgentKind {
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

/// Which agent proposes changes, and how it is run (`program create`, `arena create`).
#[derive(Args, Clone)]
pub(crate) struct AgentArgs {
    #[arg(long, value_enum, default_value = "sweep")]
    pub(crate) agent: AgentKind,
    /// For `--agent command`: the command to run in the attempt's checkout.
    #[arg(long = "agent-command")]
    pub(crate) agent_command: Option<String>,
    /// For `--agent command|claude|codex|aider`: seconds before the agent is killed (default:
    /// 600 for a command; 1800 for claude and codex, 900 for aider).
    #[arg(long)]
    pub(crate) agent_timeout: Option<f64>,
    /// For `--agent claude|codex|aider`: an extra argument for the CLI, e.g.
    /// `--agent-arg=--model --agent-arg=sonnet` (repeatable).
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    pub(crate) agent_args: Vec<String>,
    /// For `--agent sweep`: how the next point is chosen (`random`, or `tpe`: a Tree-structured
    /// Parzen Estimator over the program's history).
    #[arg(long, default_value = "random")]
    pub(crate) sampler: Sampler,
    /// For `--agent sweep`: the random seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub(crate) sweep_seed: u64,
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    pub(crate) name: String,
    /// Benchmark directory (inside a git repository, with a picidae.toml).
    #[arg(long, short)]
    pub(crate) benchmark: PathBuf,
    #[command(flatten)]
    pub(crate) agent: AgentArgs,
    /// Direction for the agent (default: the benchmark's program.md).
    #[arg(long)]
    pub(crate) program_md: Option<PathBuf>,
    /// Where runs execute: `local`; Slurm batch jobs: `slurm` or `slurm:PARTITION`; an SSH
    /// host: `ssh://USER@HOST[:PORT]/REMOTE/ROOT[?identity=KEY_FILE&option=NAME=VALUE]`; a
    /// container per run: `docker:IMAGE` or `podman:IMAGE` (`[?host=DAEMON_ADDRESS]`); a
    /// Ray cluster's Jobs API: `ray://HEAD:PORT`; SkyPilot tasks:
    /// `skypilot[:CLUSTER][?gpu=TYPE&cloud=NAME&region=NAME&spot=1]`; remote workers:
    /// `workers` or `workers:POOL`.
    #[arg(long, default_value = "local")]
    pub(crate) executor: String,
    /// Where screen-stage runs (the contract's `[screen]`) execute, when elsewhere: a
    /// cheaper executor class, as `--executor` spells one.
    #[arg(long)]
    pub(crate) screen_executor: Option<String>,
    /// Seeds per attempt (overrides the contract's policy).
    #[arg(long)]
    pub(crate) seeds: Option<u32>,
    /// Seeds for the baseline (overrides the contract's policy).
    #[arg(long)]
    pub(crate) baseline_seeds: Option<u32>,
    /// Minimum improvement of the primary metric to keep an attempt.
    #[arg(long)]
    pub(crate) min_improvement: Option<f64>,
    /// False-discovery rate for findings (Benjamini–Hochberg q threshold).
    #[arg(long)]
    pub(crate) alpha: Option<f64>,
    /// Attempts of the program in flight at once (overrides the contract's policy; each run
    /// still holds its own slot).
    #[arg(long)]
    pub(crate) concurrency: Option<u32>,
}

#[derive(Subcommand)]
pub(crate) enum ExportCmd {
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
pub(crate) enum AttemptCmd {
    /// Verify an attempt's change again: the program's next proposal, before its agent's turn,
    /// replays the change onto the current frontier and verifies it under the program's
    /// policy. Only an attempt whose finding was refuted for lack of power or because a seed
    /// failed may be retried. (A program created with more `--seeds` re-verifies a
    /// lack-of-power idea by itself: its memory does not call it a duplicate.)
    Retry { program: String, seq: i64 },
}

#[derive(Subcommand)]
pub(crate) enum ImportCmd {
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
