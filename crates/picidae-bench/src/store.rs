//! `picidae-bench store`: how fast the store records attempts and their metric points, on
//! SQLite and on PostgreSQL, beside an MLflow tracking server (SQLite backend) logging the same
//! points.
//!
//! One attempt is the store's whole write path for it: the attempt proposed, its commit and
//! parameters recorded, queued and started, its run queued and started (with an environment
//! fingerprint), and the run finished with `--points` metric values and the attempt decided,
//! in one transaction. MLflow gets the same information per attempt: a run created with the
//! hypothesis as a tag, one `log-batch` with the same metric values and the parameters, and
//! the run set finished, through `MlflowClient` against `mlflow server` (how tracking clients
//! use it). Both sides run one writer on loopback; the ratio is Picidae's rate over MLflow's.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_store::{Decision, NewAttempt, NewProgram, RunResult, Store};

use crate::mlflow::{mlflow_missing, MlflowServer};

#[derive(Args)]
pub struct StoreArgs {
    /// Attempts each Picidae backend records.
    #[arg(long, default_value_t = 2000)]
    pub attempts: u64,
    /// Attempts MLflow records (it is much slower; the rate is what is compared).
    #[arg(long, default_value_t = 300)]
    pub peer_attempts: u64,
    /// Metric points each attempt's run reports.
    #[arg(long, default_value_t = 20)]
    pub points: u64,
    /// A PostgreSQL server to measure on (`postgres://user@host:port/db`): a fresh database is
    /// created there for the bench and dropped after. Without it the PostgreSQL row is skipped.
    #[arg(long, env = "PICIDAE_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// Skip the MLflow column.
    #[arg(long)]
    pub no_peer: bool,
    /// The Python with `mlflow` installed.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Where to keep the stores (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Record `n` attempts with `k` metric points each; seconds taken.
fn write_attempts(store: &mut Store, n: u64, k: u64) -> Result<f64> {
    let p = store.create_program(&NewProgram {
        name: "bench".into(),
        benchmark_dir: "/bench".into(),
        program_md: String::new(),
        agent: serde_json::json!({"kind": "sweep"}),
        policy: serde_json::json!({}),
        base_commit: "0".repeat(40),
    })?;
    let started = Instant::now();
    for i in 0..n {
        let a = store.insert_attempt(&NewAttempt {
            program_id: p.id,
            kind: AttemptKind::Explore,
            parent_commit: "0".repeat(40),
            hypothesis: format!("attempt {i}: lr {} and width {}", i % 97, i % 13),
            proposer: "bench".into(),
            params: Some(
                serde_json::json!({"lr": (i % 97).to_string(), "width": (i % 13).to_string()}),
            ),
        })?;
        store.set_attempt_commit(
            a.id,
            &format!("{i:040x}"),
            &format!("{i:064x}"),
            &["train.py".into()],
            None,
        )?;
        store.queue_attempt(a.id)?;
        store.start_attempt(a.id)?;
        let run = store.insert_run(a.id, 0, "local")?;
        store.mark_run_started(run.id, 1, 1, "bench", Some(("f0", "{}")), "/logs")?;
        let mut result = RunResult {
            status: Some(RunStatus::Succeeded),
            exit_code: Some(0),
            wall_secs: Some(1.0),
            primary_value: Some(1.0 / (i + 1) as f64),
            ..Default::default()
        };
        for j in 0..k {
            result.metrics.insert(format!("m{j}"), (i * k + j) as f64);
        }
        store.finish_run_and_decide(
            run.id,
            &result,
            a.id,
            &Decision {
                status: AttemptStatus::Discarded,
                primary_value: result.primary_value,
                note: None,
                advance_frontier: false,
                judged_against: None,
            },
        )?;
    }
    let secs = started.elapsed().as_secs_f64();
    let counted = store.run_count(Some(p.id))?;
    if counted != n as i64 {
        bail!("the store holds {counted} runs after writing {n}");
    }
    Ok(secs)
}

struct Row {
    name: String,
    attempts: u64,
    secs: f64,
}

pub fn run(args: StoreArgs) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&root)?;
    let k = args.points;
    let mut rows = Vec::new();

    eprintln!("bench store: SQLite, {} attempts", args.attempts);
    let path = root.join("store.sqlite");
    let _ = std::fs::remove_file(&path);
    let secs = write_attempts(&mut Store::open(&path)?, args.attempts, k)?;
    rows.push(Row {
        name: "Picidae, SQLite (embedded, WAL)".into(),
        attempts: args.attempts,
        secs,
    });

    match &args.postgres {
        Some(url) => {
            eprintln!("bench store: PostgreSQL, {} attempts", args.attempts);
            let db = format!("picidae_bench_{}", std::process::id());
            let mut admin = postgres::Client::connect(url, postgres::NoTls)
                .with_context(|| format!("connecting to {}", picidae_store::redact_url(url)))?;
            admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
            let result = (|| -> Result<f64> {
                let mut store = Store::connect(&picidae_store::url_with_database(url, &db))?;
                write_attempts(&mut store, args.attempts, k)
            })();
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"));
            rows.push(Row {
                name: "Picidae, PostgreSQL (loopback)".into(),
                attempts: args.attempts,
                secs: result?,
            });
        }
        None => println!(
            "PostgreSQL row skipped: give --postgres postgres://… (or PICIDAE_BENCH_POSTGRES)"
        ),
    }

    let mut peer: Option<(String, f64)> = None;
    if args.no_peer {
        println!("MLflow column skipped (--no-peer)");
    } else if let Some(why) = mlflow_missing(&args.python) {
        println!(
            "MLflow column skipped: `{} -c \"import mlflow\"` failed ({why}); install it with `pip install mlflow`",
            args.python
        );
    } else {
        eprintln!("bench store: MLflow, {} runs", args.peer_attempts);
        let dir = root.join("mlflow");
        std::fs::create_dir_all(&dir)?;
        let server = MlflowServer::start(
            &args.python,
            &dir,
            &dir.join("mlflow.db"),
            &dir.join("artifacts"),
        )?;
        let v = crate::peer::python_peer(
            &args.python,
            &dir,
            "write.py",
            crate::peer::MLFLOW_WRITE,
            &[
                server.base.as_ref(),
                args.peer_attempts.to_string().as_ref(),
                k.to_string().as_ref(),
            ],
            "logging to MLflow failed (pass --no-peer to skip it)",
        )?;
        let secs = v["secs"]
            .as_f64()
            .context("no time from the MLflow writer")?;
        let version = v["version"].as_str().unwrap_or("?").to_string();
        rows.push(Row {
            name: format!("MLflow {version}, tracking server (SQLite)"),
            attempts: args.peer_attempts,
            secs,
        });
        peer = Some((version, args.peer_attempts as f64 / secs));
    }

    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "store",
        "attempts",
        "attempt writes/s",
        "metric points/s",
        "× MLflow",
        "goal ≥ 20×",
    ]);
    for r in &rows {
        let rate = r.attempts as f64 / r.secs;
        let (ratio, goal) = match &peer {
            Some((_, p)) if !r.name.starts_with("MLflow") => {
                let x = rate / p;
                (
                    format!("{x:.1}×"),
                    if x >= 20.0 { "met" } else { "not met" }.to_string(),
                )
            }
            _ => ("-".into(), "-".into()),
        };
        table.add_row([
            r.name.clone(),
            r.attempts.to_string(),
            format!("{rate:.0}"),
            format!("{:.0}", rate * k as f64),
            ratio,
            goal,
        ]);
    }
    println!("{table}");
    println!(
        "one attempt = proposed, committed, queued, started, its run queued, started and finished \
         with {k} metric points and the attempt decided (MLflow: create-run with the hypothesis \
         tag, log-batch of the {k} points and 2 params, set-terminated); one writer, loopback"
    );
    Ok(())
}
