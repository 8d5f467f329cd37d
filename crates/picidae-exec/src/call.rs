//! Short helper processes the executors run on this machine (`ssh`, `rsync`, `tar`, the
//! container runtime's CLI): run with a time limit, their output collected on threads so a
//! full pipe never blocks them, killed when the limit is reached. Also the wall clock in
//! milliseconds every executor stamps runs with.

use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a finished helper process produced.
pub(crate) struct CallOutput {
    /// `None` when the process was killed at its time limit.
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl CallOutput {
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }

    /// Why the call failed, for error messages: stderr on one line, without a CLI's usage
    /// hints.
    pub(crate) fn failure(&self) -> String {
        let stderr = String::from_utf8_lossy(&self.stderr)
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty()
                    && !l.ends_with("--help' for more information")
                    && !l.ends_with("--help'.")
            })
            .collect::<Vec<_>>()
            .join("; ");
        match (self.status, stderr.is_empty()) {
            (None, _) => format!("timed out {stderr}").trim().to_string(),
            (Some(s), true) => format!("exited with {s}"),
            (Some(_), false) => stderr,
        }
    }
}

/// Reads a pipe to the end on a thread of its own.
pub(crate) fn drain<R: Read + Send + 'static>(src: Option<R>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut src) = src {
            let _ = src.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for every process of `children` (a pipeline) until `limit`, then kills those still
/// running. The statuses come back in order; `None`: killed.
fn wait_all(children: &mut [Child], limit: Duration) -> io::Result<Vec<Option<ExitStatus>>> {
    let deadline = Instant::now() + limit;
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut pause = Duration::from_millis(1);
    loop {
        let mut pending = false;
        for (child, status) in children.iter_mut().zip(statuses.iter_mut()) {
            if status.is_none() {
                *status = child.try_wait()?;
                pending |= status.is_none();
            }
        }
        if !pending {
            return Ok(statuses);
        }
        if Instant::now() >= deadline {
            for (child, status) in children.iter_mut().zip(statuses.iter()) {
                if status.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            return Ok(statuses);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// [`wait_all`] for a pipeline handed over whole.
pub(crate) fn finish_pipeline(
    mut children: Vec<Child>,
    limit: Duration,
) -> io::Result<Vec<Option<ExitStatus>>> {
    wait_all(&mut children, limit)
}

/// Waits for `child` until `limit`, then kills it. `None`: killed.
pub(crate) fn wait_limited(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    Ok(wait_all(std::slice::from_mut(child), limit)?
        .pop()
        .flatten())
}

/// Runs `cmd` with stdin from `/dev/null`, collecting its output, killed after `limit`.
pub(crate) fn run_limited(mut cmd: Command, limit: Duration) -> io::Result<CallOutput> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_limited(&mut child, limit)?;
    Ok(CallOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn now_unix_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}
