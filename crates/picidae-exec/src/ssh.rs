//! The SSH executor: runs a [`RunRequest`] on a remote (e.g. rented GPU)
//! host with the system `ssh`, `rsync` (or `tar`) and a POSIX shell there.
//!
//! Owns [`SshTarget`] (how to reach the host), [`SshExecutor`] (sync,
//! launch, reattach, artifact fetch, machine identity) and [`SshRun`] (one
//! launched run, driven to completion by polling).
//!
//! # Remote layout
//!
//! Each run gets `<remote_root>/<name>/`:
//!
//! | file        | written by | meaning                                             |
//! |-------------|------------|-----------------------------------------------------|
//! | `checkout/` | sync       | copy of the request's `cwd`; the command's cwd       |
//! | `run.sh`    | spawn      | wrapper script (environment, command, bookkeeping)   |
//! | `launched`  | spawn      | guard: the wrapper was started (never started twice)|
//! | `pgid`      | wrapper    | its pid = process group = session of the run         |
//! | `started`   | wrapper    | remote clock at start (`date +%s%N`)                 |
//! | `stdout`, `stderr` | wrapper | the command's output                            |
//! | `finished`  | wrapper    | remote clock at exit                                 |
//! | `exit`      | wrapper    | the command's exit status (`$?`), written atomically |
//!
//! The wrapper is started with `setsid nohup`, detached from the SSH session,
//! so a dropped connection does not touch the run. After the command exits
//! the wrapper writes `exit` and SIGKILLs its own process group, so stray
//! background processes never outlive the run (as with the local executor).
//!
//! # Driving a run
//!
//! [`SshRun::wait`] makes one short `ssh` call per poll interval. Each call
//! reports group liveness, the `exit` file, and the next bytes of both logs
//! (`tail -c +N | head -c LEN`), which are appended to the request's local
//! log files with the same cap and truncation marker as local runs. Timeout
//! and cancellation are enforced from here: `kill -TERM` (+`CONT`) to the
//! remote group, then `kill -KILL` after `grace`. A failed `ssh` call
//! (exit 255, or no answer within its time limit) is retried with backoff for
//! up to `SshSettings::reconnect_limit`; the run's state is then re-read
//! from its remote files, so a dropped connection never re-runs a job.
//! Dropping an [`SshRun`] leaves the remote run alone;
//! [`SshExecutor::reattach`] resumes waiting (e.g. after a coordinator
//! restart) from the remote run directory recorded via [`SshRun::remote_dir`]
//! or [`crate::RunHandle::id`] (`ssh:<host>:<remote run dir>`).
//!
//! # Differences from local runs
//!
//! * The environment is the remote login's non-interactive environment plus
//!   [`RunRequest::env`]; values are passed verbatim (local paths in them
//!   mean nothing remotely).
//! * The exit status comes from the wrapper's `$?`: a status of 129..=192 is
//!   reported as the signal `status - 128` (as a shell reports a killed
//!   command). A run that vanished without an `exit` file (host rebooted,
//!   wrapper killed from outside) has neither exit code nor signal.
//! * When stdout and stderr share one local path, the streams are
//!   interleaved per poll, not per write.
//! * `peak_rss_kb` is sampled per poll (`ps -o rss= -s <sid>`, procps only).
//! * Remote paths (`remote_root`, run names) are limited to
//!   `[A-Za-z0-9._/-]`; a relative `remote_root` is relative to the remote
//!   home directory.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::call::{drain, finish_pipeline, now_unix_ms, run_limited, CallOutput};
use crate::executor::{Executor, RunHandle};
use crate::fingerprint::MachineTexts;
use crate::logs::{append_log, LogFiles, LogSink};
use crate::shell::quote;
use crate::{ExecError, Fingerprint, RunOutcome, RunRequest, STDOUT_TAIL_BYTES};

/// Default time between two polls of a running job.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default time an unreachable host is retried before giving up.
pub const DEFAULT_RECONNECT_LIMIT: Duration = Duration::from_secs(300);
/// Default `ConnectTimeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for one checkout sync or artifact fetch.
pub const DEFAULT_TRANSFER_LIMIT: Duration = Duration::from_secs(1800);
/// Most bytes of one log stream fetched per poll.
const FETCH_CHUNK: u64 = 8 << 20;
/// Time limit of one short remote call (poll, launch, ...).
const SHORT_CALL_LIMIT: Duration = Duration::from_secs(60);
/// First and largest backoff between retries of a failed `ssh` call.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// `ssh` exits with this status when the connection itself failed.
const SSH_CONNECTION_FAILED: i32 = 255;

/// How to reach a remote host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key (`-i`, with `IdentitiesOnly=yes`).
    pub identity_file: Option<PathBuf>,
    /// Alternative client configuration file (`-F`; `/dev/null` ignores the
    /// user's `~/.ssh/config`).
    pub config_file: Option<PathBuf>,
    /// Extra `-o KEY=VALUE` options. They come first on the command line,
    /// so they override the executor's defaults (`BatchMode=yes`,
    /// `ConnectTimeout`, `ServerAliveInterval`, ...).
    pub options: Vec<(String, String)>,
}

impl SshTarget {
    /// A target on port 22 with no key, config file or options.
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> SshTarget {
        SshTarget {
            host: host.into(),
            port: 22,
            user: user.into(),
            identity_file: None,
            config_file: None,
            options: Vec::new(),
        }
    }

    fn destination(&self) -> String {
        if self.user.is_empty() {
            self.host.clone()
        } else {
            format!("{}@{}", self.user, self.host)
        }
    }
}

/// Tunables of an [`SshExecutor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    /// Time between two polls of a running job.
    pub poll_interval: Duration,
    /// How long a host that stops answering is retried before an operation
    /// gives up with [`ExecError::Ssh`]. A run abandoned that way keeps
    /// running remotely; use [`SshExecutor::reattach`].
    pub reconnect_limit: Duration,
    /// `ConnectTimeout` of every connection (whole seconds, at least 1).
    pub connect_timeout: Duration,
    /// Limit of one checkout sync or artifact fetch.
    pub transfer_limit: Duration,
    /// Patterns (rsync/tar `--exclude`) left out of the checkout sync.
    pub sync_excludes: Vec<String>,
    /// Multiplex connections through a ControlMaster socket kept in a
    /// private local temporary directory.
    pub control_master: bool,
    /// Copy with `rsync` when it is installed locally (falling back to
    /// `tar` over `ssh` if it fails); false always uses `tar`.
    pub use_rsync: bool,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            poll_interval: DEFAULT_POLL_INTERVAL,
            reconnect_limit: DEFAULT_RECONNECT_LIMIT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            transfer_limit: DEFAULT_TRANSFER_LIMIT,
            sync_excludes: Vec::new(),
            control_master: true,
            use_rsync: true,
        }
    }
}

/// Shared state of an executor and the runs it started.
#[derive(Debug)]
struct Inner {
    target: SshTarget,
    remote_root: String,
    settings: SshSettings,
    /// Directory holding the ControlMaster socket, when multiplexing.
    control_dir: Option<PathBuf>,
    /// rsync failed against this host but tar worked: use tar from now on.
    rsync_unusable: AtomicBool,
    seq: AtomicU64,
}

/// Runs commands on one remote host over SSH. Cheap to clone; clones share
/// the connection settings (and the multiplexed connection).
#[derive(Debug, Clone)]
pub struct SshExecutor {
    inner: Arc<Inner>,
}

/// Which end of a `tar` pipeline ([`Inner::tar_pipe`]) is the `ssh` call.
#[derive(Clone, Copy)]
enum SshEnd {
    Producer,
    Consumer,
}

/// Why one remote call did not give an answer.
enum CallError {
    /// Connection-level failure: retry.
    Transient(String),
    /// Anything else: give up.
    Fatal(ExecError),
}

fn valid_remote_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
        && !path.split('/').any(|c| c == "..")
}

fn found_on_path(program: &str) -> bool {
    let Some(search) = env::var_os("PATH") else {
        return false;
    };
    env::split_paths(&search).any(|d| d.join(program).is_file())
}

fn rsync_installed() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| found_on_path("rsync"))
}

impl SshExecutor {
    /// An executor for `target` with default [`SshSettings`], keeping run
    /// directories under `remote_root` (absolute, or relative to the remote
    /// home; characters limited to `[A-Za-z0-9._/-]`).
    pub fn new(target: SshTarget, remote_root: impl Into<String>) -> Result<Self, ExecError> {
        Self::with_settings(target, remote_root, SshSettings::default())
    }

    /// Like [`Self::new`], with explicit settings.
    pub fn with_settings(
        target: SshTarget,
        remote_root: impl Into<String>,
        settings: SshSettings,
    ) -> Result<Self, ExecError> {
        let remote_root = remote_root.into().trim_end_matches('/').to_string();
        let remote_root = if remote_root.is_empty() {
            "/".to_string()
        } else {
            remote_root
        };
        if !valid_remote_path(&remote_root) {
            return Err(ExecError::InvalidRequest(format!(
                "remote root {remote_root:?} must be made of [A-Za-z0-9._/-] without `..`"
            )));
        }
        let control_dir = if settings.control_master {
            make_control_dir()
        } else {
            None
        };
        Ok(SshExecutor {
            inner: Arc::new(Inner {
                target,
                remote_root,
                settings,
                control_dir,
                rsync_unusable: AtomicBool::new(false),
                seq: AtomicU64::new(0),
            }),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &SshSettings {
        &self.inner.settings
    }

    /// The target host.
    pub fn target(&self) -> &SshTarget {
        &self.inner.target
    }

    /// The remote directory under which run directories are created.
    pub fn remote_root(&self) -> &str {
        &self.inner.remote_root
    }

    /// Starts `req` in the run directory `<remote_root>/<name>` (which must
    /// not hold a launched run yet): syncs `req.cwd` to its `checkout/`,
    /// writes the wrapper, launches it detached, and returns once the remote
    /// process group exists. Connection failures are retried; the launch
    /// itself is guarded so a retried launch never starts the job twice.
    pub fn spawn_named(&self, name: &str, req: &RunRequest) -> Result<SshRun, ExecError> {
        req.validate()?;
        if !valid_remote_path(name) || name.contains('/') {
            return Err(ExecError::InvalidRequest(format!(
                "run name {name:?} must be made of [A-Za-z0-9._-]"
            )));
        }
        let inner = &self.inner;
        let dir = format!("{}/{}", inner.remote_root, name);
        let logs = LogFiles::create(req)?;

        // 1. Run directory + wrapper; refuse a directory already launched.
        let prepare = format!(
            "set -e\nmkdir -p {d}/checkout\ncd {d}\n\
             if [ -e launched ]; then echo '@@launched'; exit 0; fi\n\
             printf '%s' {body} > run.sh\nprintf '@@dir %s\\n' \"$(pwd -P)\"\n",
            d = quote(&dir),
            body = quote(&wrapper_script(req)),
        );
        let out = inner.retry("prepare run directory", || {
            inner.remote(&prepare, SHORT_CALL_LIMIT)
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        if out.code() != Some(0) {
            return Err(inner.ssh_error(format!("cannot prepare {dir}: {}", out.stderr_text())));
        }
        if text.contains("@@launched") {
            return Err(ExecError::InvalidRequest(format!(
                "remote run directory {dir} already holds a launched run"
            )));
        }
        let abs_dir = text
            .lines()
            .find_map(|l| l.strip_prefix("@@dir "))
            .map(str::to_string)
            .ok_or_else(|| inner.ssh_error(format!("no answer preparing {dir}")))?;

        // 2. Checkout.
        inner.sync_checkout(&req.cwd, &abs_dir)?;

        // 3. Launch (guarded by `launched`), then wait for the pgid. `setsid
        //    -f` forks without making the job an asynchronous list, whose
        //    SIGINT/SIGQUIT would be ignored (and inherited by the command).
        let launch = format!(
            "cd {d} || exit 3\n\
             if [ ! -e launched ]; then\n  : > launched\n  \
             if setsid -f true </dev/null >/dev/null 2>&1; then\n    \
             setsid -f nohup /bin/sh {d}/run.sh </dev/null >/dev/null 2>&1\n  \
             else\n    setsid nohup /bin/sh {d}/run.sh </dev/null >/dev/null 2>&1 &\n  fi\nfi\n\
             i=0\nwhile [ ! -s pgid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n\
             printf '@@pgid %s\\n' \"$(cat pgid 2>/dev/null)\"\n",
            d = quote(&abs_dir)
        );
        let spawn_instant = Instant::now();
        let started_at_unix_ms = now_unix_ms();
        let out = inner.retry("launch run", || inner.remote(&launch, SHORT_CALL_LIMIT))?;
        let pgid = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("@@pgid "))
            .and_then(|v| v.trim().parse::<i32>().ok())
            .filter(|p| *p > 1)
            .ok_or_else(|| {
                inner.ssh_error(format!(
                    "run in {abs_dir} did not start (no pgid): {}",
                    out.stderr_text()
                ))
            })?;
        tracing::debug!(host = %inner.target.host, dir = %abs_dir, pgid, "launched remote run");
        Ok(SshRun {
            inner: self.inner.clone(),
            dir: abs_dir,
            pgid,
            start: spawn_instant,
            started_at_unix_ms,
            timeout: req.timeout,
            grace: req.grace,
            time_budget: req.time_budget,
            logs,
        })
    }

    /// Resumes a run launched earlier (by this or a previous coordinator
    /// process) in `remote_run_dir` (as returned by [`SshRun::remote_dir`]).
    /// The local log files of `req` are rewritten from the start; timeout
    /// and budget count from the remote start time.
    pub fn reattach(&self, remote_run_dir: &str, req: &RunRequest) -> Result<SshRun, ExecError> {
        if !valid_remote_path(remote_run_dir) {
            return Err(ExecError::InvalidRequest(format!(
                "remote run directory {remote_run_dir:?} must be made of [A-Za-z0-9._/-]"
            )));
        }
        let inner = &self.inner;
        let script = format!(
            "cd {d} || exit 3\nprintf '@@ %s %s %s\\n' \"$(cat pgid 2>/dev/null || echo -)\" \
             \"$(cat started 2>/dev/null || echo -)\" \"$(date +%s%N)\"\n",
            d = quote(remote_run_dir)
        );
        let out = inner.retry("reattach", || inner.remote(&script, SHORT_CALL_LIMIT))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = text
            .lines()
            .find_map(|l| l.strip_prefix("@@ "))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        let pgid = fields
            .first()
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|p| *p > 1)
            .ok_or_else(|| {
                inner.ssh_error(format!(
                    "{remote_run_dir} holds no launched run: {}",
                    out.stderr_text()
                ))
            })?;
        let started = fields.get(1).and_then(|v| parse_clock_ns(v));
        let now = fields.get(2).and_then(|v| parse_clock_ns(v));
        let elapsed = match (started, now) {
            (Some(s), Some(n)) if n >= s => Duration::from_nanos(n - s),
            _ => Duration::ZERO,
        };
        let start = Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(Instant::now);
        let elapsed_ms = i64::try_from(elapsed.as_millis()).unwrap_or(0);
        Ok(SshRun {
            inner: self.inner.clone(),
            dir: remote_run_dir.to_string(),
            pgid,
            start,
            started_at_unix_ms: now_unix_ms().saturating_sub(elapsed_ms),
            timeout: req.timeout,
            grace: req.grace,
            time_budget: req.time_budget,
            logs: LogFiles::create(req)?,
        })
    }

    /// Copies the remote directory `remote_path` (absolute, or relative to
    /// the remote home) into the local directory `local_dir` (created if
    /// missing), e.g. a run's `<remote run dir>/checkout/artifacts`.
    pub fn fetch_dir(&self, remote_path: &str, local_dir: &Path) -> Result<(), ExecError> {
        if !valid_remote_path(remote_path) {
            return Err(ExecError::InvalidRequest(format!(
                "remote path {remote_path:?} must be made of [A-Za-z0-9._/-]"
            )));
        }
        fs::create_dir_all(local_dir).map_err(|source| ExecError::LocalIo {
            path: local_dir.to_path_buf(),
            source,
        })?;
        self.inner.fetch_dir(remote_path, local_dir)
    }

    /// Copies `<remote run dir>/checkout/<relative>` into `local_dir`.
    pub fn fetch_artifacts(
        &self,
        remote_run_dir: &str,
        relative: &str,
        local_dir: &Path,
    ) -> Result<(), ExecError> {
        let rel = relative.trim_start_matches('/');
        self.fetch_dir(&format!("{remote_run_dir}/checkout/{rel}"), local_dir)
    }

    /// Deletes a finished run's remote directory.
    pub fn remove_run(&self, remote_run_dir: &str) -> Result<(), ExecError> {
        if !valid_remote_path(remote_run_dir) {
            return Err(ExecError::InvalidRequest(format!(
                "remote run directory {remote_run_dir:?} must be made of [A-Za-z0-9._/-]"
            )));
        }
        let inner = &self.inner;
        let script = format!("rm -rf {}", quote(remote_run_dir));
        let out = inner.retry("remove run", || inner.remote(&script, SHORT_CALL_LIMIT))?;
        if out.code() != Some(0) {
            return Err(inner.ssh_error(format!(
                "cannot remove {remote_run_dir}: {}",
                out.stderr_text()
            )));
        }
        Ok(())
    }

    /// Identity of the remote machine as a string map: `uname` (`uname
    /// -a`), `hostname`, `nproc`, `cpu_model`, `mem_total_kb`, `os`
    /// (`PRETTY_NAME`), `python3` (`python3 --version`), `nvidia_smi`
    /// (`nvidia-smi -L`, only when it works). Missing tools give no key.
    pub fn fingerprint(&self) -> Result<BTreeMap<String, String>, ExecError> {
        let sections = self.machine_sections()?;
        let first_line = |k: &str| {
            sections
                .get(k)
                .and_then(|v| v.lines().find(|l| !l.trim().is_empty()))
                .map(|l| l.trim().to_string())
        };
        let mut map = BTreeMap::new();
        for (key, section) in [
            ("uname", "uname"),
            ("hostname", "hostname"),
            ("nproc", "nproc"),
            ("python3", "python3"),
        ] {
            if let Some(v) = first_line(section) {
                map.insert(key.to_string(), v);
            }
        }
        if let Some(v) = sections.get("nvidia_l").map(|s| s.trim()) {
            if !v.is_empty() {
                map.insert("nvidia_smi".into(), v.to_string());
            }
        }
        if let Some(cpuinfo) = sections.get("cpuinfo") {
            if let Some(model) = cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            }) {
                map.insert("cpu_model".into(), model);
            }
        }
        if let Some(meminfo) = sections.get("meminfo") {
            if let Some(kb) = meminfo.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|r| r.split_whitespace().next())
            }) {
                map.insert("mem_total_kb".into(), kb.to_string());
            }
        }
        if let Some(os) = sections.get("os_release").and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        }) {
            map.insert("os".into(), os);
        }
        Ok(map)
    }

    /// The remote machine's [`Fingerprint`], parsed exactly like
    /// [`Fingerprint::collect`] parses the local one, so runs executed there
    /// are compared only with runs from identical machines.
    pub fn machine_fingerprint(
        &self,
        benchmark_commit: Option<&str>,
    ) -> Result<Fingerprint, ExecError> {
        let s = self.machine_sections()?;
        let get = |k: &str| s.get(k).map(String::as_str).unwrap_or("");
        let texts = MachineTexts {
            os_release: get("os_release"),
            sysname: get("sysname"),
            nodename: get("hostname"),
            release: get("release"),
            machine: get("machine"),
            cpuinfo: get("cpuinfo"),
            meminfo: get("meminfo"),
            nproc: get("nproc").trim().parse().ok(),
            nvidia_csv: get("nvidia_csv"),
        };
        Ok(Fingerprint::from_texts(&texts, benchmark_commit))
    }

    /// One remote call printing `@@@section NAME` blocks.
    fn machine_sections(&self) -> Result<BTreeMap<String, String>, ExecError> {
        const SCRIPT: &str = "\
s() { printf '\\n@@@section %s\\n' \"$1\"; }
s uname; uname -a 2>/dev/null
s sysname; uname -s 2>/dev/null
s release; uname -r 2>/dev/null
s machine; uname -m 2>/dev/null
s hostname; uname -n 2>/dev/null
s nproc; nproc 2>/dev/null
s cpuinfo; cat /proc/cpuinfo 2>/dev/null
s meminfo; cat /proc/meminfo 2>/dev/null
s os_release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
s python3; python3 --version 2>&1 </dev/null | head -n 1
if command -v nvidia-smi >/dev/null 2>&1; then
  s nvidia_l; timeout 20 nvidia-smi -L 2>/dev/null
  s nvidia_csv; timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total \
--format=csv,noheader,nounits 2>/dev/null
fi
s end
";
        let inner = &self.inner;
        let out = inner.retry("fingerprint", || inner.remote(SCRIPT, SHORT_CALL_LIMIT))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut sections = BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("@@@section ") {
                if let Some((k, v)) = current.take() {
                    sections.insert(k, v);
                }
                current = Some((name.trim().to_string(), String::new()));
            } else if let Some((_, v)) = current.as_mut() {
                v.push_str(line);
                v.push('\n');
            }
        }
        if !sections.contains_key("uname") {
            return Err(inner.ssh_error(format!(
                "cannot read machine identity: {}",
                out.stderr_text()
            )));
        }
        // A python3 that is missing prints a shell error: keep only versions.
        if sections
            .get("python3")
            .is_some_and(|v| !v.trim_start().starts_with("Python"))
        {
            sections.remove("python3");
        }
        Ok(sections)
    }

    fn unique_name(&self, cwd: &Path) -> String {
        let base: String = cwd
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let base = if base.is_empty() { "run".into() } else { base };
        let seq = self.inner.seq.fetch_add(1, Ordering::SeqCst);
        format!(
            "{base}-{:x}-{}-{seq}",
            now_unix_ms().max(0),
            std::process::id()
        )
    }
}

impl Executor for SshExecutor {
    fn name(&self) -> &str {
        "ssh"
    }

    /// Spawns under a generated unique run name (`<cwd name>-<time>-<pid>-<n>`).
    fn spawn(&self, req: &RunRequest) -> Result<Box<dyn RunHandle>, ExecError> {
        let name = self.unique_name(&req.cwd);
        self.spawn_named(&name, req)
            .map(|r| Box::new(r) as Box<dyn RunHandle>)
    }
}

fn make_control_dir() -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static N: AtomicU64 = AtomicU64::new(0);
    // Short base path: a socket path must stay under ~104 bytes.
    let base = if Path::new("/tmp").is_dir() {
        PathBuf::from("/tmp")
    } else {
        env::temp_dir()
    };
    let dir = base.join(format!(
        "picidae-ssh-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => Some(dir),
        Err(err) => {
            tracing::debug!(error = %err, "no ControlMaster directory; not multiplexing");
            None
        }
    }
}

/// The remote wrapper script, `<run dir>/run.sh`, started as
/// `setsid nohup /bin/sh <run dir>/run.sh`.
fn wrapper_script(req: &RunRequest) -> String {
    let mut exports = String::new();
    for (k, v) in &req.env {
        exports.push_str(&format!("export {}={}\n", quote(k), quote(v)));
    }
    format!(
        "# picidae remote run wrapper\n\
         D=$(cd \"$(dirname \"$0\")\" && pwd -P) || exit 1\n\
         cd \"$D\" || exit 1\n\
         date +%s%N > started\n\
         echo $$ > pgid.tmp && mv -f pgid.tmp pgid\n\
         trap 'picidae_sig=1' TERM INT HUP\n\
         {exports}\
         if cd \"$D/checkout\"; then\n  \
         /bin/sh -c {cmd} </dev/null >\"$D/stdout\" 2>\"$D/stderr\"\n  \
         c=$?\nelse\n  c=126\nfi\n\
         date +%s%N > \"$D/finished\"\n\
         echo $c > \"$D/exit.tmp\" && mv -f \"$D/exit.tmp\" \"$D/exit\"\n\
         trap - TERM INT HUP\n\
         kill -KILL 0\n",
        cmd = quote(&req.command)
    )
}

/// Parses a `date +%s%N` value: nanoseconds, or seconds where `%N` is not
/// supported.
fn parse_clock_ns(text: &str) -> Option<u64> {
    let digits: String = text
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let v: u64 = digits.parse().ok()?;
    if digits.len() >= 16 {
        Some(v)
    } else {
        v.checked_mul(1_000_000_000)
    }
}

impl Inner {
    fn ssh_error(&self, message: String) -> ExecError {
        ExecError::Ssh {
            host: self.target.host.clone(),
            message,
        }
    }

    /// `ssh` options shared by every call (without the destination).
    fn ssh_args(&self) -> Vec<String> {
        let t = &self.target;
        let mut args: Vec<String> = Vec::new();
        if let Some(cfg) = &t.config_file {
            args.extend(["-F".into(), cfg.display().to_string()]);
        }
        for (k, v) in &t.options {
            args.extend(["-o".into(), format!("{k}={v}")]);
        }
        args.extend(["-p".into(), t.port.to_string()]);
        if let Some(id) = &t.identity_file {
            args.extend([
                "-i".into(),
                id.display().to_string(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        let secs = self.settings.connect_timeout.as_secs().max(1);
        for opt in [
            "BatchMode=yes".to_string(),
            format!("ConnectTimeout={secs}"),
            "ServerAliveInterval=5".into(),
            "ServerAliveCountMax=3".into(),
            "LogLevel=ERROR".into(),
        ] {
            args.extend(["-o".into(), opt]);
        }
        if let Some(dir) = &self.control_dir {
            args.extend([
                "-o".into(),
                "ControlMaster=auto".into(),
                "-o".into(),
                format!("ControlPath={}/%C", dir.display()),
                "-o".into(),
                "ControlPersist=60".into(),
            ]);
        }
        args
    }

    fn ssh_command(&self) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.ssh_args());
        cmd
    }

    /// `ssh … -- <destination> "/bin/sh -c <script>"`.
    fn remote_command(&self, script: &str) -> Command {
        let mut cmd = self.ssh_command();
        cmd.arg("--")
            .arg(self.target.destination())
            .arg(format!("/bin/sh -c {}", quote(script)));
        cmd
    }

    /// Runs `script` with `/bin/sh` on the remote host.
    fn remote(&self, script: &str, limit: Duration) -> Result<CallOutput, CallError> {
        let out = run_limited(self.remote_command(script), limit).map_err(|source| {
            CallError::Fatal(ExecError::Spawn {
                command: "ssh".into(),
                source,
            })
        })?;
        match out.code() {
            None => Err(CallError::Transient(format!(
                "no answer within {limit:?}: {}",
                out.stderr_text()
            ))),
            Some(SSH_CONNECTION_FAILED) => Err(CallError::Transient(out.stderr_text())),
            Some(_) => Ok(out),
        }
    }

    /// Calls `f` until it answers, retrying transient failures with
    /// backoff for up to `reconnect_limit`.
    fn retry<T>(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<T, CallError>,
    ) -> Result<T, ExecError> {
        let mut first_failure: Option<Instant> = None;
        let mut delay = BACKOFF_START;
        loop {
            match f() {
                Ok(v) => {
                    if first_failure.is_some() {
                        tracing::info!(host = %self.target.host, what, "ssh connection restored");
                    }
                    return Ok(v);
                }
                Err(CallError::Fatal(e)) => return Err(e),
                Err(CallError::Transient(msg)) => {
                    let since = *first_failure.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.settings.reconnect_limit {
                        return Err(self.ssh_error(format!(
                            "{what}: host unreachable for {:?}: {msg}",
                            since.elapsed()
                        )));
                    }
                    tracing::warn!(host = %self.target.host, what, error = %msg, "ssh call failed; retrying");
                    thread::sleep(delay);
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// The `-e` argument for rsync, if every ssh argument can be expressed
    /// in rsync's simple quoting (no quotes or backslashes).
    fn rsync_rsh(&self) -> Option<String> {
        let mut words = vec!["ssh".to_string()];
        words.extend(self.ssh_args());
        let mut out = Vec::new();
        for w in words {
            if w.contains(['\'', '"', '\\']) {
                return None;
            }
            if w.contains(char::is_whitespace) || w.is_empty() {
                out.push(format!("'{w}'"));
            } else {
                out.push(w);
            }
        }
        Some(out.join(" "))
    }

    fn use_rsync(&self) -> Option<String> {
        if !self.settings.use_rsync
            || !rsync_installed()
            || self.rsync_unusable.load(Ordering::SeqCst)
        {
            return None;
        }
        self.rsync_rsh()
    }

    /// Copies the contents of `local` into `<dir>/checkout/`.
    fn sync_checkout(&self, local: &Path, dir: &str) -> Result<(), ExecError> {
        let dest = format!("{dir}/checkout");
        if let Some(rsh) = self.use_rsync() {
            let mut cmd = Command::new("rsync");
            cmd.args(["-a", "--delete", "-e", &rsh]);
            for pat in &self.settings.sync_excludes {
                cmd.arg(format!("--exclude={pat}"));
            }
            let mut src = local.as_os_str().to_owned();
            src.push("/");
            cmd.arg(src)
                .arg(format!("{}:{}/", self.target.destination(), dest));
            let out = run_limited(cmd, self.settings.transfer_limit).map_err(|source| {
                ExecError::Spawn {
                    command: "rsync".into(),
                    source,
                }
            })?;
            if out.code() == Some(0) {
                return Ok(());
            }
            tracing::warn!(host = %self.target.host, error = %out.stderr_text(), "rsync failed; trying tar");
            let result = self.retry("sync checkout (tar)", || self.tar_push(local, &dest));
            if result.is_ok() {
                self.rsync_unusable.store(true, Ordering::SeqCst);
            }
            return result;
        }
        self.retry("sync checkout (tar)", || self.tar_push(local, &dest))
    }

    /// `tar -c local | ssh "rm -rf dest; mkdir -p dest; tar -x -C dest"`.
    fn tar_push(&self, local: &Path, dest: &str) -> Result<(), CallError> {
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(local).arg("-cf").arg("-");
        for pat in &self.settings.sync_excludes {
            tar.arg(format!("--exclude={pat}"));
        }
        tar.arg(".");
        let script = format!(
            "rm -rf {d} && mkdir -p {d} && tar -x -C {d} -f -",
            d = quote(dest)
        );
        let what = format!("copying {}", local.display());
        self.tar_pipe(tar, self.remote_command(&script), SshEnd::Consumer, &what)
    }

    /// Copies the remote directory `remote` into the existing `local` dir.
    fn fetch_dir(&self, remote: &str, local: &Path) -> Result<(), ExecError> {
        if let Some(rsh) = self.use_rsync() {
            let mut cmd = Command::new("rsync");
            cmd.args(["-a", "-e", &rsh])
                .arg(format!("{}:{}/", self.target.destination(), remote))
                .arg(local);
            let out = run_limited(cmd, self.settings.transfer_limit).map_err(|source| {
                ExecError::Spawn {
                    command: "rsync".into(),
                    source,
                }
            })?;
            if out.code() == Some(0) {
                return Ok(());
            }
            tracing::warn!(host = %self.target.host, error = %out.stderr_text(), "rsync fetch failed; trying tar");
        }
        self.retry("fetch directory", || self.tar_pull(remote, local))
    }

    /// `ssh "tar -c -C remote ." | tar -x -C local`.
    fn tar_pull(&self, remote: &str, local: &Path) -> Result<(), CallError> {
        let ssh = self.remote_command(&format!("tar -c -C {} -f - .", quote(remote)));
        let mut tar = Command::new("tar");
        tar.arg("-x").arg("-C").arg(local).arg("-f").arg("-");
        let what = format!("fetching {remote}");
        self.tar_pipe(ssh, tar, SshEnd::Producer, &what)
    }

    /// Runs `producer | consumer` (one end `ssh`, as `ssh_end` says, the other a local
    /// `tar`), both killed after `transfer_limit`. Ok when both exit 0; transient when the
    /// `ssh` end was killed or lost its connection; otherwise fatal, "`what` failed:" with
    /// both ends' stderr in pipeline order.
    fn tar_pipe(
        &self,
        mut producer: Command,
        mut consumer: Command,
        ssh_end: SshEnd,
        what: &str,
    ) -> Result<(), CallError> {
        let name = |cmd: &Command| cmd.get_program().to_string_lossy().into_owned();
        let (producer_name, consumer_name) = (name(&producer), name(&consumer));
        let spawn_err =
            |command: String| move |source| CallError::Fatal(ExecError::Spawn { command, source });
        producer
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut producer_child = producer.spawn().map_err(spawn_err(producer_name.clone()))?;
        let pipe = producer_child.stdout.take().ok_or_else(|| {
            CallError::Fatal(self.ssh_error(format!("{producer_name} produced no pipe")))
        })?;
        let producer_err = drain(producer_child.stderr.take());
        consumer
            .stdin(Stdio::from(pipe))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut consumer_child = match consumer.spawn() {
            Ok(c) => c,
            Err(source) => {
                let _ = producer_child.kill();
                let _ = producer_child.wait();
                return Err(spawn_err(consumer_name)(source));
            }
        };
        let consumer_err = drain(consumer_child.stderr.take());
        let statuses = finish_pipeline(
            vec![producer_child, consumer_child],
            self.settings.transfer_limit,
        )
        .map_err(spawn_err(format!("{producer_name} | {consumer_name}")))?;
        let text = |h: JoinHandle<Vec<u8>>| {
            String::from_utf8_lossy(&h.join().unwrap_or_default())
                .trim()
                .to_string()
        };
        let (producer_err, consumer_err) = (text(producer_err), text(consumer_err));
        let codes = [0, 1].map(|i| statuses[i].and_then(|s| s.code()));
        let (ssh_code, ssh_err) = match ssh_end {
            SshEnd::Producer => (codes[0], producer_err.as_str()),
            SshEnd::Consumer => (codes[1], consumer_err.as_str()),
        };
        match (codes, ssh_code) {
            ([Some(0), Some(0)], _) => Ok(()),
            (_, None | Some(SSH_CONNECTION_FAILED)) => Err(CallError::Transient(ssh_err.into())),
            _ => Err(CallError::Fatal(self.ssh_error(format!(
                "{what} failed: {producer_err} {consumer_err}"
            )))),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Some(dir) = self.control_dir.as_ref() else {
            return;
        };
        // Stop the multiplexing master, if one is running.
        if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            let mut cmd = self.ssh_command();
            cmd.args(["-O", "exit", "--"])
                .arg(self.target.destination());
            let _ = run_limited(cmd, Duration::from_secs(5));
        }
        let _ = fs::remove_dir_all(dir);
    }
}

/// Sinks onto a remote run's local log files, fed from fetched increments (the stdout one
/// keeps the tail).
fn open_sinks(logs: &LogFiles) -> Result<(LogSink, LogSink), ExecError> {
    let open = |path: &PathBuf, tail: usize| {
        append_log(path).map(|f| LogSink::new(f, path.clone(), logs.cap, tail))
    };
    Ok((
        open(&logs.stdout_path, STDOUT_TAIL_BYTES)?,
        open(&logs.stderr_path, 0)?,
    ))
}

/// One stream being fetched: local sink plus remote read position.
struct Stream {
    sink: LogSink,
    offset: u64,
    /// Remote size seen at the last poll.
    size: u64,
    /// Bytes kept even after truncation (the stdout tail).
    tail: u64,
}

impl Stream {
    /// Where the next fetch starts: past the cap only the tail matters.
    fn next_offset(&self) -> u64 {
        if self.sink.truncated() {
            self.offset.max(self.size.saturating_sub(self.tail))
        } else {
            self.offset
        }
    }

    fn done(&self) -> bool {
        self.next_offset() >= self.size
    }
}

/// One poll's view of the remote run.
#[derive(Debug, Default)]
struct PollState {
    gone: bool,
    alive: bool,
    exit: Option<i32>,
    started_ns: Option<u64>,
    finished_ns: Option<u64>,
    rss_kb: Option<u64>,
}

/// A run launched on a remote host. Obtain with [`SshExecutor::spawn_named`],
/// [`Executor::spawn`] or [`SshExecutor::reattach`]. Dropping it does not
/// touch the remote run.
#[derive(Debug)]
pub struct SshRun {
    inner: Arc<Inner>,
    dir: String,
    pgid: i32,
    start: Instant,
    started_at_unix_ms: i64,
    timeout: Duration,
    grace: Duration,
    time_budget: Duration,
    logs: LogFiles,
}

impl SshRun {
    /// Absolute remote run directory (pass to [`SshExecutor::reattach`]).
    pub fn remote_dir(&self) -> &str {
        &self.dir
    }

    /// Remote process group (and session) id of the run.
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Spawn time, milliseconds since the Unix epoch (local clock).
    pub fn started_at_unix_ms(&self) -> i64 {
        self.started_at_unix_ms
    }

    /// Blocks until the remote run ends, times out, or `cancel` becomes
    /// true (see the module docs). Errors only when the host stays
    /// unreachable past the reconnect limit; the run then keeps going
    /// remotely and can be [`SshExecutor::reattach`]ed.
    pub fn wait(self, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        let (out_sink, err_sink) = open_sinks(&self.logs)?;
        let mut out = Stream {
            sink: out_sink,
            offset: 0,
            size: 0,
            tail: STDOUT_TAIL_BYTES as u64,
        };
        let mut err = Stream {
            sink: err_sink,
            offset: 0,
            size: 0,
            tail: 0,
        };
        let deadline = self.start.checked_add(self.timeout);
        let mut timed_out = false;
        let mut cancelled = false;
        let mut terminated = false;
        let mut peak_rss: Option<u64> = None;
        let state = loop {
            let state = self.poll(&mut out, &mut err)?;
            if state.gone {
                tracing::warn!(dir = %self.dir, "remote run directory disappeared");
                break state;
            }
            if let Some(rss) = state.rss_kb {
                peak_rss = Some(peak_rss.map_or(rss, |p| p.max(rss)));
            }
            let ended = state.exit.is_some() || !state.alive;
            if ended {
                if out.done() && err.done() {
                    break state;
                }
                // Logs still being fetched: poll again at once.
                continue;
            }
            if !terminated {
                if cancel.load(Ordering::SeqCst) {
                    cancelled = true;
                    tracing::info!(dir = %self.dir, "remote run cancelled; terminating group");
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out = true;
                    tracing::info!(dir = %self.dir, "remote run timed out; terminating group");
                }
                if cancelled || timed_out {
                    self.terminate()?;
                    terminated = true;
                    continue;
                }
            }
            thread::sleep(self.inner.settings.poll_interval);
        };
        let local_wall = self.start.elapsed();
        let wall = match (state.started_ns, state.finished_ns) {
            (Some(s), Some(f)) if f >= s => Duration::from_nanos(f - s),
            _ => local_wall,
        };
        let (exit_code, signal) = match state.exit {
            Some(c) if (129..=192).contains(&c) => (None, Some(c - 128)),
            Some(c) => (Some(c), None),
            None if terminated => (None, Some(libc::SIGKILL)),
            None => {
                tracing::warn!(dir = %self.dir, "remote run vanished without an exit status");
                (None, None)
            }
        };
        let stdout = out.sink.finish();
        let stderr = err.sink.finish();
        Ok(RunOutcome {
            exit_code,
            signal,
            timed_out,
            cancelled,
            over_budget: wall > self.time_budget,
            wall_secs: wall.as_secs_f64(),
            peak_rss_kb: peak_rss.filter(|v| *v > 0),
            peak_gpu_mb: None,
            stdout_truncated: stdout.truncated,
            stderr_truncated: stderr.truncated,
            stdout_tail: String::from_utf8_lossy(&stdout.tail).into_owned(),
            started_at_unix_ms: self.started_at_unix_ms,
            finished_at_unix_ms: now_unix_ms(),
        })
    }

    /// One remote call: state of the run plus the next log bytes.
    fn poll(&self, out: &mut Stream, err: &mut Stream) -> Result<PollState, ExecError> {
        let (o_off, e_off) = (out.next_offset(), err.next_offset());
        // Order matters: liveness, then `exit`, then sizes. The wrapper writes
        // `exit` before killing its group, so "dead and no exit" is real, and
        // sizes read after `exit` are final.
        let script = format!(
            "cd {d} 2>/dev/null || {{ echo '@@gone'; exit 0; }}\n\
             P={p}\n\
             if kill -0 -$P 2>/dev/null; then a=1; else a=0; fi\n\
             e=$(cat exit 2>/dev/null); [ -n \"$e\" ] || e=-\n\
             st=$(cat started 2>/dev/null); [ -n \"$st\" ] || st=-\n\
             fi=$(cat finished 2>/dev/null); [ -n \"$fi\" ] || fi=-\n\
             r=$(ps -o rss= -s $P 2>/dev/null | awk '{{s+=$1}} END {{print s+0}}'); [ -n \"$r\" ] || r=0\n\
             so=$(wc -c 2>/dev/null < stdout || echo 0); so=$((so+0))\n\
             se=$(wc -c 2>/dev/null < stderr || echo 0); se=$((se+0))\n\
             lo=$((so - {o_off})); [ $lo -gt {lim} ] && lo={lim}; [ $lo -lt 0 ] && lo=0\n\
             le=$((se - {e_off})); [ $le -gt {lim} ] && le={lim}; [ $le -lt 0 ] && le=0\n\
             printf '@@state %s %s %s %s %s %s %s %s %s\\n' \"$a\" \"$e\" \"$st\" \"$fi\" \"$r\" \"$so\" \"$lo\" \"$se\" \"$le\"\n\
             [ $lo -gt 0 ] && tail -c +$(({o_off}+1)) stdout | head -c $lo\n\
             [ $le -gt 0 ] && tail -c +$(({e_off}+1)) stderr | head -c $le\n\
             exit 0\n",
            d = quote(&self.dir),
            p = self.pgid,
            lim = FETCH_CHUNK,
        );
        let inner = &self.inner;
        let reply = inner.retry("poll run", || inner.remote(&script, SHORT_CALL_LIMIT))?;
        let data = &reply.stdout;
        if data.starts_with(b"@@gone") {
            return Ok(PollState {
                gone: true,
                ..PollState::default()
            });
        }
        let bad = |why: &str| {
            inner.ssh_error(format!(
                "unexpected poll answer for {} ({why}): {}",
                self.dir,
                reply.stderr_text()
            ))
        };
        let nl = data
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad("no header"))?;
        let header = String::from_utf8_lossy(&data[..nl]);
        let f: Vec<&str> = header
            .strip_prefix("@@state ")
            .ok_or_else(|| bad("no state"))?
            .split_whitespace()
            .collect();
        if f.len() != 9 {
            return Err(bad("wrong field count"));
        }
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad("bad number"));
        let (so, lo, se, le) = (num(f[5])?, num(f[6])?, num(f[7])?, num(f[8])?);
        let body = &data[nl + 1..];
        let (lo_us, le_us) = (
            usize::try_from(lo).map_err(|_| bad("size"))?,
            usize::try_from(le).map_err(|_| bad("size"))?,
        );
        // The remote logs only grow, so `head -c` always delivers exactly
        // the announced length; anything else means they were tampered with.
        if body.len() != lo_us + le_us {
            return Err(bad(&format!(
                "{} log bytes announced, {} received",
                lo_us + le_us,
                body.len()
            )));
        }
        out.sink.push(&body[..lo_us]);
        out.offset = o_off + lo;
        err.sink.push(&body[lo_us..]);
        err.offset = e_off + le;
        out.size = so;
        err.size = se;
        Ok(PollState {
            gone: false,
            alive: f[0] == "1",
            exit: f[1].parse().ok(),
            started_ns: parse_clock_ns(f[2]),
            finished_ns: parse_clock_ns(f[3]),
            rss_kb: f[4].parse().ok(),
        })
    }

    /// SIGTERM (+SIGCONT) the remote group, wait up to `grace` for it to
    /// vanish, then SIGKILL. Signals are only sent while no `exit` file
    /// exists, i.e. while the wrapper (the group leader) still holds the
    /// pgid.
    fn terminate(&self) -> Result<(), ExecError> {
        let ticks = (self.grace.as_millis() / 100).max(1);
        let script = format!(
            "cd {d} 2>/dev/null || exit 0\nP={p}\n\
             alive() {{ [ ! -e exit ] && kill -0 -$P 2>/dev/null; }}\n\
             if alive; then kill -TERM -$P 2>/dev/null; kill -CONT -$P 2>/dev/null; fi\n\
             i=0; while alive && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done\n\
             if alive; then kill -KILL -$P 2>/dev/null; fi\n\
             i=0; while kill -0 -$P 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done\n\
             exit 0\n",
            d = quote(&self.dir),
            p = self.pgid,
        );
        let limit = self.grace + SHORT_CALL_LIMIT;
        let inner = &self.inner;
        inner.retry("terminate run", || inner.remote(&script, limit))?;
        Ok(())
    }
}

impl RunHandle for SshRun {
    fn id(&self) -> String {
        format!("ssh:{}:{}", self.inner.target.host, self.dir)
    }

    fn wait(self: Box<Self>, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        SshRun::wait(*self, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_are_restricted() {
        assert!(valid_remote_path("/srv/picidae/runs"));
        assert!(valid_remote_path("runs/a-1.b_c"));
        assert!(!valid_remote_path("runs/../etc"));
        assert!(!valid_remote_path("has space"));
        assert!(!valid_remote_path("~/runs"));
        assert!(!valid_remote_path(""));
    }

    #[test]
    fn clock_values_parse_as_ns_or_seconds() {
        assert_eq!(
            parse_clock_ns("1700000000123456789\n"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_clock_ns("1700000000"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_clock_ns("1700000000%N"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_clock_ns("-"), None);
    }

    #[test]
    fn wrapper_quotes_env_and_command() {
        let req = RunRequest {
            command: "echo 'a b' $X".into(),
            cwd: PathBuf::from("/"),
            env: vec![("X".into(), "it's".into())],
            time_budget: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            grace: Duration::from_secs(1),
            stdout_path: PathBuf::from("o"),
            stderr_path: PathBuf::from("e"),
            log_cap_bytes: 1,
        };
        let body = wrapper_script(&req);
        assert!(body.contains("export X='it'\\''s'\n"), "{body}");
        assert!(
            body.contains("/bin/sh -c 'echo '\\''a b'\\'' $X'"),
            "{body}"
        );
    }
}
