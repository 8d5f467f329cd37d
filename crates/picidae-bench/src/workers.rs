//! `picidae-bench workers`: runs on remote workers (`picidae worker` processes pulling over
//! loopback HTTP) against one worker, and the cost of the remote path against the local
//! executor.
//!
//! One benchmark whose runs sleep `--run-secs` (standing in for GPU runs) and print a score,
//! the random sweep on one parameter, `seeds = 1`. The local side runs `--runs` attempts on
//! the local executor, one at a time. Each workers side runs the same number with
//! `--executor workers`, `concurrency = N` and N worker processes (the `picidae` binary built
//! beside this one), the coordinator's API served in this process. Throughput is runs
//! finished per second from the first start to the last finish; overhead per run is the
//! slot time not spent inside the run (wall × N / runs − the runs' own mean wall time).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_agent::sweep::Sampler;
use picidae_agent::AgentSpec;
use picidae_git::{Identity, Repo};
use picidae_sched::{
    create_program, ExecutorSpec, LoopEvent, LoopOptions, ProgramOptions, Project, Runner,
};

#[derive(Args)]
pub struct WorkersArgs {
    /// Worker counts to measure (each against one worker).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub workers: Vec<u32>,
    /// Runs each side executes (the baseline's not counted).
    #[arg(long, default_value_t = 16)]
    pub runs: u64,
    /// How long each run sleeps, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub run_secs: f64,
    /// Where to keep the projects (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn contract(run_secs: f64) -> String {
    format!(
        r#"[benchmark]
name = "sleepy"

[boundary]
editable = ["notes.md"]

[run]
command = 'sleep {run_secs}; echo "score: $X"'
time_budget = 60
timeout = 120
grace = 1.0

[metrics.score]
goal = "minimize"

[[param]]
name = "x"
env = "X"
default = 0.5
min = 0.0
max = 1.0

[policy]
seeds = 1
baseline_seeds = 1
"#
    )
}

/// One side's figures.
struct Side {
    name: String,
    slots: u32,
    runs: u64,
    /// First run's start to last run's end.
    span: f64,
    run_secs: f64,
}

impl Side {
    fn rate(&self) -> f64 {
        self.runs as f64 / self.span
    }
    fn overhead_ms(&self) -> f64 {
        (self.span * f64::from(self.slots) - self.run_secs) / self.runs as f64 * 1000.0
    }
}

/// A child process killed when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: WorkersArgs) -> Result<()> {
    if args.workers.is_empty() || args.workers.contains(&0) {
        bail!("--workers: expected counts of at least 1, e.g. 1,2,4");
    }
    let picidae = crate::peer::picidae_beside()?;
    let (_tmp, root) = crate::peer::work_dir(&args.dir)?;
    let local = side(&args, &root.join("local"), None, &picidae)?;
    let mut sides = vec![local];
    for &n in &args.workers {
        sides.push(side(
            &args,
            &root.join(format!("workers-{n}")),
            Some(n),
            &picidae,
        )?);
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "executor",
        "in flight",
        "runs",
        "first start to last end (s)",
        "runs/s",
        "vs 1 worker",
        "overhead per run (ms)",
    ]);
    let one = sides
        .iter()
        .find(|s| s.name == "workers" && s.slots == 1)
        .map(Side::rate);
    for s in &sides {
        t.add_row([
            s.name.clone(),
            s.slots.to_string(),
            s.runs.to_string(),
            format!("{:.2}", s.span),
            format!("{:.2}", s.rate()),
            match (one, s.name.as_str()) {
                (Some(r), "workers") => format!("{:.2}x", s.rate() / r),
                _ => "–".into(),
            },
            format!("{:.1}", s.overhead_ms()),
        ]);
    }
    println!("{t}");
    if let Some(w1) = sides.iter().find(|s| s.name == "workers" && s.slots == 1) {
        println!(
            "the remote path costs {:.1} ms a run beyond the local executor's ({:.1} vs {:.1} ms)",
            w1.overhead_ms() - sides[0].overhead_ms(),
            w1.overhead_ms(),
            sides[0].overhead_ms()
        );
    }
    println!(
        "(runs sleep {} s; workers are `picidae worker` processes on this machine, over loopback HTTP)",
        args.run_secs
    );
    Ok(())
}

/// Run `args.runs` attempts on the local executor (`workers: None`) or on `n` workers.
fn side(args: &WorkersArgs, dir: &Path, workers: Option<u32>, picidae: &Path) -> Result<Side> {
    let bench = dir.join("bench");
    std::fs::create_dir_all(&bench).with_context(|| format!("creating {}", bench.display()))?;
    std::fs::write(bench.join("picidae.toml"), contract(args.run_secs))?;
    std::fs::write(bench.join("notes.md"), "# sleepy\n")?;
    Repo::init(&bench, "sleepy benchmark", Identity::default())?;
    let mut project = Project::init(&dir.join("project"))?;
    let n = workers.unwrap_or(1);
    create_program(
        &mut project,
        &ProgramOptions {
            name: "p".into(),
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
            concurrency: Some(n),
        },
    )?;
    let mut kept: Vec<Kill> = Vec::new();
    let mut _api = None;
    if workers.is_some() {
        let executor = ExecutorSpec::Workers {
            pool: String::new(),
        };
        project
            .store
            .set_program_executor("p", &serde_json::to_value(&executor)?)?;
        let (_, token) = project.store.create_worker_token("bench")?;
        let (url, api) = serve_api(&project)?;
        _api = Some(api);
        for k in 0..n {
            let wdir = dir.join(format!("worker-{k}"));
            std::fs::create_dir_all(&wdir)?;
            let child = Command::new(picidae)
                .args(["worker", "--coordinator", &url, "--token", &token])
                .args(["--name", &format!("w{k}"), "--poll-ms", "20"])
                .arg("--dir")
                .arg(&wdir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(wdir.join("worker.log"))?)
                .spawn()
                .context("starting a worker")?;
            kept.push(Kill(child));
        }
    }
    eprintln!(
        "bench workers: {} runs on {}",
        args.runs,
        match workers {
            Some(n) => format!("{n} worker(s)"),
            None => "the local executor".into(),
        }
    );
    let spec: AgentSpec = serde_json::from_value(project.store.program("p")?.agent)?;
    let mut agent = spec.build();
    let opts = LoopOptions {
        max_runs: Some(args.runs + 1),
        ..Default::default()
    };
    let mut runner = Runner::new(&mut project, "p")?;
    runner.run(agent.as_mut(), &opts, &mut |_e: &LoopEvent| {})?;
    drop(runner);
    drop(kept);
    // The span and the runs' own time, from the store (the baseline's run excluded).
    let p = project.store.program("p")?;
    let runs: Vec<_> = project
        .store
        .runs(Some(p.id))?
        .into_iter()
        .skip(1)
        .filter(|r| r.started_at.is_some() && r.finished_at.is_some())
        .collect();
    if runs.is_empty() {
        bail!("no run finished");
    }
    let first = runs.iter().filter_map(|r| r.started_at).min().unwrap_or(0);
    let last = runs.iter().filter_map(|r| r.finished_at).max().unwrap_or(0);
    Ok(Side {
        name: if workers.is_some() {
            "workers"
        } else {
            "local"
        }
        .into(),
        slots: n,
        runs: runs.len() as u64,
        span: (last - first) as f64 / 1000.0,
        run_secs: runs.iter().filter_map(|r| r.wall_secs).sum(),
    })
}

/// The project's API on a loopback port, served by a thread of this process until dropped.
fn serve_api(project: &Project) -> Result<(String, ApiThread)> {
    serve_state(picidae_server::api::ApiState::new(
        project.dir().join("store.sqlite"),
    ))
}

/// An API with `state` on a loopback port, served by a thread of this process until dropped.
pub(crate) fn serve_state(state: picidae_server::api::ApiState) -> Result<(String, ApiThread)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let notified = stop.clone();
    let handle =
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("the listener");
                let _ = picidae_server::api::serve(listener, state, async move {
                    notified.notified().await
                })
                .await;
            });
        });
    std::thread::sleep(Duration::from_millis(100));
    Ok((
        format!("http://{addr}"),
        ApiThread {
            stop,
            handle: Some(handle),
        },
    ))
}

/// The API's thread: told to stop and joined when dropped.
pub(crate) struct ApiThread {
    stop: Arc<tokio::sync::Notify>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ApiThread {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
