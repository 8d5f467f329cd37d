//! Copying directories between this machine and the remote host: the
//! checkout to the run directory, artifacts back. `rsync` over `ssh` where
//! it works, else `tar` piped through `ssh`.

use std::env;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::thread::JoinHandle;

use super::connection::{CallError, SSH_CONNECTION_FAILED};
use super::Inner;
use crate::call::{drain, finish_pipeline, run_limited};
use crate::shell::quote;
use crate::ExecError;

/// Which end of a `tar` pipeline ([`Inner::tar_pipe`]) is the `ssh` call.
#[derive(Clone, Copy)]
enum SshEnd {
    Producer,
    Consumer,
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

impl Inner {
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
    pub(crate) fn sync_checkout(&self, local: &Path, dir: &str) -> Result<(), ExecError> {
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
    pub(crate) fn fetch_dir(&self, remote: &str, local: &Path) -> Result<(), ExecError> {
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
