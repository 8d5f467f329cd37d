//! What a run's container is started with: the spec (image, isolation, limits), its mounts, GPU flags and the `run` argument vector.

use super::*;

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
pub(crate) fn mount_path(path: &Path) -> Result<&str, ExecError> {
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
