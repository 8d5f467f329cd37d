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

/// Image, isolation and resource limits of the containers an executor
/// starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    /// Image to run (must provide `/bin/sh`).
    pub image: String,
    /// Give the container the runtime's default network. False (the
    /// default) runs it with `--network none`: loopback only.
    pub network: bool,
    /// `--gpus` value: `"all"`, a count (`"2"`, Docker only) or
    /// `"device=0,1"`. For Podman, `all` and device lists become CDI
    /// devices (`--device nvidia.com/gpu=...`).
    pub gpus: Option<String>,
    /// Memory limit in MiB (`--memory`, with `--memory-swap` equal to it).
    pub memory_mb: Option<u64>,
    /// CPU limit (`--cpus`).
    pub cpus: Option<f64>,
    /// Process limit (`--pids-limit`).
    pub pids_limit: Option<u32>,
    /// Host paths mounted read-only at the same path inside the container.
    /// They must exist.
    pub readonly_mounts: Vec<PathBuf>,
    /// `--user` value (`uid[:gid]` or a name known to the image). `None`
    /// keeps the image's user; files the run writes into `cwd` are then
    /// owned by that user (often root).
    pub user: Option<String>,
    /// Run an init process as PID 1 (`--init`) that forwards signals and
    /// reaps zombies. True by default.
    pub init: bool,
    /// Extra `run` arguments, placed just before the image.
    pub extra_args: Vec<String>,
}

impl Default for ContainerSpec {
    fn default() -> Self {
        ContainerSpec {
            image: String::new(),
            network: false,
            gpus: None,
            memory_mb: None,
            cpus: None,
            pids_limit: None,
            readonly_mounts: Vec::new(),
            user: None,
            init: true,
            extra_args: Vec::new(),
        }
    }
}

impl ContainerSpec {
    /// A spec for `image` with no network, an init process and no limits.
    pub fn new(image: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            ..ContainerSpec::default()
        }
    }

    /// Checks the spec without touching the filesystem.
    pub fn validate(&self) -> Result<(), ExecError> {
        let bad = |m: String| Err(ExecError::InvalidRequest(m));
        if self.image.trim().is_empty() || self.image.starts_with('-') {
            return bad(format!("container image {:?} is not valid", self.image));
        }
        if self.memory_mb == Some(0) {
            return bad("container memory limit must be positive".into());
        }
        if let Some(cpus) = self.cpus {
            if !(cpus.is_finite() && cpus > 0.0) {
                return bad(format!("container cpu limit {cpus} must be positive"));
            }
        }
        if self.pids_limit == Some(0) {
            return bad("container pids limit must be positive".into());
        }
        if let Some(gpus) = &self.gpus {
            if gpus.trim().is_empty() {
                return bad("container gpus must not be empty".into());
            }
        }
        if let Some(user) = &self.user {
            if user.is_empty() || user.starts_with('-') {
                return bad(format!("container user {user:?} is not valid"));
            }
        }
        for path in &self.readonly_mounts {
            mount_path(path)?;
        }
        if self.extra_args.iter().any(|a| a.contains('\0')) {
            return bad("container extra arguments must not contain NUL bytes".into());
        }
        Ok(())
    }
}

/// True for names Docker and Podman accept: `[A-Za-z0-9][A-Za-z0-9_.-]*`,
/// at most 128 bytes.
pub fn valid_container_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && name.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A host path as it may appear in a `-v SRC:DST[:ro]` mount: absolute,
/// UTF-8, without `:`, newlines or NUL bytes.
fn mount_path(path: &Path) -> Result<&str, ExecError> {
    let text = path.to_str().ok_or_else(|| {
        ExecError::InvalidRequest(format!("path {} is not valid UTF-8", path.display()))
    })?;
    if !path.is_absolute() {
        return Err(ExecError::InvalidRequest(format!(
            "container mount {text:?} must be an absolute path"
        )));
    }
    if text.contains([':', '\n', '\0']) {
        return Err(ExecError::InvalidRequest(format!(
            "container mount {text:?} contains `:` or a newline"
        )));
    }
    Ok(text)
}

/// The directories bind-mounted read-write: `cwd`, then the log files'
/// directories that do not already lie under a mounted directory.
pub fn writable_mounts(req: &RunRequest) -> Vec<PathBuf> {
    let mut dirs = vec![req.cwd.clone()];
    for log in [&req.stdout_path, &req.stderr_path] {
        let Some(parent) = log.parent().filter(|p| !p.as_os_str().is_empty()) else {
            continue;
        };
        if !dirs.iter().any(|d| parent.starts_with(d)) {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs
}

/// The `--gpus` (Docker) or CDI `--device` (Podman) arguments for `gpus`.
///
/// Docker parses `--gpus` as CSV, so a device list (`device=0,1`) is passed
/// as `"device=0,1"`, double quotes included; other values (`all`, a count,
/// `all,capabilities=utility`, an already quoted value) are passed as they
/// are. Podman gets `--device nvidia.com/gpu=all` or one
/// `--device nvidia.com/gpu=N` per listed device; other values are refused.
pub fn gpu_args(kind: RuntimeKind, gpus: &str) -> Result<Vec<String>, ExecError> {
    let gpus = gpus.trim();
    let devices = gpus.strip_prefix("device=").filter(|list| {
        !list.is_empty()
            && list
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b',' || b == b'-')
    });
    match kind {
        RuntimeKind::Docker => {
            let value = match devices {
                Some(list) if list.contains(',') => format!("\"device={list}\""),
                _ => gpus.to_string(),
            };
            Ok(vec!["--gpus".into(), value])
        }
        RuntimeKind::Podman => {
            let ids: Vec<&str> = match devices {
                _ if gpus == "all" => vec!["all"],
                Some(list) => list.split(',').filter(|s| !s.is_empty()).collect(),
                None => {
                    return Err(ExecError::InvalidRequest(format!(
                        "podman cannot express gpus {gpus:?}: use \"all\" or \"device=0,1\""
                    )))
                }
            };
            Ok(ids
                .into_iter()
                .flat_map(|id| ["--device".to_string(), format!("nvidia.com/gpu={id}")])
                .collect())
        }
    }
}

/// The arguments after the CLI's global arguments that start `req` in a
/// detached container called `name`: `run -d --name ... <image> /bin/sh -c
/// <command>`. Pure: paths are used as given (absolute, ideally
/// canonical) and nothing is checked on disk.
pub fn run_args(
    kind: RuntimeKind,
    spec: &ContainerSpec,
    name: &str,
    req: &RunRequest,
) -> Result<Vec<String>, ExecError> {
    spec.validate()?;
    if !valid_container_name(name) {
        return Err(ExecError::InvalidRequest(format!(
            "container name {name:?} must match [A-Za-z0-9][A-Za-z0-9_.-]*"
        )));
    }
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.into(),
        "--label".into(),
        format!("{RUN_LABEL}={name}"),
    ];
    let mut push = |a: &str, b: String| {
        args.push(a.to_string());
        args.push(b);
    };
    if !spec.network {
        push("--network", "none".into());
    }
    if let Some(mb) = spec.memory_mb {
        push("--memory", format!("{mb}m"));
        push("--memory-swap", format!("{mb}m"));
    }
    if let Some(cpus) = spec.cpus {
        push("--cpus", format!("{cpus}"));
    }
    if let Some(pids) = spec.pids_limit {
        push("--pids-limit", pids.to_string());
    }
    if let Some(user) = &spec.user {
        push("--user", user.clone());
    }
    if spec.init {
        args.push("--init".into());
    }
    if let Some(gpus) = &spec.gpus {
        args.extend(gpu_args(kind, gpus)?);
    }
    let writable = writable_mounts(req);
    for dir in &writable {
        let p = mount_path(dir)?;
        args.push("-v".into());
        args.push(format!("{p}:{p}"));
    }
    for dir in &spec.readonly_mounts {
        if writable.contains(dir) {
            return Err(ExecError::InvalidRequest(format!(
                "{} is mounted read-write already (run directory or log directory)",
                dir.display()
            )));
        }
        let p = mount_path(dir)?;
        args.push("-v".into());
        args.push(format!("{p}:{p}:ro"));
    }
    args.push("-w".into());
    args.push(mount_path(&req.cwd)?.to_string());
    for (k, v) in &req.env {
        args.push("-e".into());
        args.push(format!("{k}={v}"));
    }
    args.extend(spec.extra_args.iter().cloned());
    args.push(spec.image.clone());
    args.push("/bin/sh".into());
    args.push("-c".into());
    args.push(req.command.clone());
    Ok(args)
}

/// The part of `inspect`'s answer this module uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerState {
    /// Full container id.
    pub id: String,
    /// Container name (without Docker's leading `/`).
    pub name: String,
    /// Runtime status word (`created`, `running`, `exited`, ...).
    pub status: String,
    pub running: bool,
    /// The kernel OOM-killed a process of the container.
    pub oom_killed: bool,
    /// Exit status of the container's main process (meaningful once it
    /// stopped).
    pub exit_code: i64,
    /// Host pid of the main process while running (0 otherwise).
    pub pid: i64,
    /// Start / finish time, nanoseconds since the Unix epoch.
    pub started_at_ns: Option<i64>,
    pub finished_at_ns: Option<i64>,
    /// Runtime error message (e.g. why the container could not start).
    pub error: String,
    /// Value of the [`RUN_LABEL`] label, if set.
    pub run_label: Option<String>,
}

impl ContainerState {
    /// The container was created but never started (start failed, or the
    /// CLI died between create and start).
    pub fn never_started(&self) -> bool {
        !self.running && self.started_at_ns.is_none()
    }
}

/// Parses the JSON array printed by `<cli> inspect --type container <id>`
/// (Docker and Podman); `None` when it holds no container.
pub fn parse_inspect(json: &str) -> Result<Option<ContainerState>, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("inspect output is not JSON: {e}"))?;
    let Some(c) = value.as_array().and_then(|a| a.first()) else {
        return Ok(None);
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let state = &c["State"];
    if !state.is_object() {
        return Err("inspect output has no State".into());
    }
    let id = text(&c["Id"]);
    if id.is_empty() {
        return Err("inspect output has no Id".into());
    }
    Ok(Some(ContainerState {
        id,
        name: text(&c["Name"]).trim_start_matches('/').to_string(),
        status: text(&state["Status"]).to_ascii_lowercase(),
        running: state["Running"].as_bool().unwrap_or(false),
        oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
        exit_code: state["ExitCode"].as_i64().unwrap_or(0),
        pid: state["Pid"].as_i64().unwrap_or(0),
        started_at_ns: state["StartedAt"].as_str().and_then(parse_timestamp_ns),
        finished_at_ns: state["FinishedAt"].as_str().and_then(parse_timestamp_ns),
        error: text(&state["Error"]),
        run_label: c["Config"]["Labels"][RUN_LABEL]
            .as_str()
            .map(str::to_string),
    }))
}

/// Parses an RFC 3339 time as the runtimes print it
/// (`2024-05-01T12:00:00.123456789Z`, or with a `+02:00` offset) into
/// nanoseconds since the Unix epoch. Times before 1970 (the runtimes'
/// "never" is year 1) give `None`.
pub fn parse_timestamp_ns(text: &str) -> Option<i64> {
    let text = text.trim();
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || year < 1970 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (clock, ""),
    };
    let mut t = hms.split(':');
    let (h, m, s) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if t.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut nanos = 0i64;
    if !frac.is_empty() {
        num(frac)?;
        let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    let offset_s = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (oh, om) = zone[1..].split_once(':')?;
            sign * (num(oh)? * 3600 + num(om)? * 60)
        }
    };
    // Days from civil (H. Hinnant), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Exit code and signal of a stopped container (see the module docs).
pub fn decode_container_exit(state: &ContainerState) -> (Option<i32>, Option<i32>) {
    if state.oom_killed {
        return (None, Some(libc::SIGKILL));
    }
    match i32::try_from(state.exit_code) {
        Ok(code) if (129..=192).contains(&code) => (None, Some(code - 128)),
        Ok(code) if (0..=255).contains(&code) => (Some(code), None),
        _ => (None, None),
    }
}

/// Strips an optional `docker:` / `podman:` prefix from a persisted id and
/// checks what remains looks like a container id or name.
fn normalize_container_ref(id: &str) -> Result<&str, ExecError> {
    let bare = id
        .strip_prefix("docker:")
        .or_else(|| id.strip_prefix("podman:"))
        .unwrap_or(id);
    if valid_container_name(bare) {
        Ok(bare)
    } else {
        Err(ExecError::InvalidRequest(format!(
            "{id:?} is not a container id"
        )))
    }
}

fn is_no_such_container(stderr: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stderr).to_ascii_lowercase();
    text.contains("no such container") || text.contains("no such object")
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

/// Appends a note line to a log file (not counted against the cap).
fn note_in_log(path: &Path, text: &str) {
    let result = OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(err) = result {
        tracing::warn!(path = %path.display(), error = %err, "cannot append note to log");
    }
}

/// `<cli> logs -f <id>` copying the container's stdout and stderr into the
/// log files. Killed when dropped.
struct LogFollower {
    child: Option<Child>,
    stop: Arc<AtomicBool>,
    stdout: Option<JoinHandle<StreamReport>>,
    stderr: Option<JoinHandle<StreamReport>>,
}

impl LogFollower {
    fn start(
        runtime: &ContainerRuntime,
        container: &str,
        logs: &LogFiles,
    ) -> Result<LogFollower, ExecError> {
        let out_file = append_log(&logs.stdout_path)?;
        let err_file = append_log(&logs.stderr_path)?;
        let mut cmd = runtime.command();
        cmd.args(["logs", "-f", "--", container])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            runtime.error(
                "logs",
                format!("cannot run {}: {e}", runtime.program.display()),
            )
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut follower = LogFollower {
            stdout: None,
            stderr: None,
            stop: stop.clone(),
            child: None,
        };
        let (out, err) = (child.stdout.take(), child.stderr.take());
        follower.child = Some(child);
        if let Some(out) = out {
            follower.stdout = Some(
                spawn_reader(
                    "ctr-stdout",
                    out,
                    out_file,
                    logs.stdout_path.clone(),
                    logs.cap,
                    STDOUT_TAIL_BYTES,
                    stop.clone(),
                )
                .map_err(ExecError::Thread)?,
            );
        }
        if let Some(err) = err {
            follower.stderr = Some(
                spawn_reader(
                    "ctr-stderr",
                    err,
                    err_file,
                    logs.stderr_path.clone(),
                    logs.cap,
                    0,
                    stop,
                )
                .map_err(ExecError::Thread)?,
            );
        }
        Ok(follower)
    }

    /// Lets the follower copy what is left (it exits by itself once the
    /// container stopped), killing it after `limit`; returns both streams'
    /// reports.
    fn finish(mut self, limit: Duration) -> (StreamReport, StreamReport) {
        if let Some(mut child) = self.child.take() {
            match wait_limited(&mut child, limit) {
                Ok(Some(status)) if !status.success() => {
                    tracing::warn!(%status, "log follower failed");
                }
                Ok(Some(_)) => {}
                Ok(None) => tracing::warn!("log follower did not finish; killed"),
                Err(err) => tracing::warn!(error = %err, "cannot wait for log follower"),
            }
        }
        self.join()
    }

    fn join(&mut self) -> (StreamReport, StreamReport) {
        self.stop.store(true, Ordering::SeqCst);
        let join =
            |h: Option<JoinHandle<StreamReport>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        (join(self.stdout.take()), join(self.stderr.take()))
    }
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.stdout.is_some() || self.stderr.is_some() {
            let _ = self.join();
        }
    }
}

/// Reads resident memory and OOM kills of a container from its memory
/// cgroup, when the container's main process is visible on this machine.
struct CgroupMemory {
    dir: PathBuf,
    /// Cgroup v1 (`memory.stat` `total_rss`, `memory.oom_control`
    /// `oom_kill`) or v2 (`memory.stat` `anon`, `memory.events` `oom_kill`).
    v1: bool,
}

impl CgroupMemory {
    /// Finds the memory cgroup of host pid `pid`, accepted only when its
    /// path names the container (so a remote daemon's pid that happens to
    /// exist here is never mistaken for the container).
    fn find(pid: i64, container_id: &str) -> Option<CgroupMemory> {
        if pid <= 0 || container_id.len() < 12 {
            return None;
        }
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let mut v2 = None;
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if !path.contains(container_id) {
                continue;
            }
            let rel = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "memory") {
                return Some(CgroupMemory {
                    dir: Path::new("/sys/fs/cgroup/memory").join(rel),
                    v1: true,
                });
            }
            if controllers.is_empty() {
                v2 = Some(CgroupMemory {
                    dir: Path::new("/sys/fs/cgroup").join(rel),
                    v1: false,
                });
            }
        }
        v2.filter(|c| c.dir.join("memory.stat").is_file())
    }

    /// The value of `key` in a `key value` file of the cgroup.
    fn read(&self, file: &str, key: &str) -> Option<u64> {
        let text = fs::read_to_string(self.dir.join(file)).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok())?
        })
    }

    fn rss_kb(&self) -> Option<u64> {
        let key = if self.v1 { "total_rss" } else { "anon" };
        self.read("memory.stat", key).map(|b| b / 1024)
    }

    /// Number of processes the kernel OOM-killed in the cgroup (needs
    /// Linux 4.13+ on cgroup v1).
    fn oom_kills(&self) -> Option<u64> {
        let file = if self.v1 {
            "memory.oom_control"
        } else {
            "memory.events"
        };
        self.read(file, "oom_kill")
    }
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
