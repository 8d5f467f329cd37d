//! `picidae-bench cockpit`: how long the server takes to answer the cockpit's heaviest requests
//! on a program with many attempts, beside the same data in an MLflow tracking server.
//!
//! It writes the example benchmark into a fresh project, creates a program on it, and adds
//! `--attempts` synthetic attempts with one finished run each, straight into the store (no
//! runs are executed). Then it serves the HTTP API (the same server `picidae serve` runs) on a
//! loopback port and times, over `--repeat` requests each after one untimed request, what the
//! cockpit asks for: the program list, the first and a deep page of the attempts table, filtered
//! pages (status, text, both), and the progress chart's data. Times are wall time at the client,
//! loopback included.
//!
//! When `--python` can import `mlflow`, the same attempts are loaded into an MLflow tracking
//! server (`mlflow server` on a SQLite file, one experiment per program, one run per attempt with
//! the same metric value, status, parameters and tags, the hypothesis as the tag `hypothesis`),
//! and the equivalent queries go to its search API (`POST /api/2.0/mlflow/runs/search`) from
//! the same client: a page of 50, newest first, unfiltered and filtered on status and on a text
//! in the hypothesis; and every point of the program, paged through at MLflow's largest page.
//! Both sides must return the same attempts, or the bench fails. Loading is not compared: it
//! goes in bulk through MLflow's own SQLAlchemy tables, which is faster than logging each run
//! through the API. The server runs with one worker and its job runner off (it has nothing to do
//! with search and would only compete for the cores).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_sched::Project;
use picidae_store::{testing, Attempt};

use crate::mlflow::{mlflow_missing, MlflowServer};
use serde::Deserialize;

#[derive(Args)]
pub struct CockpitArgs {
    /// Attempts in the program (each with one run).
    #[arg(long, default_value_t = 100_000)]
    pub attempts: u64,
    /// Requests timed per endpoint.
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,
    /// Requests timed per query on the MLflow side (paging through every run takes seconds).
    #[arg(long, default_value_t = 5)]
    pub peer_repeat: usize,
    /// Skip the MLflow peer (reports Picidae alone).
    #[arg(long)]
    pub no_peer: bool,
    /// Python interpreter with MLflow installed (`pip install mlflow`).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Where to keep the project (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

/// Insert `n` attempts with one succeeded run each, in transactions of 10,000.
fn fill(project: &Project, program_id: i64, n: u64) -> Result<()> {
    let mut i = 0u64;
    while i < n {
        let end = (i + 10_000).min(n);
        testing::in_transaction(&project.store, |store| -> Result<()> {
            for k in i..end {
                let status = match (k % 200, k % 10) {
                    (0, _) => AttemptStatus::Kept,
                    (_, 1) => AttemptStatus::Failed,
                    (_, 2) => AttemptStatus::Rejected,
                    _ => AttemptStatus::Discarded,
                };
                let value = 0.05 + ((k * 7919) % 1000) as f64 / 10_000.0;
                let at = 1_700_000_000_000i64 + k as i64 * 1000;
                let attempt_id = testing::seed_attempt(
                    store,
                    &Attempt {
                        id: 0,
                        program_id,
                        seq: k as i64 + 2,
                        kind: AttemptKind::Explore,
                        status,
                        parent_commit: "p".into(),
                        commit: Some(format!("{k:040x}")),
                        hypothesis: format!("lr {} and width {} for attempt {k}", k % 97, k % 13),
                        proposer: "synthetic".into(),
                        params: Some(serde_json::json!({"lr": k % 97, "width": k % 13})),
                        patch_hash: Some(format!("{k:064x}")),
                        touched: vec!["train.py".into()],
                        rejection: None,
                        primary_value: Some(value),
                        note: None,
                        created_at: at,
                        decided_at: Some(at),
                        replay_of: None,
                    },
                )?;
                testing::seed_run(
                    store,
                    &testing::SeedRun {
                        attempt_id,
                        program_id,
                        seed: 0,
                        status: RunStatus::Succeeded,
                        executor: "local".into(),
                        primary_value: Some(value),
                        wall_secs: Some(1.0),
                        queued_at: at,
                        started_at: Some(at),
                        finished_at: Some(at),
                    },
                )?;
            }
            Ok(())
        })?;
        i = end;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Times of one request, sorted, and the size of its last answer.
struct Timing {
    ms: Vec<f64>,
    bytes: usize,
}

impl Timing {
    fn p50(&self) -> f64 {
        percentile(&self.ms, 0.5)
    }
    fn p99(&self) -> f64 {
        percentile(&self.ms, 0.99)
    }
    fn max(&self) -> f64 {
        self.ms[self.ms.len() - 1]
    }
}

/// One untimed call, then `n` timed ones; `call` returns its own time (ms) and bytes.
fn time_calls(n: usize, mut call: impl FnMut() -> Result<(f64, usize)>) -> Result<Timing> {
    call()?;
    let mut ms = Vec::with_capacity(n.max(1));
    let mut bytes = 0;
    for _ in 0..n.max(1) {
        let (t, b) = call()?;
        ms.push(t);
        bytes = b;
    }
    ms.sort_by(f64::total_cmp);
    Ok(Timing { ms, bytes })
}

/// `GET url`: wall time (ms) to the end of the body, and the body; an error status fails.
fn get(agent: &ureq::Agent, url: &str) -> Result<(f64, Vec<u8>)> {
    timed(&format!("GET {url}"), || agent.get(url).call())
}

/// `POST url` with a JSON body, timed like [`get`].
fn post_json(agent: &ureq::Agent, url: &str, body: &str) -> Result<(f64, Vec<u8>)> {
    timed(&format!("POST {url} {body}"), || {
        agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
    })
}

/// Time a request from its start to the end of its body (ms); an error status fails with
/// `what` and the body.
fn timed(
    what: &str,
    request: impl FnOnce() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(f64, Vec<u8>)> {
    let t = Instant::now();
    let mut resp = request().with_context(|| what.to_string())?;
    let status = resp.status();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        bail!("{what}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok((ms, body))
}

/// The attempt numbers of a Picidae attempts page, in order.
fn page_seqs(body: &[u8]) -> Result<Vec<i64>> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    v["attempts"]
        .as_array()
        .context("an attempts page without `attempts`")?
        .iter()
        .map(|a| a["seq"].as_i64().context("an attempt without `seq`"))
        .collect()
}

pub fn run(args: CockpitArgs) -> Result<()> {
    let (_tmp, root) = crate::peer::work_dir(&args.dir)?;
    let bench = crate::example::write(&root)?;
    let metric = picidae_core::contract::Contract::load(&bench)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .primary_metric;
    let mut project = Project::init(&root)?;
    let program = crate::integrity::idle_program(&mut project, "big", &bench)?;
    eprintln!(
        "bench cockpit: adding {} attempts with one run each",
        args.attempts
    );
    let t = Instant::now();
    fill(&project, program.id, args.attempts)?;
    eprintln!(
        "bench cockpit: filled in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let db = root.join(".picidae").join("store.sqlite");
    drop(project);

    // The API, as `picidae serve` runs it, on a loopback port of its own.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        let db = db.clone();
        std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let shutdown = async move {
                    while !stop.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                picidae_server::api::serve(
                    listener,
                    picidae_server::api::ApiState::new(db),
                    shutdown,
                )
                .await?;
                Ok(())
            })
        })
    };
    let result = measure(&args, &root, &db, &metric, &format!("http://{addr}"));
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    result
}

/// Requests to Picidae whose times the comparison with MLflow reuses.
const FIRST_PAGE: usize = 1;
const BOTH_FILTERS: usize = 5;
const CHART: usize = 6;

fn measure(args: &CockpitArgs, root: &Path, db: &Path, metric: &str, base: &str) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(600)))
        .http_status_as_error(false)
        .build()
        .into();
    let deep = args.attempts / 2;
    let endpoints: Vec<(&str, String)> = vec![
        ("program list", "/api/programs".into()),
        (
            "attempts, first page",
            "/api/programs/big/attempts?limit=50&offset=0&order=desc".into(),
        ),
        (
            "attempts, deep page",
            format!("/api/programs/big/attempts?limit=50&offset={deep}"),
        ),
        (
            "attempts, status filter",
            "/api/programs/big/attempts?status=kept&limit=50&offset=0".into(),
        ),
        (
            "attempts, text filter",
            "/api/programs/big/attempts?q=width%205&limit=50&offset=0".into(),
        ),
        (
            "attempts, status + text filter",
            "/api/programs/big/attempts?status=failed&q=width%205&limit=50&offset=0&order=desc"
                .into(),
        ),
        (
            "progress chart data",
            "/api/cockpit/programs/big/chart".into(),
        ),
    ];
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "request",
        "bytes",
        "p50 ms",
        "p99 ms",
        "max ms",
        "goal < 500 ms",
    ]);
    let mut worst: f64 = 0.0;
    let mut timings = Vec::new();
    let mut last_bodies = Vec::new();
    for (what, path) in &endpoints {
        let url = format!("{base}{path}");
        let mut last = Vec::new();
        let timing = time_calls(args.repeat, || {
            let (ms, body) = get(&agent, &url)?;
            let n = body.len();
            last = body;
            Ok((ms, n))
        })?;
        worst = worst.max(timing.p99());
        table.add_row([
            what.to_string(),
            timing.bytes.to_string(),
            format!("{:.1}", timing.p50()),
            format!("{:.1}", timing.p99()),
            format!("{:.1}", timing.max()),
            if timing.p99() < 500.0 {
                "met"
            } else {
                "not met"
            }
            .to_string(),
        ]);
        timings.push(timing);
        last_bodies.push(last);
    }
    println!("{table}");
    println!(
        "slowest p99 {worst:.1} ms over {} attempts ({} requests each after one untimed, loopback, one client)",
        args.attempts, args.repeat
    );
    if args.no_peer {
        println!("MLflow column skipped: --no-peer");
        return Ok(());
    }
    if let Some(why) = mlflow_missing(&args.python) {
        println!(
            "MLflow column skipped: `{} -c \"import mlflow\"` failed ({why}); install it with \
             `pip install mlflow` to time the same queries against an MLflow server",
            args.python
        );
        return Ok(());
    }
    let chart: serde_json::Value = serde_json::from_slice(&last_bodies[CHART])?;
    let total = chart["total_attempts"].as_u64().unwrap_or(0);
    let peer = Peer::start(args, &root.join("mlflow"), db, metric)?;
    let search = format!("{}/api/2.0/mlflow/runs/search", peer.base);
    let exp = peer
        .experiments
        .get("big")
        .context("MLflow has no experiment for program big")?
        .clone();
    let page = |filter: &str| {
        serde_json::json!({
            "experiment_ids": [exp],
            "filter": filter,
            "order_by": ["attributes.start_time DESC"],
            "max_results": 50,
        })
        .to_string()
    };
    let pairs: [(&str, usize, String); 2] = [
        ("attempts page: newest 50", FIRST_PAGE, page("")),
        (
            "attempts page: status + text filter, newest 50",
            BOTH_FILTERS,
            page("attributes.status = 'FAILED' AND tags.hypothesis ILIKE '%width 5%'"),
        ),
    ];
    let mut cmp = Table::new();
    cmp.load_preset(UTF8_FULL_CONDENSED);
    cmp.set_header([
        "query",
        "picidae p50 ms",
        "picidae p99 ms",
        "mlflow p50 ms",
        "mlflow p99 ms",
        "mlflow ÷ picidae p50",
        "mlflow ÷ picidae p99",
        "bytes picidae / mlflow",
    ]);
    let mut row = |what: &str, ours: &Timing, theirs: &Timing| {
        cmp.add_row([
            what.to_string(),
            format!("{:.1}", ours.p50()),
            format!("{:.1}", ours.p99()),
            format!("{:.1}", theirs.p50()),
            format!("{:.1}", theirs.p99()),
            format!("{:.1}x", theirs.p50() / ours.p50()),
            format!("{:.1}x", theirs.p99() / ours.p99()),
            format!("{} / {}", ours.bytes, theirs.bytes),
        ]);
    };
    for (what, ours, body) in &pairs {
        eprintln!("bench cockpit: mlflow, {what}");
        let mut seqs = Vec::new();
        let theirs = time_calls(args.peer_repeat, || {
            let (ms, out) = post_json(&agent, &search, body)?;
            let n = out.len();
            seqs = search_page(&out)?.seqs;
            Ok((ms, n))
        })?;
        let want = page_seqs(&last_bodies[*ours])?;
        if seqs != want {
            bail!(
                "{what}: MLflow returned attempts {seqs:?}, Picidae {want:?}: not the same query"
            );
        }
        row(what, &timings[*ours], &theirs);
    }
    // The chart's data: every run of the experiment, at MLflow's largest page.
    eprintln!("bench cockpit: mlflow, every run of the program");
    let mut count = 0;
    let theirs = time_calls(args.peer_repeat, || {
        let (mut ms, mut bytes) = (0.0, 0);
        let mut token: Option<String> = None;
        count = 0;
        loop {
            let mut body = serde_json::json!({
                "experiment_ids": [exp],
                "max_results": MLFLOW_MAX_RESULTS,
            });
            if let Some(t) = &token {
                body["page_token"] = t.clone().into();
            }
            let (t, out) = post_json(&agent, &search, &body.to_string())?;
            // Only the requests count: reading a page for its token is the client's work.
            ms += t;
            bytes += out.len();
            let page = search_page(&out)?;
            count += page.seqs.len() as u64;
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok((ms, bytes))
    })?;
    if count != total {
        bail!("MLflow returned {count} runs, Picidae's chart read {total} attempts");
    }
    row(
        "chart data: every point of the program",
        &timings[CHART],
        &theirs,
    );
    drop(peer.server);
    println!("{cmp}");
    println!(
        "mlflow {} (`mlflow server`, SQLite, one worker, job runner off): the same {} attempts as \
         {} runs in {} experiment(s), metric {metric}, run status (kept and discarded FINISHED, \
         failed FAILED, rejected KILLED), params lr and width, tags hypothesis and picidae.*; \
         loaded in {:.1} s by bulk INSERTs through MLflow's own SQLAlchemy tables \
         (SqlRun, SqlMetric, SqlLatestMetric, SqlParam, SqlTag; schema by its SqlAlchemyStore), \
         not compared",
        peer.version,
        total,
        peer.runs,
        peer.experiments.len(),
        peer.load_secs,
    );
    println!(
        "POST /api/2.0/mlflow/runs/search: pages with order_by attributes.start_time DESC and \
         max_results 50; every run with max_results {MLFLOW_MAX_RESULTS} (its largest) per page, \
         the time being the sum of the pages' requests; Picidae's chart reads every attempt and \
         returns at most 2,000 points; {} requests each after one untimed, the same client",
        args.peer_repeat
    );
    Ok(())
}

/// The largest `max_results` MLflow's search API accepts.
const MLFLOW_MAX_RESULTS: u32 = 50_000;

/// What of a `runs/search` answer the bench reads.
#[derive(Deserialize)]
struct SearchPage {
    #[serde(default)]
    runs: Vec<SearchRun>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct SearchRun {
    data: SearchData,
}

#[derive(Deserialize)]
struct SearchData {
    #[serde(default)]
    tags: Vec<SearchTag>,
}

#[derive(Deserialize)]
struct SearchTag {
    key: String,
    value: String,
}

/// A search answer's attempt numbers (tag `picidae.seq`) in order, and its next page.
struct Seqs {
    seqs: Vec<i64>,
    next_page_token: Option<String>,
}

fn search_page(body: &[u8]) -> Result<Seqs> {
    let page: SearchPage = serde_json::from_slice(body).context("reading a runs/search answer")?;
    let seqs = page
        .runs
        .iter()
        .map(|r| {
            r.data
                .tags
                .iter()
                .find(|t| t.key == "picidae.seq")
                .and_then(|t| t.value.parse().ok())
                .context("an MLflow run without the tag picidae.seq")
        })
        .collect::<Result<_>>()?;
    Ok(Seqs {
        seqs,
        next_page_token: page.next_page_token,
    })
}

/// A running MLflow tracking server holding the bench's attempts; killed (its whole process
/// group) when dropped.
struct Peer {
    base: String,
    version: String,
    runs: u64,
    experiments: std::collections::BTreeMap<String, String>,
    load_secs: f64,
    server: MlflowServer,
}

impl Peer {
    fn start(args: &CockpitArgs, dir: &Path, store: &Path, metric: &str) -> Result<Peer> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let db = dir.join("mlflow.db");
        let artifacts = dir.join("artifacts");
        eprintln!("bench cockpit: mlflow, loading the same attempts");
        let v = crate::peer::python_peer(
            &args.python,
            dir,
            "load.py",
            crate::peer::MLFLOW_LOAD,
            &[
                store.as_os_str(),
                db.as_os_str(),
                artifacts.as_os_str(),
                metric.as_ref(),
            ],
            "loading the attempts into MLflow failed (pass --no-peer to skip it)",
        )?;
        let experiments = v["experiments"]
            .as_object()
            .context("the loader named no experiments")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let server = MlflowServer::start(&args.python, dir, &db, &artifacts)?;
        let base = server.base.clone();
        Ok(Peer {
            base,
            version: v["version"].as_str().unwrap_or("?").to_string(),
            runs: v["runs"].as_u64().unwrap_or(0),
            experiments,
            load_secs: v["secs"].as_f64().unwrap_or(f64::NAN),
            server,
        })
    }
}
