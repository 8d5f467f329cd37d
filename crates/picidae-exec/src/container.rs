//! The container executor: runs a [`RunRequest`] inside a Docker or Podman
//! container, driven entirely through the runtime's command-line client.
//!
//! This module owns [`ContainerRuntime`] (which CLI, which daemon),
//! [`ContainerSpec`] (image, isolation and resource limits),
//! [`ContainerExecutor`] (start, inspect, reattach, remove) and
//! [`ContainerRun`] (one started container, driven to completion by
//! polling). It also owns the pure functions that turn a spec and a request
//! into the `run` argument vector ([`run_args`], [`gpu_args`]) and that read
//! the runtime's answers ([`parse_inspect`], [`parse_timestamp_ns`]).
//!
//! # What the container sees
//!
//! [`ContainerExecutor::spawn_named`] starts
//! `<runtime> run -d --name <name> --label picidae.run=<name> ... <image> /bin/sh -c <command>`
//! with:
//!
//! * the request's `cwd` bind-mounted read-write **at the same path** and
//!   used as the working directory (`-w`), so paths printed by the run mean
//!   the same thing on the host;
//! * the directories of the two log files bind-mounted read-write at the same
//!   path (unless they already lie under `cwd`);
//! * every [`ContainerSpec::readonly_mounts`] entry bind-mounted `:ro` at
//!   the same path;
//! * nothing else from the host: no home directory, no dotfiles, no host
//!   environment. The environment is the image's plus [`RunRequest::env`],
//!   passed as `-e KEY=VALUE` argument-vector entries (never through a
//!   shell, so values may hold spaces, quotes, `$` or newlines);
//! * `--network none` unless [`ContainerSpec::network`], and the optional
//!   `--memory` (with an equal `--memory-swap`, so the limit cannot be
//!   dodged by swapping), `--cpus`, `--pids-limit`, `--gpus` and `--user`;
//! * `--init` (when [`ContainerSpec::init`]), so a tiny init process is PID 1
//!   and forwards `SIGTERM` to the command: without it the shell is PID 1,
//!   which ignores `SIGTERM`, and a timed-out run only ever gets `SIGKILL`.
//!
//! All host paths are canonicalised first (symlinks resolved). Paths holding
//! `:` or a newline cannot be expressed as `-v` mounts and are refused.
//!
//! # Driving a run
//!
//! [`ContainerRun::wait`] follows the container's output with
//! `<runtime> logs -f` into the request's log files (same cap, truncation
//! marker and stdout tail as local runs) and polls `<runtime> inspect` every
//! poll interval for the state, exit code and `OOMKilled`. The request's
//! timeout and the cancel flag are enforced from here: `<runtime> stop -t
//! <grace>` (`SIGTERM`, then `SIGKILL` after the grace period, rounded up to
//! whole seconds), then `<runtime> kill` should it still run. Once the
//! container has stopped and its output has been copied, it is removed
//! (`rm -f`).
//!
//! The outcome follows the local executor's conventions: an exit status of
//! 129..=192 is reported as the signal `status - 128` (which is how the
//! runtimes report a container killed by a signal). A container in which
//! the kernel OOM-killed a process (the memory limit was hit: `OOMKilled` in
//! its state, or an `oom` event in the runtime's event log since it started)
//! is reported as killed by `SIGKILL` even when its shell survived and exited
//! normally, a note is appended to the stderr log, and
//! [`ContainerOutcome::oom_killed`] is set.
//!
//! When the runtime runs on this machine, the container's memory cgroup is
//! also sampled at every poll: `peak_rss_kb` is the largest `total_rss`
//! (cgroup v1) / `anon` (v2) seen, and a non-zero `oom_kill` counter marks
//! the run OOM-killed. `peak_rss_kb` is `None` for a remote daemon or a run
//! shorter than one poll. Podman 4 on cgroup v1 neither sets `OOMKilled` nor
//! logs `oom` events; there its `conmon` drops an `oom` file into its
//! working directory, so `run` is started from a per-run state directory
//! ([`ContainerExecutor::with_state_dir`]) where [`ContainerRun::wait`]
//! looks for it.
//!
//! A failing `inspect` is retried for the call limit (the daemon may be
//! restarting) before [`ContainerRun::wait`] gives up with an error; the
//! container then keeps running and can be reattached.
//!
//! # Restarts
//!
//! Dropping a [`ContainerRun`] does **not** stop the container: the
//! coordinator decides. It persists [`RunHandle::id`] (`docker:<id>` or
//! `podman:<id>`) and, after a restart, resumes with
//! [`ContainerExecutor::reattach`]. The timeout then counts from the
//! container's recorded start time, and the log files are rewritten from the
//! beginning of the container's output (the runtime keeps all of it until
//! the container is removed). A container that vanished before its end was
//! observed, or that was created but never started, yields
//! [`ExecError::ContainerLost`]: the run should be requeued.
//!
//! The runtime stores the full output of a container until it is removed;
//! `log_cap_bytes` only caps the copies written here. Pass e.g.
//! `--log-opt max-size=...` in [`ContainerSpec::extra_args`] to bound the
//! runtime's own copy (a reattach then only recovers what it kept).
//!
//! # Layout of this module
//!
//! * this file — [`ContainerExecutor`]: starting, reattaching, inspecting,
//!   stopping and removing containers;
//! * `runtime` — [`RuntimeKind`], [`ContainerRuntime`]: which CLI and
//!   daemon, and one CLI call with a time limit;
//! * `args` — [`ContainerSpec`] and the `run` argument vector;
//! * `inspect` — reading `inspect`'s answers ([`ContainerState`]);
//! * `follow` — following a running container's logs and memory;
//! * `run` — [`ContainerRun`], one started container driven to completion
//!   ([`ContainerOutcome`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::call::{now_unix_ms, run_limited, wait_limited, CallOutput};
use crate::executor::{Executor, RunHandle};
use crate::logs::note_in_log;
use crate::logs::{append_log, spawn_reader, LogFiles, StreamReport};
use crate::{ExecError, RunOutcome, RunRequest, STDOUT_TAIL_BYTES};

mod args;
mod follow;
mod inspect;
mod run;
mod runtime;
#[cfg(test)]
mod tests;

pub use args::*;
use follow::*;
pub use inspect::*;
pub use run::*;
pub use runtime::*;

/// Default time between two `inspect` polls of a running container.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Default time limit of one short CLI call (`inspect`, `stop`, `rm`, ...).
pub const DEFAULT_CALL_LIMIT: Duration = Duration::from_secs(60);
/// Default time limit of `run -d` (it may have to pull the image).
pub const DEFAULT_START_LIMIT: Duration = Duration::from_secs(600);
/// Label put on every container this module starts; its value is the name.
pub const RUN_LABEL: &str = "picidae.run";

/// Unique container names for [`Executor::spawn`].
static NAME_SEQ: AtomicU64 = AtomicU64::new(0);

/// Runs commands in containers of one [`ContainerRuntime`], all with one
/// [`ContainerSpec`].
#[derive(Debug, Clone)]
pub struct ContainerExecutor {
    runtime: ContainerRuntime,
    spec: ContainerSpec,
    poll_interval: Duration,
    call_limit: Duration,
    start_limit: Duration,
    state_dir: PathBuf,
}

impl ContainerExecutor {
    /// An executor with the default poll interval and call limits.
    pub fn new(runtime: ContainerRuntime, spec: ContainerSpec) -> ContainerExecutor {
        ContainerExecutor {
            runtime,
            spec,
            poll_interval: DEFAULT_POLL_INTERVAL,
            call_limit: DEFAULT_CALL_LIMIT,
            start_limit: DEFAULT_START_LIMIT,
            state_dir: std::env::temp_dir().join("picidae-containers"),
        }
    }

    /// Sets the time between two `inspect` polls of a running container.
    pub fn with_poll_interval(mut self, interval: Duration) -> ContainerExecutor {
        self.poll_interval = interval;
        self
    }

    /// Sets the time limit of short CLI calls (`inspect`, `stop`, `rm`), of
    /// copying the rest of the output once a container stopped, and of
    /// retrying a failing `inspect`.
    pub fn with_call_limit(mut self, limit: Duration) -> ContainerExecutor {
        self.call_limit = limit;
        self
    }

    /// Sets the time limit of `run -d` (which may pull the image).
    pub fn with_start_limit(mut self, limit: Duration) -> ContainerExecutor {
        self.start_limit = limit;
        self
    }

    /// Sets the directory holding one small directory per run (default
    /// `<temp dir>/picidae-containers`). `run` is started from it: Podman's
    /// `conmon` inherits that working directory and drops an `oom` file
    /// there when the container hits its memory limit, which
    /// [`ContainerRun::wait`] reads. Removed when the run ends.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> ContainerExecutor {
        self.state_dir = dir.into();
        self
    }

    /// The per-run state directory of the container called `name`.
    pub fn run_state_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    pub fn runtime(&self) -> &ContainerRuntime {
        &self.runtime
    }

    pub fn spec(&self) -> &ContainerSpec {
        &self.spec
    }

    /// A fresh container name: `picidae-<pid>-<unix ms>-<counter>`.
    pub fn unique_name() -> String {
        format!(
            "picidae-{}-{}-{}",
            std::process::id(),
            now_unix_ms(),
            NAME_SEQ.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Starts `req` in a new container called `name` (see the module docs)
    /// and returns once the runtime reports it started.
    pub fn spawn_named(&self, name: &str, req: &RunRequest) -> Result<ContainerRun, ExecError> {
        req.validate()?;
        self.spec.validate()?;
        let logs = LogFiles::create(req)?;
        let resolved = resolve_request(req)?;
        let mut spec = self.spec.clone();
        spec.readonly_mounts = self
            .spec
            .readonly_mounts
            .iter()
            .map(|p| canonical(p))
            .collect::<Result<_, _>>()?;
        let args = run_args(self.runtime.kind, &spec, name, &resolved)?;
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let state_dir = self.run_state_dir(name);
        fs::create_dir_all(&state_dir).map_err(|source| ExecError::LocalIo {
            path: state_dir.clone(),
            source,
        })?;
        let out = match self
            .runtime
            .call_in(&arg_refs, self.start_limit, Some(&state_dir))
        {
            Ok(out) => out,
            Err(err) => {
                let _ = fs::remove_dir_all(&state_dir);
                return Err(err);
            }
        };
        // `run -d` returns once the container runs: the timeout counts from
        // here (an image pull is not charged to the run).
        let started_at_unix_ms = now_unix_ms();
        let start = Instant::now();
        let id = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string();
        if out.code() != Some(0) || !valid_container_name(&id) {
            // `run -d` may have created the container before failing to
            // start it: remove whatever carries this name.
            self.remove(name);
            let _ = fs::remove_dir_all(&state_dir);
            return Err(self.runtime.error(
                "run",
                format!("cannot start container {name}: {}", out.failure()),
            ));
        }
        tracing::debug!(container = %id, name, command = %req.command, "started container");
        Ok(ContainerRun {
            exec: self.clone(),
            id,
            name: name.to_string(),
            start,
            started_at_unix_ms,
            timeout: req.timeout,
            grace: req.grace,
            time_budget: req.time_budget,
            logs,
        })
    }

    /// Resumes waiting on a container started earlier (after a coordinator
    /// restart). `container` is a persisted [`RunHandle::id`]
    /// (`docker:<id>`), a bare id or a name; `req` is the request it was
    /// started for (timeout, grace, log paths and cap apply). The log files
    /// are rewritten from the start of the container's output.
    pub fn reattach(
        &self,
        container: &str,
        req: &RunRequest,
    ) -> Result<Box<dyn RunHandle>, ExecError> {
        Ok(Box::new(self.reattach_run(container, req)?))
    }

    /// [`ContainerExecutor::reattach`], returning the concrete handle.
    pub fn reattach_run(
        &self,
        container: &str,
        req: &RunRequest,
    ) -> Result<ContainerRun, ExecError> {
        let reference = normalize_container_ref(container)?;
        let state = self
            .inspect(reference)?
            .ok_or_else(|| ExecError::ContainerLost {
                container: reference.to_string(),
                reason: "no such container".into(),
            })?;
        if state.run_label.is_none() {
            return Err(ExecError::InvalidRequest(format!(
                "container {reference} was not started by picidae (no {RUN_LABEL} label)"
            )));
        }
        let logs = LogFiles::create(req)?;
        let now_ms = now_unix_ms();
        let started_at_unix_ms = state.started_at_ns.map_or(now_ms, |ns| ns / 1_000_000);
        let elapsed =
            Duration::from_millis(u64::try_from(now_ms - started_at_unix_ms).unwrap_or(0));
        let now = Instant::now();
        Ok(ContainerRun {
            exec: self.clone(),
            id: state.id,
            name: state.name,
            start: now.checked_sub(elapsed).unwrap_or(now),
            started_at_unix_ms,
            timeout: req.timeout,
            grace: req.grace,
            time_budget: req.time_budget,
            logs,
        })
    }

    /// The container's state, `None` when the runtime does not know it.
    pub fn inspect(&self, container: &str) -> Result<Option<ContainerState>, ExecError> {
        let out = self.runtime.call(
            &["inspect", "--type", "container", "--", container],
            self.call_limit,
        )?;
        if out.code() != Some(0) {
            if out.status.is_some() && is_no_such_container(&out.stderr) {
                return Ok(None);
            }
            return Err(self.runtime.error("inspect", out.failure()));
        }
        parse_inspect(&String::from_utf8_lossy(&out.stdout))
            .map_err(|m| self.runtime.error("inspect", m))
    }

    /// `rm -f` the container; true when it is gone afterwards. Failures
    /// are logged, not returned.
    pub fn remove(&self, container: &str) -> bool {
        match self
            .runtime
            .call(&["rm", "-f", "--", container], self.call_limit)
        {
            Ok(out) if out.code() == Some(0) || is_no_such_container(&out.stderr) => true,
            Ok(out) => {
                tracing::warn!(container, error = %out.failure(), "cannot remove container");
                false
            }
            Err(err) => {
                tracing::warn!(container, error = %err, "cannot remove container");
                false
            }
        }
    }

    /// Whether the kernel OOM-killed a process of the stopped `container`.
    /// `OOMKilled` in the state is unreliable (Docker overwrites an OOM
    /// event handled before the exit event; Podman 4 on cgroup v1 never
    /// sets it), so the state is read again and the runtime's event log is
    /// searched for an `oom` event since the container started.
    fn oom_seen(&self, container: &str, started_at_unix_ms: i64) -> bool {
        if let Ok(Some(state)) = self.inspect(container) {
            if state.oom_killed {
                return true;
            }
        }
        let since = (started_at_unix_ms / 1000 - 60).max(0).to_string();
        let until = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
            Err(_) => return false,
        };
        let filter = format!("container={container}");
        let mut args = vec!["events", "--since", &since];
        // Both stop at "now" and print past events only; Podman 4 prints
        // nothing with an `--until` in the past.
        match self.runtime.kind {
            RuntimeKind::Docker => args.extend(["--until", &until]),
            RuntimeKind::Podman => args.push("--stream=false"),
        }
        args.extend(["--filter", &filter, "--filter", "event=oom"]);
        args.extend(["--format", "{{.ID}}"]);
        match self.runtime.call(&args, self.call_limit) {
            Ok(out) if out.code() == Some(0) => out.stdout.iter().any(|b| !b.is_ascii_whitespace()),
            Ok(out) => {
                tracing::warn!(container, error = %out.failure(), "cannot read runtime events");
                false
            }
            Err(err) => {
                tracing::warn!(container, error = %err, "cannot read runtime events");
                false
            }
        }
    }

    /// `stop -t <grace>` (SIGTERM, SIGKILL after grace), then `kill` if it
    /// still runs.
    fn stop(&self, container: &str, grace: Duration) -> Result<(), ExecError> {
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let t = secs.to_string();
        let out = self.runtime.call(
            &["stop", "-t", &t, "--", container],
            grace + self.call_limit,
        )?;
        if out.code() == Some(0) || is_no_such_container(&out.stderr) {
            return Ok(());
        }
        tracing::warn!(container, error = %out.failure(), "stop failed; killing");
        let out = self
            .runtime
            .call(&["kill", "--", container], self.call_limit)?;
        if out.code() == Some(0) {
            return Ok(());
        }
        // `kill` fails when the container stopped in the meantime.
        match self.inspect(container)? {
            Some(s) if s.running => Err(self.runtime.error("kill", out.failure())),
            _ => Ok(()),
        }
    }
}

impl Executor for ContainerExecutor {
    fn name(&self) -> &str {
        self.runtime.kind.as_str()
    }

    fn spawn(&self, req: &RunRequest) -> Result<Box<dyn RunHandle>, ExecError> {
        let run = self.spawn_named(&ContainerExecutor::unique_name(), req)?;
        Ok(Box::new(run))
    }
}

/// `path` with symlinks resolved (it must exist).
fn canonical(path: &Path) -> Result<PathBuf, ExecError> {
    fs::canonicalize(path)
        .map_err(|e| ExecError::InvalidRequest(format!("cannot resolve {}: {e}", path.display())))
}

/// `req` with a canonical `cwd` and log paths in canonical directories (the
/// log files exist by now).
fn resolve_request(req: &RunRequest) -> Result<RunRequest, ExecError> {
    let log = |p: &Path| -> Result<PathBuf, ExecError> {
        match (
            p.parent().filter(|d| !d.as_os_str().is_empty()),
            p.file_name(),
        ) {
            (Some(dir), Some(file)) => Ok(canonical(dir)?.join(file)),
            (None, Some(file)) => Ok(canonical(Path::new("."))?.join(file)),
            _ => canonical(p),
        }
    };
    Ok(RunRequest {
        cwd: canonical(&req.cwd)?,
        stdout_path: log(&req.stdout_path)?,
        stderr_path: log(&req.stderr_path)?,
        ..req.clone()
    })
}
