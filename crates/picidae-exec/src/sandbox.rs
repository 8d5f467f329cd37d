//! Filesystem and network sandbox for local runs, built on bubblewrap.
//!
//! Owns [`SandboxSpec`] (what a run may see) and [`Sandbox`], which rewrites a
//! [`RunRequest`] so that its command runs under `bwrap`. Wrapping happens
//! *before* [`crate::LocalExecutor::spawn`]; the executor itself is unchanged
//! and still sees a `/bin/sh -c` command line (every argument is quoted with
//! [`crate::shell::quote`]).
//!
//! Inside the sandbox the filesystem is rebuilt from nothing:
//!
//! * the system directories `/usr /bin /sbin /lib /lib32 /lib64 /libx32 /etc`
//!   that exist on the host are bound read-only (top-level symlinks such as
//!   `/bin -> usr/bin` are recreated as symlinks);
//! * a fresh `/proc` (of the sandbox's own pid namespace), a minimal `/dev`
//!   and an empty tmpfs `/tmp`;
//! * [`SandboxSpec::devices`] bound as devices (e.g. `/dev/nvidia0`);
//! * [`SandboxSpec::readonly`] and [`SandboxSpec::writable`] bound at their
//!   canonical paths, parents before children, so a writable run directory
//!   may lie inside a read-only tree (and vice versa);
//! * finally [`SandboxSpec::hidden`] and [`SENSITIVE_SYSTEM_PATHS`] covered:
//!   directories by an empty tmpfs, other files by a bind of `/dev/null`
//!   (which cannot be opened there: bind mounts are `nodev`). Hidden paths
//!   win over binds;
//! * the sandbox's root is then remounted read-only, so the directories
//!   `bwrap` created to hold the binds cannot be written. Only the binds of
//!   [`SandboxSpec::writable`] and the private `/tmp` are writable. A bind
//!   *below* `/tmp` (a checkout under the host's `/tmp`) has its parent
//!   directories in that private `/tmp`; they are created with mode 0555, so
//!   a write beside the bind is denied there too;
//! * started by root, the sandbox drops every capability (`--cap-drop ALL`),
//!   so file permissions hold for it.
//!
//! Everything else of the host filesystem (home directories, the store,
//! other runs' checkouts, `/root`, `/var`, `/run`, `/sys`, ...) does not
//! exist in the sandbox. Without [`SandboxSpec::network`] the run gets its own network
//! namespace with only a loopback interface.
//!
//! Process groups: the sandbox does **not** use `--new-session`. `bwrap`
//! replaces the `/bin/sh` leader (`exec`), so it is the leader of the run's
//! process group and every process inside the sandbox stays in that group
//! (process groups span pid namespaces). SIGTERM from a timeout or a
//! cancellation therefore reaches the command itself, and SIGKILL of the group
//! kills everything; `--die-with-parent` and the pid namespace additionally
//! kill whatever is left when `bwrap` dies. So that the grace period between
//! SIGTERM and SIGKILL is real, `bwrap` itself runs with SIGTERM ignored
//! (otherwise it would die at once and take the sandbox down with SIGKILL)
//! and the command gets the default disposition back through
//! `env --default-signal=TERM` (coreutils 8.31 or newer; without it the
//! command is killed as soon as `bwrap` receives SIGTERM).
//!
//! Exit statuses: a command that exits normally passes its exit code
//! through; a command killed by signal N is reported by `bwrap` as exit code
//! 128+N (the leader, `bwrap`, exited normally). Timeouts and cancellations
//! are still flagged in the outcome.
//!
//! The price of staying in the caller's session is that a sandboxed process
//! could use `TIOCSTI` on a controlling terminal the coordinator may have;
//! run the coordinator without one (as a service) or on a kernel with
//! `dev.tty.legacy_tiocsti=0` when running untrusted code.
//!
//! Paths are bound at their canonical location: pass canonical paths in the
//! run's environment variables. Environment variables pass through
//! unchanged.

use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::shell;
use crate::{ExecError, RunRequest};

/// Host directories bound read-only into every sandbox (when they exist).
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// Files under the bound system directories that no run may read (covered
/// like [`SandboxSpec::hidden`] when they exist): password hashes, SSH host
/// keys, TLS private keys, sudo configuration.
pub const SENSITIVE_SYSTEM_PATHS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/security/opasswd",
];

/// What a sandboxed run may see and do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Directories bound read-write: the run's checkout and its
    /// run/log/artifact directory. Must exist.
    pub writable: Vec<PathBuf>,
    /// Directories (or files) bound read-only, e.g. the shared data
    /// directory. Must exist.
    pub readonly: Vec<PathBuf>,
    /// Paths that must be unreachable even when they lie inside a bound
    /// directory. Paths that do not exist are ignored.
    pub hidden: Vec<PathBuf>,
    /// Device nodes bound into the minimal `/dev` (e.g. from
    /// [`nvidia_devices`]). Must exist.
    pub devices: Vec<PathBuf>,
    /// Keep the host's network. When false the run has only an isolated
    /// loopback interface.
    pub network: bool,
}

/// A [`SandboxSpec`] ready to wrap requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    spec: SandboxSpec,
}

/// The NVIDIA device nodes present on this machine (`/dev/nvidia*`,
/// including `/dev/nvidia-caps`), for [`SandboxSpec::devices`].
pub fn nvidia_devices() -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir("/dev") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = dir
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("nvidia"))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Absolute path of `bwrap` found on `PATH`, if any.
fn bwrap_path() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let search = env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        env::split_paths(&search)
            .map(|dir| dir.join("bwrap"))
            .find(|p| is_executable(p))
    })
    .as_deref()
}

/// `env` supporting `--default-signal` (coreutils 8.31+), if any.
fn env_default_signal() -> Option<&'static str> {
    static ENV: OnceLock<Option<&'static str>> = OnceLock::new();
    *ENV.get_or_init(|| {
        ["/usr/bin/env", "/bin/env"].into_iter().find(|env| {
            Command::new(env)
                .args(["--default-signal=TERM", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn path_str(path: &Path) -> Result<&str, ExecError> {
    path.to_str()
        .ok_or_else(|| ExecError::Sandbox(format!("path {} is not valid UTF-8", path.display())))
}

/// Canonical form of a path that must exist.
fn canonical(path: &Path, what: &str) -> Result<PathBuf, ExecError> {
    if !path.is_absolute() {
        return Err(ExecError::Sandbox(format!(
            "{what} path {} is not absolute",
            path.display()
        )));
    }
    fs::canonicalize(path)
        .map_err(|e| ExecError::Sandbox(format!("{what} path {} is unusable: {e}", path.display())))
}

impl Sandbox {
    /// Creates a sandbox from `spec`. Paths are checked by [`Self::wrap`].
    pub fn new(spec: SandboxSpec) -> Sandbox {
        Sandbox { spec }
    }

    /// The specification this sandbox enforces.
    pub fn spec(&self) -> &SandboxSpec {
        &self.spec
    }

    /// Whether `bwrap` is installed and can create a sandbox here (tries
    /// `bwrap --ro-bind / / true` once per process and caches the answer).
    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            let Some(bwrap) = bwrap_path() else {
                return false;
            };
            Command::new(bwrap)
                .args(["--ro-bind", "/", "/", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// The `bwrap` arguments (after the program name, up to and including
    /// `--`) that sandbox a command run in `cwd`.
    pub fn bwrap_args(&self, cwd: &Path) -> Result<Vec<String>, ExecError> {
        let spec = &self.spec;
        let mut args: Vec<String> = ["--die-with-parent", "--unshare-pid", "--unshare-ipc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !spec.network {
            args.push("--unshare-net".into());
        }
        // Started by root, bwrap would leave the sandbox every capability, and with them the
        // power to ignore file permissions. Nothing inside needs one.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            args.extend(["--cap-drop".into(), "ALL".into()]);
        }
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            let Ok(meta) = fs::symlink_metadata(path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = fs::read_link(path)
                    .map_err(|e| ExecError::Sandbox(format!("cannot read symlink {dir}: {e}")))?;
                args.extend([
                    "--symlink".into(),
                    path_str(&target)?.into(),
                    dir.to_string(),
                ]);
            } else if meta.is_dir() {
                args.extend(["--ro-bind".into(), dir.to_string(), dir.to_string()]);
            }
        }
        args.extend(
            ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
                .iter()
                .map(|s| s.to_string()),
        );
        for dev in &spec.devices {
            let dev = canonical(dev, "device")?;
            let dev = path_str(&dev)?;
            args.extend(["--dev-bind".into(), dev.into(), dev.into()]);
        }

        // Binds, parents before children; at equal paths read-only wins.
        let mut binds: Vec<(PathBuf, bool)> = Vec::new();
        for p in &spec.writable {
            binds.push((canonical(p, "writable")?, false));
        }
        for p in &spec.readonly {
            binds.push((canonical(p, "readonly")?, true));
        }
        binds.sort_by_key(|(p, ro)| (p.components().count(), *ro));
        // Binds under /tmp get their parent directories inside the private, writable /tmp
        // tmpfs. Make those parents read-only (mode 0555; the sandbox holds no capability to
        // override it), so that a write beside a bind is denied, not silently kept.
        let mut parents: BTreeSet<PathBuf> = BTreeSet::new();
        for (path, _) in &binds {
            let mut p = path.parent();
            while let Some(dir) = p {
                if dir == Path::new("/tmp") || !dir.starts_with("/tmp") {
                    break;
                }
                parents.insert(dir.to_path_buf());
                p = dir.parent();
            }
        }
        let mut parents: Vec<PathBuf> = parents.into_iter().collect();
        parents.sort_by_key(|p| p.components().count());
        for dir in &parents {
            args.extend([
                "--perms".into(),
                "0555".into(),
                "--dir".into(),
                path_str(dir)?.into(),
            ]);
        }
        for (path, ro) in &binds {
            let p = path_str(path)?;
            let flag = if *ro { "--ro-bind" } else { "--bind" };
            args.extend([flag.into(), p.into(), p.into()]);
        }

        // Hidden paths last, so they cover whatever was bound above them.
        let mut hidden: BTreeSet<PathBuf> = BTreeSet::new();
        for p in &spec.hidden {
            if !p.is_absolute() {
                return Err(ExecError::Sandbox(format!(
                    "hidden path {} is not absolute",
                    p.display()
                )));
            }
            if let Ok(c) = fs::canonicalize(p) {
                hidden.insert(c);
            }
        }
        for p in SENSITIVE_SYSTEM_PATHS {
            if let Ok(c) = fs::canonicalize(p) {
                hidden.insert(c);
            }
        }
        let visible = |p: &Path| {
            binds.iter().any(|(b, _)| p.starts_with(b))
                || SYSTEM_DIRS.iter().any(|d| p.starts_with(d))
        };
        for path in hidden.iter().filter(|p| visible(p)) {
            let p = path_str(path)?;
            if path.is_dir() {
                args.extend(["--tmpfs".into(), p.into()]);
            } else {
                args.extend(["--ro-bind".into(), "/dev/null".into(), p.into()]);
            }
        }

        let cwd = canonical(cwd, "working directory")?;
        if !binds.iter().any(|(b, _)| cwd.starts_with(b)) {
            return Err(ExecError::Sandbox(format!(
                "working directory {} is not inside a writable or readonly path",
                cwd.display()
            )));
        }
        if hidden.iter().any(|h| cwd.starts_with(h)) {
            return Err(ExecError::Sandbox(format!(
                "working directory {} is hidden",
                cwd.display()
            )));
        }
        // Directories bwrap created to hold the binds must not be writable.
        args.extend(["--remount-ro".into(), "/".into()]);
        args.extend(["--chdir".into(), path_str(&cwd)?.into(), "--".into()]);
        Ok(args)
    }

    /// Returns a copy of `req` whose command runs the original one under
    /// `bwrap`: `trap '' TERM; exec bwrap ARGS -- env --default-signal=TERM
    /// /bin/sh -c COMMAND`, every word quoted (see the module docs for the
    /// signal handling). Everything else of the request (cwd, env,
    /// timeouts, logs) is kept.
    pub fn wrap(&self, req: &RunRequest) -> Result<RunRequest, ExecError> {
        let bwrap = bwrap_path()
            .ok_or_else(|| ExecError::Sandbox("bwrap is not installed (not on PATH)".into()))?;
        let mut words = vec![path_str(bwrap)?.to_string()];
        words.extend(self.bwrap_args(&req.cwd)?);
        let prefix = match env_default_signal() {
            Some(env) => {
                words.extend([env.to_string(), "--default-signal=TERM".into()]);
                "trap '' TERM; "
            }
            None => "",
        };
        words.extend(["/bin/sh".into(), "-c".into(), req.command.clone()]);
        let mut wrapped = req.clone();
        wrapped.command = format!("{prefix}exec {}", shell::join(&words));
        Ok(wrapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_order_binds_parents_first_and_hidden_last() {
        let root = tempfile::TempDir::new().unwrap();
        let base = fs::canonicalize(root.path()).unwrap();
        let data = base.join("data");
        let run = data.join("run");
        let secret = data.join("secret");
        for d in [&run, &secret] {
            fs::create_dir_all(d).unwrap();
        }
        let sandbox = Sandbox::new(SandboxSpec {
            writable: vec![run.clone()],
            readonly: vec![data.clone()],
            hidden: vec![secret.clone(), base.join("missing")],
            devices: vec![],
            network: false,
        });
        let args = sandbox.bwrap_args(&run).unwrap();
        let pos = |s: &Path| args.iter().position(|a| a == s.to_str().unwrap()).unwrap();
        assert!(pos(&data) < pos(&run));
        assert!(pos(&run) < pos(&secret));
        assert!(args.contains(&"--unshare-net".to_string()));
        assert!(!args.iter().any(|a| a.contains("missing")));
        assert_eq!(args.last().map(String::as_str), Some("--"));
        assert!(!args.contains(&"--new-session".to_string()));
    }

    #[test]
    fn cwd_must_be_bound_and_paths_absolute() {
        let root = tempfile::TempDir::new().unwrap();
        let sandbox = Sandbox::new(SandboxSpec::default());
        assert!(matches!(
            sandbox.bwrap_args(root.path()),
            Err(ExecError::Sandbox(_))
        ));
        let sandbox = Sandbox::new(SandboxSpec {
            writable: vec![PathBuf::from("relative")],
            ..SandboxSpec::default()
        });
        assert!(matches!(
            sandbox.bwrap_args(root.path()),
            Err(ExecError::Sandbox(_))
        ));
    }
}
