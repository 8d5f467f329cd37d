//! `picidae contribute`: a contributor's own research loop against a hub. The first run
//! fetches the open program's public frontier into `DIR/bench` (as `picidae fetch`), makes a
//! project in `DIR` and a program on it with the contributor's agent and executor; every run
//! then makes attempts there, on the contributor's machine and budget, one at a time, and
//! sends what it keeps to the hub as claims, with the value and seeds it was kept at (see
//! [`claims::submit_kept`]: one claim in flight, each starting from the last one the hub
//! verified). What was sent is remembered (`claims`), so a later run never sends a claim
//! twice. With no claim in flight and the hub's frontier moved, it fetches the new frontier
//! and goes on from it in a new local program ([`sync`]). The hub checks and verifies each
//! claim as it would one from `picidae submit`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use picidae_git::Repo;
use picidae_sched::{create_program, ExecutorSpec, ProgramOptions, Project, Shutdown};

use crate::cli::AgentArgs;
use crate::submit::{call, fetch_into, fetched, refused, Hub};

mod claims;

use claims::{submit_kept, Flight};

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

/// The file, in the local project's `.picidae/`, naming the local program worked in now
/// (one per hub frontier synced to; the first has the hub program's name).
const CURRENT: &str = "contributing";

pub(crate) fn run(args: ContributeArgs) -> Result<()> {
    let hub = Hub {
        url: &args.hub,
        token: &args.token,
    };
    let mut project = open_or_make(&hub, &args)?;
    let program = args.program.as_str();
    let mut local = std::fs::read_to_string(project.dir().join(CURRENT))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|_| program.to_string());
    let shutdown = Shutdown::new();
    {
        let s = shutdown.clone();
        let _ = ctrlc::set_handler(move || {
            s.escalate();
            eprintln!("\npicidae: stopping after the attempt in flight");
        });
    }
    let mut made = 0;
    loop {
        // A keep left waiting goes first; with nothing in flight, catch up with the hub.
        let export = export_of(&project, &local)?;
        if submit_kept(&hub, &project, (program, &local), &export)? == Flight::Idle {
            if let Some(next) = sync(&hub, &mut project, &args, &local)? {
                local = next;
            }
        }
        if made >= args.attempts || shutdown.draining() {
            return Ok(());
        }
        if !crate::turn::one_attempt(&mut project, &local, &shutdown)? {
            println!("{local}: nothing more to try here (budget spent or the agent is done)");
            return Ok(());
        }
        made += 1;
    }
}

/// The export commit the local program's benchmark was fetched at.
fn export_of(project: &Project, local: &str) -> Result<String> {
    let bench = Repo::open(&project.store.program(local)?.benchmark_dir)?;
    Ok(fetched(&bench)
        .context("the local benchmark is not a fetched frontier")?
        .0)
}

/// With no claim in flight: when the hub's frontier is not the one the local program was
/// fetched at (another contributor's claim, or ours, moved it), fetch it and go on in a new
/// local program on it with the same agent, executor, policy and program.md (so later
/// claims are made on what the hub holds). Returns the new program's name.
fn sync(
    hub: &Hub<'_>,
    project: &mut Project,
    args: &ContributeArgs,
    local: &str,
) -> Result<Option<String>> {
    let old = project.store.program(local)?;
    let (_, synced) = fetched(&Repo::open(&old.benchmark_dir)?)
        .context("the local benchmark is not a fetched frontier")?;
    let (status, public) = call(hub, &format!("/api/programs/{}/public", args.program), None)?;
    if status != 200 {
        return Err(refused(status, &public));
    }
    let now = public["frontier_commit"].as_str().unwrap_or_default();
    if now.is_empty() || now == synced {
        return Ok(None);
    }
    let n = (2..)
        .find(|n| !args.dir.join(format!("bench-{n}")).exists())
        .unwrap_or(2);
    let (repo, _, frontier) = fetch_into(hub, &args.program, &args.dir.join(format!("bench-{n}")))?;
    let name = format!("{}-{n}", args.program);
    let agent = serde_json::from_value(old.agent.clone())
        .with_context(|| format!("program {local}: unreadable agent"))?;
    local_program(
        project,
        (&name, &find_benchmark(repo.root())?),
        (agent, Some(old.program_md.clone())),
        (&old.executor, &old.policy),
    )?;
    std::fs::write(project.dir().join(CURRENT), format!("{name}\n"))?;
    println!(
        "the hub's frontier moved to {}: going on from it in program {name}",
        &frontier[..12.min(frontier.len())]
    );
    Ok(Some(name))
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
    // The hidden evaluator's files stay on the hub: the local loop judges on visible numbers
    // and the hub on its own evaluator.
    let policy = serde_json::json!({ picidae_sched::contract_source::NO_HIDDEN_KEY: false });
    let p = local_program(
        &mut project,
        (&args.program, &benchmark),
        (agent, program_md),
        (&serde_json::to_value(&executor)?, &policy),
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

/// A local program on a fetched benchmark with the given agent, program.md (the
/// benchmark's own when `None`), executor and policy settings.
fn local_program(
    project: &mut Project,
    (name, benchmark): (&str, &Path),
    (agent, program_md): (picidae_agent::AgentSpec, Option<String>),
    (executor, policy): (&serde_json::Value, &serde_json::Value),
) -> Result<picidae_store::Program> {
    let p = create_program(
        project,
        &ProgramOptions {
            name: name.to_string(),
            benchmark: benchmark.to_path_buf(),
            program_md,
            agent,
            seeds: None,
            baseline_seeds: None,
            min_improvement: None,
            alpha: None,
            concurrency: None,
        },
    )?;
    project.store.set_program_executor(&p.name, executor)?;
    for (key, value) in policy.as_object().into_iter().flatten() {
        project
            .store
            .set_program_policy(&p.name, key, Some(value.clone()))?;
    }
    Ok(p)
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
