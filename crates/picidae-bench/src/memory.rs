//! `picidae-bench memory`: query latency, index size and dedup cost of the memory at 10k, 100k
//! and 1M synthetic attempts, side by side with the peer an autoresearch loop has — scanning
//! its whole log (results.tsv / git log) for a phrase on every question. On SQLite by default,
//! or on PostgreSQL with `--postgres`.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_store::{testing, Attempt, NewProgram, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Args)]
pub struct MemoryArgs {
    /// Store sizes to measure (attempts).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000, 1_000_000])]
    sizes: Vec<u64>,
    /// Queries per size.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Where to put the stores (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Measure on PostgreSQL instead: a fresh database is created on this server
    /// (`postgres://user@host:port/db`) and dropped afterwards.
    #[arg(long)]
    postgres: Option<String>,
    /// Use this database on the PostgreSQL server instead of a fresh one, and keep it: it is
    /// created when missing, attempts already in it count towards the sizes, and it can be
    /// inspected (or measured again without refilling) afterwards.
    #[arg(long, requires = "postgres")]
    database: Option<String>,
}

const TOPICS: &[&str] = &[
    "learning rate",
    "warmup",
    "weight decay",
    "batch size",
    "momentum",
    "dropout",
    "layer norm",
    "rms norm",
    "rotary embedding",
    "attention heads",
    "hidden width",
    "depth",
    "initialization",
    "gradient clipping",
    "cosine schedule",
    "label smoothing",
    "mixed precision",
    "adamw",
    "muon optimizer",
    "value embeddings",
    "tied embeddings",
    "sequence length",
    "kv cache",
    "activation function",
    "gelu",
    "swiglu",
    "residual scaling",
    "data shuffling",
    "ema",
];
const VERBS: &[&str] = &[
    "increase", "decrease", "remove", "add", "double", "halve", "tune", "replace",
];
const FILES: &[&str] = &["train.py", "model.py", "optim.py", "data.py"];

fn synth(rng: &mut StdRng, i: u64) -> (String, String, String) {
    let t = TOPICS[rng.random_range(0..TOPICS.len())];
    let t2 = TOPICS[rng.random_range(0..TOPICS.len())];
    let v = VERBS[rng.random_range(0..VERBS.len())];
    let x: f64 = rng.random_range(0.0..1.0);
    let hyp = format!("{v} {t} to {x:.4} and adjust {t2} (variant {i})");
    let file = FILES[rng.random_range(0..FILES.len())];
    let sym = t.replace(' ', "_").to_uppercase();
    let patch = format!(
        "--- a/{file}\n+++ b/{file}\n@@ -10,1 +10,1 @@ def setup():\n-{sym} = 0.1\n+{sym} = {x:.4}\n"
    );
    (hyp, patch, file.to_string())
}

/// Fill `store` with `n` attempts (one transaction per 10k), indexed like real ones.
fn fill(store: &Store, program_id: i64, from: u64, to: u64, rng: &mut StdRng) -> Result<()> {
    let mut i = from;
    while i < to {
        let end = (i + 10_000).min(to);
        testing::in_transaction(store, |store| -> Result<()> {
            for k in i..end {
                let (hypothesis, patch, file) = synth(rng, k);
                let mut a = Attempt {
                    id: 0,
                    program_id,
                    seq: k as i64 + 1,
                    kind: AttemptKind::Explore,
                    status: if k % 7 == 0 {
                        AttemptStatus::Kept
                    } else {
                        AttemptStatus::Discarded
                    },
                    parent_commit: "p".into(),
                    commit: Some(format!("{k:040x}")),
                    hypothesis,
                    proposer: "synthetic".into(),
                    params: None,
                    patch_hash: Some(format!("{k:064x}")),
                    touched: vec![file],
                    rejection: None,
                    primary_value: Some(1.0 + (k % 1000) as f64 / 1000.0),
                    note: None,
                    created_at: 0,
                    decided_at: None,
                    replay_of: None,
                };
                a.id = testing::seed_attempt(store, &a)?;
                picidae_memory::set_keys(store, a.id, &patch, None)?;
                picidae_memory::index_attempt(store, &a, &patch)?;
            }
            Ok(())
        })?;
        i = end;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn run(args: MemoryArgs) -> Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let pg_db = args
        .database
        .clone()
        .unwrap_or_else(|| format!("picidae_memory_bench_{}", std::process::id()));
    let mut store = match &args.postgres {
        Some(url) => {
            let mut admin = postgres::Client::connect(url, postgres::NoTls)?;
            let exists = admin
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&pg_db])?
                .is_some();
            if !exists {
                admin.batch_execute(&format!("CREATE DATABASE {pg_db}"))?;
            }
            Store::connect(&picidae_store::url_with_database(url, &pg_db))?
        }
        None => {
            let path = dir.join("memory-bench.sqlite");
            let _ = std::fs::remove_file(&path);
            Store::open(&path)?
        }
    };
    let result = measure(&args, &mut store);
    drop(store);
    if let Some(url) = &args.postgres {
        if args.database.is_some() {
            eprintln!(
                "bench memory: kept {}",
                picidae_store::url_with_database(url, &pg_db)
            );
        } else {
            let mut admin = postgres::Client::connect(url, postgres::NoTls)?;
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {pg_db}"))?;
        }
    }
    result
}

fn measure(args: &MemoryArgs, store: &mut Store) -> Result<()> {
    let have_program = store
        .programs()?
        .into_iter()
        .find(|p| p.name == "synthetic");
    let p = match have_program {
        Some(p) => p,
        None => store.create_program(&NewProgram {
            name: "synthetic".into(),
            benchmark_dir: "/synthetic".into(),
            program_md: String::new(),
            agent: serde_json::Value::Null,
            policy: serde_json::Value::Null,
            base_commit: "p".into(),
        })?,
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "attempts",
        "fill s",
        "index MiB",
        "search p50 ms",
        "search p99 ms",
        "dedup p50 ms",
        "dedup p99 ms",
        "scan p50 ms (peer)",
        "p50 ratio scan/search",
    ]);
    // A kept database resumes where it was left: its attempts count towards the sizes.
    let mut have = store.max_attempt_id()? as u64;
    for _ in 0..have {
        synth(&mut rng, 0);
    }
    for &n in &sizes {
        let started = Instant::now();
        eprintln!("bench memory: filling to {n} attempts");
        fill(store, p.id, have, n, &mut rng)?;
        have = have.max(n);
        let fill_s = started.elapsed().as_secs_f64();
        store.analyze()?;
        let index = picidae_memory::index_bytes(store)? as f64 / 1024.0 / 1024.0;
        let mut qrng = StdRng::seed_from_u64(n);
        let mut search_ms = Vec::new();
        let mut dedup_ms = Vec::new();
        let mut scan_ms = Vec::new();
        // The peer: every hypothesis in memory, scanned for the phrase (what grepping a
        // results.tsv or `git log` amounts to).
        let all: Vec<String> = store.hypotheses(p.id)?;
        for q in 0..args.queries {
            let topic = TOPICS[qrng.random_range(0..TOPICS.len())];
            let verb = VERBS[qrng.random_range(0..VERBS.len())];
            let query = format!("{verb} the {topic}");
            let s = Instant::now();
            let hits = picidae_memory::search(store, &query, Some("synthetic"), 10)?;
            search_ms.push(s.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(hits);
            let (_, patch, _) = synth(&mut qrng, n + q as u64);
            let mut assignment = picidae_core::Assignment::new();
            assignment.insert("lr".into(), format!("{:.4}", qrng.random_range(0.0..1.0)));
            let s = Instant::now();
            let d = picidae_memory::find_duplicate(
                store,
                "/synthetic",
                -1,
                "p",
                &patch,
                Some(&assignment),
                None,
            )?;
            dedup_ms.push(s.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(d);
            let s = Instant::now();
            let found = all
                .iter()
                .filter(|h| h.contains(topic) && h.contains(verb))
                .count();
            scan_ms.push(s.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(found);
        }
        for v in [&mut search_ms, &mut dedup_ms, &mut scan_ms] {
            v.sort_by(|a, b| a.total_cmp(b));
        }
        let (s50, s99) = (percentile(&search_ms, 0.5), percentile(&search_ms, 0.99));
        let scan50 = percentile(&scan_ms, 0.5);
        t.add_row([
            have.to_string(),
            format!("{fill_s:.1}"),
            format!("{index:.1}"),
            format!("{s50:.2}"),
            format!("{s99:.2}"),
            format!("{:.3}", percentile(&dedup_ms, 0.5)),
            format!("{:.3}", percentile(&dedup_ms, 0.99)),
            format!("{scan50:.2}"),
            format!("{:.1}×", scan50 / s50),
        ]);
    }
    println!("{t}");
    let engine = match store.backend() {
        picidae_store::Backend::Sqlite => "SQLite FTS5 bm25",
        picidae_store::Backend::Postgres => "PostgreSQL tsvector/GIN ts_rank",
    };
    println!(
        "(search: {engine} top 10 with outcomes; dedup: exact + normalized + parameter keys per proposal; peer: substring scan of all hypotheses, the autoresearch way; goal p99 < 20 ms at 1M)"
    );
    Ok(())
}
