//! One started container ([`ContainerRun`]): polled with `inspect` until it
//! stops, stopped on timeout or cancellation, then removed, its OOM kill
//! detected and its result turned into a [`ContainerOutcome`].

use super::*;

/// How often the cancel flag and the timeout are checked between polls.
const WAKE_INTERVAL: Duration = Duration::from_millis(50);

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
    pub(crate) exec: ContainerExecutor,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) start: Instant,
    pub(crate) started_at_unix_ms: i64,
    pub(crate) timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) time_budget: Duration,
    pub(crate) logs: LogFiles,
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
    /// true, then removes it (see the [`container`](super) module docs).
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
