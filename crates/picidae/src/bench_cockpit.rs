//! `picidae bench cockpit`: how long the server takes to answer the cockpit's heaviest requests
//! on a program with many attempts.
//!
//! It writes the example benchmark into a fresh project, creates a program on it, and adds
//! `--attempts` synthetic attempts with one finished run each, straight into the store (no
//! runs are executed). Then it serves the HTTP API (the same server `picidae serve` runs) on a
//! loopback port and times, over `--repeat` requests each, what the cockpit asks for: the
//! program list, the first and a deep page of the attempts table, a filtered page (status and
//! text), and the progress chart's data. Times are wall time at the client, loopback included.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_sched::Project;
use picidae_store::params;

#[derive(Args)]
pub struct CockpitArgs {
    /// Attempts in the program (each with one run).
    #[arg(long, default_value_t = 100_000)]
    pub attempts: u64,
    /// Requests timed per endpoint.
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,
    /// Where to keep the project (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

/// Insert `n` attempts with one succeeded run each, in transactions of 10,000.
fn fill(project: &Project, program_id: i64, n: u64) -> Result<()> {
    let conn = project.store.db();
    let mut i = 0u64;
    while i < n {
        let end = (i + 10_000).min(n);
        conn.execute_batch("BEGIN")?;
        for k in i..end {
            let status = match (k % 200, k % 10) {
                (0, _) => "kept",
                (_, 1) => "failed",
                (_, 2) => "rejected",
                _ => "discarded",
            };
            let value = 0.05 + ((k * 7919) % 1000) as f64 / 10_000.0;
            let at = 1_700_000_000_000i64 + k as i64 * 1000;
            let attempt_id: i64 = conn.query_row(
                "INSERT INTO attempts (program_id, seq, kind, status, parent_commit, commit_sha,
                    hypothesis, proposer, patch_hash, touched_json, primary_value, created_at,
                    decided_at)
                 VALUES (?1, ?2, 'explore', ?3, 'p', ?4, ?5, 'synthetic', ?6, '[\"train.py\"]',
                    ?7, ?8, ?8) RETURNING id",
                params![
                    program_id,
                    k as i64 + 2,
                    status,
                    format!("{k:040x}"),
                    format!("lr {} and width {} for attempt {k}", k % 97, k % 13),
                    format!("{k:064x}"),
                    value,
                    at
                ], |r| r.get(0),)?;
            
            conn.execute(
                "INSERT INTO runs (attempt_id, program_id, seed, status, executor, primary_value,
                    wall_secs, queued_at, started_at, finished_at)
                 VALUES (?1, ?2, 0, 'succeeded', 'local', ?3, 1.0, ?4, ?4, ?4)",
                params![attempt_id, program_id, value, at],
            )?;
        }
        conn.execute_batch("COMMIT")?;
        i = end;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn run(args: CockpitArgs) -> Result<()> {
    let (_tmp, root) = crate::bench::work_dir(&args.dir)?;
    let bench = crate::example::write(&root)?;
    let mut project = Project::init(&root)?;
    let program = crate::bench::idle_program(&mut project, "big", &bench)?;
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
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
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
    for (what, path) in &endpoints {
        let url = format!("http://{addr}{path}");
        let mut times = Vec::with_capacity(args.repeat);
        let mut bytes = 0usize;
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            let mut resp = agent
                .get(&url)
                .call()
                .with_context(|| format!("GET {url}"))?;
            let status = resp.status();
            let body = resp.body_mut().read_to_vec()?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if !status.is_success() {
                bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
            }
            bytes = body.len();
            times.push(ms);
        }
        times.sort_by(f64::total_cmp);
        let (p50, p99, max) = (
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1],
        );
        worst = worst.max(p99);
        table.add_row([
            what.to_string(),
            bytes.to_string(),
            format!("{p50:.1}"),
            format!("{p99:.1}"),
            format!("{max:.1}"),
            if p99 < 500.0 { "met" } else { "not met" }.to_string(),
        ]);
    }
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    println!("{table}");
    println!(
        "slowest p99 {worst:.1} ms over {} attempts ({} requests each, loopback, one client)",
        args.attempts, args.repeat
    );
    Ok(())
}
