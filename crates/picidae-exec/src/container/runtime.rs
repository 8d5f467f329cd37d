//! Reaching a container runtime: which CLI ([`RuntimeKind`]), which daemon
//! and global arguments ([`ContainerRuntime`]), and running one CLI call
//! with a time limit.

use super::*;

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
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(self.global_cli_args())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `<cli> <args>` with a time limit, collecting its output.
    pub(crate) fn call(&self, args: &[&str], limit: Duration) -> Result<CallOutput, ExecError> {
        self.call_in(args, limit, None)
    }

    /// [`Self::call`] in the working directory `cwd`.
    pub(crate) fn call_in(
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

    pub(crate) fn error(&self, subcommand: &str, message: impl Into<String>) -> ExecError {
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
