//! `picidae arena`: program.md files run against each other on one benchmark under one
//! budget (create, run, show, list). The programs, clones and scoring are
//! `picidae_sched::arena`'s; this module reads the command line, interleaves the entries'
//! loops and prints the ranking.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use picidae_agent::AgentSpec;
use picidae_core::params::{format_interval, format_number};
use picidae_sched::arena::{create_arena, score_arena, ArenaOptions, ArenaScore, EntrySpec};
use picidae_sched::{ExecutorSpec, Project, Shutdown};
use picidae_store::ArenaBudget;

use crate::cli::AgentArgs;

mod entries;

#[derive(Subcommand)]
pub(crate) enum ArenaCmd {
    /// Make an arena: one program per entry and trial, each on its own clone of the
    /// benchmark, with the same agent, executor, policy and budget.
    Create(ArenaCreateArgs),
    /// Run the arena's programs in rounds, one attempt of each per round (every entry and
    /// trial in turn), until every one has spent its budget.
    Run {
        name: String,
        /// Programs whose attempts run at once within a round (each on its own connection
        /// and checkout); a round still ends only when every program has had its turn.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        parallel: u32,
    },
    /// Score the entries on the hidden evaluator (fresh seeds) and rank them by true gain per
    /// unit of budget, with a 95% interval over trials, their false keeps and their spend.
    Show {
        name: String,
        /// Fresh seeds per measured commit (measured once, then read from the store).
        #[arg(long, default_value_t = 5)]
        seeds: u32,
        #[arg(long)]
        json: bool,
    },
    /// The arena as a Markdown record: its setup, the ranking with its evidence, every
    /// trial, and each entry's program.md.
    Report {
        name: String,
        /// Fresh seeds per commit not measured yet.
        #[arg(long, default_value_t = 5)]
        seeds: u32,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// The meta-loop: ask an agent for a better program.md, given every entry's text and
    /// score, and enter it into the arena (one program per trial, the same settings and
    /// budget); `arena run` then runs it.
    Evolve {
        name: String,
        /// Any command: it gets the prompt on stdin and in `$PICIDAE_PROMPT_FILE`, and prints
        /// the new program.md on stdout.
        #[arg(long = "agent-command")]
        agent_command: String,
        /// The new entry's label (default: `genN`).
        #[arg(long)]
        label: Option<String>,
        /// Seconds before the command is killed.
        #[arg(long, default_value_t = 900.0)]
        timeout: f64,
        /// Fresh seeds per commit not measured yet (for the scores it is shown).
        #[arg(long, default_value_t = 5)]
        seeds: u32,
    },
    /// The project's arenas.
    List,
}

#[derive(Args)]
pub(crate) struct ArenaCreateArgs {
    name: String,
    /// Benchmark directory (inside a git repository, with a picidae.toml).
    #[arg(long, short)]
    benchmark: PathBuf,
    /// An entry: `LABEL=PATH` of its program.md (repeat; two entries at least, with
    /// `--entries`).
    #[arg(long = "entry", required_unless_present = "entries_file")]
    entries: Vec<String>,
    /// A TOML file of entries that may also differ in agent or policy (`[[entry]]` with
    /// `label`, `program_md` and optional `agent` and `policy` tables; see docs/arena.md).
    #[arg(long = "entries")]
    entries_file: Option<PathBuf>,
    #[command(flatten)]
    agent: AgentArgs,
    /// Where runs execute (as `program create --executor`); the same for every entry.
    #[arg(long, default_value = "local")]
    executor: String,
    /// Budget of each program in runs.
    #[arg(
        long,
        conflicts_with = "budget_gpu_hours",
        required_unless_present = "budget_gpu_hours"
    )]
    budget_runs: Option<u32>,
    /// Budget of each program in GPU-hours.
    #[arg(long)]
    budget_gpu_hours: Option<f64>,
    /// Programs per entry (independent trials, for the interval).
    #[arg(long, default_value_t = 3)]
    trials: u32,
    /// Seeds per attempt and for the baseline (override the contract's policy).
    #[arg(long)]
    seeds: Option<u32>,
    #[arg(long)]
    baseline_seeds: Option<u32>,
}

pub(crate) fn run(project: &mut Project, cmd: ArenaCmd) -> Result<()> {
    match cmd {
        ArenaCmd::Create(args) => create(project, args),
        ArenaCmd::Run { name, parallel } => run_arena(project, &name, parallel as usize),
        ArenaCmd::Show { name, seeds, json } => {
            let score = score_arena(project, &name, i64::from(seeds.max(1)), &mut |m| {
                eprintln!("picidae: {m}")
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&score)?);
            } else {
                print_score(&score);
            }
            Ok(())
        }
        ArenaCmd::Report {
            name,
            seeds,
            output,
        } => {
            let score = score_arena(project, &name, i64::from(seeds.max(1)), &mut |m| {
                eprintln!("picidae: {m}")
            })?;
            let texts = entry_texts(project, score.arena.id)?;
            let md = markdown(&score, &texts);
            match output {
                Some(path) => std::fs::write(&path, md)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{md}"),
            }
            Ok(())
        }
        ArenaCmd::Evolve {
            name,
            agent_command,
            label,
            timeout,
            seeds,
        } => evolve(project, &name, (&agent_command, timeout), label, seeds),
        ArenaCmd::List => {
            for a in project.store.arenas()? {
                println!(
                    "{}\t{} {} per program\t{} trial(s)\t{}",
                    a.name,
                    a.budget,
                    a.budget_kind.as_str(),
                    a.trials,
                    a.benchmark_dir
                );
            }
            Ok(())
        }
    }
}

fn create(project: &mut Project, args: ArenaCreateArgs) -> Result<()> {
    let mut entries = Vec::new();
    for e in &args.entries {
        let (label, path) = e
            .split_once('=')
            .with_context(|| format!("--entry {e:?}: expected LABEL=PATH"))?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--entry {label}: reading {path}"))?;
        entries.push(EntrySpec::text(label, &text));
    }
    if let Some(file) = &args.entries_file {
        entries.extend(entries::read(file)?);
    }
    let agent = crate::agents::agent_spec(&args.agent)?;
    crate::agents::warn_if_missing(&agent);
    let executor =
        ExecutorSpec::parse(&args.executor).map_err(|e| anyhow::anyhow!("--executor {e}"))?;
    let budget = match (args.budget_runs, args.budget_gpu_hours) {
        (Some(r), None) => (ArenaBudget::Runs, f64::from(r)),
        (None, Some(h)) => (ArenaBudget::GpuHours, h),
        _ => bail!("give one budget: --budget-runs or --budget-gpu-hours"),
    };
    let arena = create_arena(
        project,
        &ArenaOptions {
            name: args.name.clone(),
            benchmark: args.benchmark.clone(),
            entries,
            agent,
            executor,
            budget,
            trials: args.trials,
            seeds: args.seeds,
            baseline_seeds: args.baseline_seeds,
        },
    )?;
    let n = project.store.arena_entries(arena.id)?.len();
    println!(
        "arena {}: {n} programs ({} entries × {} trials), {} {} each",
        arena.name,
        n / arena.trials.max(1) as usize,
        arena.trials,
        arena.budget,
        arena.budget_kind.as_str()
    );
    Ok(())
}

/// One round: a turn of every program in `programs`, `parallel` at a time, each worker with
/// its own connection to the project. Returns the programs that used a run (in their order).
fn parallel_round(
    root: &std::path::Path,
    programs: &[String],
    parallel: usize,
    shutdown: &Shutdown,
) -> Result<Vec<String>> {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..programs.len()).collect());
    let done: Mutex<Vec<(usize, Result<bool>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..parallel.min(programs.len()) {
            s.spawn(|| {
                let mut project = match Project::open(root) {
                    Ok(p) => p,
                    Err(e) => {
                        let i = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                        if let Some(i) = i {
                            done.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((i, Err(e.into())));
                        }
                        return;
                    }
                };
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some(i) = next else { break };
                    if shutdown.draining() {
                        break;
                    }
                    let used = crate::turn::one_attempt(&mut project, &programs[i], shutdown);
                    done.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, used));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    let mut still = Vec::new();
    for (i, used) in done {
        if used.with_context(|| format!("program {}", programs[i]))? {
            still.push(programs[i].clone());
        }
    }
    Ok(still)
}

/// Every program of the arena, one attempt each per round, until none can go on: no entry
/// gets an earlier start or more turns than another (with `parallel` > 1 a round's turns
/// overlap, and the next round starts when all of them are done).
fn run_arena(project: &mut Project, name: &str, parallel: usize) -> Result<()> {
    let arena = project
        .store
        .arena(name)?
        .with_context(|| format!("no arena {name:?}"))?;
    let mut programs: Vec<String> = Vec::new();
    // Trial by trial, entries in their order: the order the programs were made.
    let mut entries = project.store.arena_entries(arena.id)?;
    entries.sort_by_key(|e| e.program_id);
    for e in &entries {
        programs.push(project.store.program_by_id(e.program_id)?.name);
    }
    let shutdown = Shutdown::new();
    {
        let s = shutdown.clone();
        let _ = ctrlc::set_handler(move || {
            s.escalate();
            eprintln!("\npicidae: stopping the arena after the attempt in flight");
        });
    }
    let mut active = programs.clone();
    let mut round = 0;
    while !active.is_empty() && !shutdown.draining() {
        round += 1;
        let mut still = Vec::new();
        if parallel > 1 {
            still = parallel_round(project.root(), &active, parallel, &shutdown)?;
        } else {
            for p in &active {
                if shutdown.draining() {
                    break;
                }
                if crate::turn::one_attempt(project, p, &shutdown)? {
                    still.push(p.clone());
                }
            }
        }
        let used: Vec<String> = programs
            .iter()
            .map(|p| {
                let s = project
                    .store
                    .program(p)
                    .and_then(|x| project.store.program_spend(x.id));
                format!("{p} {}", s.map_or(0, |s| s.runs))
            })
            .collect();
        println!("round {round}: runs used — {}", used.join(", "));
        active = still;
    }
    println!(
        "arena {name}: every program has spent its budget; `picidae arena show {name}` scores them"
    );
    Ok(())
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format_number(v, false))
}

fn print_score(s: &ArenaScore) {
    println!(
        "arena {}: true gain per {} ({} on {} fresh seeds{}), best first",
        s.arena.name,
        s.per,
        s.truth_metric,
        s.seeds,
        if s.hidden {
            ", hidden evaluator"
        } else {
            "; no hidden evaluator: the visible metric"
        }
    );
    for (rank, e) in s.entries.iter().enumerate() {
        let interval =
            format_interval(e.rate_low, e.rate_high).map_or(String::new(), |i| format!(" {i}"));
        println!(
            "{}. {}\t{}{}\tfalse keeps {}/{}\t{} runs, {:.2} GPU-h",
            rank + 1,
            e.label,
            fmt(e.rate),
            interval,
            e.false_keeps,
            e.keeps,
            e.runs,
            e.gpu_hours
        );
        for t in &e.trials {
            println!(
                "     trial {}: {}\tgain {}\t({} → {})\t{} runs",
                t.trial,
                t.program,
                fmt(t.gain),
                fmt(t.base),
                fmt(t.frontier),
                t.runs
            );
        }
    }
}

/// An entry as the record shows it: its program.md and the agent and policy its programs
/// run with.
struct EntryText {
    label: String,
    program_md: String,
    agent: String,
    policy: String,
}

/// Each entry once (from its first program), in label order.
fn entry_texts(project: &Project, arena_id: i64) -> Result<Vec<EntryText>> {
    let mut out: Vec<EntryText> = Vec::new();
    for e in project.store.arena_entries(arena_id)? {
        if out.iter().any(|t| t.label == e.label) {
            continue;
        }
        let p = project.store.program_by_id(e.program_id)?;
        let agent = serde_json::from_value::<AgentSpec>(p.agent.clone())
            .map_or_else(|_| "unreadable".to_string(), |a| a.label());
        let policy = match p.policy.as_object() {
            Some(m) if !m.is_empty() => m
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => "the contract's".to_string(),
        };
        out.push(EntryText {
            label: e.label,
            program_md: e.program_md,
            agent,
            policy,
        });
    }
    Ok(out)
}

/// The arena as a Markdown record.
fn markdown(s: &ArenaScore, texts: &[EntryText]) -> String {
    use std::fmt::Write;
    let a = &s.arena;
    let mut out = String::new();
    let truth = if s.hidden {
        "the hidden evaluator"
    } else {
        "the visible metric (no hidden evaluator)"
    };
    let _ = writeln!(out, "# Arena {}\n", a.name);
    let _ = writeln!(
        out,
        "Benchmark `{}`; {} {} per program; {} trial(s) per entry. Score: true gain of the \
         final frontier over the base commit on {truth} (`{}`, {} fresh seeds), per {}.\n",
        a.benchmark_dir,
        a.budget,
        a.budget_kind.as_str(),
        a.trials,
        s.truth_metric,
        s.seeds,
        s.per
    );
    let _ = writeln!(out, "## Ranking\n");
    let _ = writeln!(
        out,
        "| rank | entry | gain per {} | 95% interval | false keeps | runs | GPU-hours |",
        s.per
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    for (i, e) in s.entries.iter().enumerate() {
        let interval = format_interval(e.rate_low, e.rate_high).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {interval} | {}/{} | {} | {:.2} |",
            i + 1,
            e.label,
            fmt(e.rate),
            e.false_keeps,
            e.keeps,
            e.runs,
            e.gpu_hours
        );
    }
    let _ = writeln!(out, "\n## Trials\n");
    let _ = writeln!(
        out,
        "| entry | trial | program | base | frontier | gain | keeps (false) | runs |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for e in &s.entries {
        for t in &e.trials {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {} | {} | {} ({}) | {} |",
                e.label,
                t.trial,
                t.program,
                fmt(t.base),
                fmt(t.frontier),
                fmt(t.gain),
                t.keeps,
                t.false_keeps,
                t.runs
            );
        }
    }
    let _ = writeln!(out, "\n## Entries\n");
    for t in texts {
        let text = &t.program_md;
        let fence = if text.contains("```") { "~~~~" } else { "```" };
        let _ = writeln!(
            out,
            "### {}\n\nAgent `{}`; policy: {}.\n\n{fence}markdown\n{}\n{fence}\n",
            t.label,
            t.agent,
            t.policy,
            text.trim_end()
        );
    }
    out
}

/// What the meta-agent is asked.
const EVOLVE_PROMPT: &str = "You write program.md files: the research direction an \
autonomous research agent follows on a benchmark. Below is an arena in which several \
program.md files ran under the same budget, scored on the true (hidden-evaluator) gain they \
found per unit of budget, with their false keeps. Write a new program.md that should score \
higher than every entry. Print only the new program.md.\n\n";

fn evolve(
    project: &mut Project,
    name: &str,
    (command, timeout): (&str, f64),
    label: Option<String>,
    seeds: u32,
) -> Result<()> {
    if !(timeout.is_finite() && timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let score = score_arena(project, name, i64::from(seeds.max(1)), &mut |m| {
        eprintln!("picidae: {m}")
    })?;
    let texts = entry_texts(project, score.arena.id)?;
    let label = label.unwrap_or_else(|| {
        let n = (1..)
            .find(|n| !texts.iter().any(|t| t.label == format!("gen{n}")))
            .unwrap_or(1);
        format!("gen{n}")
    });
    let others = picidae_memory::search_program_mds(
        &project.store,
        "",
        Some(&score.arena.benchmark_dir),
        Some(name),
        EVOLVE_MEMORY,
    )?;
    let prompt = format!(
        "{EVOLVE_PROMPT}{}{}",
        markdown(&score, &texts),
        remembered(&others)
    );
    let dir = project.dir().join("arenas").join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let prompt_file = dir.join(format!("evolve-{label}.prompt.md"));
    std::fs::write(&prompt_file, &prompt)
        .with_context(|| format!("writing {}", prompt_file.display()))?;
    let text = ask(command, &prompt, &prompt_file, timeout)?;
    let programs = picidae_sched::arena::add_entry(project, name, &label, &text)?;
    println!(
        "arena {name}: entry {label} added ({}); `picidae arena run {name}` runs it",
        programs.join(", ")
    );
    Ok(())
}

/// Most program.md files of other arenas the meta-agent is shown.
const EVOLVE_MEMORY: usize = 5;

/// The memory's program.md files of other arenas on the benchmark, best placed first.
fn remembered(hits: &[picidae_memory::ProgramMdHit]) -> String {
    use std::fmt::Write;
    if hits.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n## From the memory: program.md files of other arenas on this benchmark\n\n",
    );
    for h in hits {
        let text = h.program_md.trim_end();
        let fence = if text.contains("```") { "~~~~" } else { "```" };
        let _ = writeln!(
            out,
            "### {}\n\n{fence}markdown\n{text}\n{fence}\n",
            h.line()
        );
    }
    out
}

/// Runs the meta-agent's command; its stdout, unfenced, is the new program.md.
fn ask(command: &str, prompt: &str, prompt_file: &std::path::Path, timeout: f64) -> Result<String> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("PICIDAE_PROMPT_FILE", prompt_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin closes it early: not an error.
        let _ = stdin.write_all(prompt.as_bytes());
    }
    let mut stdout = child.stdout.take().context("the command's stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{command:?} did not finish within {timeout} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    let text = unfence(out.trim());
    if text.is_empty() {
        bail!("{command:?} printed no program.md");
    }
    Ok(format!("{text}\n"))
}

/// The text inside one Markdown fence when the whole answer is fenced.
fn unfence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    match (rest.split_once('\n'), rest.strip_suffix("```")) {
        (Some((_, body)), Some(_)) => body.strip_suffix("```").unwrap_or(body).trim(),
        _ => text,
    }
}
