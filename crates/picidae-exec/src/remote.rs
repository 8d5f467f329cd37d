//! The one wait loop every remote executor (Slurm, SSH, containers, Ray, SkyPilot) runs: poll
//! the engine, charge the timeout from the moment the run started (time queued is free), notice
//! the cancel flag within [`WAKE_INTERVAL`], stop the run politely and then hard, count a run
//! the engine stops listing as lost only after [`Timing::unknown_limit`], and give up with an
//! error only when the engine stays unreachable or will not let go of a stopped run.
//!
//! An executor says how to look at one of its runs and how to stop it ([`RemoteJob`]); this
//! module owns *when*: what each executor used to hand-roll (a poll loop, a deadline, a kill
//! ladder, a retry window for a restarting controller) exists once, here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::call::now_unix_ms;
use crate::ExecError;

/// How often the cancel flag and the deadline are checked between two polls.
pub(crate) const WAKE_INTERVAL: Duration = Duration::from_millis(50);
/// After the hard stop, it is repeated this often until the run is over.
const STOP_RETRY: Duration = Duration::from_secs(5);

/// What one poll saw.
#[derive(Debug)]
pub(crate) enum Observed<E> {
    /// Accepted, not running yet (queued, pending, uploading): the timeout does not run.
    Pending,
    /// Running; `started_unix_ms` when the engine says when it started (else: now).
    Running { started_unix_ms: Option<i64> },
    /// The engine started the run over (a preempted spot instance replaced): the timeout
    /// counts again from its next start.
    Restarted,
    /// Over, but the executor has more to collect (logs still arriving): poll again at once.
    Draining,
    /// Over, with what the executor needs to build the outcome.
    Ended(E),
    /// The engine does not list the run (not yet, or no more: a queue that forgot it). Counted
    /// as pending until [`Timing::unknown_limit`] passes without it being listed; then the
    /// run ends with the given end (the executor's "lost" error).
    Unknown(E),
}

/// How hard to stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Ask it to end (SIGTERM or the engine's equivalent); `grace` later comes [`Stop::Kill`].
    Term,
    /// End it now; repeated every few seconds until the run is seen over.
    Kill,
}

/// Why Picidae stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    Timeout,
    Cancel,
}

/// One remote run as the driver sees it.
pub(crate) trait RemoteJob {
    /// What an ended run hands back.
    type End;
    /// The run's name in logs and errors (`slurm job 12`, `ray job picidae-3`).
    fn label(&self) -> String;
    /// One look at the run. An error is retried until [`Timing::failure_limit`] passes
    /// without a successful look.
    fn observe(&mut self) -> Result<Observed<Self::End>, ExecError>;
    /// Stop the run. A failure is logged and retried; the next look shows whether it took.
    fn stop(&mut self, how: Stop) -> Result<(), ExecError>;
}

/// The clock of one wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Pause between two looks.
    pub(crate) poll_interval: Duration,
    /// Hard limit, counted from the run's start.
    pub(crate) timeout: Duration,
    /// Between [`Stop::Term`] and [`Stop::Kill`].
    pub(crate) grace: Duration,
    /// How long looks may keep failing (a restarting controller, a lost connection).
    pub(crate) failure_limit: Duration,
    /// How long a killed run may still be seen running before the wait fails.
    pub(crate) settle_limit: Duration,
    /// How long the engine may not list a run before it counts as lost.
    pub(crate) unknown_limit: Duration,
}

/// How a driven run ended.
#[derive(Debug)]
pub(crate) struct Driven<E> {
    pub(crate) end: E,
    /// Set when Picidae stopped the run.
    pub(crate) stopped: Option<StopReason>,
    /// When the run started, as (local instant, Unix ms); `None` when it never ran.
    pub(crate) started: Option<(Instant, i64)>,
}

impl<E> Driven<E> {
    pub(crate) fn timed_out(&self) -> bool {
        self.stopped == Some(StopReason::Timeout)
    }
    pub(crate) fn cancelled(&self) -> bool {
        self.stopped == Some(StopReason::Cancel)
    }
}

/// Where the stopping of a run stands.
#[derive(Debug)]
struct Stopping {
    reason: StopReason,
    term_at: Instant,
    killed_at: Option<Instant>,
    last_kill: Instant,
}

/// Waits until `job` ends, stopping it when `cancel` becomes true or the timeout passes.
pub(crate) fn drive<J: RemoteJob>(
    job: &mut J,
    timing: &Timing,
    cancel: &AtomicBool,
) -> Result<Driven<J::End>, ExecError> {
    let mut started: Option<(Instant, i64)> = None;
    let mut stopping: Option<Stopping> = None;
    let mut last_ok = Instant::now();
    let mut unknown_since: Option<Instant> = None;
    loop {
        let seen = job.observe();
        if !matches!(seen, Ok(Observed::Unknown(_)) | Err(_)) {
            unknown_since = None;
        }
        match seen {
            Ok(Observed::Unknown(lost)) => {
                last_ok = Instant::now();
                if unknown_since.get_or_insert(last_ok).elapsed() >= timing.unknown_limit {
                    return Ok(Driven {
                        end: lost,
                        stopped: stopping.map(|s| s.reason),
                        started,
                    });
                }
            }
            Ok(Observed::Ended(end)) => {
                return Ok(Driven {
                    end,
                    stopped: stopping.map(|s| s.reason),
                    started,
                })
            }
            Ok(Observed::Draining) => {
                last_ok = Instant::now();
                continue;
            }
            Ok(Observed::Running { started_unix_ms }) => {
                last_ok = Instant::now();
                if started.is_none() {
                    started = Some(start_point(started_unix_ms));
                }
            }
            Ok(Observed::Pending) => last_ok = Instant::now(),
            Ok(Observed::Restarted) => {
                last_ok = Instant::now();
                started = None;
            }
            Err(err) => {
                if last_ok.elapsed() >= timing.failure_limit {
                    return Err(err);
                }
                tracing::warn!(run = %job.label(), error = %err, "cannot see the run; retrying");
            }
        }
        let next_poll = Instant::now() + timing.poll_interval;
        loop {
            advance_stop(job, timing, &mut stopping, started, cancel)?;
            let now = Instant::now();
            if now >= next_poll {
                break;
            }
            thread::sleep(WAKE_INTERVAL.min(next_poll - now));
        }
    }
}

/// The run's start as (local instant, Unix ms): the engine's time, never in the future.
fn start_point(started_unix_ms: Option<i64>) -> (Instant, i64) {
    let now_ms = now_unix_ms();
    let ms = started_unix_ms
        .filter(|s| *s > 0)
        .unwrap_or(now_ms)
        .min(now_ms);
    let ago = Duration::from_millis(u64::try_from(now_ms - ms).unwrap_or(0));
    (
        Instant::now().checked_sub(ago).unwrap_or_else(Instant::now),
        ms,
    )
}

/// Starts or advances the stopping of the run when the cancel flag is set or the timeout has
/// passed. A run not started yet is killed at once (taken off the queue).
fn advance_stop<J: RemoteJob>(
    job: &mut J,
    timing: &Timing,
    stopping: &mut Option<Stopping>,
    started: Option<(Instant, i64)>,
    cancel: &AtomicBool,
) -> Result<(), ExecError> {
    let now = Instant::now();
    let stop_logged = |job: &mut J, how: Stop| {
        if let Err(err) = job.stop(how) {
            tracing::warn!(run = %job.label(), ?how, error = %err, "stopping the run failed");
        }
    };
    let Some(s) = stopping else {
        let reason = if cancel.load(Ordering::SeqCst) {
            StopReason::Cancel
        } else if started.is_some_and(|(t0, _)| now.duration_since(t0) >= timing.timeout) {
            StopReason::Timeout
        } else {
            return Ok(());
        };
        tracing::info!(run = %job.label(), ?reason, "stopping the run");
        let how = if started.is_some() {
            Stop::Term
        } else {
            Stop::Kill
        };
        stop_logged(job, how);
        *stopping = Some(Stopping {
            reason,
            term_at: now,
            killed_at: (how == Stop::Kill).then_some(now),
            last_kill: now,
        });
        return Ok(());
    };
    match s.killed_at {
        None if now.duration_since(s.term_at) >= timing.grace => {
            stop_logged(job, Stop::Kill);
            s.killed_at = Some(now);
            s.last_kill = now;
        }
        None => {}
        Some(at) if now.duration_since(at) >= timing.settle_limit => {
            return Err(ExecError::Remote {
                run: job.label(),
                message: format!(
                    "still running {}s after being killed",
                    timing.settle_limit.as_secs()
                ),
            });
        }
        Some(_) if now.duration_since(s.last_kill) >= STOP_RETRY => {
            stop_logged(job, Stop::Kill);
            s.last_kill = now;
        }
        Some(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that is pending for `pending` looks, then runs until stopped or `runs` looks.
    struct Fake {
        looks: usize,
        pending: usize,
        runs: usize,
        fail_from: Option<usize>,
        stops: Vec<Stop>,
    }

    impl RemoteJob for Fake {
        type End = usize;
        fn label(&self) -> String {
            "fake".into()
        }
        fn observe(&mut self) -> Result<Observed<usize>, ExecError> {
            self.looks += 1;
            if self.fail_from.is_some_and(|f| self.looks >= f) {
                return Err(ExecError::Remote {
                    run: "fake".into(),
                    message: "unreachable".into(),
                });
            }
            if self.stops.contains(&Stop::Kill) || self.looks > self.pending + self.runs {
                return Ok(Observed::Ended(self.looks));
            }
            if self.looks <= self.pending {
                return Ok(Observed::Pending);
            }
            Ok(Observed::Running {
                started_unix_ms: None,
            })
        }
        fn stop(&mut self, how: Stop) -> Result<(), ExecError> {
            self.stops.push(how);
            Ok(())
        }
    }

    fn timing(timeout_ms: u64) -> Timing {
        Timing {
            poll_interval: Duration::from_millis(10),
            timeout: Duration::from_millis(timeout_ms),
            grace: Duration::from_millis(30),
            failure_limit: Duration::from_millis(200),
            settle_limit: Duration::from_secs(5),
            unknown_limit: Duration::from_millis(100),
        }
    }

    fn fake(pending: usize, runs: usize) -> Fake {
        Fake {
            looks: 0,
            pending,
            runs,
            fail_from: None,
            stops: Vec::new(),
        }
    }

    #[test]
    fn a_run_that_ends_is_not_stopped() {
        let mut job = fake(2, 3);
        let d = drive(&mut job, &timing(60_000), &AtomicBool::new(false)).unwrap();
        assert_eq!(d.end, 6);
        assert!(d.stopped.is_none() && d.started.is_some());
        assert!(job.stops.is_empty());
    }

    #[test]
    fn timeout_counts_from_the_start_and_goes_term_then_kill() {
        // Pending for ~200 ms (20 looks): a 100 ms timeout must not fire while queued.
        let mut job = fake(20, usize::MAX / 2);
        let t0 = Instant::now();
        let d = drive(&mut job, &timing(100), &AtomicBool::new(false)).unwrap();
        assert!(d.timed_out());
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(job.stops, vec![Stop::Term, Stop::Kill]);
    }

    #[test]
    fn cancel_before_the_start_kills_at_once() {
        let mut job = fake(usize::MAX / 2, 1);
        let d = drive(&mut job, &timing(60_000), &AtomicBool::new(true)).unwrap();
        assert!(d.cancelled() && d.started.is_none());
        assert_eq!(job.stops, vec![Stop::Kill]);
    }

    /// A run the engine does not list for `gone` looks, then lists again as ended; `lost`
    /// is the end it names while unlisted.
    struct Forgotten {
        looks: usize,
        gone: usize,
    }

    impl RemoteJob for Forgotten {
        type End = &'static str;
        fn label(&self) -> String {
            "forgotten".into()
        }
        fn observe(&mut self) -> Result<Observed<&'static str>, ExecError> {
            self.looks += 1;
            if self.looks <= self.gone {
                return Ok(Observed::Unknown("lost"));
            }
            Ok(Observed::Ended("ended"))
        }
        fn stop(&mut self, _how: Stop) -> Result<(), ExecError> {
            Ok(())
        }
    }

    #[test]
    fn a_run_unlisted_past_the_limit_is_lost_and_one_listed_again_is_not() {
        // Unlisted for ~50 ms (5 looks at 10 ms), under the 100 ms limit: it ends normally.
        let mut job = Forgotten { looks: 0, gone: 5 };
        let d = drive(&mut job, &timing(60_000), &AtomicBool::new(false)).unwrap();
        assert_eq!(d.end, "ended");
        // Never listed again: lost once the limit passes, not before.
        let start = Instant::now();
        let mut job = Forgotten {
            looks: 0,
            gone: usize::MAX,
        };
        let d = drive(&mut job, &timing(60_000), &AtomicBool::new(false)).unwrap();
        assert_eq!(d.end, "lost");
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(d.started.is_none());
    }

    #[test]
    fn an_engine_that_stays_unreachable_is_an_error() {
        let mut job = fake(0, usize::MAX / 2);
        job.fail_from = Some(3);
        let err = drive(&mut job, &timing(60_000), &AtomicBool::new(false)).unwrap_err();
        assert!(err.to_string().contains("unreachable"), "{err}");
        assert!(job.looks > 3, "failed looks were retried");
    }
}
