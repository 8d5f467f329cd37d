//! The local executor: runs a [`RunRequest`] as a child process group on
//! this machine, using std threads only.
//!
//! Lifecycle of a run:
//!
//! 1. [`LocalExecutor::spawn`] validates the request, creates the log files,
//!    and starts `/bin/sh -c <command>` in a **new process group** (pgid ==
//!    pid) with stdin on `/dev/null`. Two reader threads stream stdout and
//!    stderr into their log files (see the `logs` module). The returned
//!    [`RunningChild`] exposes the pid/pgid so the caller can persist them
//!    before waiting (crash recovery uses [`crate::kill_group`] on them).
//! 2. [`RunningChild::wait`] polls every [`POLL_INTERVAL`] for: the leader's
//!    exit, the hard timeout, and the cancel flag. On timeout or
//!    cancellation the whole group gets SIGTERM (+SIGCONT), then, after
//!    `grace` (or as soon as the group is gone), SIGKILL.
//! 3. **After the leader exits, for whatever reason, the whole group is
//!    SIGKILLed anyway**, so background processes started by the command
//!    never outlive the run. This is done while the leader is still an
//!    unreaped zombie (exit is detected with `waitid(WNOWAIT)`), so the pgid
//!    cannot have been recycled. Processes that deliberately left the group
//!    (`setsid`, `setpgid`) are out of reach; their log output is drained for
//!    at most a couple of seconds after the run ends.
//! 4. The leader is reaped with `wait4`, whose `ru_maxrss` is combined with
//!    periodic samples of the group's summed VmRSS into `peak_rss_kb`.
//!
//! Dropping a [`RunningChild`] without waiting SIGKILLs the group and reaps
//! the leader.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::os::unix::process::CommandExt;

use crate::executor::{Executor, RunHandle};
use crate::logs::{spawn_reader, StreamReport};
use crate::process::{group_alive, group_rss_kb, signal_group, wait_group_gone, KILL_SETTLE};
use crate::{ExecError, RunOutcome, RunRequest};

/// How often [`RunningChild::wait`] checks for exit, timeout and cancel, once a run has
/// lasted a few tens of milliseconds (it checks more often at first).
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How often the process group's RSS is sampled from `/proc`.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// Size of the in-memory stdout tail returned in [`RunOutcome::stdout_tail`].
pub const STDOUT_TAIL_BYTES: usize = 64 * 1024;

/// Runs commands as local child process groups. Stateless.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalExecutor;

impl LocalExecutor {
    /// Creates a local executor.
    pub fn new() -> Self {
        LocalExecutor
    }

    /// Validates `req`, opens its log files and starts the child. Returns as
    /// soon as the child is running; call [`RunningChild::wait`] to drive it.
    pub fn spawn(&self, req: &RunRequest) -> Result<RunningChild, ExecError> {
        req.validate()?;
        let stdout_file = open_log(&req.stdout_path)?;
        let stderr_file = open_log(&req.stderr_path)?;

        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&req.command)
            .current_dir(&req.cwd)
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);

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

/// Truncates/creates a log file (and its parent directories), then reopens
/// it in append mode so stdout and stderr may share one path.
fn open_log(path: &Path) -> Result<File, ExecError> {
    let wrap = |source| ExecError::LogFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(wrap)?;
    }
    File::create(path).map_err(wrap)?;
    OpenOptions::new().append(true).open(path).map_err(wrap)
}

fn now_unix_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A spawned, not yet reaped run. Obtain with [`LocalExecutor::spawn`].
#[derive(Debug)]
pub struct RunningChild {
    pid: i32,
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
                sample_into(&mut peak_sampled, self.pid);
                next_sample = now + RSS_SAMPLE_INTERVAL;
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

        // The leader is an unreaped zombie (or about to be killed): its pgid
        // cannot be recycled yet, so killing the group is safe. This also
        // removes stray background children of a normally exiting run.
        signal_group(self.pid, libc::SIGKILL);
        let reaped = self.reap()?;
        let wall = self.start.elapsed();
        let finished_at_unix_ms = now_unix_ms();
        if !wait_group_gone(self.pid, KILL_SETTLE) {
            tracing::warn!(pgid = self.pid, "process group still alive after SIGKILL");
        }

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
            stdout_truncated: stdout.truncated,
            stderr_truncated: stderr.truncated,
            stdout_tail: String::from_utf8_lossy(&stdout.tail).into_owned(),
            started_at_unix_ms: self.started_at_unix_ms,
            finished_at_unix_ms,
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
        signal_group(self.pid, libc::SIGTERM);
        signal_group(self.pid, libc::SIGCONT);
        let deadline = Instant::now() + self.grace;
        let mut next_sample = Instant::now() + RSS_SAMPLE_INTERVAL;
        while Instant::now() < deadline {
            if self.leader_exited()? && !group_alive(self.pid) {
                break;
            }
            if Instant::now() >= next_sample {
                sample_into(peak, self.pid);
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
            signal_group(self.pid, libc::SIGKILL);
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

fn sample_into(peak: &mut Option<u64>, pgid: i32) {
    if let Some(rss) = group_rss_kb(pgid) {
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
