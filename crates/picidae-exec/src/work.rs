//! A run as it travels to a remote worker (`picidae worker`) and back: the [`WorkSpec`] the
//! coordinator offers, the worker's execution of it ([`execute`]: the local executor, its
//! limits and, where the contract asks, the sandbox), and the [`WorkResult`] it reports:
//! the outcome and what the coordinator grades it on (the output's tails, the metrics file).
//!
//! The spec carries no path of the coordinator's machine: the worker runs the exported tree
//! in a directory of its own and sets the output paths (`PICIDAE_METRICS`,
//! `PICIDAE_ARTIFACTS`) itself.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ExecError, Limits, LocalExecutor, RunOutcome, RunRequest, Sandbox, SandboxSpec};

/// What a worker needs to run one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkSpec {
    pub program: String,
    pub run_id: i64,
    pub attempt_seq: i64,
    pub seed: i64,
    /// The exported tree to run (hidden files left out), named by its hash.
    pub tree: String,
    /// The benchmark directory inside the tree (`""`: its root).
    pub bench_dir: String,
    pub command: String,
    /// The run's environment: seed, parameters, ids (no path).
    pub env: Vec<(String, String)>,
    pub time_budget_secs: f64,
    pub timeout_secs: f64,
    pub grace_secs: f64,
    pub log_cap_bytes: u64,
    pub gpus: u32,
    pub cpus: u32,
    pub memory_mb: Option<u64>,
    pub max_processes: Option<u64>,
    /// Run under the sandbox (bubblewrap), as on the coordinator's machine.
    pub sandbox: bool,
    pub network: bool,
    /// Files of the tree the run may read but not change (bound read-only in the sandbox).
    pub protected: Vec<String>,
    /// The contract's setup step, which the worker runs once before the first run that
    /// needs it (its data then shared, read-only, by every run of the same setup).
    #[serde(default)]
    pub setup: Option<WorkSetup>,
}

/// The setup step as a worker runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkSetup {
    pub command: String,
    /// The exported tree of the program's base commit, where it runs.
    pub tree: String,
    /// Names the data it makes: the same key, the same data.
    pub key: String,
}

/// What a worker reports for one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkResult {
    pub outcome: RunOutcome,
    /// The end of its stdout, at most [`OUTPUT_CAP`] bytes.
    pub stdout: String,
    /// The end of its stderr, at most [`OUTPUT_CAP`] bytes.
    pub stderr: String,
    /// Its `metrics.jsonl`, at most [`OUTPUT_CAP`] bytes, if it wrote one.
    pub metrics_jsonl: Option<String>,
    /// The worker's host name and environment fingerprint.
    pub host: String,
    pub fingerprint: String,
    pub fingerprint_json: String,
}

/// The most of each output a worker sends back.
pub const OUTPUT_CAP: u64 = 8 * 1024 * 1024;

/// The most a run's artifacts may weigh, packed, to travel back to the coordinator.
pub const ARTIFACTS_CAP: u64 = 1024 * 1024 * 1024;

/// Where a worker's run keeps its outputs, inside its run directory.
pub struct WorkDirs {
    pub run_dir: PathBuf,
    pub metrics: PathBuf,
    pub artifacts: PathBuf,
    /// The setup step's data (`PICIDAE_DATA`), read-only to the run.
    pub data: Option<PathBuf>,
}

impl WorkDirs {
    pub fn new(run_dir: &Path) -> Result<WorkDirs, ExecError> {
        let artifacts = run_dir.join("artifacts");
        let io = |p: &Path, e: std::io::Error| {
            ExecError::InvalidRequest(format!("{}: {e}", p.display()))
        };
        std::fs::create_dir_all(&artifacts).map_err(|e| io(&artifacts, e))?;
        let metrics = run_dir.join("metrics.jsonl");
        std::fs::File::create(&metrics).map_err(|e| io(&metrics, e))?;
        Ok(WorkDirs {
            run_dir: run_dir.to_path_buf(),
            metrics,
            artifacts,
            data: None,
        })
    }
}

/// The request a worker runs for `spec`, its tree checked out at `tree` and its outputs under
/// `dirs`, sandboxed when the spec asks.
pub fn request(spec: &WorkSpec, tree: &Path, dirs: &WorkDirs) -> Result<RunRequest, ExecError> {
    let cwd = tree.join(&spec.bench_dir);
    let mut env = spec.env.clone();
    env.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "PICIDAE_METRICS" | "PICIDAE_ARTIFACTS" | "PICIDAE_DATA"
        )
    });
    env.push(("PICIDAE_METRICS".into(), dirs.metrics.display().to_string()));
    env.push((
        "PICIDAE_ARTIFACTS".into(),
        dirs.artifacts.display().to_string(),
    ));
    if let Some(data) = &dirs.data {
        env.push(("PICIDAE_DATA".into(), data.display().to_string()));
    }
    let req = RunRequest {
        command: spec.command.clone(),
        cwd,
        env,
        time_budget: Duration::from_secs_f64(spec.time_budget_secs.max(0.0)),
        timeout: Duration::from_secs_f64(spec.timeout_secs.max(0.0)),
        grace: Duration::from_secs_f64(spec.grace_secs.max(0.0)),
        stdout_path: dirs.run_dir.join("stdout.log"),
        stderr_path: dirs.run_dir.join("stderr.log"),
        log_cap_bytes: spec.log_cap_bytes,
    };
    if !spec.sandbox {
        return Ok(req);
    }
    if !Sandbox::available() {
        return Err(ExecError::Sandbox(
            "the run asks for the sandbox but bubblewrap (`bwrap`) is not available on this \
             worker; install it (Debian: bubblewrap)"
                .into(),
        ));
    }
    let mut readonly = vec![dirs.run_dir.clone()];
    readonly.extend(dirs.data.iter().filter(|d| d.is_dir()).cloned());
    for rel in &spec.protected {
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            continue;
        }
        let p = tree.join(rel);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| !m.file_type().is_symlink()) {
            readonly.push(p);
        }
    }
    Sandbox::new(SandboxSpec {
        writable: vec![
            tree.to_path_buf(),
            dirs.artifacts.clone(),
            dirs.metrics.clone(),
        ],
        readonly,
        hidden: Vec::new(),
        devices: if spec.gpus > 0 {
            crate::sandbox::nvidia_devices()
        } else {
            Vec::new()
        },
        network: spec.network,
    })
    .wrap(&req)
}

/// Run `spec` here (see [`request`]) until it ends or `cancel` is set, then gather what is
/// reported. `started` is told the process group once it runs.
pub fn execute(
    spec: &WorkSpec,
    tree: &Path,
    dirs: &WorkDirs,
    cancel: &AtomicBool,
    started: impl FnOnce(u32),
) -> Result<RunOutcome, ExecError> {
    let req = request(spec, tree, dirs)?;
    let limits = Limits {
        memory_mb: spec.memory_mb,
        max_processes: spec.max_processes,
    };
    let child = LocalExecutor::with_limits(limits).spawn(&req)?;
    started(child.pgid() as u32);
    child.wait(cancel)
}

/// How long a worker's setup step may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(3600);

/// Run `setup` in its checked-out `tree`, making its data in `data` (created fresh); the
/// hidden data it may also make is thrown away (the hidden evaluator runs on the
/// coordinator). `log` receives its output.
pub fn run_setup(
    setup: &WorkSetup,
    tree: &Path,
    bench_dir: &str,
    data: &Path,
    log: &Path,
    cancel: &AtomicBool,
) -> Result<RunOutcome, ExecError> {
    let io =
        |p: &Path, e: std::io::Error| ExecError::InvalidRequest(format!("{}: {e}", p.display()));
    let hidden = tempfile::tempdir().map_err(|e| io(Path::new("hidden"), e))?;
    std::fs::create_dir_all(data).map_err(|e| io(data, e))?;
    let req = RunRequest {
        command: setup.command.clone(),
        cwd: tree.join(bench_dir),
        env: vec![
            ("PICIDAE_DATA".into(), data.display().to_string()),
            ("PICIDAE_HIDDEN".into(), hidden.path().display().to_string()),
        ],
        time_budget: SETUP_TIMEOUT,
        timeout: SETUP_TIMEOUT,
        grace: Duration::from_secs(5),
        stdout_path: log.to_path_buf(),
        stderr_path: log.to_path_buf(),
        log_cap_bytes: 16 * 1024 * 1024,
    };
    LocalExecutor::new().spawn(&req)?.wait(cancel)
}

/// An output file of the run, at most [`OUTPUT_CAP`] bytes, without following a link; whether
/// it was cut.
pub fn read_output(dir: &Path, name: &str) -> Option<(String, bool)> {
    crate::safe_fs::read_nofollow(dir, name, OUTPUT_CAP + 1)
        .ok()
        .map(|mut b| {
            let cut = b.len() as u64 > OUTPUT_CAP;
            b.truncate(OUTPUT_CAP as usize);
            (String::from_utf8_lossy(&b).into_owned(), cut)
        })
}

impl WorkResult {
    /// A run that could not be started here (the sandbox missing, a tree that would not
    /// check out): reported as failed, with why on its stderr.
    pub fn not_started(why: &str, fp: &crate::Fingerprint) -> WorkResult {
        WorkResult {
            outcome: RunOutcome::not_run(false),
            stdout: String::new(),
            stderr: format!("the worker could not start the run: {why}\n"),
            metrics_jsonl: None,
            host: fp.hostname.clone(),
            fingerprint: fp.hash(),
            fingerprint_json: serde_json::to_string(fp).unwrap_or_default(),
        }
    }

    /// Gather what the run left in `dirs` with its `outcome`, run on the machine `fp`.
    pub fn gather(mut outcome: RunOutcome, dirs: &WorkDirs, fp: &crate::Fingerprint) -> WorkResult {
        let (stdout, cut) = read_output(&dirs.run_dir, "stdout.log").unwrap_or_default();
        // Cut: the coordinator reads the metric lines from the outcome's tail instead.
        outcome.stdout_truncated |= cut;
        let (stderr, _) = read_output(&dirs.run_dir, "stderr.log").unwrap_or_default();
        let metrics_jsonl = read_output(&dirs.run_dir, "metrics.jsonl").map(|(m, _)| m);
        WorkResult {
            outcome,
            stdout,
            stderr,
            metrics_jsonl,
            host: fp.hostname.clone(),
            fingerprint: fp.hash(),
            fingerprint_json: serde_json::to_string(fp).unwrap_or_default(),
        }
    }
}

/// The run's artifacts as a tar archive of regular files and directories (links and other
/// kinds are left out: the coordinator would refuse them), or `None` when it left none.
pub fn pack_artifacts(dirs: &WorkDirs) -> Result<Option<Vec<u8>>, ExecError> {
    let bad = |e: std::io::Error| ExecError::InvalidRequest(format!("packing artifacts: {e}"));
    let mut files = Vec::new();
    collect(&dirs.artifacts, Path::new(""), &mut files).map_err(bad)?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let mut total = 0u64;
    for rel in files {
        let path = dirs.artifacts.join(&rel);
        let mut f = std::fs::File::open(&path).map_err(bad)?;
        total += f.metadata().map_err(bad)?.len();
        if total > ARTIFACTS_CAP {
            return Err(ExecError::InvalidRequest(format!(
                "the run's artifacts exceed {} MiB",
                ARTIFACTS_CAP >> 20
            )));
        }
        b.append_file(&rel, &mut f).map_err(bad)?;
    }
    b.into_inner().map(Some).map_err(bad)
}

/// The regular files below `dir` (not following links), relative to it.
fn collect(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir.join(rel))? {
        let entry = entry?;
        let ft = entry.file_type()?;
        let r = rel.join(entry.file_name());
        if ft.is_dir() {
            collect(dir, &r, out)?;
        } else if ft.is_file() {
            out.push(r);
        }
    }
    Ok(())
}
