//! `picidae worker`: a machine that runs a coordinator's runs, with the coordinator's HTTP API
//! as its only connection (no shared file system). It registers with what it offers and its
//! environment fingerprint, claims a run that fits, fetches the run's tree as a git bundle
//! into its cache (only what it lacks), runs it with its own local executor and sandbox under
//! the contract's limits while a heartbeat renews its lease, and reports the result. A report
//! that fails on the network is sent again (the coordinator takes it once); one refused
//! because the lease was lost is dropped. Ctrl-C finishes the run in flight; a second one
//! cancels it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use picidae_exec::work::{
    execute, pack_artifacts, run_setup, WorkDirs, WorkResult, WorkSetup, WorkSpec,
};
use picidae_exec::Fingerprint;
use picidae_git::Cache;
use picidae_sched::{Mode, Shutdown};
use serde_json::{json, Value};

/// `picidae worker`'s options.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct WorkerArgs {
    /// The coordinator's API (`picidae serve --listen`), e.g. `http://10.0.0.5:7420`.
    #[arg(long, env = "PICIDAE_COORDINATOR")]
    coordinator: String,
    /// A worker token (`picidae token create NAME --worker` on the coordinator).
    #[arg(long, env = "PICIDAE_WORKER_TOKEN", hide_env_values = true)]
    token: String,
    /// This worker's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// The pool it serves (`--executor workers:POOL`; default: the default pool).
    #[arg(long, default_value = "")]
    pool: String,
    /// GPU indices it offers, e.g. `0,1`.
    #[arg(long, value_delimiter = ',')]
    gpus: Vec<u32>,
    /// CPUs it offers (default: all of this machine's).
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory it offers, in MiB (default: not stated; any run fits).
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Where it keeps its cache of trees and its runs' directories.
    #[arg(long, default_value = ".picidae-worker")]
    dir: PathBuf,
    /// Stop after this many runs (default: never).
    #[arg(long)]
    max_runs: Option<u64>,
    /// How long to wait between claims when there is nothing to run, in milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
}

/// The coordinator, as this worker talks to it.
struct Coordinator {
    url: String,
    token: String,
    agent: ureq::Agent,
}

/// An answer the coordinator refused (4xx): its status and the API's error message. A 5xx
/// is a failure of the moment, retried like the network's.
#[derive(Debug)]
struct Refused {
    status: u16,
    message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for Refused {}

impl Coordinator {
    fn new(url: &str, token: &str) -> Coordinator {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        Coordinator {
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent,
        }
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// POST `body`; the answer's JSON (`Null` for 204), or [`Refused`].
    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let url = format!("{}{path}", self.url);
        let mut resp = self
            .agent
            .post(&url)
            .header("Authorization", &self.auth())
            .send_json(body)
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status().as_u16();
        if status == 204 {
            return Ok(Value::Null);
        }
        let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
        answer(status, v)
    }

    /// PUT a tar archive; the answer's JSON, or [`Refused`].
    fn put_tar(&self, path: &str, body: &[u8]) -> Result<Value> {
        let url = format!("{}{path}", self.url);
        let mut resp = self
            .agent
            .put(&url)
            .header("Authorization", &self.auth())
            .content_type("application/octet-stream")
            .send(body)
            .with_context(|| format!("PUT {url}"))?;
        let status = resp.status().as_u16();
        let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
        answer(status, v)
    }

    /// GET bytes.
    fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.url);
        let mut resp = self
            .agent
            .get(&url)
            .header("Authorization", &self.auth())
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
            answer(status, v)?;
        }
        Ok(resp
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024 * 1024)
            .read_to_vec()?)
    }
}

/// An answer's JSON, a [`Refused`] for a 4xx, or an error to retry for anything else.
fn answer(status: u16, v: Value) -> Result<Value> {
    let message = || v["error"].as_str().unwrap_or("refused").to_string();
    match status {
        200..=299 => Ok(v),
        400..=499 => Err(Refused {
            status,
            message: message(),
        }
        .into()),
        _ => bail!("the coordinator failed: {} ({status})", message()),
    }
}

/// How often a running run's log tails go to the coordinator (when they grew).
const LOG_EVERY: Duration = Duration::from_secs(2);

/// The most of each log sent while a run executes (the report carries the full tails).
const LOG_TAIL: u64 = 256 * 1024;

/// Where a running run's logs are, and where they go.
struct Logs {
    dir: PathBuf,
    path: String,
    lease: String,
}

impl Logs {
    /// Send the logs' tails if they grew since `sent` (their sizes then).
    fn send(&self, c: &Coordinator, sent: &mut (u64, u64)) -> Result<()> {
        let size = |n: &str| std::fs::metadata(self.dir.join(n)).map_or(0, |m| m.len());
        let now = (size("stdout.log"), size("stderr.log"));
        if now == *sent {
            return Ok(());
        }
        c.post(
            &self.path,
            &json!({
                "lease": self.lease,
                "stdout": tail(&self.dir.join("stdout.log"), LOG_TAIL),
                "stderr": tail(&self.dir.join("stderr.log"), LOG_TAIL),
            }),
        )?;
        *sent = now;
        Ok(())
    }
}

/// The last `cap` bytes of a file (empty when it cannot be read).
fn tail(path: &Path, cap: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(cap)));
    let mut buf = Vec::new();
    let _ = f.take(cap).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A run this worker claimed.
struct Claimed {
    run_id: i64,
    lease: String,
    spec: WorkSpec,
}

/// Run `picidae worker` until stopped.
pub(crate) fn run(args: WorkerArgs) -> Result<()> {
    let shutdown = Shutdown::new();
    {
        let shutdown = shutdown.clone();
        let _ = ctrlc::set_handler(move || match shutdown.escalate() {
            Mode::Cancel => eprintln!("\npicidae worker: cancelling the run in flight"),
            _ => eprintln!(
                "\npicidae worker: stopping after the run in flight (Ctrl-C again to cancel it)"
            ),
        });
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let cache = Cache::open(dir.join("cache.git"))?;
    let fp = Fingerprint::collect(None)?;
    let name = args.name.clone().unwrap_or_else(|| fp.hostname.clone());
    let c = Coordinator::new(&args.coordinator, &args.token);
    let cpus = args
        .cpus
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let me = retrying(&shutdown, "registering", || {
        c.post(
            "/api/workers",
            &json!({
                "name": name, "pool": args.pool, "gpus": args.gpus, "cpus": cpus,
                "memory_mb": args.memory_mb, "fingerprint": fp.hash(),
                "fingerprint_json": serde_json::to_string(&fp)?,
            }),
        )
    })?;
    let id = me["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("no worker id in {me}"))?;
    let lease = Duration::from_secs_f64(me["lease_secs"].as_f64().unwrap_or(30.0));
    eprintln!(
        "picidae worker: {name} (worker {id}) on {}, pool {:?}, lease {:.0}s",
        c.url,
        args.pool,
        lease.as_secs_f64()
    );
    let mut done = 0u64;
    while !shutdown.draining() && args.max_runs.is_none_or(|m| done < m) {
        let answer = retrying(&shutdown, "claiming", || {
            c.post(&format!("/api/workers/{id}/claim"), &Value::Null)
        })?;
        if answer.is_null() {
            std::thread::sleep(Duration::from_millis(args.poll_ms));
            continue;
        }
        let claimed = Claimed {
            run_id: answer["run_id"].as_i64().unwrap_or(0),
            lease: answer["lease"].as_str().unwrap_or_default().to_string(),
            spec: serde_json::from_value(answer["spec"].clone())
                .context("the coordinator's work spec")?,
        };
        // A run that fails here (a tree that will not fetch) is not reported but given back,
        // to be offered again at once (or, if that fails too, when the lease lapses).
        if let Err(e) = run_one(&c, (id, lease), &cache, &dir, &fp, &claimed, &shutdown) {
            eprintln!(
                "picidae worker: run {}: {e:#}; giving it back",
                claimed.run_id
            );
            let _ = c.post(
                &format!("/api/workers/{id}/runs/{}/release", claimed.run_id),
                &json!({"lease": claimed.lease}),
            );
            if shutdown.cancelled() {
                return Err(e);
            }
        }
        done += 1;
    }
    Ok(())
}

/// Fetch, run and report one claimed run.
fn run_one(
    c: &Coordinator,
    (id, lease): (i64, Duration),
    cache: &Cache,
    dir: &Path,
    fp: &Fingerprint,
    claimed: &Claimed,
    shutdown: &Shutdown,
) -> Result<()> {
    let run_id = claimed.run_id;
    let run_dir = dir.join("runs").join(run_id.to_string());
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)?;
    }
    let tree_dir = run_dir.join("tree");
    fetch(
        c,
        shutdown,
        (id, claimed),
        cache,
        &claimed.spec.tree,
        &run_dir,
    )?;
    cache.checkout(&claimed.spec.tree, &tree_dir)?;
    let mut dirs = WorkDirs::new(&run_dir.join("out"))?;
    if let Some(setup) = &claimed.spec.setup {
        match prepare(c, shutdown, (id, claimed), (cache, fp), dir, setup)? {
            Ok(data) => dirs.data = Some(data),
            Err(failed) => {
                // The run cannot start without its data: it is reported as the setup ended.
                let body = json!({"lease": claimed.lease, "result": failed});
                let path = format!("/api/workers/{id}/runs/{run_id}/result");
                if let Err(e) = retrying(shutdown, "reporting", || c.post(&path, &body)) {
                    eprintln!("picidae worker: run {run_id}: {e:#}");
                }
                return Ok(());
            }
        }
    }
    // The run is stopped when this worker is cancelled, when the coordinator asks, or when
    // the lease is lost (its result would be refused).
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    // Held while the thread below talks to the coordinator: the report waits for a call in
    // flight, so no log tail lands after the final logs.
    let posting = Arc::new(std::sync::Mutex::new(()));
    let heartbeat = {
        let (stop, finished, shutdown) = (stop.clone(), finished.clone(), shutdown.clone());
        let posting = posting.clone();
        let c = Coordinator::new(&c.url, &c.token);
        let body = json!({"leases": [{"run_id": run_id, "lease": claimed.lease}]});
        let logs = Logs {
            dir: dirs.run_dir.clone(),
            path: format!("/api/workers/{id}/runs/{run_id}/log"),
            lease: claimed.lease.clone(),
        };
        std::thread::spawn(move || {
            let every = (lease / 3).max(Duration::from_millis(100));
            let mut last = Instant::now();
            let mut last_log = Instant::now();
            let mut sent = (0u64, 0u64);
            loop {
                let _call = posting.lock().unwrap_or_else(|e| e.into_inner());
                if finished.load(Ordering::SeqCst) {
                    break;
                }
                if shutdown.cancelled() {
                    stop.store(true, Ordering::SeqCst);
                }
                if last_log.elapsed() >= LOG_EVERY {
                    last_log = Instant::now();
                    if let Err(e) = logs.send(&c, &mut sent) {
                        eprintln!("picidae worker: sending logs: {e:#}");
                    }
                }
                if last.elapsed() >= every {
                    last = Instant::now();
                    match c.post(&format!("/api/workers/{id}/heartbeat"), &body) {
                        Ok(r) => {
                            let has = |k: &str| {
                                r[k].as_array()
                                    .is_some_and(|a| a.iter().any(|x| x.as_i64() == Some(run_id)))
                            };
                            if has("lost") {
                                eprintln!(
                                    "picidae worker: lost the lease on run {run_id}; stopping it"
                                );
                                stop.store(true, Ordering::SeqCst);
                            } else if has("cancel") {
                                eprintln!("picidae worker: run {run_id} cancelled");
                                stop.store(true, Ordering::SeqCst);
                            }
                        }
                        Err(e) => eprintln!("picidae worker: heartbeat: {e:#}"),
                    }
                }
                drop(_call);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    eprintln!(
        "picidae worker: run {run_id} ({} #{} seed {})",
        claimed.spec.program, claimed.spec.attempt_seq, claimed.spec.seed
    );
    let outcome = execute(&claimed.spec, &tree_dir, &dirs, &stop, |_| {});
    // The heartbeat thread ends on its own; the report waits only for a call in flight.
    finished.store(true, Ordering::SeqCst);
    drop(posting.lock().unwrap_or_else(|e| e.into_inner()));
    let result = match outcome {
        Ok(outcome) => WorkResult::gather(outcome, &dirs, fp),
        Err(e) => {
            eprintln!("picidae worker: run {run_id}: {e}");
            WorkResult::not_started(&e.to_string(), fp)
        }
    };
    // The artifacts first: the coordinator grades the run (and its hidden evaluator reads
    // them) as soon as the result is in.
    match pack_artifacts(&dirs) {
        Ok(Some(tar)) => {
            let path = format!(
                "/api/workers/{id}/runs/{run_id}/artifacts?lease={}",
                claimed.lease
            );
            if let Err(e) = retrying(shutdown, "uploading artifacts", || c.put_tar(&path, &tar)) {
                eprintln!("picidae worker: run {run_id}: artifacts not taken: {e:#}");
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("picidae worker: run {run_id}: {e}"),
    }
    let body = json!({"lease": claimed.lease, "result": result});
    let path = format!("/api/workers/{id}/runs/{run_id}/result");
    match retrying(shutdown, "reporting", || c.post(&path, &body)) {
        Ok(_) => {}
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            eprintln!("picidae worker: run {run_id}: the coordinator refused the result: {e}");
        }
        Err(e) => return Err(e),
    }
    let _ = std::fs::remove_dir_all(&tree_dir);
    let _ = heartbeat.join();
    Ok(())
}

/// Bring the exported `tree` of a claimed run into the cache, unless it is there already.
fn fetch(
    c: &Coordinator,
    shutdown: &Shutdown,
    (id, claimed): (i64, &Claimed),
    cache: &Cache,
    tree: &str,
    scratch: &Path,
) -> Result<()> {
    if cache.has(tree)? {
        return Ok(());
    }
    let haves = cache.haves()?.join(",");
    let path = format!(
        "/api/workers/{id}/runs/{}/bundle?lease={}&tree={tree}&have={haves}",
        claimed.run_id, claimed.lease
    );
    let bytes = retrying(shutdown, "fetching the tree", || c.get_bytes(&path))?;
    std::fs::create_dir_all(scratch)?;
    let bundle = scratch.join(format!("{tree}.bundle"));
    std::fs::write(&bundle, bytes)?;
    let fetched = cache.fetch_bundle(&bundle);
    std::fs::remove_file(&bundle)?;
    Ok(fetched?)
}

/// The data of the run's setup step, made here once per setup (its key); or, when the step
/// failed, the result to report for the run.
fn prepare(
    c: &Coordinator,
    shutdown: &Shutdown,
    claimed: (i64, &Claimed),
    (cache, fp): (&Cache, &Fingerprint),
    dir: &Path,
    setup: &WorkSetup,
) -> Result<std::result::Result<PathBuf, WorkResult>> {
    let data = dir.join("data").join(&setup.key);
    let done = dir.join("data").join(format!("{}.done", setup.key));
    if done.exists() {
        return Ok(Ok(data));
    }
    let work = dir.join("setup").join(&setup.key);
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    fetch(c, shutdown, claimed, cache, &setup.tree, &work)?;
    let tree = cache.checkout(&setup.tree, &work.join("tree"))?;
    let log = work.join("setup.log");
    eprintln!("picidae worker: running the setup step ({})", setup.key);
    let outcome = run_setup(
        setup,
        &tree,
        &claimed.1.spec.bench_dir,
        &data,
        &log,
        &AtomicBool::new(false),
    )?;
    let _ = std::fs::remove_dir_all(&tree);
    if outcome.succeeded() {
        std::fs::write(&done, "")?;
        return Ok(Ok(data));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut failed = WorkResult::gather(outcome, &WorkDirs::new(&work.join("out"))?, fp);
    failed.stderr = format!("the setup step failed on this worker:\n{text}");
    Ok(Err(failed))
}

/// Call `f` until it answers, waiting longer after each failure of the network (up to 10 s
/// apart); an answer the coordinator refused is returned at once. Gives up when cancelled.
fn retrying<T>(shutdown: &Shutdown, what: &str, f: impl Fn() -> Result<T>) -> Result<T> {
    let mut wait = Duration::from_millis(200);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.downcast_ref::<Refused>().is_some() => return Err(e),
            Err(e) => {
                if shutdown.cancelled() {
                    bail!("{what}: {e:#}");
                }
                eprintln!("picidae worker: {what}: {e:#}; trying again in {wait:?}");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}
