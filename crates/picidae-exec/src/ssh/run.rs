//! One launched remote run ([`SshRun`]): polled over `ssh` for its state
//! and the next bytes of its logs (copied into the local log files),
//! terminated on timeout or cancellation, and turned into a [`RunOutcome`].

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::wrapper::parse_clock_ns;
use super::{Inner, SHORT_CALL_LIMIT};
use crate::call::now_unix_ms;
use crate::executor::RunHandle;
use crate::logs::{append_log, LogFiles, LogSink};
use crate::remote::{drive, Observed, RemoteJob, Stop, Timing};
use crate::shell::quote;
use crate::{ExecError, RunOutcome, STDOUT_TAIL_BYTES};

/// Most bytes of one log stream fetched per poll.
const FETCH_CHUNK: u64 = 8 << 20;

/// Sinks onto a remote run's local log files, fed from fetched increments (the stdout one
/// keeps the tail).
fn open_sinks(logs: &LogFiles) -> Result<(LogSink, LogSink), ExecError> {
    let open = |path: &PathBuf, tail: usize| {
        append_log(path).map(|f| LogSink::new(f, path.clone(), logs.cap, tail))
    };
    Ok((
        open(&logs.stdout_path, STDOUT_TAIL_BYTES)?,
        open(&logs.stderr_path, 0)?,
    ))
}

/// One stream being fetched: local sink plus remote read position.
struct Stream {
    sink: LogSink,
    offset: u64,
    /// Remote size seen at the last poll.
    size: u64,
    /// Bytes kept even after truncation (the stdout tail).
    tail: u64,
}

impl Stream {
    /// Where the next fetch starts: past the cap only the tail matters.
    fn next_offset(&self) -> u64 {
        if self.sink.truncated() {
            self.offset.max(self.size.saturating_sub(self.tail))
        } else {
            self.offset
        }
    }

    fn done(&self) -> bool {
        self.next_offset() >= self.size
    }
}

/// One poll's view of the remote run.
#[derive(Debug, Default)]
struct PollState {
    gone: bool,
    alive: bool,
    exit: Option<i32>,
    started_ns: Option<u64>,
    finished_ns: Option<u64>,
    rss_kb: Option<u64>,
}

/// A remote run as the driver sees it: one `ssh` call per look, which also fetches the next
/// log bytes; the run is over once it has exited and both logs are home.
struct Watch<'a> {
    run: &'a SshRun,
    out: Stream,
    err: Stream,
    peak_rss: Option<u64>,
}

impl RemoteJob for Watch<'_> {
    type End = PollState;

    fn label(&self) -> String {
        format!("ssh run {}", self.run.dir)
    }

    fn observe(&mut self) -> Result<Observed<PollState>, ExecError> {
        let state = self.run.poll(&mut self.out, &mut self.err)?;
        if state.gone {
            tracing::warn!(dir = %self.run.dir, "remote run directory disappeared");
            return Ok(Observed::Ended(state));
        }
        if let Some(rss) = state.rss_kb {
            self.peak_rss = Some(self.peak_rss.map_or(rss, |p| p.max(rss)));
        }
        if state.exit.is_some() || !state.alive {
            if self.out.done() && self.err.done() {
                return Ok(Observed::Ended(state));
            }
            return Ok(Observed::Draining);
        }
        Ok(Observed::Running {
            started_unix_ms: Some(self.run.started_at_unix_ms),
        })
    }

    fn stop(&mut self, _how: Stop) -> Result<(), ExecError> {
        // One remote call sends SIGTERM, waits out the grace and sends SIGKILL.
        self.run.terminate()
    }
}

/// A run launched on a remote host. Obtain with
/// [`SshExecutor::spawn_named`](super::SshExecutor::spawn_named),
/// [`Executor::spawn`](crate::Executor::spawn) or
/// [`SshExecutor::reattach`](super::SshExecutor::reattach). Dropping it does
/// not touch the remote run.
#[derive(Debug)]
pub struct SshRun {
    pub(crate) inner: Arc<Inner>,
    pub(crate) dir: String,
    pub(crate) pgid: i32,
    pub(crate) start: Instant,
    pub(crate) started_at_unix_ms: i64,
    pub(crate) timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) time_budget: Duration,
    pub(crate) logs: LogFiles,
}

impl SshRun {
    /// Absolute remote run directory (pass to
    /// [`SshExecutor::reattach`](super::SshExecutor::reattach)).
    pub fn remote_dir(&self) -> &str {
        &self.dir
    }

    /// Remote process group (and session) id of the run.
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Spawn time, milliseconds since the Unix epoch (local clock).
    pub fn started_at_unix_ms(&self) -> i64 {
        self.started_at_unix_ms
    }

    /// Blocks until the remote run ends, times out, or `cancel` becomes
    /// true (see the [`ssh`](super) module docs). Errors only when the host
    /// stays unreachable past the reconnect limit; the run then keeps going
    /// remotely and can be
    /// [`SshExecutor::reattach`](super::SshExecutor::reattach)ed.
    pub fn wait(self, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        let (out_sink, err_sink) = open_sinks(&self.logs)?;
        let mut watch = Watch {
            run: &self,
            out: Stream {
                sink: out_sink,
                offset: 0,
                size: 0,
                tail: STDOUT_TAIL_BYTES as u64,
            },
            err: Stream {
                sink: err_sink,
                offset: 0,
                size: 0,
                tail: 0,
            },
            peak_rss: None,
        };
        let timing = Timing {
            poll_interval: self.inner.settings.poll_interval,
            timeout: self.timeout,
            grace: self.grace,
            // Each call already retries through reconnects up to the host's limit.
            failure_limit: Duration::ZERO,
            settle_limit: self.grace + SHORT_CALL_LIMIT * 4,
            unknown_limit: Duration::from_secs(60),
        };
        let driven = drive(&mut watch, &timing, cancel)?;
        let Watch {
            out, err, peak_rss, ..
        } = watch;
        let state = &driven.end;
        let local_wall = self.start.elapsed();
        let wall = match (state.started_ns, state.finished_ns) {
            (Some(s), Some(f)) if f >= s => Duration::from_nanos(f - s),
            _ => local_wall,
        };
        let (exit_code, signal) = match state.exit {
            Some(c) if (129..=192).contains(&c) => (None, Some(c - 128)),
            Some(c) => (Some(c), None),
            None if driven.stopped.is_some() => (None, Some(libc::SIGKILL)),
            None => {
                tracing::warn!(dir = %self.dir, "remote run vanished without an exit status");
                (None, None)
            }
        };
        let stdout = out.sink.finish();
        let stderr = err.sink.finish();
        Ok(RunOutcome {
            exit_code,
            signal,
            timed_out: driven.timed_out(),
            cancelled: driven.cancelled(),
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
        })
    }

    /// One remote call: state of the run plus the next log bytes.
    fn poll(&self, out: &mut Stream, err: &mut Stream) -> Result<PollState, ExecError> {
        let (o_off, e_off) = (out.next_offset(), err.next_offset());
        // Order matters: liveness, then `exit`, then sizes. The wrapper writes
        // `exit` before killing its group, so "dead and no exit" is real, and
        // sizes read after `exit` are final.
        let script = format!(
            "cd {d} 2>/dev/null || {{ echo '@@gone'; exit 0; }}\n\
             P={p}\n\
             if kill -0 -$P 2>/dev/null; then a=1; else a=0; fi\n\
             e=$(cat exit 2>/dev/null); [ -n \"$e\" ] || e=-\n\
             st=$(cat started 2>/dev/null); [ -n \"$st\" ] || st=-\n\
             fi=$(cat finished 2>/dev/null); [ -n \"$fi\" ] || fi=-\n\
             r=$(ps -o rss= -s $P 2>/dev/null | awk '{{s+=$1}} END {{print s+0}}'); [ -n \"$r\" ] || r=0\n\
             so=$(wc -c 2>/dev/null < stdout || echo 0); so=$((so+0))\n\
             se=$(wc -c 2>/dev/null < stderr || echo 0); se=$((se+0))\n\
             lo=$((so - {o_off})); [ $lo -gt {lim} ] && lo={lim}; [ $lo -lt 0 ] && lo=0\n\
             le=$((se - {e_off})); [ $le -gt {lim} ] && le={lim}; [ $le -lt 0 ] && le=0\n\
             printf '@@state %s %s %s %s %s %s %s %s %s\\n' \"$a\" \"$e\" \"$st\" \"$fi\" \"$r\" \"$so\" \"$lo\" \"$se\" \"$le\"\n\
             [ $lo -gt 0 ] && tail -c +$(({o_off}+1)) stdout | head -c $lo\n\
             [ $le -gt 0 ] && tail -c +$(({e_off}+1)) stderr | head -c $le\n\
             exit 0\n",
            d = quote(&self.dir),
            p = self.pgid,
            lim = FETCH_CHUNK,
        );
        let inner = &self.inner;
        let reply = inner.retry("poll run", || inner.remote(&script, SHORT_CALL_LIMIT))?;
        let data = &reply.stdout;
        if data.starts_with(b"@@gone") {
            return Ok(PollState {
                gone: true,
                ..PollState::default()
            });
        }
        let bad = |why: &str| {
            inner.ssh_error(format!(
                "unexpected poll answer for {} ({why}): {}",
                self.dir,
                reply.stderr_text()
            ))
        };
        let nl = data
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad("no header"))?;
        let header = String::from_utf8_lossy(&data[..nl]);
        let f: Vec<&str> = header
            .strip_prefix("@@state ")
            .ok_or_else(|| bad("no state"))?
            .split_whitespace()
            .collect();
        if f.len() != 9 {
            return Err(bad("wrong field count"));
        }
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad("bad number"));
        let (so, lo, se, le) = (num(f[5])?, num(f[6])?, num(f[7])?, num(f[8])?);
        let body = &data[nl + 1..];
        let (lo_us, le_us) = (
            usize::try_from(lo).map_err(|_| bad("size"))?,
            usize::try_from(le).map_err(|_| bad("size"))?,
        );
        // The remote logs only grow, so `head -c` always delivers exactly
        // the announced length; anything else means they were tampered with.
        if body.len() != lo_us + le_us {
            return Err(bad(&format!(
                "{} log bytes announced, {} received",
                lo_us + le_us,
                body.len()
            )));
        }
        out.sink.push(&body[..lo_us]);
        out.offset = o_off + lo;
        err.sink.push(&body[lo_us..]);
        err.offset = e_off + le;
        out.size = so;
        err.size = se;
        Ok(PollState {
            gone: false,
            alive: f[0] == "1",
            exit: f[1].parse().ok(),
            started_ns: parse_clock_ns(f[2]),
            finished_ns: parse_clock_ns(f[3]),
            rss_kb: f[4].parse().ok(),
        })
    }

    /// SIGTERM (+SIGCONT) the remote group, wait up to `grace` for it to
    /// vanish, then SIGKILL. Signals are only sent while no `exit` file
    /// exists, i.e. while the wrapper (the group leader) still holds the
    /// pgid.
    fn terminate(&self) -> Result<(), ExecError> {
        let ticks = (self.grace.as_millis() / 100).max(1);
        let script = format!(
            "cd {d} 2>/dev/null || exit 0\nP={p}\n\
             alive() {{ [ ! -e exit ] && kill -0 -$P 2>/dev/null; }}\n\
             if alive; then kill -TERM -$P 2>/dev/null; kill -CONT -$P 2>/dev/null; fi\n\
             i=0; while alive && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done\n\
             if alive; then kill -KILL -$P 2>/dev/null; fi\n\
             i=0; while kill -0 -$P 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done\n\
             exit 0\n",
            d = quote(&self.dir),
            p = self.pgid,
        );
        let limit = self.grace + SHORT_CALL_LIMIT;
        let inner = &self.inner;
        inner.retry("terminate run", || inner.remote(&script, limit))?;
        Ok(())
    }
}

impl RunHandle for SshRun {
    fn id(&self) -> String {
        format!("ssh:{}:{}", self.inner.target.host, self.dir)
    }

    fn wait(self: Box<Self>, cancel: &AtomicBool) -> Result<RunOutcome, ExecError> {
        SshRun::wait(*self, cancel)
    }
}
