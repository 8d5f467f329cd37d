//! The coordinator behind `picidae serve`: every active program's loop at once, on a shared
//! pool of slots.
//!
//! Each program runs its own keep/revert loop ([`Runner`]) in a thread with its own store
//! connection; runs take a slot from the shared [`SlotPool`], granted by weighted fair share.
//! The coordinator watches the store (the source of truth, also for steering): it starts a loop
//! for each active program, gives the pool the programs' current weights, lets a paused
//! program's loop finish its attempt in flight, and restarts it on resume. A program whose run
//! budget is spent, or whose agent has nothing more to propose, is not restarted until its
//! budget changes.
//!
//! Runs are placed on the machine's resources ([`ResourcePool`]): a run holds the GPUs, CPUs
//! and memory its contract declares, and sees only its own GPUs. Every running run carries a
//! lease (this process's name and a heartbeat renewed each poll); a restart recovers runs whose
//! lease has expired, and leaves alone runs another live coordinator still renews. With each
//! heartbeat the coordinator also reads the store for cancel requests of its runs in flight
//! (made through the API, perhaps from another process) and stops those runs (see
//! [`crate::cancels`]).
//!
//! Team mode: several coordinators (on one project directory and one PostgreSQL store) share
//! the programs. A coordinator drives only the programs whose lease it holds in the store
//! ([`picidae_store::Store::claim_program`], a compare-and-set taken with `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL), renews those leases with its run leases each poll, and gives a
//! program back when its loop ends. A lease not renewed for [`lease_expiry`] (or held by a dead
//! process on this host) is free: another coordinator takes the program over and its loop's
//! recovery closes what the dead one left. A coordinator that finds it lost a lease (it stalled
//! past the expiry) stops that program's loop.
//!
//! Crash safety comes from the loops themselves: each takes its program's lock, and on start
//! recovers what a dead coordinator left (kills orphaned runs, records them as cancelled,
//! resumes undecided attempts), so a `kill -9` of `picidae serve` loses no attempt and counts
//! none twice.

use picidae_core::ProgramStatus;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use picidae_agent::AgentSpec;

use crate::runner::{lease_expiry, lease_holder_alive, lease_owner};
use crate::shutdown::Shutdown;
use crate::{
    LoopEvent, LoopOptions, LoopSummary, Project, ResourcePool, RunCancels, Runner, SchedError,
    SlotPool,
};

/// What the coordinator reports: a program's loop event, or a loop starting or ending.
#[derive(Debug, Clone)]
pub enum CoordinatorEvent {
    Started {
        program: String,
    },
    Loop {
        program: String,
        event: LoopEvent,
    },
    Ended {
        program: String,
        summary: Result<LoopSummary, String>,
    },
}

pub struct CoordinatorOptions {
    pub slots: usize,
    /// Drained: finish attempts in flight, then stop everything. Cancelled: kill runs in
    /// flight and stop (their attempts resume on the next start).
    pub shutdown: Shutdown,
    /// How often the store is read for steering changes.
    pub poll: Duration,
    /// Proposals each program keeps ready ahead of its runs.
    pub pipeline: usize,
    /// The machine's GPUs, CPUs and memory; runs are placed on them by their contracts' needs.
    pub resources: Option<Arc<ResourcePool>>,
}

/// A loop that ended: its program, its summary, and whether it could not start because
/// another process holds the program's lock.
type Done = (String, Result<LoopSummary, String>, bool);

struct Worker {
    handle: JoinHandle<()>,
    program_id: i64,
    /// Drained to stop this program's loop only (a child of the coordinator's signal).
    shutdown: Shutdown,
}

/// Why a program is not being run right now.
#[derive(Debug, Clone, PartialEq)]
enum Parked {
    /// Its loop ended for this reason; restart only when its budget or status changes.
    Ended { budget: Option<i64>, reason: String },
}

/// Run every active program until stopped. Events go to `events`.
pub fn serve(
    root: &Path,
    opts: &CoordinatorOptions,
    pool: Arc<SlotPool>,
    events: Sender<CoordinatorEvent>,
) -> Result<(), SchedError> {
    let root: PathBuf = root.to_path_buf();
    let mut project = Project::open(&root)?;
    let owner = lease_owner();
    // The flags of every program's runs in flight: a person's cancel request in the store
    // reaches its run through them (polled below, next to the heartbeat).
    let cancels = Arc::new(RunCancels::new());
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut parked: HashMap<String, Parked> = HashMap::new();
    // Loops stopped because another coordinator took their program's lease: when this one
    // ends, the program is not parked here (its lease may lapse again, and then any live
    // coordinator, this one included, must be able to take it back).
    let mut lost: std::collections::HashSet<String> = std::collections::HashSet::new();
    // Say we are here, and give coordinators starting with us a poll to do the same, so the
    // first to look does not take every program.
    project.store.coordinator_heartbeat(&owner, opts.slots)?;
    std::thread::sleep(opts.poll);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Done>();
    loop {
        // Loops that ended since the last look.
        while let Ok((name, summary, busy)) = done_rx.try_recv() {
            if let Some(w) = workers.remove(&name) {
                let _ = w.handle.join();
                if let Err(e) = project.store.release_program(w.program_id, &owner) {
                    tracing::warn!("giving back the lease of {name}: {e}");
                }
            }
            let budget = project.store.program(&name).ok().and_then(|p| p.max_runs);
            let reason = match &summary {
                Ok(s) => s.stopped.clone().unwrap_or_else(|| "finished".into()),
                Err(e) => e.clone(),
            };
            // A program whose lock another process still holds (a coordinator that stalled
            // past its lease and has not yet noticed) is tried again next poll, not parked.
            let lease_lost = lost.remove(&name);
            if !busy && !lease_lost {
                parked.insert(name.clone(), Parked::Ended { budget, reason });
            }
            let _ = events.send(CoordinatorEvent::Ended {
                program: name,
                summary,
            });
        }
        if opts.shutdown.draining() {
            if workers.is_empty() {
                let _ = project.store.remove_coordinator(&owner);
                return Ok(());
            }
        } else {
            // An arena's programs are `arena run`'s, which gives them turns in rounds.
            let arena = project.store.arena_program_ids()?;
            let programs: Vec<_> = project
                .store
                .programs()?
                .into_iter()
                .filter(|p| !arena.contains(&p.id))
                .collect();
            let share = fair_share(&project, &programs, &owner);
            let mut claimed_now = 0;
            for p in programs {
                pool.set_weight(&p.name, p.weight);
                let active = p.status == ProgramStatus::Active;
                match workers.get(&p.name) {
                    Some(w) if !active => w.shutdown.drain(),
                    Some(_) => {}
                    None if active => {
                        if let Some(Parked::Ended { budget, reason }) = parked.get(&p.name) {
                            // Paused loops restart on resume; others only when the budget
                            // changed (or was lifted).
                            if reason != "paused" && *budget == p.max_runs {
                                continue;
                            }
                        }
                        // One program per poll (so coordinators starting together each see
                        // the others before the programs are gone), up to a fair share.
                        if claimed_now > 0 || share.is_some_and(|n| workers.len() >= n) {
                            continue;
                        }
                        if !claim(&mut project, p.id, &owner)? {
                            continue; // another live coordinator drives it
                        }
                        claimed_now += 1;
                        parked.remove(&p.name);
                        let mut w = start(
                            &root,
                            &p.name,
                            opts,
                            (pool.clone(), cancels.clone()),
                            &events,
                            &done_tx,
                        );
                        w.program_id = p.id;
                        workers.insert(p.name.clone(), w);
                    }
                    None => {}
                }
            }
        }
        // Renew the leases of this process's running runs and programs (see `lease_expiry`),
        // and stop the runs a person asked to cancel (or every run, when everything is
        // cancelled).
        if let Err(e) = project.store.coordinator_heartbeat(&owner, opts.slots) {
            tracing::warn!("coordinator heartbeat: {e}");
        }
        if let Err(e) = project.store.heartbeat(&owner) {
            tracing::warn!("renewing run leases: {e}");
        }
        match project.store.renew_program_leases(&owner) {
            Ok(held) => {
                for (name, w) in &workers {
                    if !held.contains(&w.program_id) {
                        tracing::warn!("lost the lease of {name} to another coordinator; stopping");
                        w.shutdown.drain();
                        lost.insert(name.clone());
                    }
                }
            }
            Err(e) => tracing::warn!("renewing program leases: {e}"),
        }
        if opts.shutdown.cancelled() {
            cancels.cancel_all();
        }
        match cancels.poll(&project.store) {
            Ok(ids) => {
                for id in ids {
                    tracing::info!("run {id}: cancel requested; stopping it");
                }
            }
            Err(e) => tracing::warn!("reading cancel requests: {e}"),
        }
        std::thread::sleep(opts.poll);
    }
}

fn start(
    root: &Path,
    program: &str,
    opts: &CoordinatorOptions,
    (pool, cancels): (Arc<SlotPool>, Arc<RunCancels>),
    events: &Sender<CoordinatorEvent>,
    done: &Sender<Done>,
) -> Worker {
    let shutdown = opts.shutdown.child();
    let (root, name) = (root.to_path_buf(), program.to_string());
    let (events, done) = (events.clone(), done.clone());
    let pipeline = opts.pipeline;
    let resources = opts.resources.clone();
    let _ = events.send(CoordinatorEvent::Started {
        program: name.clone(),
    });
    let loop_shutdown = shutdown.clone();
    let handle = std::thread::spawn(move || {
        let result = run_program(
            &root,
            &name,
            loop_shutdown,
            (pool, resources, cancels),
            pipeline,
            &events,
        );
        let busy = matches!(result, Err(SchedError::Busy(_)));
        let _ = done.send((name, result.map_err(|e| e.to_string()), busy));
    });
    Worker {
        handle,
        program_id: 0,
        shutdown,
    }
}

/// How many programs this coordinator should drive when others share the store: the active
/// programs over the live coordinators, rounded up. `None` when it is alone (it takes all).
fn fair_share(
    project: &Project,
    programs: &[picidae_store::Program],
    owner: &str,
) -> Option<usize> {
    let live = project
        .store
        .live_coordinators(lease_expiry().as_millis() as i64)
        .ok()?
        .into_iter()
        .filter(|(name, _)| name == owner || lease_holder_alive(name))
        .count()
        .max(1);
    if live == 1 {
        return None;
    }
    let active = programs
        .iter()
        .filter(|p| p.status == ProgramStatus::Active)
        .count();
    Some(active.div_ceil(live).max(1))
}

/// Take a program's lease if no live coordinator holds it.
fn claim(project: &mut Project, program_id: i64, owner: &str) -> Result<bool, SchedError> {
    let lease = project.store.program_lease(program_id)?;
    let free = match &lease {
        None => true,
        Some((o, _)) if o == owner => true,
        Some((o, at)) => {
            let age = picidae_store::now_ms() - at;
            age > lease_expiry().as_millis() as i64 || !lease_holder_alive(o)
        }
    };
    Ok(free
        && project
            .store
            .claim_program(program_id, owner, lease.as_ref())?)
}

fn run_program(
    root: &Path,
    name: &str,
    shutdown: Shutdown,
    (pool, resources, cancels): (Arc<SlotPool>, Option<Arc<ResourcePool>>, Arc<RunCancels>),
    pipeline: usize,
    events: &Sender<CoordinatorEvent>,
) -> Result<LoopSummary, SchedError> {
    let mut project = Project::open(root)?;
    let stored = project.store.program(name)?;
    let spec: AgentSpec =
        serde_json::from_value(stored.agent.clone()).map_err(|e| SchedError::Program {
            program: name.to_string(),
            message: format!("unreadable agent configuration: {e}"),
        })?;
    let mut agent = spec.build();
    // A missing agent CLI parks the program with one clear error, not a failed attempt a turn.
    agent.preflight().map_err(|e| SchedError::Program {
        program: name.to_string(),
        message: e.to_string(),
    })?;
    let mut runner = Runner::new(&mut project, name)?;
    for notice in runner.notices() {
        tracing::warn!(program = name, "{notice}");
    }
    let opts = LoopOptions {
        max_attempts: None,
        max_runs: None,
        shutdown,
        // A candidate's verification seeds may use every slot; fair share still decides.
        parallel: pool.capacity(),
        slots: Some(pool),
        resources,
        pipeline,
        run_cancels: Some(cancels),
    };
    runner.run(agent.as_mut(), &opts, &mut |e| {
        let _ = events.send(CoordinatorEvent::Loop {
            program: name.to_string(),
            event: e.clone(),
        });
    })
}
