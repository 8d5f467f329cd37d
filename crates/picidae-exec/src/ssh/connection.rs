//! The `ssh` calls to the remote host: the options every call gets, the
//! multiplexed connection (a ControlMaster socket in a private local
//! directory, closed when the executor goes), running a shell script
//! remotely, and retrying calls while the host does not answer.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::Inner;
use crate::call::{run_limited, CallOutput};
use crate::shell::quote;
use crate::ExecError;

/// First and largest backoff between retries of a failed `ssh` call.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// `ssh` exits with this status when the connection itself failed.
pub(crate) const SSH_CONNECTION_FAILED: i32 = 255;

/// Why one remote call did not give an answer.
pub(crate) enum CallError {
    /// Connection-level failure: retry.
    Transient(String),
    /// Anything else: give up.
    Fatal(ExecError),
}

pub(crate) fn make_control_dir() -> Option<PathBuf> {
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

impl Inner {
    pub(crate) fn ssh_error(&self, message: String) -> ExecError {
        ExecError::Ssh {
            host: self.target.host.clone(),
            message,
        }
    }

    /// `ssh` options shared by every call (without the destination).
    pub(crate) fn ssh_args(&self) -> Vec<String> {
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
    pub(crate) fn remote_command(&self, script: &str) -> Command {
        let mut cmd = self.ssh_command();
        cmd.arg("--")
            .arg(self.target.destination())
            .arg(format!("/bin/sh -c {}", quote(script)));
        cmd
    }

    /// Runs `script` with `/bin/sh` on the remote host.
    pub(crate) fn remote(&self, script: &str, limit: Duration) -> Result<CallOutput, CallError> {
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
    pub(crate) fn retry<T>(
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
