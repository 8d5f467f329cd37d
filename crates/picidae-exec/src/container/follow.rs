//! Following a running container: its logs copied into the run's log files, and its peak memory from the cgroup.

use super::*;

/// `<cli> logs -f <id>` copying the container's stdout and stderr into the
/// log files. Killed when dropped.
pub(crate) struct LogFollower {
    pub(crate) child: Option<Child>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) stdout: Option<JoinHandle<StreamReport>>,
    pub(crate) stderr: Option<JoinHandle<StreamReport>>,
}

impl LogFollower {
    pub(crate) fn start(
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
    pub(crate) fn finish(mut self, limit: Duration) -> (StreamReport, StreamReport) {
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

    pub(crate) fn join(&mut self) -> (StreamReport, StreamReport) {
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
pub(crate) struct CgroupMemory {
    pub(crate) dir: PathBuf,
    /// Cgroup v1 (`memory.stat` `total_rss`, `memory.oom_control`
    /// `oom_kill`) or v2 (`memory.stat` `anon`, `memory.events` `oom_kill`).
    pub(crate) v1: bool,
}

impl CgroupMemory {
    /// Finds the memory cgroup of host pid `pid`, accepted only when its
    /// path names the container (so a remote daemon's pid that happens to
    /// exist here is never mistaken for the container).
    pub(crate) fn find(pid: i64, container_id: &str) -> Option<CgroupMemory> {
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
    pub(crate) fn read(&self, file: &str, key: &str) -> Option<u64> {
        let text = fs::read_to_string(self.dir.join(file)).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok())?
        })
    }

    pub(crate) fn rss_kb(&self) -> Option<u64> {
        let key = if self.v1 { "total_rss" } else { "anon" };
        self.read("memory.stat", key).map(|b| b / 1024)
    }

    /// Number of processes the kernel OOM-killed in the cgroup (needs
    /// Linux 4.13+ on cgroup v1).
    pub(crate) fn oom_kills(&self) -> Option<u64> {
        let file = if self.v1 {
            "memory.oom_control"
        } else {
            "memory.events"
        };
        self.read(file, "oom_kill")
    }
}
