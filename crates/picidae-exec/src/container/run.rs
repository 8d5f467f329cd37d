//! One started container ([`ContainerRun`]): polled with `inspect` until it
//! stops, stopped on timeout or cancellation, then removed, its OOM kill
//! detected and its result turned into a [`ContainerOutcome`].

use super::*;

use crate::remote::{drive, Observed, RemoteJob, Stop, Timing};

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

/// A container as the driver sees it: `inspect` per look, its cgroup's memory sampled on the
/// way; `stop` (SIGTERM, the grace, SIGKILL) to end it.
struct Watch<'a> {
    run: &'a ContainerRun,
    cgroup: Option<CgroupMemory>,
    peak_rss: Option<u64>,
    cgroup_oom: bool,
}

impl Watch<'_> {
    fn sample(&mut self) {
        let Some(cg) = &self.cgroup else { return };
        if let Some(rss) = cg.rss_kb() {
            self.peak_rss = Some(self.peak_rss.map_or(rss, |p| p.max(rss)));
        }
        self.cgroup_oom |= cg.oom_kills().is_some_and(|n| n > 0);
    }
}

impl RemoteJob for Watch<'_> {
    /// The stopped container's state, or why it counts as lost.
    type End = Result<ContainerState, ExecError>;

    fn label(&self) -> String {
        format!("container {}", self.run.id)
    }

    fn observe(&mut self) -> Result<Observed<Self::End>, ExecError> {
        let (exec, id) = (&self.run.exec, &self.run.id);
        // Sampled before the state is read, so that the last sample is taken as late as
        // possible.
        self.sample();
        let Some(state) = exec.inspect(id)? else {
            return Ok(Observed::Ended(Err(ExecError::ContainerLost {
                container: id.clone(),
                reason: "the container disappeared while running".into(),
            })));
        };
        if state.running {
            if self.cgroup.is_none() {
                self.cgroup = CgroupMemory::find(state.pid, &state.id);
                self.sample();
            }
            return Ok(Observed::Running {
                started_unix_ms: Some(self.run.started_at_unix_ms),
            });
        }
        if state.never_started() {
            exec.remove(id);
            let _ = fs::remove_dir_all(exec.run_state_dir(&self.run.name));
            return Ok(Observed::Ended(Err(ExecError::ContainerLost {
                container: id.clone(),
                reason: format!("never started ({}) {}", state.status, state.error)
                    .trim()
                    .to_string(),
            })));
        }
        Ok(Observed::Ended(Ok(state)))
    }

    fn stop(&mut self, how: Stop) -> Result<(), ExecError> {
        let grace = match how {
            Stop::Term => self.run.grace,
            Stop::Kill => Duration::ZERO,
        };
        self.run.exec.stop(&self.run.id, grace)
    }
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
        let timing = Timing {
            poll_interval: exec.poll_interval,
            timeout: self.timeout,
            grace: self.grace,
            // The runtime may be restarting: looks are retried for a while.
            failure_limit: exec.call_limit,
            settle_limit: exec.call_limit,
            unknown_limit: Duration::from_secs(60),
        };
        let mut watch = Watch {
            run: &self,
            cgroup: None,
            peak_rss: None,
            cgroup_oom: false,
        };
        let driven = drive(&mut watch, &timing, cancel)?;
        let (timed_out, cancelled) = (driven.timed_out(), driven.cancelled());
        let state = driven.end?;
        let Watch {
            peak_rss,
            cgroup_oom,
            ..
        } = watch;
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
            restarts: 0,
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
