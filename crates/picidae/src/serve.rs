//! `picidae serve` (the coordinator, with the HTTP API when it is built in) and the steering
//! commands that change a program while it runs. Steering goes through the store, which the
//! coordinator reads between attempts, so the same commands work with or without a server.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use picidae_sched::coordinator::{serve as coordinate, CoordinatorEvent, CoordinatorOptions};
use picidae_sched::resources::parse_gpu_list;
use picidae_sched::{Capacity, LoopEvent, Mode, Project, ResourcePool, Shutdown, SlotPool};

/// The name of the token a coordinator makes for its project's CLI.
const CLI_TOKEN: &str = "local CLI (picidae serve)";

/// Serve the HTTP API on `listen` until `stop` is set; runs on its own thread and runtime.
fn start_api(
    root: &Path,
    api: &Api<'_>,
    (pool, resources): (Arc<SlotPool>, Arc<ResourcePool>),
    stop: Arc<AtomicBool>,
) -> Result<(std::thread::JoinHandle<()>, std::net::SocketAddr)> {
    let listen = api.listen;
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    println!(
        "picidae serve: HTTP API on http://{addr} (the cockpit at /, OpenAPI at /openapi.json)"
    );
    let mut state = picidae_server::api::ApiState::new(root.join(".picidae").join("store.sqlite"));
    state.worker_lease = api.worker_lease;
    state.read_requires_token = api.private_reads;
    let location = picidae_sched::project::store_location(&root.join(".picidae"))?;
    if picidae_store::is_postgres_url(&location) {
        state.store_url = Some(location);
    }
    let capacity = pool.capacity();
    state.metrics = Arc::new(move || {
        let in_use = pool.in_use();
        let mut out = format!(
            "# TYPE picidae_slots_capacity gauge\npicidae_slots_capacity {capacity}\n# TYPE picidae_slots_in_use gauge\npicidae_slots_in_use {}\n# TYPE picidae_slot_utilisation gauge\npicidae_slot_utilisation {}\n",
            in_use.values().sum::<usize>(),
            in_use.values().sum::<usize>() as f64 / capacity as f64
        );
        out.push_str(&format!(
            "# TYPE picidae_gpus_capacity gauge\npicidae_gpus_capacity {}\n# TYPE picidae_gpus_in_use gauge\npicidae_gpus_in_use {}\n",
            resources.capacity().gpus.len(),
            resources.gpus_in_use()
        ));
        out.push_str("# TYPE picidae_program_slots_in_use gauge\n");
        for (p, n) in in_use {
            out.push_str(&format!(
                "picidae_program_slots_in_use{{program=\"{p}\"}} {n}\n"
            ));
        }
        out
    });
    Ok((
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("picidae serve: cannot start the HTTP runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("picidae serve: {e}");
                        return;
                    }
                };
                let shutdown = async move {
                    while !stop.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                if let Err(e) = picidae_server::api::serve(listener, state, shutdown).await {
                    eprintln!("picidae serve: HTTP API stopped: {e}");
                }
            });
        }),
        addr,
    ))
}

/// Where and how `picidae serve` serves its HTTP API.
pub struct Api<'a> {
    pub listen: &'a str,
    /// How long a remote worker's lease on a run lasts without a heartbeat.
    pub worker_lease: Duration,
    /// Reads need a token too.
    pub private_reads: bool,
}

pub fn run(
    root: &Path,
    (slots, pipeline): (usize, usize),
    capacity: Capacity,
    api: Option<Api<'_>>,
) -> Result<()> {
    let shutdown = Shutdown::new();
    {
        let shutdown = shutdown.clone();
        let _ = ctrlc::set_handler(move || {
            match shutdown.escalate() {
            Mode::Cancel => eprintln!("\npicidae serve: cancelling runs in flight"),
            _ => eprintln!(
                "\npicidae serve: stopping after the attempts in flight (Ctrl-C again to cancel them)"
            ),
        }
        });
    }
    let pool = Arc::new(SlotPool::new(slots));
    let resources = Arc::new(ResourcePool::new(capacity));
    let api_stop = Arc::new(AtomicBool::new(false));
    let api = match api {
        Some(api) => {
            let (handle, addr) = start_api(
                root,
                &api,
                (pool.clone(), resources.clone()),
                api_stop.clone(),
            )?;
            // Leave the address and a write token for this project's CLI (see `client`).
            let mut project = Project::open(root)?;
            for t in project.store.tokens()? {
                if t.name == CLI_TOKEN && !t.revoked {
                    project.store.revoke_token(t.id)?;
                }
            }
            let (token, secret) = project.store.create_token(CLI_TOKEN, false)?;
            crate::client::write_discovery(
                root,
                &crate::client::Discovery {
                    pid: std::process::id(),
                    url: format!("http://{addr}"),
                    token: secret,
                },
            )?;
            Some((handle, token.id))
        }
        None => None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let printer = std::thread::spawn(move || {
        for e in rx {
            print_event(&e);
        }
    });
    let c = resources.capacity();
    eprintln!(
        "picidae serve: {slots} slot(s); GPUs [{}], {} CPUs, {} MB for runs",
        c.gpus
            .iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(","),
        c.cpus,
        c.memory_mb
    );
    let opts = CoordinatorOptions {
        slots,
        shutdown,
        poll: Duration::from_millis(300),
        pipeline,
        resources: Some(resources),
    };
    let result = coordinate(root, &opts, pool, tx);
    let _ = printer.join();
    api_stop.store(true, Ordering::SeqCst);
    if let Some((api, token)) = api {
        let _ = api.join();
        let _ = std::fs::remove_file(crate::client::discovery_path(root));
        if let Ok(mut project) = Project::open(root) {
            let _ = project.store.revoke_token(token);
        }
    }
    result?;
    Ok(())
}

fn print_event(e: &CoordinatorEvent) {
    match e {
        CoordinatorEvent::Started { program } => println!("[{program}] loop started"),
        CoordinatorEvent::Ended { program, summary } => match summary {
            Ok(s) => println!(
                "[{program}] loop ended ({}): {} attempts, {} kept",
                s.stopped.as_deref().unwrap_or("finished"),
                s.attempts,
                s.kept
            ),
            Err(e) => println!("[{program}] loop failed: {e}"),
        },
        CoordinatorEvent::Loop { program, event } => match event {
            LoopEvent::Decided {
                seq,
                status,
                value,
                hypothesis,
                ..
            } => println!(
                "[{program}] #{seq} {status} {} {hypothesis}",
                value.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into())
            ),
            LoopEvent::Rejected {
                seq,
                status,
                reason,
            } => println!("[{program}] #{seq} {status} {reason}"),
            LoopEvent::Judged {
                seq,
                finding_id,
                state,
                reason,
            } => println!("[{program}] #{seq} finding {finding_id} {state}: {reason}"),
            LoopEvent::Recovered {
                runs_interrupted,
                runs_readopted,
                attempts_resumed,
                attempts_failed,
            } => println!(
                "[{program}] recovered: {runs_readopted} remote run(s) re-adopted, {runs_interrupted} interrupted run(s), {attempts_resumed} attempt(s) resumed, {attempts_failed} failed"
            ),
            _ => {}
        },
    }
}

pub fn pause(project: &mut Project, program: &str, active: bool) -> Result<()> {
    if let Some(c) = crate::client::running(project.root()) {
        let verb = if active { "resume" } else { "pause" };
        c.post(
            &format!("/api/programs/{}/{verb}", url_segment(program)),
            &serde_json::json!({}),
        )?;
        eprintln!("(through the coordinator at {})", c.d.url);
    } else {
        project.store.set_program_active(program, active)?;
    }
    println!(
        "{program} {}",
        if active {
            "resumed"
        } else {
            "paused (the attempt in flight finishes)"
        }
    );
    Ok(())
}

/// A program name as one URL path segment.
fn url_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Queue a follow-up idea (through the running coordinator when there is one).
pub fn followup(project: &mut Project, program: &str, text: &str) -> Result<()> {
    if let Some(c) = crate::client::running(project.root()) {
        let v = c.post(
            &format!("/api/programs/{}/followups", url_segment(program)),
            &serde_json::json!({ "text": text }),
        )?;
        eprintln!("(through the coordinator at {})", c.d.url);
        println!("queued follow-up {} for {program}", v["id"]);
    } else {
        let f = project.store.add_followup(program, text, "cli")?;
        println!("queued follow-up {} for {program}", f.id);
    }
    Ok(())
}

/// `picidae program set`'s money and GPU-hour budget options.
#[derive(clap::Args, Debug, Default)]
pub struct CostBudgetArgs {
    /// No new attempt starts once the program's runs have held GPUs this many hours.
    #[arg(long)]
    pub max_gpu_hours: Option<f64>,
    /// Remove the GPU-hour budget.
    #[arg(long, conflicts_with = "max_gpu_hours")]
    pub no_max_gpu_hours: bool,
    /// No new attempt starts once GPU-hours at --gpu-hour-usd plus agent cost reach this.
    #[arg(long)]
    pub max_usd: Option<f64>,
    /// Remove the money budget.
    #[arg(long, conflicts_with = "max_usd")]
    pub no_max_usd: bool,
    /// Price of one GPU-hour in USD, for the money budget.
    #[arg(long)]
    pub gpu_hour_usd: Option<f64>,
}

/// `picidae serve`'s description of the machine's resources (detected by default).
#[derive(clap::Args, Debug, Default)]
pub struct CapacityArgs {
    /// GPU indices runs may use, e.g. `0,1` (default: every GPU nvidia-smi lists; `""` for none).
    #[arg(long)]
    pub gpus: Option<String>,
    /// CPUs runs may use together (default: this machine's).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory runs may use together, in MB (default: this machine's).
    #[arg(long)]
    pub memory_mb: Option<u64>,
}

impl CapacityArgs {
    pub fn resolve(&self) -> Result<Capacity> {
        let mut c = Capacity::detect();
        if let Some(g) = &self.gpus {
            c.gpus = parse_gpu_list(g).map_err(|e| anyhow::anyhow!("--gpus: {e}"))?;
        }
        if let Some(n) = self.cpus {
            anyhow::ensure!(n > 0, "--cpus must be at least 1");
            c.cpus = n;
        }
        if let Some(m) = self.memory_mb {
            c.memory_mb = m;
        }
        Ok(c)
    }
}

pub fn set(
    project: &mut Project,
    program: &str,
    (weight, concurrency): (Option<f64>, Option<u32>),
    (max_runs, no_max_runs): (Option<i64>, bool),
    cost: &CostBudgetArgs,
) -> Result<()> {
    if let Some(n) = concurrency {
        picidae_sched::check_concurrency(n).map_err(|e| anyhow::anyhow!("--{e}"))?;
    }
    if let Some(w) = weight {
        anyhow::ensure!(
            w.is_finite() && w > 0.0,
            "--weight must be a positive number, got {w}"
        );
    }
    if let Some(m) = max_runs {
        anyhow::ensure!(m >= 0, "--max-runs must not be negative, got {m}");
    }
    for (name, v) in [
        ("--max-gpu-hours", cost.max_gpu_hours),
        ("--max-usd", cost.max_usd),
        ("--gpu-hour-usd", cost.gpu_hour_usd),
    ] {
        if let Some(v) = v {
            anyhow::ensure!(
                v.is_finite() && v >= 0.0,
                "{name} must be a non-negative number, got {v}"
            );
        }
    }
    let clear_or = |clear: bool, v: Option<f64>| if clear { Some(None) } else { v.map(Some) };
    let max_runs = if no_max_runs {
        Some(None)
    } else {
        max_runs.map(Some)
    };
    let (gpu_hours, usd) = (
        clear_or(cost.no_max_gpu_hours, cost.max_gpu_hours),
        clear_or(cost.no_max_usd, cost.max_usd),
    );
    if let Some(c) = crate::client::running(project.root()) {
        let seg = url_segment(program);
        if let Some(w) = weight {
            c.post(
                &format!("/api/programs/{seg}/weight"),
                &serde_json::json!({ "weight": w }),
            )?;
        }
        if let Some(n) = concurrency {
            c.post(
                &format!("/api/programs/{seg}/concurrency"),
                &serde_json::json!({ "concurrency": n }),
            )?;
        }
        let mut body = serde_json::Map::new();
        if let Some(m) = max_runs {
            body.insert("max_runs".into(), serde_json::json!(m));
        }
        if let Some(v) = gpu_hours {
            body.insert("max_gpu_hours".into(), serde_json::json!(v));
        }
        if let Some(v) = usd {
            body.insert("max_usd".into(), serde_json::json!(v));
        }
        if let Some(v) = cost.gpu_hour_usd {
            body.insert("gpu_hour_usd".into(), serde_json::json!(v));
        }
        if !body.is_empty() {
            c.post(
                &format!("/api/programs/{seg}/budget"),
                &serde_json::Value::Object(body),
            )?;
        }
        eprintln!("(through the coordinator at {})", c.d.url);
    } else {
        if let Some(w) = weight {
            project.store.set_program_weight(program, w)?;
        }
        if let Some(n) = concurrency {
            project
                .store
                .set_program_policy(program, "concurrency", Some(n.into()))?;
        }
        if let Some(m) = max_runs {
            project.store.set_program_max_runs(program, m)?;
        }
        project
            .store
            .set_program_cost_budget(program, gpu_hours, usd, cost.gpu_hour_usd)?;
    }
    let p = project.store.program(program)?;
    let spent = project.store.program_spend(p.id)?;
    let opt = |v: Option<f64>, unit: &str| {
        v.map(|m| format!("{m}{unit}"))
            .unwrap_or_else(|| "none".into())
    };
    println!(
        "{}: {}, weight {}, concurrency {}, run budget {} ({} used), GPU-hour budget {} ({:.3} used), money budget {} (${:.2} used at ${}/GPU-hour, agents ${:.2}, {} tokens)",
        p.name,
        p.status,
        p.weight,
        p.policy
            .get("concurrency")
            .and_then(|v| v.as_u64())
            .map(|n| n.to_string())
            .unwrap_or_else(|| "the contract's".into()),
        p.max_runs
            .map(|m| m.to_string())
            .unwrap_or_else(|| "none".into()),
        spent.runs,
        opt(p.max_gpu_hours, ""),
        spent.gpu_hours,
        opt(p.max_usd, " USD"),
        spent.usd,
        p.gpu_hour_usd,
        spent.agent_usd,
        spent.agent_tokens
    );
    Ok(())
}
