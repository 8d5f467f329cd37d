//! The local executor: runs a [`RunRequest`] as a child process tree on this
//! machine, using std threads only.
//!
//! Lifecycle of a run:
//!
//! 1. [`LocalExecutor::spawn`] validates the request, creates the log files,
//!    and starts `/bin/sh -c <command>` in a **new session** (sid == pgid ==
//!    pid, no controlling terminal) with stdin on `/dev/null`, the leader a
//!    *child subreaper*, the [`Limits`] applied, and a unique
//!    `PICIDAE_RUN_TOKEN` in its environment. Two reader threads stream
//!    stdout and stderr into their log files (see the `logs` module). The
//!    returned [`RunningChild`] exposes the pid/pgid so the caller can persist
//!    them before waiting (crash recovery uses [`crate::kill_group`] on them).
//! 2. [`RunningChild::wait`] polls every [`POLL_INTERVAL`] for: the leader's
//!    exit, the hard timeout, and the cancel flag. On timeout or
//!    cancellation every process of the run gets SIGTERM (+SIGCONT), then,
//!    after `grace` (or as soon as they are all gone), SIGKILL.
//! 3. **After the leader exits, for whatever reason, every process of the
//!    run is SIGKILLed anyway**, so background processes started by the
//!    command never outlive the run. This is done while the leader is still an
//!    unreaped zombie (exit is detected with `waitid(WNOWAIT)`), so its pid,
//!    which is the run's pgid and sid, cannot have been recycled.
//! 4. The leader is reaped with `wait4`, whose `ru_maxrss` is combined with
//!    periodic samples of the run's summed VmRSS into `peak_rss_kb`. Where `nvidia-smi`
//!    exists, the GPU memory of the run's processes is sampled too (`peak_gpu_mb`, see
//!    the `gpu` module).
//!
//! Which processes are the run's: a process group alone does not hold a
//! run, since `setsid` (a daemon) or `setpgid` leave it. The executor finds a
//! run's processes by scanning `/proc` (`process::RunScope`): its process
//! group and session (a process that only changes group stays in the
//! session); every process with the run's `PICIDAE_RUN_TOKEN` in its
//! environment (kept across `setsid` and across re-parenting to init when
//! its parent exits, which is what a daemonizing child does); every process
//! seen as a member at an earlier sample (by pid and start time, sampled
//! every 100 ms, for a process that also clears its environment); the
//! members of the run's pids cgroup when there is one; and all their
//! descendants. The leader is a child subreaper (`PR_SET_CHILD_SUBREAPER`,
//! kept across `exec`), so while it lives an orphaned descendant is
//! re-parented to it rather than to init and stays in the tree. This was
//! chosen over cgroups for containment because it needs no privilege and no
//! writable cgroup hierarchy, works the same on cgroup v1 and v2, and kills
//! the same set in a sandbox (where `bwrap`'s pid namespace also kills
//! everything when the sandbox's init exits). What escapes it: a process
//! that leaves the session, clears its environment and is re-parented to
//! init, all within the 100 ms between two samples, on a machine where the
//! run has no cgroup.
//!
//! Limits ([`Limits`], from the contract's `[run.resources]`):
//! `memory_mb` becomes `RLIMIT_AS` of every process of the run (virtual
//! memory: an allocation past it fails, which most programs report as out of
//! memory and exit non-zero, or abort on). `max_processes` becomes a pids
//! cgroup when running as root (root ignores `RLIMIT_NPROC`; see the `cgroup`
//! module) and `RLIMIT_NPROC` otherwise, which counts every process of the
//! user, not only the run's.
//!
//! Dropping a [`RunningChild`] without waiting SIGKILLs the run and reaps
//! the leader.

use std::io;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;

use crate::call::now_unix_ms;
use crate::cgroup::PidsCgroup;
use crate::executor::{Executor, RunHandle};
use crate::gpu::GpuProbe;
use crate::logs::{create_log, spawn_reader, StreamReport};
use crate::process::{RunScope, KILL_SETTLE};
use crate::{ExecError, RunOutcome, RunRequest};

/// How often [`RunningChild::wait`] checks for exit, timeout and cancel, once a run has
/// lasted a few tens of milliseconds (it checks more often at first).
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How often the process group's RSS is sampled from `/proc`.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// Size of the in-memory stdout tail returned in [`RunOutcome::stdout_tail`].
pub const STDOUT_TAIL_BYTES: usize = 64 * 1024;

/// The environment variable that marks every process of one local run.
pub const RUN_TOKEN_VAR: &str = "PICIDAE_RUN_TOKEN";

/// Resource limits a local run gets (see the module docs for how each is enforced). A
/// limit of 0 counts as none.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Virtual memory of each process of the run, in MiB (`RLIMIT_AS`).
    pub memory_mb: Option<u64>,
    /// Processes and threads of the run at once.
    pub max_processes: Option<u64>,
}

/// Runs commands as local child process trees, each with the same [`Limits`].
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalExecutor {
    limits: Limits,
}

impl LocalExecutor {
    /// Creates a local executor without limits.
    pub fn new() -> Self {
        LocalExecutor::default()
    }

    /// Creates a local executor that applies `limits` to every run.
    pub fn with_limits(limits: Limits) -> Self {
        LocalExecutor { limits }
    }

    /// The limits this executor applies.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Validates `req`, opens its log files and starts the child. Returns as
    /// soon as the child is running; call [`RunningChild::wait`] to drive it.
    pub fn spawn(&self, req: &RunRequest) -> Result<RunningChild, ExecError> {
        req.validate()?;
        let stdout_file = create_log(&req.stdout_path)?;
        let stderr_file = create_log(&req.stderr_path)?;

        let token = new_token();
        let token_var = format!("{RUN_TOKEN_VAR}={token}");
        let memory_bytes = self
            .limits
            .memory_mb
            .filter(|mb| *mb > 0)
            .map(|mb| mb.saturating_mul(1024 * 1024));
        let max_processes = self.limits.max_processes.filter(|n| *n > 0);
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let cgroup = match max_processes {
            Some(n) if root => Some(PidsCgroup::create(&token, n)?),
            _ => None,
        };
        let nproc = max_processes.filter(|_| !root);
        let cgroup_procs = match &cgroup {
            Some(cg) => Some(
                CString::new(cg.procs().as_os_str().as_bytes())
                    .map_err(|_| ExecError::InvalidRequest("cgroup path contains NUL".into()))?,
            ),
            None => None,
        };

        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&req.command)
            .current_dir(&req.cwd)
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .env(RUN_TOKEN_VAR, &token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (setsid, prctl, setrlimit, open, write, close) on
        // values prepared before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(bytes) = memory_bytes {
                    let lim = libc::rlimit {
                        rlim_cur: bytes as libc::rlim_t,
                        rlim_max: bytes as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &lim) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(n) = nproc {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NPROC, &lim) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(path) = &cgroup_procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if n != 1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }

        let started_at_unix_ms = now_unix_ms();
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            command: req.command.clone(),
            source,
        })?;
        let pid = i32::try_from(child.id()).map_err(|_| ExecError::Spawn {
            command: req.command.clone(),
            source: io::Error::other("pid does not fit in i32"),
        })?;
        // From here on the child is reaped with wait4/waitid, not via
        // `std::process::Child` (dropping a Child neither waits nor kills).
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        drop(child);

        let mut running = RunningChild {
            pid,
            scope: RunScope::new(pid, &token_var, cgroup.as_ref().map(|c| c.procs())),
            cgroup,
            start,
            started_at_unix_ms,
            timeout: req.timeout,
            grace: req.grace,
            time_budget: req.time_budget,
            stop_readers: Arc::new(AtomicBool::new(false)),
            stdout_reader: None,
            stderr_reader: None,
            reaped: false,
            lost: false,
        };
        if let Some(out) = stdout {
            running.stdout_reader = Some(
                spawn_reader(
                    "stdout",
                    out,
                    stdout_file,
                    req.stdout_path.clone(),
                    req.log_cap_bytes,
                    STDOUT_TAIL_BYTES,
                    running.stop_readers.clone(),
                )
                .map_err(ExecError::Thread)?, // Drop kills and reaps.
            );
        }
        if let Some(err) = stderr {
            running.stderr_reader = Some(
                spawn_reader(
                    "stderr",
                    err,
                    stderr_file,
                    req.stderr_path.clone(),
                    req.log_cap_bytes,
                    0,
                    running.stop_readers.clone(),
                )
                .map_err(ExecError::Thread)?,
            );
        }
        tracing::debug!(pid, command = %req.command, "spawned run");
        Ok(running)
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> &str {
        "local"
    }

    fn spawn(&self, req: &RunRequest) -> Result<Box<dyn RunHandle>, ExecError> {
        LocalExecutor::spawn(self, req).map(|c| Box::new(c) as Box<dyn RunHandle>)
    }
}

/// A token no other run of any coordinator has: pid, time and a counter.
fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A spawned, not yet reaped run. Obtain with [`LocalExecutor::spawn`].
#[derive(Debug)]
pub struct RunningChild {
    pid: i32,
    /// Finds the run's processes (see the module docs).
    scope: RunScope,
    /// The run's pids cgroup, removed after the run (declared after `scope`, dropped after
    /// the processes are killed in `Drop`).
    cgroup: Option<PidsCgroup>,
    start: Instant,
    started_at_unix_ms: i64,
    timeout: Duration,
    grace: Duration,
    time_budget: Duration,
    stop_readers: Arc<AtomicBool>,
    stdout_reader: Option<JoinHandle<StreamReport>>,
    stderr_reader: Option<JoinHandle<StreamReport>>,
    /// The leader has been reaped (or is known to be unreapable).
    reaped: bool,
    /// Someone else reaped the leader (ECHILD); exit status unknown.
    lost: bool,
}

/// Raw result of reaping the leader.
struct Reaped {
    status: Option<i32>,
    maxrss_kb: Option<u64>,
}

impl RunningChild {
    /// Pid of the `/bin/sh` leader.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Process group id of the run (equal to [`Self::pid`]).
    pub fn pgid(&self) -> i32 {
        self.pid
    }

    /// Spawn time, milliseconds since the Unix epoch.
    pub fn started_at_unix_ms(&self) -> i64 {
        self.started_at_unix_ms
    }

    /// Blocks until the run ends: the leader exits, the timeout fires, or
    /// `cancel` becomes true. In every case the whole process group is
    /// killed before returning (see the module docs).
    pub fn wait(mut self, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        let deadline = self.start.checked_add(self.timeout);
        let mut peak_sampled: Option<u64> = None;
        let mut gpu = GpuProbe::for_this_machine();
        let mut next_sample = Instant::now();
        let mut timed_out = false;
        let mut cancelled = false;
        // Short runs are noticed within a millisecond; long ones are polled every
        // POLL_INTERVAL (the pause doubles up to it).
        let mut pause = Duration::from_millis(1);

        loop {
            if self.leader_exited()? {
                break;
            }
            let now = Instant::now();
            if now >= next_sample {
                sample_into(&mut peak_sampled, &mut self.scope);
                next_sample = now + RSS_SAMPLE_INTERVAL;
            }
            if let Some(g) = &mut gpu {
                g.poll(|| self.scope.sampled_pids());
            }
            if cancel.load(Ordering::SeqCst) {
                cancelled = true;
                tracing::info!(pid = self.pid, "run cancelled; terminating process group");
                self.terminate(&mut peak_sampled)?;
                break;
            }
            if deadline.is_some_and(|d| now >= d) {
                timed_out = true;
                tracing::info!(pid = self.pid, "run timed out; terminating process group");
                self.terminate(&mut peak_sampled)?;
                break;
            }
            thread::sleep(pause);
            pause = (pause * 2).min(POLL_INTERVAL);
        }

        // The leader is an unreaped zombie (or about to be killed): its pid, the
        // run's pgid and sid, cannot be recycled yet, so killing by them is safe.
        // This also removes stray background children (daemons included) of a
        // normally exiting run.
        let wall = self.start.elapsed();
        if !self.scope.kill_all(KILL_SETTLE) {
            tracing::warn!(
                pgid = self.pid,
                "processes of the run still alive after SIGKILL"
            );
        }
        let reaped = self.reap()?;
        let finished_at_unix_ms = now_unix_ms();
        self.cgroup = None;

        let (stdout, stderr) = self.join_readers();

        let (exit_code, signal) = decode_status(reaped.status);
        let peak_rss_kb = match (reaped.maxrss_kb, peak_sampled) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok(RunOutcome {
            exit_code,
            signal,
            timed_out,
            cancelled,
            over_budget: wall > self.time_budget,
            wall_secs: wall.as_secs_f64(),
            peak_rss_kb,
            peak_gpu_mb: gpu.as_ref().and_then(GpuProbe::peak_mb),
            stdout_truncated: stdout.truncated,
            stderr_truncated: stderr.truncated,
            stdout_tail: String::from_utf8_lossy(&stdout.tail).into_owned(),
            started_at_unix_ms: self.started_at_unix_ms,
            finished_at_unix_ms,
            restarts: 0,
        })
    }

    /// Non-consuming check whether the leader has exited (it stays a
    /// zombie, keeping the pgid reserved). `ECHILD` (somebody else reaped
    /// it) counts as exited.
    fn leader_exited(&mut self) -> Result<bool, ExecError> {
        if self.reaped || self.lost {
            return Ok(true);
        }
        loop {
            // SAFETY: an all-zero siginfo_t is a valid value.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: info is a valid out-pointer; WNOWAIT leaves the child waitable.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                )
            };
            if rc == 0 {
                // SAFETY: waitid filled (or left zeroed) a SIGCHLD siginfo.
                return Ok(unsafe { info.si_pid() } != 0);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => {
                    tracing::warn!(
                        pid = self.pid,
                        "child already reaped elsewhere; exit status unknown"
                    );
                    self.lost = true;
                    return Ok(true);
                }
                _ => {
                    return Err(ExecError::Wait {
                        pid: self.pid,
                        source: err,
                    })
                }
            }
        }
    }

    /// SIGTERM (+SIGCONT) the group, then wait until the leader exited and
    /// no live group member remains, or `grace` elapses. The caller sends
    /// SIGKILL afterwards.
    fn terminate(&mut self, peak: &mut Option<u64>) -> Result<(), ExecError> {
        self.scope.signal(libc::SIGTERM);
        self.scope.signal(libc::SIGCONT);
        let deadline = Instant::now() + self.grace;
        let mut next_sample = Instant::now() + RSS_SAMPLE_INTERVAL;
        while Instant::now() < deadline {
            if self.leader_exited()? && !self.scope.alive() {
                break;
            }
            if Instant::now() >= next_sample {
                sample_into(peak, &mut self.scope);
                next_sample = Instant::now() + RSS_SAMPLE_INTERVAL;
            }
            thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// Blocking reap of the leader with `wait4`.
    fn reap(&mut self) -> Result<Reaped, ExecError> {
        if self.reaped || self.lost {
            self.reaped = true;
            return Ok(Reaped {
                status: None,
                maxrss_kb: None,
            });
        }
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: an all-zero rusage is a valid value.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: valid out-pointers for status and rusage.
            let rc = unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
            if rc == self.pid {
                self.reaped = true;
                // Linux reports ru_maxrss in KiB.
                let maxrss = u64::try_from(usage.ru_maxrss).ok().filter(|v| *v > 0);
                return Ok(Reaped {
                    status: Some(status),
                    maxrss_kb: maxrss,
                });
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => {
                    tracing::warn!(
                        pid = self.pid,
                        "child already reaped elsewhere; exit status unknown"
                    );
                    self.lost = true;
                    self.reaped = true;
                    return Ok(Reaped {
                        status: None,
                        maxrss_kb: None,
                    });
                }
                _ => {
                    return Err(ExecError::Wait {
                        pid: self.pid,
                        source: err,
                    })
                }
            }
        }
    }

    fn join_readers(&mut self) -> (StreamReport, StreamReport) {
        self.stop_readers.store(true, Ordering::SeqCst);
        let join =
            |h: Option<JoinHandle<StreamReport>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        (
            join(self.stdout_reader.take()),
            join(self.stderr_reader.take()),
        )
    }
}

impl Drop for RunningChild {
    fn drop(&mut self) {
        if !self.reaped {
            self.scope.kill_all(KILL_SETTLE);
            if let Err(err) = self.reap() {
                tracing::warn!(pid = self.pid, error = %err, "failed to reap dropped run");
            }
        }
        if self.stdout_reader.is_some() || self.stderr_reader.is_some() {
            let _ = self.join_readers();
        }
    }
}

impl RunHandle for RunningChild {
    fn id(&self) -> String {
        format!("local:{}", self.pid)
    }

    fn wait(self: Box<Self>, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        RunningChild::wait(*self, cancel)
    }
}

fn sample_into(peak: &mut Option<u64>, scope: &mut RunScope) {
    if let Some(rss) = scope.sample() {
        *peak = Some(peak.map_or(rss, |p| p.max(rss)));
    }
}

/// Splits a raw wait status into (exit code, terminating signal).
fn decode_status(status: Option<i32>) -> (Option<i32>, Option<i32>) {
    match status {
        Some(s) if libc::WIFEXITED(s) => (Some(libc::WEXITSTATUS(s)), None),
        Some(s) if libc::WIFSIGNALED(s) => (None, Some(libc::WTERMSIG(s))),
        _ => (None, None),
    }
}
