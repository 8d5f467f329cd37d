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
//!
//! # Layout of this module
//!
//! * this file — [`SshTarget`], [`SshSettings`] and [`SshExecutor`]:
//!   preparing, launching and reattaching runs, fetching artifacts;
//! * `connection` — the `ssh` calls themselves: options, ControlMaster,
//!   retrying a host that stops answering;
//! * `transfer` — copying directories to and from the host (`rsync`, or
//!   `tar` over `ssh`);
//! * `machine` — the remote machine's identity ([`SshExecutor::fingerprint`],
//!   [`SshExecutor::machine_fingerprint`]);
//! * `wrapper` — the remote wrapper script and the clock values it records;
//! * `run` — [`SshRun`], one launched run driven to completion by polling.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::call::now_unix_ms;
use crate::executor::{Executor, RunHandle};
use crate::logs::LogFiles;
use crate::shell::quote;
use crate::{ExecError, RunRequest};

mod connection;
mod machine;
mod run;
mod transfer;
mod wrapper;

use connection::make_control_dir;
pub use run::SshRun;
use wrapper::{parse_clock_ns, wrapper_script};

/// Default time between two polls of a running job.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default time an unreachable host is retried before giving up.
pub const DEFAULT_RECONNECT_LIMIT: Duration = Duration::from_secs(300);
/// Default `ConnectTimeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for one checkout sync or artifact fetch.
pub const DEFAULT_TRANSFER_LIMIT: Duration = Duration::from_secs(1800);
/// Time limit of one short remote call (poll, launch, ...).
const SHORT_CALL_LIMIT: Duration = Duration::from_secs(60);

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
pub(crate) struct Inner {
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

fn valid_remote_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
        && !path.split('/').any(|c| c == "..")
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
}
