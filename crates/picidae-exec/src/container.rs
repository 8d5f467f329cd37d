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

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::call::{now_unix_ms, run_limited, wait_limited, CallOutput};
use crate::executor::{Executor, RunHandle};
use crate::logs::{append_log, spawn_reader, LogFiles, StreamReport};
use crate::{ExecError, RunOutcome, RunRequest, STDOUT_TAIL_BYTES};

mod args;
mod follow;
mod inspect;

pub use args::*;
use follow::*;
pub use inspect::*;

/// Default time between two `inspect` polls of a running container.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Default time limit of one short CLI call (`inspect`, `stop`, `rm`, ...).
pub const DEFAULT_CALL_LIMIT: Duration = Duration::from_secs(60);
/// Default time limit of `run -d` (it may have to pull the image).
pub const DEFAULT_START_LIMIT: Duration = Duration::from_secs(600);
/// Label put on every container this module starts; its value is the name.
pub const RUN_LABEL: &str = "picidae.run";
/// How often the cancel flag and the timeout are checked between polls.
const WAKE_INTERVAL: Duration = Duration::from_millis(50);

/// Which container runtime a CLI belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Docker,
    Podman,
}

impl RuntimeKind {
    /// `"docker"` or `"podman"`: the default program name, the executor's
    /// name and the prefix of [`RunHandle::id`].
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Podman => "podman",
        }
    }
}

/// How to reach a container runtime: its CLI and, optionally, a daemon
/// address other than the CLI's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRuntime {
    pub kind: RuntimeKind,
    /// The CLI binary (a bare name is looked up on `PATH`).
    pub program: PathBuf,
    /// Daemon address, e.g. `unix:///run/docker.sock` or `ssh://host`.
    /// Docker gets it as `--host`, Podman as `--remote --url`.
    pub host: Option<String>,
    /// Extra global CLI arguments, placed before the subcommand (e.g.
    /// Podman's `--root DIR --runroot DIR`, Docker's `--config DIR`).
    #[serde(default)]
    pub global_args: Vec<String>,
    /// Extra environment of the CLI process (e.g. `CONTAINERS_CONF`).
    /// Never passed into containers.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

impl ContainerRuntime {
    /// The `docker` CLI on `PATH`, talking to its default daemon.
    pub fn docker() -> ContainerRuntime {
        ContainerRuntime::new(RuntimeKind::Docker)
    }

    /// The `podman` CLI on `PATH`, running containers locally.
    pub fn podman() -> ContainerRuntime {
        ContainerRuntime::new(RuntimeKind::Podman)
    }

    /// The runtime's CLI on `PATH`, with no host, arguments or environment.
    pub fn new(kind: RuntimeKind) -> ContainerRuntime {
        ContainerRuntime {
            kind,
            program: PathBuf::from(kind.as_str()),
            host: None,
            global_args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Uses `program` as the CLI binary.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> ContainerRuntime {
        self.program = program.into();
        self
    }

    /// Talks to the daemon at `host` (e.g. `unix:///path/docker.sock`).
    pub fn with_host(mut self, host: impl Into<String>) -> ContainerRuntime {
        self.host = Some(host.into());
        self
    }

    /// Adds a global CLI argument.
    pub fn with_global_arg(mut self, arg: impl Into<String>) -> ContainerRuntime {
        self.global_args.push(arg.into());
        self
    }

    /// Sets an environment variable of the CLI process.
    pub fn with_env(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> ContainerRuntime {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The arguments every CLI call starts with (host selection, then
    /// [`Self::global_args`]).
    pub fn global_cli_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(host) = &self.host {
            match self.kind {
                RuntimeKind::Docker => {
                    args.push("--host".to_string());
                    args.push(host.clone());
                }
                RuntimeKind::Podman => {
                    args.push("--remote".to_string());
                    args.push("--url".to_string());
                    args.push(host.clone());
                }
            }
        }
        args.extend(self.global_args.iter().cloned());
        args
    }

    /// A CLI command with the global arguments and environment applied and
    /// stdin on `/dev/null`.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(self.global_cli_args())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `<cli> <args>` with a time limit, collecting its output.
    fn call(&self, args: &[&str], limit: Duration) -> Result<CallOutput, ExecError> {
        self.call_in(args, limit, None)
    }

    /// [`Self::call`] in the working directory `cwd`.
    fn call_in(
        &self,
        args: &[&str],
        limit: Duration,
        cwd: Option<&Path>,
    ) -> Result<CallOutput, ExecError> {
        let mut cmd = self.command();
        cmd.args(args);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        run_limited(cmd, limit).map_err(|e| {
            self.error(
                args.first().copied().unwrap_or(""),
                format!("cannot run {}: {e}", self.program.display()),
            )
        })
    }

    fn error(&self, subcommand: &str, message: impl Into<String>) -> ExecError {
        ExecError::Container {
            command: format!("{} {subcommand}", self.kind.as_str()),
            message: message.into(),
        }
    }

    /// Checks that the CLI runs and reaches its daemon (Docker) or storage
    /// (Podman) with `<cli> info`; returns the runtime's version.
    pub fn check(&self) -> Result<String, ExecError> {
        let format = match self.kind {
            RuntimeKind::Docker => "{{.ServerVersion}}",
            RuntimeKind::Podman => "{{.Version.Version}}",
        };
        let out = self.call(&["info", "--format", format], DEFAULT_CALL_LIMIT)?;
        if out.code() != Some(0) {
            return Err(self.error("info", out.failure()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

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

/// The outcome of a container run plus container-specific facts.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerOutcome {
    pub outcome: RunOutcome,
    /// The kernel OOM-killed a process of the container (its memory limit
    /// was reached); `outcome.signal` is then `SIGKILL`.
    pub oom_killed: bool,
    /// Full id of the container.
    pub container_id: String,
    /// The container was removed after the run.
    pub removed: bool,
}

/// A started container. Obtain with [`ContainerExecutor::spawn_named`],
/// [`Executor::spawn`] or [`ContainerExecutor::reattach_run`]. Dropping it
/// leaves the container alone.
#[derive(Debug)]
pub struct ContainerRun {
    exec: ContainerExecutor,
    id: String,
    name: String,
    start: Instant,
    started_at_unix_ms: i64,
    timeout: Duration,
    grace: Duration,
    time_budget: Duration,
    logs: LogFiles,
}

impl ContainerRun {
    /// Full container id.
    pub fn container_id(&self) -> &str {
        &self.id
    }

    /// Container name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Start time, milliseconds since the Unix epoch.
    pub fn started_at_unix_ms(&self) -> i64 {
        self.started_at_unix_ms
    }

    /// Blocks until the container stops, times out, or `cancel` becomes
    /// true, then removes it (see the module docs).
    pub fn wait(self, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        self.wait_detailed(cancel).map(|o| o.outcome)
    }

    /// [`ContainerRun::wait`], also reporting the OOM kill and removal.
    pub fn wait_detailed(self, cancel: &AtomicBool) -> Result<ContainerOutcome, ExecError> {
        let exec = &self.exec;
        let follower = LogFollower::start(&exec.runtime, &self.id, &self.logs)?;
        let deadline = self.start.checked_add(self.timeout);
        let (mut timed_out, mut cancelled) = (false, false);
        let mut stopped_at: Option<Instant> = None;
        let mut peak_rss: Option<u64> = None;
        let mut cgroup: Option<CgroupMemory> = None;
        let mut cgroup_oom = false;
        let mut failing_since: Option<Instant> = None;
        let mut sample = |cgroup: &Option<CgroupMemory>| {
            let Some(cg) = cgroup else { return };
            if let Some(rss) = cg.rss_kb() {
                peak_rss = Some(peak_rss.map_or(rss, |p| p.max(rss)));
            }
            cgroup_oom |= cg.oom_kills().is_some_and(|n| n > 0);
        };
        let state = loop {
            // Sampled before the state is read, so that the last sample is
            // taken as late as possible.
            sample(&cgroup);
            let state = match exec.inspect(&self.id) {
                Ok(state) => {
                    failing_since = None;
                    state
                }
                // The runtime may be restarting: retry for a while.
                Err(err) if failing_since.is_none_or(|t| t.elapsed() < exec.call_limit) => {
                    tracing::warn!(container = %self.id, error = %err, "inspect failed; retrying");
                    failing_since.get_or_insert_with(Instant::now);
                    thread::sleep(exec.poll_interval.max(WAKE_INTERVAL));
                    continue;
                }
                Err(err) => return Err(err),
            };
            let Some(state) = state else {
                return Err(ExecError::ContainerLost {
                    container: self.id.clone(),
                    reason: "the container disappeared while running".into(),
                });
            };
            if !state.running {
                if state.never_started() {
                    exec.remove(&self.id);
                    let _ = fs::remove_dir_all(exec.run_state_dir(&self.name));
                    return Err(ExecError::ContainerLost {
                        container: self.id.clone(),
                        reason: format!("never started ({}) {}", state.status, state.error)
                            .trim()
                            .to_string(),
                    });
                }
                break state;
            }
            if cgroup.is_none() {
                cgroup = CgroupMemory::find(state.pid, &state.id);
                sample(&cgroup);
            }
            if let Some(at) = stopped_at {
                // Stopped, but the runtime still reports it running.
                if at.elapsed() >= exec.call_limit {
                    return Err(exec.runtime.error(
                        "stop",
                        format!("container {} still runs after stop and kill", self.id),
                    ));
                }
                thread::sleep(WAKE_INTERVAL);
                continue;
            }
            let next_poll = Instant::now() + exec.poll_interval;
            loop {
                if cancel.load(Ordering::SeqCst) {
                    cancelled = true;
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out = true;
                }
                if cancelled || timed_out || Instant::now() >= next_poll {
                    break;
                }
                thread::sleep(
                    WAKE_INTERVAL.min(next_poll.saturating_duration_since(Instant::now())),
                );
            }
            if cancelled || timed_out {
                tracing::info!(
                    container = %self.id,
                    cancelled,
                    timed_out,
                    "stopping container"
                );
                exec.stop(&self.id, self.grace)?;
                stopped_at = Some(Instant::now());
            }
        };
        let local_wall = self.start.elapsed();
        let (stdout, stderr) = follower.finish(exec.call_limit);
        let mut state = state;
        let state_dir = exec.run_state_dir(&self.name);
        state.oom_killed = state.oom_killed
            || cgroup_oom
            || state_dir.join("oom").exists()
            || exec.oom_seen(&self.id, self.started_at_unix_ms);
        if state.oom_killed {
            let limit = exec
                .spec
                .memory_mb
                .map_or(String::new(), |mb| format!(" (memory limit {mb} MiB)"));
            note_in_log(
                &self.logs.stderr_path,
                &format!("\n[picidae: container was OOM-killed{limit}]\n"),
            );
        }
        let removed = exec.remove(&self.id);
        if let Err(err) = fs::remove_dir_all(&state_dir) {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %state_dir.display(), error = %err, "cannot remove run state");
            }
        }
        let wall = match (state.started_at_ns, state.finished_at_ns) {
            (Some(s), Some(f)) if f >= s => Duration::from_nanos(u64::try_from(f - s).unwrap_or(0)),
            _ => local_wall,
        };
        let (exit_code, signal) = decode_container_exit(&state);
        if exit_code.is_none() && signal.is_none() {
            tracing::warn!(container = %self.id, code = state.exit_code, "unexpected exit status");
        }
        let outcome = RunOutcome {
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
        };
        Ok(ContainerOutcome {
            outcome,
            oom_killed: state.oom_killed,
            container_id: self.id.clone(),
            removed,
        })
    }
}

impl RunHandle for ContainerRun {
    fn id(&self) -> String {
        format!("{}:{}", self.exec.runtime.kind.as_str(), self.id)
    }

    fn wait(self: Box<Self>, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        ContainerRun::wait(*self, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RunRequest {
        RunRequest {
            command: "echo \"$X\" > out; exit 3".into(),
            cwd: PathBuf::from("/srv/bench/run-1"),
            env: vec![
                ("X".into(), "it's \"quoted\" $HOME `id` a b".into()),
                ("EMPTY".into(), String::new()),
                ("MULTI".into(), "line1\nline2".into()),
            ],
            time_budget: Duration::from_secs(10),
            timeout: Duration::from_secs(20),
            grace: Duration::from_secs(2),
            stdout_path: PathBuf::from("/logs/r1/stdout.log"),
            stderr_path: PathBuf::from("/logs/r1/stderr.log"),
            log_cap_bytes: 1 << 20,
        }
    }

    /// Index of the first `flag value` pair with this value.
    fn pair(args: &[String], flag: &str, value: &str) -> bool {
        args.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    #[test]
    fn default_args_isolate_the_network_and_end_with_the_command() {
        let spec = ContainerSpec::new("busybox:1");
        let args = run_args(RuntimeKind::Docker, &spec, "run-1", &request()).unwrap();
        assert_eq!(
            &args[..6],
            [
                "run",
                "-d",
                "--name",
                "run-1",
                "--label",
                "picidae.run=run-1"
            ]
        );
        assert!(pair(&args, "--network", "none"), "{args:?}");
        assert!(args.contains(&"--init".to_string()));
        assert!(
            pair(&args, "-v", "/srv/bench/run-1:/srv/bench/run-1"),
            "{args:?}"
        );
        assert!(pair(&args, "-v", "/logs/r1:/logs/r1"), "{args:?}");
        assert!(pair(&args, "-w", "/srv/bench/run-1"));
        let n = args.len();
        assert_eq!(
            &args[n - 4..],
            ["busybox:1", "/bin/sh", "-c", "echo \"$X\" > out; exit 3"]
        );
        for absent in [
            "--memory",
            "--cpus",
            "--pids-limit",
            "--gpus",
            "--user",
            "--device",
        ] {
            assert!(!args.iter().any(|a| a == absent), "{absent} in {args:?}");
        }
        // Only the run directory and the log directory are mounted.
        assert_eq!(args.iter().filter(|a| *a == "-v").count(), 2);
    }

    #[test]
    fn network_and_init_can_be_enabled_and_disabled() {
        let spec = ContainerSpec {
            network: true,
            init: false,
            ..ContainerSpec::new("img")
        };
        let args = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap();
        assert!(
            !args.iter().any(|a| a == "--network" || a == "--init"),
            "{args:?}"
        );
    }

    #[test]
    fn limits_user_and_extra_args() {
        let spec = ContainerSpec {
            memory_mb: Some(512),
            cpus: Some(1.5),
            pids_limit: Some(64),
            user: Some("1000:1000".into()),
            extra_args: vec!["--security-opt".into(), "no-new-privileges".into()],
            ..ContainerSpec::new("img")
        };
        let args = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap();
        assert!(pair(&args, "--memory", "512m"));
        assert!(pair(&args, "--memory-swap", "512m"));
        assert!(pair(&args, "--cpus", "1.5"));
        assert!(pair(&args, "--pids-limit", "64"));
        assert!(pair(&args, "--user", "1000:1000"));
        let img = args.iter().position(|a| a == "img").unwrap();
        assert_eq!(&args[img - 2..img], ["--security-opt", "no-new-privileges"]);
        let whole = ContainerSpec {
            cpus: Some(2.0),
            ..ContainerSpec::new("img")
        };
        let args = run_args(RuntimeKind::Docker, &whole, "n", &request()).unwrap();
        assert!(pair(&args, "--cpus", "2"));
    }

    #[test]
    fn readonly_mounts_get_ro_and_bad_paths_are_refused() {
        let spec = ContainerSpec {
            readonly_mounts: vec![PathBuf::from("/data/set"), PathBuf::from("/opt/models")],
            ..ContainerSpec::new("img")
        };
        let args = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap();
        assert!(pair(&args, "-v", "/data/set:/data/set:ro"), "{args:?}");
        assert!(pair(&args, "-v", "/opt/models:/opt/models:ro"), "{args:?}");

        for bad in ["relative/dir", "/has:colon", "/new\nline"] {
            let spec = ContainerSpec {
                readonly_mounts: vec![PathBuf::from(bad)],
                ..ContainerSpec::new("img")
            };
            let err = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap_err();
            assert!(matches!(err, ExecError::InvalidRequest(_)), "{bad}: {err}");
        }
        let clash = ContainerSpec {
            readonly_mounts: vec![PathBuf::from("/srv/bench/run-1")],
            ..ContainerSpec::new("img")
        };
        assert!(run_args(RuntimeKind::Docker, &clash, "n", &request()).is_err());
        let mut req = request();
        req.cwd = PathBuf::from("/srv/bench/a:b");
        assert!(run_args(RuntimeKind::Docker, &ContainerSpec::new("img"), "n", &req).is_err());
    }

    #[test]
    fn log_directories_inside_cwd_are_not_mounted_twice() {
        let mut req = request();
        req.stdout_path = PathBuf::from("/srv/bench/run-1/logs/out");
        req.stderr_path = PathBuf::from("/elsewhere/err");
        assert_eq!(
            writable_mounts(&req),
            [
                PathBuf::from("/srv/bench/run-1"),
                PathBuf::from("/elsewhere")
            ]
        );
        req.stderr_path = req.stdout_path.clone();
        assert_eq!(writable_mounts(&req), [PathBuf::from("/srv/bench/run-1")]);
    }

    #[test]
    fn env_values_are_single_verbatim_arguments() {
        let args = run_args(
            RuntimeKind::Docker,
            &ContainerSpec::new("img"),
            "n",
            &request(),
        )
        .unwrap();
        assert!(
            pair(&args, "-e", "X=it's \"quoted\" $HOME `id` a b"),
            "{args:?}"
        );
        assert!(pair(&args, "-e", "EMPTY="));
        assert!(pair(&args, "-e", "MULTI=line1\nline2"));
        // Rendered for a shell (e.g. in a log line), the vector reads back
        // to the same words.
        let line = crate::shell::join(&args);
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("for a in {line}; do printf '%s\\0' \"$a\"; done"))
            .output()
            .unwrap();
        let mut words: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        assert_eq!(words.pop().as_deref(), Some(""));
        assert_eq!(words, args);
    }

    #[test]
    fn gpus_for_docker_and_podman() {
        let d = |g: &str| gpu_args(RuntimeKind::Docker, g).unwrap();
        assert_eq!(d("all"), ["--gpus", "all"]);
        assert_eq!(d("2"), ["--gpus", "2"]);
        assert_eq!(d("device=1"), ["--gpus", "device=1"]);
        assert_eq!(d("device=0,1"), ["--gpus", "\"device=0,1\""]);
        assert_eq!(d("\"device=0,1\""), ["--gpus", "\"device=0,1\""]);
        assert_eq!(
            d("all,capabilities=utility"),
            ["--gpus", "all,capabilities=utility"]
        );
        let p = |g: &str| gpu_args(RuntimeKind::Podman, g);
        assert_eq!(p("all").unwrap(), ["--device", "nvidia.com/gpu=all"]);
        assert_eq!(
            p("device=0,1").unwrap(),
            [
                "--device",
                "nvidia.com/gpu=0",
                "--device",
                "nvidia.com/gpu=1"
            ]
        );
        assert!(p("2").is_err());

        let spec = ContainerSpec {
            gpus: Some("device=0,1".into()),
            ..ContainerSpec::new("img")
        };
        let args = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap();
        assert!(pair(&args, "--gpus", "\"device=0,1\""), "{args:?}");
    }

    #[test]
    fn invalid_specs_and_names_are_refused() {
        let req = request();
        let bad_specs = [
            ContainerSpec::new(""),
            ContainerSpec::new("--privileged"),
            ContainerSpec {
                memory_mb: Some(0),
                ..ContainerSpec::new("img")
            },
            ContainerSpec {
                cpus: Some(f64::NAN),
                ..ContainerSpec::new("img")
            },
            ContainerSpec {
                cpus: Some(0.0),
                ..ContainerSpec::new("img")
            },
            ContainerSpec {
                pids_limit: Some(0),
                ..ContainerSpec::new("img")
            },
            ContainerSpec {
                gpus: Some(" ".into()),
                ..ContainerSpec::new("img")
            },
        ];
        for spec in bad_specs {
            assert!(
                run_args(RuntimeKind::Docker, &spec, "n", &req).is_err(),
                "{spec:?}"
            );
        }
        for name in ["", "-x", "a b", "a/b", "a:b"] {
            assert!(!valid_container_name(name), "{name:?}");
            assert!(run_args(RuntimeKind::Docker, &ContainerSpec::new("i"), name, &req).is_err());
        }
        assert!(valid_container_name("picidae-12-1700000000000-0"));
    }

    #[test]
    fn timestamps_parse_to_unix_nanoseconds() {
        assert_eq!(parse_timestamp_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp_ns("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_timestamp_ns("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_timestamp_ns("2023-11-15T00:13:20.000000001+02:00"),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(
            parse_timestamp_ns("2024-02-29T12:00:00-01:30"),
            Some(1_709_213_400 * 1_000_000_000)
        );
        assert_eq!(parse_timestamp_ns("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp_ns("garbage"), None);
        assert_eq!(parse_timestamp_ns("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn inspect_output_is_parsed() {
        let json = r#"[{"Id":"abc123def456abc123","Name":"/run-1",
            "State":{"Status":"exited","Running":false,"OOMKilled":true,"ExitCode":0,
                     "Pid":0,"Error":"","StartedAt":"2023-11-14T22:13:20Z",
                     "FinishedAt":"2023-11-14T22:13:21.25Z"},
            "Config":{"Labels":{"picidae.run":"run-1"}}}]"#;
        let s = parse_inspect(json).unwrap().unwrap();
        assert_eq!(s.id, "abc123def456abc123");
        assert_eq!(s.name, "run-1");
        assert!(!s.running && s.oom_killed && !s.never_started());
        assert_eq!(s.run_label.as_deref(), Some("run-1"));
        assert_eq!(
            s.finished_at_ns.unwrap() - s.started_at_ns.unwrap(),
            1_250_000_000
        );
        assert_eq!(decode_container_exit(&s), (None, Some(libc::SIGKILL)));
        assert_eq!(parse_inspect("[]").unwrap(), None);
        assert!(parse_inspect("nope").is_err());
        assert!(parse_inspect(r#"[{"Id":"x"}]"#).is_err());

        let created = r#"[{"Id":"abc","State":{"Status":"created","Running":false,
            "StartedAt":"0001-01-01T00:00:00Z","ExitCode":0},"Config":{"Labels":null}}]"#;
        let s = parse_inspect(created).unwrap().unwrap();
        assert!(s.never_started() && s.run_label.is_none());
    }

    #[test]
    fn exit_statuses_decode_like_a_shell() {
        let st = |code: i64| ContainerState {
            exit_code: code,
            ..ContainerState::default()
        };
        assert_eq!(decode_container_exit(&st(0)), (Some(0), None));
        assert_eq!(decode_container_exit(&st(3)), (Some(3), None));
        assert_eq!(decode_container_exit(&st(137)), (None, Some(9)));
        assert_eq!(decode_container_exit(&st(143)), (None, Some(15)));
        assert_eq!(decode_container_exit(&st(-1)), (None, None));
    }

    #[test]
    fn ids_and_global_args() {
        assert_eq!(normalize_container_ref("docker:abc123").unwrap(), "abc123");
        assert_eq!(normalize_container_ref("podman:abc123").unwrap(), "abc123");
        assert_eq!(normalize_container_ref("run-1").unwrap(), "run-1");
        assert!(normalize_container_ref("docker:").is_err());
        assert!(normalize_container_ref("docker:-rf").is_err());

        let d = ContainerRuntime::docker()
            .with_host("unix:///tmp/d.sock")
            .with_global_arg("--log-level=error");
        assert_eq!(
            d.global_cli_args(),
            ["--host", "unix:///tmp/d.sock", "--log-level=error"]
        );
        let p = ContainerRuntime::podman().with_host("unix:///tmp/p.sock");
        assert_eq!(
            p.global_cli_args(),
            ["--remote", "--url", "unix:///tmp/p.sock"]
        );
        assert!(ContainerRuntime::podman().global_cli_args().is_empty());
        assert_eq!(ContainerRuntime::docker().program, PathBuf::from("docker"));
    }
}
