//! `picidae contribute`: a contributor's own research loop against a hub. The first run
//! fetches the open program's public frontier into `DIR/bench` (as `picidae fetch`), makes a
//! project in `DIR` and a program on it with the contributor's agent and executor; every run
//! then makes attempts there, on the contributor's machine and budget, one at a time, and
//! sends what it keeps to the hub as claims, with the value and seeds it was kept at (see
//! [`submit_kept`]: one claim in flight, each starting from the last one the hub verified).
//! What was sent is remembered in `DIR/.picidae/contributed`, so a later run never sends a
//! claim twice. The hub checks and verifies each claim as it would one from `picidae submit`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Repo;
use picidae_sched::{create_program, ExecutorSpec, ProgramOptions, Project, Shutdown};
use picidae_store::AttemptFilter;

use crate::cli::AgentArgs;
use crate::submit::{call, fetch_into, fetched, refused, Hub};

#[derive(clap::Args)]
pub(crate) struct ContributeArgs {
    /// The program on the hub (the local program has the same name).
    program: String,
    /// The hub's API, e.g. `https://hub.example:7420`.
    #[arg(long, env = "PICIDAE_HUB")]
    hub: String,
    /// A contributor token.
    #[arg(long, env = "PICIDAE_CONTRIBUTOR_TOKEN", hide_env_values = true)]
    token: String,
    /// The local project: made on the first run (with the fetched frontier in `DIR/bench`),
    /// gone on with afterwards.
    #[arg(long)]
    dir: PathBuf,
    #[command(flatten)]
    agent: AgentArgs,
    /// Direction for the agent (default: the fetched benchmark's program.md).
    #[arg(long)]
    program_md: Option<PathBuf>,
    /// Where the local runs execute (as `program create --executor`).
    #[arg(long, default_value = "local")]
    executor: String,
    /// Attempts to make this time (the first run measures the baseline first).
    #[arg(long, short = 'n', default_value_t = 10)]
    attempts: u32,
}

/// The file, in the local project's `.picidae/`, of attempts already submitted:
/// `<seq> <contribution id or "refused">` per line.
const CONTRIBUTED: &str = "contributed";

pub(crate) fn run(args: ContributeArgs) -> Result<()> {
    let hub = Hub {
        url: &args.hub,
        token: &args.token,
    };
    let mut project = open_or_make(&hub, &args)?;
    let program = args.program.clone();
    let bench = Repo::open(&project.store.program(&program)?.benchmark_dir)?;
    let (export, _) = fetched(&bench).context("the local benchmark is not a fetched frontier")?;
    let shutdown = Shutdown::new();
    {
        let s = shutdown.clone();
        let _ = ctrlc::set_handler(move || {
            s.escalate();
            eprintln!("\npicidae: stopping after the attempt in flight");
        });
    }
    // A keep left waiting by the last run goes first.
    submit_kept(&hub, &project, &program, &export)?;
    let mut made = 0;
    while made < args.attempts && !shutdown.draining() {
        if !crate::turn::one_attempt(&mut project, &program, &shutdown)? {
            println!("{program}: nothing more to try here (budget spent or the agent is done)");
            break;
        }
        made += 1;
        submit_kept(&hub, &project, &program, &export)?;
    }
    submit_kept(&hub, &project, &program, &export)
}

/// The local project of `args.dir`, made (fetch, project, program) on the first run.
fn open_or_make(hub: &Hub<'_>, args: &ContributeArgs) -> Result<Project> {
    let dir = &args.dir;
    if dir.join(".picidae").is_dir() {
        let project = Project::open(dir)?;
        project
            .store
            .program(&args.program)
            .with_context(|| format!("{} holds no program {}", dir.display(), args.program))?;
        return Ok(project);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (repo, _, frontier) = fetch_into(hub, &args.program, &dir.join("bench"))?;
    let benchmark = find_benchmark(repo.root())?;
    let mut project = Project::init(dir)?;
    let agent = crate::agents::agent_spec(&args.agent)?;
    crate::agents::warn_if_missing(&agent);
    let executor =
        ExecutorSpec::parse(&args.executor).map_err(|e| anyhow::anyhow!("--executor {e}"))?;
    let program_md = args
        .program_md
        .as_ref()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let p = create_program(
        &mut project,
        &ProgramOptions {
            name: args.program.clone(),
            benchmark,
            program_md,
            agent,
            seeds: None,
            baseline_seeds: None,
            min_improvement: None,
            alpha: None,
            concurrency: None,
        },
    )?;
    project
        .store
        .set_program_executor(&p.name, &serde_json::to_value(&executor)?)?;
    // The hidden evaluator's files stay on the hub: the local loop judges on visible numbers
    // and the hub on its own evaluator.
    project.store.set_program_policy(
        &p.name,
        picidae_sched::contract_source::NO_HIDDEN_KEY,
        Some(false.into()),
    )?;
    println!(
        "{}: the hub's frontier of {} ({}) in {}, and a local program on it",
        dir.display(),
        args.program,
        &frontier[..12.min(frontier.len())],
        p.benchmark_dir
    );
    Ok(project)
}

/// The benchmark directory of a fetched tree: its root, or the one directory below it (at
/// most three levels down) that holds a picidae.toml.
fn find_benchmark(root: &Path) -> Result<PathBuf> {
    if root.join("picidae.toml").is_file() {
        return Ok(root.to_path_buf());
    }
    let mut found = Vec::new();
    let mut level = vec![root.to_path_buf()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for d in &level {
            for e in std::fs::read_dir(d)?.flatten() {
                let path = e.path();
                let name = e.file_name();
                if name.to_string_lossy().starts_with('.') || !e.file_type()?.is_dir() {
                    continue;
                }
                if path.join("picidae.toml").is_file() {
                    found.push(path.clone());
                }
                next.push(path);
            }
        }
        level = next;
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("the fetched frontier holds no picidae.toml"),
        many => bail!(
            "the fetched frontier holds several benchmarks: {}",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What `contributed` records of one kept attempt sent to the hub.
struct Sent {
    seq: i64,
    /// The hub's contribution, or `None` when the hub refused it before any compute.
    id: Option<i64>,
}

/// The attempts sent already, oldest first.
fn sent(project: &Project) -> Vec<Sent> {
    std::fs::read_to_string(project.dir().join(CONTRIBUTED))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let seq = w.next()?.parse().ok()?;
            Some(Sent {
                seq,
                id: w.next().and_then(|id| id.parse().ok()),
            })
        })
        .collect()
}

/// Send the newest kept attempt of `program` not sent yet, as the change from the last
/// state the hub verified from us (the fetched frontier, `export`, at first) to its commit,
/// made against the hub's frontier now. One claim is in flight at a time: while the last one
/// waits for its verdict nothing is sent, and keeps made meanwhile are folded into the next
/// claim (each keep holds the ones before it). So a verified claim's change is on the hub's
/// frontier when the next one, which starts from it, is applied there.
fn submit_kept(hub: &Hub<'_>, project: &Project, program: &str, export: &str) -> Result<()> {
    use std::io::Write;
    let done = sent(project);
    let (status, mine) = call(hub, &format!("/api/programs/{program}/contributions"), None)?;
    if status != 200 {
        return Err(refused(status, &mine));
    }
    let state_of = |id: i64| {
        mine.as_array()
            .into_iter()
            .flatten()
            .find(|c| c["id"].as_i64() == Some(id))
            .and_then(|c| c["state"].as_str().map(str::to_string))
    };
    if let Some(waiting) = done
        .iter()
        .filter_map(|s| s.id)
        .find(|id| matches!(state_of(*id).as_deref(), Some("queued" | "verifying")))
    {
        println!(
            "contribution #{waiting} waits for the hub's verdict; the next claim waits for it"
        );
        return Ok(());
    }
    let p = project.store.program(program)?;
    let attempts = project.store.attempts(&AttemptFilter {
        program_id: Some(p.id),
        status: Some(AttemptStatus::Kept),
        ..Default::default()
    })?;
    let commit_of = |seq: i64| {
        attempts
            .iter()
            .find(|a| a.seq == seq)
            .and_then(|a| a.commit.clone())
    };
    // Where the hub stands for us: the last claim it verified, else the fetched frontier.
    let from = done
        .iter()
        .rev()
        .find(|s| s.id.and_then(state_of).as_deref() == Some("verified"))
        .and_then(|s| commit_of(s.seq))
        .unwrap_or_else(|| export.to_string());
    let newest_sent = done.iter().map(|s| s.seq).max().unwrap_or(0);
    let Some(a) = attempts
        .iter()
        .filter(|a| a.kind != AttemptKind::Baseline && a.seq > newest_sent)
        .max_by_key(|a| a.seq)
    else {
        return Ok(());
    };
    let (Some(commit), Some(value)) = (a.commit.as_deref(), a.primary_value) else {
        return Ok(());
    };
    let (status, public) = call(hub, &format!("/api/programs/{program}/public"), None)?;
    if status != 200 {
        return Err(refused(status, &public));
    }
    let frontier = public["frontier_commit"].as_str().unwrap_or_default();
    let seeds: Vec<i64> = project
        .store
        .runs_of_attempt(a.id)?
        .iter()
        .map(|r| r.seed)
        .collect();
    let bench = Repo::open(&p.benchmark_dir)?;
    let body = serde_json::json!({
        "parent_commit": frontier,
        "patch": bench.patch_between(&from, commit)?,
        "hypothesis": a.hypothesis,
        "claimed_value": value,
        "seeds": seeds,
    });
    let (status, v) = call(
        hub,
        &format!("/api/programs/{program}/contributions"),
        Some(&body),
    )?;
    let line = match status {
        202 => {
            println!(
                "#{:<4} kept at {value} → contribution #{} queued on the hub (claimed gain {})",
                a.seq, v["id"], v["claimed_gain"]
            );
            format!("{} {}", a.seq, v["id"])
        }
        401 | 403 | 404 => return Err(refused(status, &v)),
        _ => {
            println!(
                "#{:<4} kept at {value}, not sent: {}",
                a.seq,
                refused(status, &v)
            );
            format!("{} refused", a.seq)
        }
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(project.dir().join(CONTRIBUTED))?;
    writeln!(f, "{line}")?;
    Ok(())
}
