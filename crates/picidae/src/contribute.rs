//! `picidae contribute`: a contributor's own research loop against a hub. The first run
//! fetches the open program's public frontier into `DIR/bench` (as `picidae fetch`), makes a
//! project in `DIR` and a program on it with the contributor's agent and executor; every run
//! then makes attempts there, on the contributor's machine and budget, one at a time, and
//! submits each attempt it keeps to the hub as a claim: the whole change from the fetched
//! frontier to the kept commit, with the value and seeds it was kept at. What was submitted
//! is remembered in `DIR/.picidae/contributed`, so a later run never sends a claim twice.
//! The hub checks and verifies each claim as it would one from `picidae submit`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Repo;
use picidae_sched::{create_program, ExecutorSpec, ProgramOptions, Project, Shutdown};
use picidae_store::{Attempt, AttemptFilter};

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
    let (export, frontier) =
        fetched(&bench).context("the local benchmark is not a fetched frontier")?;
    let shutdown = Shutdown::new();
    {
        let s = shutdown.clone();
        let _ = ctrlc::set_handler(move || {
            s.escalate();
            eprintln!("\npicidae: stopping after the attempt in flight");
        });
    }
    let mut made = 0;
    while made < args.attempts && !shutdown.draining() {
        if !crate::turn::one_attempt(&mut project, &program, &shutdown)? {
            println!("{program}: nothing more to try here (budget spent or the agent is done)");
            break;
        }
        made += 1;
        submit_kept(&hub, &project, &program, (&export, &frontier))?;
    }
    submit_kept(&hub, &project, &program, (&export, &frontier))
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

/// Attempts submitted already, by sequence number.
fn submitted(project: &Project) -> Vec<i64> {
    std::fs::read_to_string(project.dir().join(CONTRIBUTED))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Submit every kept attempt of `program` not submitted yet, oldest first: the change from
/// the fetched frontier (`export`, standing for the hub's `frontier`) to its commit.
fn submit_kept(
    hub: &Hub<'_>,
    project: &Project,
    program: &str,
    (export, frontier): (&str, &str),
) -> Result<()> {
    use std::io::Write;
    let p = project.store.program(program)?;
    let done = submitted(project);
    let kept: Vec<Attempt> = project
        .store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            status: Some(AttemptStatus::Kept),
            ..Default::default()
        })?
        .into_iter()
        .filter(|a| a.kind != AttemptKind::Baseline && !done.contains(&a.seq))
        .collect();
    let bench = Repo::open(&p.benchmark_dir)?;
    for a in kept {
        let (Some(commit), Some(value)) = (a.commit.as_deref(), a.primary_value) else {
            continue;
        };
        let seeds: Vec<i64> = project
            .store
            .runs_of_attempt(a.id)?
            .iter()
            .map(|r| r.seed)
            .collect();
        let body = serde_json::json!({
            "parent_commit": frontier,
            "patch": bench.patch_between(export, commit)?,
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
    }
    Ok(())
}
