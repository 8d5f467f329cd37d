//! `picidae-bench fleet`: many light workers against one coordinator's API on PostgreSQL.
//! Each simulated worker registers, claims runs, renews its lease while a run "executes"
//! (sleeps `--run-secs`) and reports it, over loopback HTTP with a worker token, exactly as
//! `picidae worker` does, but without fetching or running anything: what is measured is the
//! coordinator's side (the API and the store's leases). The runs are offered up front. The
//! workers are driven by a few client threads of this process, each serving its share of
//! them in time order. Printed for each fleet size: the latency of each call (p50, p99,
//! max), runs dispatched per second, and requests per second.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_core::AttemptKind;
use picidae_store::{NewAttempt, NewProgram, Store};
use serde_json::{json, Value};

#[derive(Args)]
pub struct FleetArgs {
    /// Fleet sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub workers: Vec<usize>,
    /// Client threads driving the fleet.
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// How long each fleet runs, in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// How long each claimed run "executes" before its report, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub run_secs: f64,
    /// How often an idle worker asks for a run, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// How long a lease lasts (a running worker renews it every third of that), in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub lease_secs: f64,
    /// A PostgreSQL server (`postgres://user@host:port/db`) to make a scratch database on;
    /// without it, a private server is started (Debian's `postgresql` must be installed).
    #[arg(long)]
    pub postgres: Option<String>,
}

/// What one simulated worker does next.
enum Next {
    Register,
    Claim,
    Heartbeat {
        run: i64,
        lease: String,
        ends: Instant,
    },
    Report {
        run: i64,
        lease: String,
    },
}

struct Sim {
    id: i64,
    next: Next,
}

/// Latencies by call, in milliseconds.
#[derive(Default)]
struct Tally {
    calls: std::collections::BTreeMap<&'static str, Vec<f64>>,
    dispatched: u64,
    errors: u64,
}

pub fn run(args: FleetArgs) -> Result<()> {
    if args.threads == 0 || args.workers.contains(&0) {
        bail!("--threads and --workers must be at least 1");
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "workers",
        "call",
        "calls",
        "p50 (ms)",
        "p99 (ms)",
        "max (ms)",
        "runs dispatched/s",
        "requests/s",
        "errors",
    ]);
    for &n in &args.workers {
        let url = match &args.postgres {
            Some(url) => scratch_database(url, n)?,
            None => picidae_store::testing::postgres_url()
                .context("no PostgreSQL server: install Debian's postgresql or pass --postgres")?,
        };
        let tally = fleet(&args, n, &url)?;
        let total: usize = tally.calls.values().map(Vec::len).sum();
        for (i, (call, ms)) in tally.calls.iter().enumerate() {
            let mut ms = ms.clone();
            ms.sort_by(f64::total_cmp);
            let q = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
            t.add_row([
                if i == 0 { n.to_string() } else { String::new() },
                call.to_string(),
                ms.len().to_string(),
                format!("{:.1}", q(0.5)),
                format!("{:.1}", q(0.99)),
                format!("{:.1}", q(1.0)),
                if i == 0 {
                    format!("{:.1}", tally.dispatched as f64 / args.seconds)
                } else {
                    String::new()
                },
                if i == 0 {
                    format!("{:.0}", total as f64 / args.seconds)
                } else {
                    String::new()
                },
                if i == 0 {
                    tally.errors.to_string()
                } else {
                    String::new()
                },
            ]);
        }
    }
    println!("{t}");
    println!(
        "(simulated workers over loopback HTTP, {} client threads; runs \"execute\" {} s; idle workers ask every {} ms; leases of {} s renewed every third; the store on PostgreSQL)",
        args.threads, args.run_secs, args.poll_ms, args.lease_secs
    );
    Ok(())
}

/// A fresh database on the server at `url`.
fn scratch_database(url: &str, n: usize) -> Result<String> {
    let name = format!("picidae_fleet_bench_{}_{n}", std::process::id());
    let mut admin = postgres::Client::connect(url, postgres::NoTls)?;
    admin.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"
    ))?;
    Ok(picidae_store::url_with_database(url, &name))
}

/// Run a fleet of `n` simulated workers against a fresh store at `url`.
fn fleet(args: &FleetArgs, n: usize, url: &str) -> Result<Tally> {
    let mut store = Store::connect(url)?;
    // Enough runs on offer that no worker ever waits for work.
    let runs = ((n as f64) * (args.seconds / args.run_secs).ceil() * 1.2) as usize + n;
    eprintln!("bench fleet: {n} workers, {runs} runs on offer");
    offer(&mut store, runs)?;
    let (_, token) = store.create_worker_token("fleet")?;
    drop(store);
    let dir = tempfile::tempdir()?;
    let mut state = picidae_server::api::ApiState::new(dir.path().join("unused.sqlite"));
    state.store_url = Some(url.to_string());
    state.worker_lease = Duration::from_secs_f64(args.lease_secs);
    let (base, _api) = crate::workers::serve_state(state)?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    std::thread::scope(|scope| {
        for t in 0..args.threads {
            let mine: Vec<usize> = (0..n).filter(|i| i % args.threads == t).collect();
            let (tally, base, token) = (tally.clone(), base.clone(), token.clone());
            scope.spawn(move || drive(args, &mine, (&base, &token), deadline, &tally));
        }
    });
    let t = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(t)
}

/// Offer `runs` runs of one program to the default pool.
fn offer(store: &mut Store, runs: usize) -> Result<()> {
    let p = store.create_program(&NewProgram {
        name: "fleet".into(),
        benchmark_dir: "/fleet".into(),
        program_md: String::new(),
        agent: Value::Null,
        policy: Value::Null,
        base_commit: "0".repeat(40),
    })?;
    let a = store.insert_attempt(&NewAttempt {
        program_id: p.id,
        kind: AttemptKind::Explore,
        parent_commit: "0".repeat(40),
        hypothesis: "fleet".into(),
        proposer: "bench".into(),
        params: None,
    })?;
    let spec = json!({"tree": "0".repeat(40), "gpus": 0, "cpus": 1});
    for seed in 0..runs {
        let r = store.insert_run(a.id, seed as i64, "workers")?;
        store.offer_work(r.id, "", &spec)?;
    }
    Ok(())
}

/// Serve the workers `mine` (indices into the fleet) until `deadline`, each call when its
/// time comes.
fn drive(
    args: &FleetArgs,
    mine: &[usize],
    (base, token): (&str, &str),
    deadline: Instant,
    tally: &Mutex<Tally>,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let auth = format!("Bearer {token}");
    let post = |path: &str, body: &Value| -> Result<(u16, Value)> {
        let mut r = agent
            .post(format!("{base}{path}"))
            .header("Authorization", &auth)
            .send_json(body)?;
        let status = r.status().as_u16();
        let v = if status == 204 {
            Value::Null
        } else {
            r.body_mut().read_json().unwrap_or(Value::Null)
        };
        Ok((status, v))
    };
    let lease = Duration::from_secs_f64(args.lease_secs);
    let mut sims: Vec<Sim> = mine
        .iter()
        .map(|_| Sim {
            id: 0,
            next: Next::Register,
        })
        .collect();
    // (when, which), earliest first; workers start spread over one poll interval.
    let mut queue: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let now = Instant::now();
    for (k, _) in mine.iter().enumerate() {
        let offset = Duration::from_millis(args.poll_ms) * k as u32 / mine.len().max(1) as u32;
        queue.push(Reverse((now + offset, k)));
    }
    let mut local = Tally::default();
    while let Some(Reverse((when, k))) = queue.pop() {
        if when > deadline {
            break;
        }
        if let Some(wait) = when.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sim = &mut sims[k];
        let t0 = Instant::now();
        let (call, result) = match &sim.next {
            Next::Register => (
                "register",
                post(
                    "/api/workers",
                    &json!({"name": format!("sim-{}", mine[k]), "fingerprint": "fleet", "fingerprint_json": "{}", "cpus": 1}),
                ),
            ),
            Next::Claim => (
                "claim",
                post(&format!("/api/workers/{}/claim", sim.id), &Value::Null),
            ),
            Next::Heartbeat { run, lease, .. } => (
                "heartbeat",
                post(
                    &format!("/api/workers/{}/heartbeat", sim.id),
                    &json!({"leases": [{"run_id": run, "lease": lease}]}),
                ),
            ),
            Next::Report { run, lease } => (
                "report",
                post(
                    &format!("/api/workers/{}/runs/{run}/result", sim.id),
                    &json!({"lease": lease, "result": {"stdout": "score: 1"}}),
                ),
            ),
        };
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        local.calls.entry(call).or_default().push(ms);
        let after = Instant::now();
        let (next, at) = match (std::mem::replace(&mut sim.next, Next::Claim), result) {
            (_, Err(_)) | (_, Ok((500..=599, _))) => {
                local.errors += 1;
                (Next::Register, after + Duration::from_millis(args.poll_ms))
            }
            (Next::Register, Ok((_, v))) => {
                sim.id = v["id"].as_i64().unwrap_or(0);
                (Next::Claim, after)
            }
            (Next::Claim, Ok((200, v))) => {
                local.dispatched += 1;
                let ends = after + Duration::from_secs_f64(args.run_secs);
                let next = Next::Heartbeat {
                    run: v["run_id"].as_i64().unwrap_or(0),
                    lease: v["lease"].as_str().unwrap_or_default().to_string(),
                    ends,
                };
                (next, (after + lease / 3).min(ends))
            }
            (Next::Claim, Ok(_)) => (Next::Claim, after + Duration::from_millis(args.poll_ms)),
            (
                Next::Heartbeat {
                    run,
                    lease: l,
                    ends,
                },
                Ok(_),
            ) => {
                if after >= ends {
                    (Next::Report { run, lease: l }, after)
                } else {
                    (
                        Next::Heartbeat {
                            run,
                            lease: l,
                            ends,
                        },
                        (after + lease / 3).min(ends),
                    )
                }
            }
            (Next::Report { .. }, Ok(_)) => (Next::Claim, after),
        };
        sim.next = next;
        queue.push(Reverse((at, k)));
    }
    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
    for (call, ms) in local.calls {
        t.calls.entry(call).or_default().extend(ms);
    }
    t.dispatched += local.dispatched;
    t.errors += local.errors;
}
