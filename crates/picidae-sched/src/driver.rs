//! The loop of one program, with one attempt in flight or many: the driver of `concurrency = N`
//! (the serial loop is N = 1) and of a proposal pipeline. An eighth `impl Runner` block.
//!
//! Three kinds of thread, one job each:
//! - the **proposers** keep the queue filled: while fewer than `concurrency + pipeline`
//!   attempts are being proposed, queued or running, each asks its agent for the next one on
//!   the frontier of the moment, its prompt (and the duplicate gate) covering what is in
//!   flight. An agent that works in a checkout gets one proposer per attempt in flight, each
//!   with its own agent, checkout and scratch; the sweep gets one;
//! - a **worker** per attempt in flight runs its seeds (each run holding its own slot and
//!   resources) and decides it against the frontier it was built on; a winner whose frontier
//!   moved meanwhile becomes a merge candidate (`merge.rs`);
//! - the **driver** (this thread) starts queued attempts while slots of the program are free:
//!   a queued attempt gone stale is replayed onto the frontier first (`replay.rs`), and each
//!   start is admitted against the budgets with what attempts in flight may still spend
//!   (`admission.rs`). A pause or a spent budget stops new starts at once; a stop lets the
//!   attempts in flight finish; a cancel kills their runs and leaves them to be resumed.
//!
//! Everything a thread learns goes through the store; the driver hears of decisions through a
//! channel, so its loop waits on messages instead of polling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use picidae_agent::{Agent, AgentSpec};
use picidae_core::{AttemptStatus, ProgramStatus};
use picidae_store::Attempt;

use crate::admission::{admit, InFlight, Limits, Usage};
use crate::lifecycle::{Fact, Step};
use crate::program::effective_policy;
use crate::runner::{Events, Finish, LoopEvent, LoopOptions, LoopSummary, Proposed, Runner};
use crate::shutdown::Shutdown;
use crate::{Project, SchedError};

/// How long the driver waits for a message before looking at the store again (steering:
/// a raised concurrency, a pause, a resume).
const IDLE: Duration = Duration::from_millis(25);

/// The most agents of one program working at once.
const MAX_PROPOSERS: u32 = 64;

/// A signal the driver gives the proposers when a slot may have freed up (an attempt was
/// decided or started), so they wait on it rather than poll the store.
#[derive(Default)]
struct Wake {
    generation: std::sync::Mutex<u64>,
    changed: std::sync::Condvar,
}

impl Wake {
    fn bump(&self) {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.changed.notify_all();
    }

    /// Wait for the next bump, at most `limit`.
    fn wait(&self, limit: Duration) {
        let g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let start = *g;
        let _ = self
            .changed
            .wait_timeout_while(g, limit, |now| *now == start);
    }
}

enum Msg {
    /// A proposer queued an attempt.
    Queued,
    /// An event of the proposer (`counted`: an attempt it decided without a run) or a worker.
    Event { event: LoopEvent, counted: bool },
    /// A worker's attempt came to this.
    Done {
        attempt_id: i64,
        result: Result<Finish, SchedError>,
    },
    /// The proposer stopped, saying why when it was not told to.
    ProposerDone(Result<Option<String>, SchedError>),
}

impl Runner<'_> {
    /// Run the loop with several attempts in flight (see the module docs) until
    /// `opts.max_attempts` are decided, the agent is exhausted, or a stop.
    pub(crate) fn run_concurrent(
        &mut self,
        agent: &mut dyn Agent,
        opts: &LoopOptions,
        events: Events<'_>,
        (summary, carried): (&mut LoopSummary, Vec<Attempt>),
        runs_at_start: i64,
    ) -> Result<(), SchedError> {
        // Attempts a dead harness left running: started first, on the budgets they were
        // admitted with.
        let mut carried: std::collections::VecDeque<Attempt> = carried.into();
        // `opts.max_attempts` counts this invocation's new attempts: the carried ones are
        // finished on top of it (a restart with `-n 0` only finishes them).
        let carried_ids: std::collections::HashSet<i64> = carried.iter().map(|a| a.id).collect();
        let mut carried_done = 0u64;
        // The proposers' signal: drained by the loop's own or when the driver stops starting.
        let halt = opts.shutdown.child();
        let wake = Wake::default();
        let (tx, rx) = channel::<Msg>();
        let root = self.project.root().to_path_buf();
        let name = self.program.name.clone();
        let mut extra = self.extra_agents()?;
        let proposers = 1 + extra.len();
        // Proposals made by all proposers together: `opts.max_attempts` bounds their sum.
        let made = AtomicU64::new(0);
        std::thread::scope(|scope| -> Result<(), SchedError> {
            let agents = std::iter::once(agent).chain(extra.iter_mut().map(|a| a.as_mut()));
            for (k, agent) in agents.enumerate() {
                let (ptx, halt_ref, root_ref, name) = (tx.clone(), &halt, &root, &name);
                let (wake, made) = (&wake, &made);
                scope.spawn(move || {
                    let r = propose_loop(
                        root_ref,
                        (name, k),
                        agent,
                        opts,
                        (halt_ref, wake, made),
                        &ptx,
                    );
                    let _ = ptx.send(Msg::ProposerDone(r));
                });
            }
            let mut running: HashMap<i64, u32> = HashMap::new();
            // What the proposers said when they stopped, once all have.
            let mut proposer: Option<Result<Option<String>, SchedError>> = None;
            let mut proposers_left = proposers;
            let mut failure: Option<SchedError> = None;
            let mut wait = Duration::ZERO;
            loop {
                // Messages first: decisions free slots and may move the frontier.
                while let Some(msg) = next_msg(&rx, wait) {
                    wait = Duration::ZERO;
                    match msg {
                        Msg::Event { event, counted } => {
                            if let (true, LoopEvent::Rejected { status, .. }) = (counted, &event) {
                                summary.count(*status);
                            }
                            events(&event);
                        }
                        Msg::Queued => {}
                        Msg::Done { attempt_id, result } => {
                            running.remove(&attempt_id);
                            carried_done += u64::from(carried_ids.contains(&attempt_id));
                            wake.bump();
                            match result {
                                Ok(f) => {
                                    if let Finish::Interrupted = f {
                                        summary.stopped = Some("cancelled".into());
                                    }
                                    summary.finish(&f);
                                }
                                Err(e) => {
                                    failure.get_or_insert(e);
                                }
                            }
                        }
                        Msg::ProposerDone(r) => {
                            proposers_left -= 1;
                            merge_proposer(&mut proposer, r);
                        }
                    }
                }
                wait = IDLE;
                let stop = if failure.is_some() {
                    Some(String::new())
                } else if opts.shutdown.cancelled() {
                    Some("cancelled".to_string())
                } else if let Some(why) = self.start_blocker(opts)? {
                    Some(why)
                } else if carried.is_empty()
                    && opts.max_attempts.is_some_and(|m| {
                        new_in_flight(summary, &running, &carried_ids, carried_done) >= m
                    })
                {
                    Some(String::new())
                } else {
                    None
                };
                if let Some(why) = stop {
                    // No new starts: the proposer stops, the attempts in flight finish (or,
                    // cancelled, are interrupted), then the loop ends.
                    halt.drain();
                    wake.bump();
                    if running.is_empty() {
                        if !why.is_empty() {
                            summary.stopped.get_or_insert(why);
                        }
                        break;
                    }
                    continue;
                }
                let start = Start {
                    opts,
                    running: &running,
                    runs_at_start,
                };
                let next = match carried.pop_front() {
                    Some(a) => Dispatch::Started(Box::new(a), self.need()),
                    None => self.dispatch(&start, events, summary)?,
                };
                match next {
                    Dispatch::Started(attempt, need) => {
                        running.insert(attempt.id, need);
                        let work = self.worker_job(attempt, opts)?;
                        let wtx = tx.clone();
                        let root = &root;
                        scope.spawn(move || work.run(root, &wtx));
                        wait = Duration::ZERO;
                    }
                    Dispatch::Again => wait = Duration::ZERO,
                    Dispatch::Idle => {
                        let exhausted = proposers_left == 0
                            && self.project.store.queued_attempts(self.program.id)?.1 == 0;
                        if exhausted && running.is_empty() {
                            break;
                        }
                    }
                    Dispatch::Refused(why) => {
                        if running.is_empty() {
                            halt.drain();
                            summary.stopped.get_or_insert(why);
                            break;
                        }
                    }
                }
            }
            halt.drain();
            wake.bump();
            drop(tx);
            // The proposer ends its turn and says why it stopped.
            for msg in rx.iter() {
                match msg {
                    Msg::Event { event, counted } => {
                        if let (true, LoopEvent::Rejected { status, .. }) = (counted, &event) {
                            summary.count(*status);
                        }
                        events(&event);
                    }
                    Msg::Queued => {}
                    Msg::ProposerDone(r) => {
                        proposers_left = proposers_left.saturating_sub(1);
                        merge_proposer(&mut proposer, r);
                    }
                    Msg::Done { result, .. } => match result {
                        Ok(f) => summary.finish(&f),
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    },
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            if let Some(Some(why)) = proposer.transpose()? {
                if summary.stopped.is_none() || summary.stopped.as_deref() == Some("paused") {
                    summary.stopped = Some(why);
                }
            }
            Ok(())
        })
    }

    /// Agents for proposers beyond the first: one per attempt in flight for agents that work
    /// in a checkout (each proposer has its own checkout and scratch), none for the sweep
    /// (its turns are instant, and copies of one seeded sampler would propose alike).
    fn extra_agents(&self) -> Result<Vec<Box<dyn Agent>>, SchedError> {
        let spec: AgentSpec = serde_json::from_value(self.program.agent.clone()).map_err(|e| {
            SchedError::Program {
                program: self.program.name.clone(),
                message: format!("unreadable agent configuration: {e}"),
            }
        })?;
        if matches!(spec, AgentSpec::Sweep { .. }) {
            return Ok(Vec::new());
        }
        let n = self.policy.concurrency.clamp(1, MAX_PROPOSERS) as usize;
        Ok((1..n).map(|_| spec.build()).collect())
    }

    /// Why no new attempt may start now, budgets aside (those are admission's): a pause or a
    /// stop request. Steering is read from the store.
    fn start_blocker(&mut self, opts: &LoopOptions) -> Result<Option<String>, SchedError> {
        // A pause first: a coordinator also sets `stop` for a paused program, and restarts
        // its loop on resume only when the loop ended because of the pause.
        self.program = self.project.store.program_by_id(self.program.id)?;
        if self.program.status == ProgramStatus::Paused {
            return Ok(Some("paused".into()));
        }
        if opts.shutdown.draining() {
            return Ok(Some("stop requested".into()));
        }
        Ok(None)
    }

    /// Start the next queued attempt if the program has a free slot and the budgets admit it.
    fn dispatch(
        &mut self,
        start: &Start<'_>,
        events: Events<'_>,
        summary: &mut LoopSummary,
    ) -> Result<Dispatch, SchedError> {
        let (next, _) = self.project.store.queued_attempts(self.program.id)?;
        let Some(attempt) = next else {
            return Ok(Dispatch::Idle);
        };
        let concurrency = effective_policy(&self.contract, &self.program.policy).concurrency;
        let offered = Fact::Offered {
            free_slot: start.running.len() < concurrency.max(1) as usize,
            stale: self.is_stale(&attempt),
        };
        match self.step(&attempt, offered)? {
            Step::Wait => return Ok(Dispatch::Idle),
            Step::Replay => {
                // The stale one is rejected; its replay is queued or was decided at once.
                let replay = self.replay_stale(&attempt, events)?;
                summary.count(AttemptStatus::Rejected);
                if let Proposed::Decided(status) = replay {
                    summary.count(status);
                }
                return Ok(Dispatch::Again);
            }
            Step::Admit => {}
            other => return Err(self.out_of_order(&attempt, &other)),
        }
        let need = self.need();
        if let Step::Refuse(why) = self.step(&attempt, Fact::Admission(self.admit(start, need)?))? {
            return Ok(Dispatch::Refused(why));
        }
        self.project.store.start_attempt(attempt.id)?;
        Ok(Dispatch::Started(Box::new(attempt), need))
    }

    /// The most runs an attempt takes: one under plain keep/revert; when it verifies, the
    /// most seeds a candidate may get (sequential verification's cap) plus, when candidates
    /// are paired with their incumbent, the incumbent seeds that may still have to be run to
    /// match them; and its screen run where the contract declares a `[screen]` stage.
    fn need(&self) -> u32 {
        if !self.policy.verifies() {
            return 1 + u32::from(self.contract.screen.is_some());
        }
        let seeds = self.policy.seed_cap();
        let top_up = if self.policy.paired {
            let store = &self.project.store;
            let incumbent_seeds = store
                .program_by_id(self.program.id)
                .ok()
                .and_then(|p| p.frontier_attempt_id)
                .and_then(|id| store.runs_of_attempt(id).ok())
                .map_or(0, |runs| runs.len() as u32);
            seeds.saturating_sub(incumbent_seeds)
        } else {
            0
        };
        seeds + top_up + u32::from(self.contract.screen.is_some())
    }

    /// An attempt a dead harness committed or queued but never started goes (back) into the
    /// queue, through the memory gate when it never passed it; a stale one is replayed.
    pub(crate) fn requeue(&mut self, a: &Attempt, events: Events<'_>) -> Result<(), SchedError> {
        if self.replay_if_stale(a, events)?.is_some() || self.resume_gate(a, events)? {
            return Ok(());
        }
        if a.status == AttemptStatus::Proposed {
            self.project.store.queue_attempt(a.id)?;
        }
        Ok(())
    }

    /// Admission of one more attempt needing `need` runs (`admission.rs`).
    fn admit(&self, start: &Start<'_>, need: u32) -> Result<Result<(), String>, SchedError> {
        let store = &self.project.store;
        let limits = Limits {
            invocation_runs: start.opts.max_runs,
            program_runs: self.program.max_runs,
            gpu_hours: self.program.max_gpu_hours,
            usd: self.program.max_usd,
            gpu_hour_usd: self.program.gpu_hour_usd,
        };
        let unlimited = limits.invocation_runs.is_none()
            && limits.program_runs.is_none()
            && limits.gpu_hours.is_none()
            && limits.usd.is_none();
        if unlimited {
            // No budget: nothing to count.
            return Ok(Ok(()));
        }
        let spent = if limits.gpu_hours.is_some() || limits.usd.is_some() {
            store.program_spend(self.program.id)?
        } else {
            Default::default()
        };
        let usage = Usage {
            runs: store.run_count(Some(self.program.id))?,
            runs_at_start: start.runs_at_start,
            gpu_hours: spent.gpu_hours,
            usd: spent.usd,
        };
        let mut in_flight = Vec::with_capacity(start.running.len());
        for (&id, &need) in start.running {
            let runs = store.all_runs_of_attempt(id)?;
            let finished = runs.iter().filter(|r| r.status.is_terminal()).count();
            in_flight.push(InFlight {
                need,
                started: runs.len() as u32,
                finished: finished as u32,
            });
        }
        let run = &self.contract.run;
        let worst =
            (run.timeout + run.grace).as_secs_f64() / 3600.0 * f64::from(run.resources.gpus);
        Ok(admit(&limits, &usage, &in_flight, need, worst))
    }
}

/// What the driver passes to [`Runner::dispatch`].
struct Start<'a> {
    opts: &'a LoopOptions,
    /// The attempts in flight, with the runs each was admitted with.
    running: &'a HashMap<i64, u32>,
    runs_at_start: i64,
}

/// What [`Runner::dispatch`] did.
enum Dispatch {
    /// This attempt (admitted with this many runs) is to start.
    Started(Box<Attempt>, u32),
    /// A stale attempt was replayed: look again at once.
    Again,
    /// No free slot, or nothing queued.
    Idle,
    /// The budgets do not admit the next attempt (why).
    Refused(String),
}

/// Keep the first error of the proposers, else the first reason one gave for stopping.
fn merge_proposer(
    acc: &mut Option<Result<Option<String>, SchedError>>,
    r: Result<Option<String>, SchedError>,
) {
    let replace = match (acc.as_ref(), &r) {
        (Some(Err(_)), _) => false,
        (_, Err(_)) | (None, _) | (Some(Ok(None)), Ok(Some(_))) => true,
        _ => false,
    };
    if replace {
        *acc = Some(r);
    }
}

fn next_msg(rx: &std::sync::mpsc::Receiver<Msg>, wait: Duration) -> Option<Msg> {
    if wait.is_zero() {
        return rx.try_recv().ok();
    }
    rx.recv_timeout(wait).ok()
}

/// The proposer thread: keep `concurrency + pipeline` attempts queued or running, each
/// proposed on the frontier of its time with a history that shows what is in flight.
fn propose_loop(
    root: &std::path::Path,
    (name, index): (&str, usize),
    agent: &mut dyn Agent,
    opts: &LoopOptions,
    (halt, wake, made): (&Shutdown, &Wake, &AtomicU64),
    tx: &Sender<Msg>,
) -> Result<Option<String>, SchedError> {
    let stopping = || halt.draining();
    let mut project = Project::open(root)?;
    let mut p = Runner::open(&mut project, name, false)?;
    p.proposer = index;
    let pid = p.program.id;
    let mut send = |e: &LoopEvent| {
        let counted = matches!(e, LoopEvent::Rejected { .. });
        let _ = tx.send(Msg::Event {
            event: e.clone(),
            counted,
        });
    };
    // Take one of the proposals `opts.max_attempts` allows, shared by every proposer: with
    // several, each counting its own let their sum pass the limit.
    let reserve = || match opts.max_attempts {
        None => true,
        Some(m) => made
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < m).then_some(n + 1)
            })
            .is_ok(),
    };
    let release = || {
        if opts.max_attempts.is_some() {
            made.fetch_sub(1, Ordering::SeqCst);
        }
    };
    loop {
        if stopping()
            || opts
                .max_attempts
                .is_some_and(|m| made.load(Ordering::SeqCst) >= m)
        {
            return Ok(None);
        }
        p.program = p.project.store.program_by_id(pid)?;
        let policy = effective_policy(&p.contract, &p.program.policy);
        let target = policy.concurrency.max(1) as usize + opts.pipeline;
        let in_flight = p.project.store.undecided_attempts(pid)?.len();
        if in_flight >= target || p.program.status == ProgramStatus::Paused {
            wake.wait(Duration::from_millis(50));
            continue;
        }
        // A fresh view: decisions made by the workers, and what is in flight now.
        p.refresh_history()?;
        if !reserve() {
            return Ok(None);
        }
        let proposed = p.propose(agent, &mut send);
        if matches!(proposed, Ok(Proposed::Exhausted) | Err(_)) {
            release();
        }
        match proposed? {
            Proposed::Exhausted => return Ok(Some("the agent has nothing more to propose".into())),
            Proposed::Ready(_) => {
                let _ = tx.send(Msg::Queued);
            }
            Proposed::Decided(_) => {
                if let Some(why) = p.paused_because.take() {
                    return Ok(Some(why));
                }
                p.wait_after_agent_failure(&stopping);
                // Rejected or a duplicate: the agent saw the same frontier and queue it will
                // see now. Wait for one of them to change before asking again, rather than
                // flooding the store.
                let frontier = p.frontier_commit();
                let before = in_flight;
                loop {
                    if stopping() {
                        return Ok(None);
                    }
                    let now = p.project.store.program_by_id(pid)?;
                    let in_flight = p.project.store.undecided_attempts(pid)?.len();
                    if now.frontier_commit.as_deref() != Some(frontier.as_str())
                        || in_flight < before
                        || in_flight == 0
                    {
                        break;
                    }
                    wake.wait(Duration::from_millis(50));
                }
            }
        }
    }
}

/// One attempt to run on a worker thread, with what its runner needs.
pub(crate) struct WorkerJob {
    pub(crate) parts: crate::runner::RunnerParts,
    pub(crate) attempt: Attempt,
    pub(crate) opts: LoopOptions,
}

impl WorkerJob {
    fn run(self, root: &std::path::Path, tx: &Sender<Msg>) {
        let attempt_id = self.attempt.id;
        let result = (|| {
            let mut project = Project::open(root)?;
            let mut w = Runner::from_parts(&mut project, self.parts)?;
            let mut send = |e: &LoopEvent| {
                let _ = tx.send(Msg::Event {
                    event: e.clone(),
                    counted: false,
                });
            };
            w.run_attempt(&self.attempt, &self.opts, &mut send)
        })();
        let _ = tx.send(Msg::Done { attempt_id, result });
    }
}

/// This invocation's new attempts decided or in flight: what `--max-attempts` bounds.
fn new_in_flight(
    summary: &LoopSummary,
    running: &HashMap<i64, u32>,
    carried: &std::collections::HashSet<i64>,
    carried_done: u64,
) -> u64 {
    let new_running = running.keys().filter(|id| !carried.contains(id)).count() as u64;
    summary.decided().saturating_sub(carried_done) + new_running
}
