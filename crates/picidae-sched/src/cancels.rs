//! Cancelling one run while it is queued or executing, at a person's request.
//!
//! The request is state in the store (`runs.cancel_requested_at`, written by
//! [`Store::request_run_cancel`] behind the HTTP API, which may live in another process than
//! the loop running the run). Every run in flight registers a flag in a [`RunCancels`]; whoever
//! polls the store for requests (the coordinator, next to its lease heartbeat, or a standalone
//! loop's own [`Watch`] thread) sets the flags of the runs asked for, and the run stops through
//! its executor's ordinary cancel path (process group killed, Slurm job cancelled, container
//! stopped). The run is then recorded as `cancelled` with the error [`CANCELLED_BY_USER`], and
//! unlike a run cancelled because the harness stopped, its seed counts as done: its attempt is
//! decided (not resumed), and recovery never runs it again.
//!
//! A flag is also set when the whole loop is cancelled (`LoopOptions::cancel`): the poller
//! forwards that to every registered run, so one flag is all an executor waits on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use picidae_store::{Store, StoreError};

/// The error a run cancelled by a person is recorded with (followed by details, if any).
pub const CANCELLED_BY_USER: &str = "cancelled by user";

/// How often a standalone loop's [`Watch`] reads the store for cancel requests.
pub const WATCH_POLL: Duration = Duration::from_millis(300);

/// The cancel flags of the runs in flight, by run id.
#[derive(Debug, Default)]
pub struct RunCancels {
    flags: Mutex<HashMap<i64, Arc<AtomicBool>>>,
}

/// A run's registration: its flag, removed from the registry when dropped.
pub(crate) struct Registered {
    cancels: Arc<RunCancels>,
    run_id: i64,
    pub(crate) flag: Arc<AtomicBool>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.cancels.lock().remove(&self.run_id);
    }
}

impl RunCancels {
    pub fn new() -> RunCancels {
        RunCancels::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<AtomicBool>>> {
        self.flags.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a run in flight; its flag is set when it is to stop.
    pub(crate) fn register(self: &Arc<Self>, run_id: i64) -> Registered {
        let flag = Arc::new(AtomicBool::new(false));
        self.lock().insert(run_id, flag.clone());
        Registered {
            cancels: self.clone(),
            run_id,
            flag,
        }
    }

    /// The runs registered now.
    pub fn run_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lock().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Stop every registered run (the whole loop is cancelled).
    pub fn cancel_all(&self) {
        for flag in self.lock().values() {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Read the store for cancel requests of the registered runs and set their flags. Returns
    /// the runs whose flag this call set.
    pub fn poll(&self, store: &Store) -> Result<Vec<i64>, StoreError> {
        let ids = self.run_ids();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let asked = store.cancel_requested_runs(&ids)?;
        let flags = self.lock();
        let mut set = Vec::new();
        for id in asked {
            if let Some(flag) = flags.get(&id) {
                if !flag.swap(true, Ordering::SeqCst) {
                    set.push(id);
                }
            }
        }
        Ok(set)
    }

    /// Poll on a thread of its own (with its own connection to the store at `store_path`) every
    /// `every`, and forward `cancel` (the loop's cancel flag) to every registered run, until the
    /// returned [`Watch`] is dropped. For a loop that no coordinator polls for.
    pub fn watch(
        self: &Arc<Self>,
        store_path: &Path,
        cancel: Arc<AtomicBool>,
        every: Duration,
    ) -> Watch {
        let done = Arc::new(AtomicBool::new(false));
        let (me, path, finished) = (self.clone(), store_path.to_path_buf(), done.clone());
        let handle = std::thread::spawn(move || watch_loop(&me, &path, &cancel, &finished, every));
        Watch {
            done,
            handle: Some(handle),
        }
    }
}

fn watch_loop(
    cancels: &RunCancels,
    path: &Path,
    cancel: &AtomicBool,
    done: &AtomicBool,
    every: Duration,
) {
    let mut store: Option<Store> = None;
    let step = Duration::from_millis(50).min(every);
    let mut waited = Duration::ZERO;
    while !done.load(Ordering::SeqCst) {
        if cancel.load(Ordering::SeqCst) {
            cancels.cancel_all();
        }
        if waited >= every {
            waited = Duration::ZERO;
            if !cancels.run_ids().is_empty() {
                if store.is_none() {
                    store = Store::open(path)
                        .map_err(|e| tracing::warn!("watching for cancel requests: {e}"))
                        .ok();
                }
                if let Some(s) = &store {
                    if let Err(e) = cancels.poll(s) {
                        tracing::warn!("reading cancel requests: {e}");
                    }
                }
            }
        }
        std::thread::sleep(step);
        waited += step;
    }
}

/// A running [`RunCancels::watch`] thread; stops (and is joined) when dropped.
pub struct Watch {
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picidae_core::AttemptKind;
    use picidae_store::{NewAttempt, NewProgram};

    #[test]
    fn a_request_in_the_store_sets_only_that_runs_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let mut store = Store::open(&path).unwrap();
        let p = store
            .create_program(&NewProgram {
                name: "p".into(),
                benchmark_dir: "/b".into(),
                program_md: String::new(),
                agent: serde_json::json!({}),
                policy: serde_json::json!({}),
                base_commit: "c".into(),
            })
            .unwrap();
        let a = store
            .insert_attempt(&NewAttempt {
                program_id: p.id,
                kind: AttemptKind::Explore,
                parent_commit: "c".into(),
                hypothesis: "h".into(),
                proposer: "t".into(),
                params: None,
            })
            .unwrap();
        let r1 = store.insert_run(a.id, 0, "local").unwrap().id;
        let r2 = store.insert_run(a.id, 1, "local").unwrap().id;
        let cancels = Arc::new(RunCancels::new());
        let one = cancels.register(r1);
        let two = cancels.register(r2);
        assert_eq!(cancels.poll(&store).unwrap(), Vec::<i64>::new());
        assert!(store.request_run_cancel(r2).unwrap().is_some());
        // A standalone watcher notices within its poll interval.
        let cancel = Arc::new(AtomicBool::new(false));
        let watch = cancels.watch(&path, cancel.clone(), Duration::from_millis(50));
        let start = std::time::Instant::now();
        while !two.flag.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(5), "not noticed");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!one.flag.load(Ordering::SeqCst));
        // The loop's own cancel reaches every run.
        cancel.store(true, Ordering::SeqCst);
        while !one.flag.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(5), "not forwarded");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(watch);
        drop(one);
        assert_eq!(cancels.run_ids(), vec![r2]);
        drop(two);
        assert!(cancels.run_ids().is_empty());
    }
}
