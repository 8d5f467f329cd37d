//! One watcher per store for the runs handed to remote workers (`workers.rs`). Every run in
//! flight on a worker waits for its work item to change (claimed, reported, expired,
//! cancelled); rather than each waiter reading its own item from the store every 20 ms
//! (hundreds of queries a second with hundreds of runs in flight, each a round trip on
//! PostgreSQL), one thread per store reads where all of them stand in one query
//! (`Store::work_statuses`) and wakes the waiters with the new snapshot. The thread starts
//! with the first waiter and ends a while after the last one leaves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use picidae_store::WorkStatus;

use crate::{Project, SchedError};

/// How often the watcher reads the store.
const POLL: Duration = Duration::from_millis(20);
/// How long the watcher stays up with nobody waiting.
const LINGER: Duration = Duration::from_secs(2);

/// The watcher of one project's store.
pub(crate) struct Watch {
    root: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Runs waited on, with their status in the latest snapshot (`None`: no work item).
    runs: HashMap<i64, Option<WorkStatus>>,
    /// Waiters per run (one normally; a recovery and a loop may briefly overlap).
    waiters: HashMap<i64, usize>,
    /// Snapshots taken so far.
    generation: u64,
    /// The watcher thread is up.
    running: bool,
    /// The last snapshot failed: why.
    error: Option<String>,
    /// When the latest snapshot was taken.
    polled_at: Option<Instant>,
}

/// A watcher silent this long is taken for dead and started again.
const STALLED: Duration = Duration::from_secs(10);

static WATCHES: LazyLock<Mutex<HashMap<PathBuf, Weak<Watch>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The watcher of the store of the project at `root`, shared by every waiter in this process.
pub(crate) fn watch(root: &Path) -> Arc<Watch> {
    let mut all = lock(&WATCHES);
    all.retain(|_, w| w.strong_count() > 0);
    if let Some(w) = all.get(root).and_then(Weak::upgrade) {
        return w;
    }
    let w = Arc::new(Watch {
        root: root.to_path_buf(),
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
    });
    all.insert(root.to_path_buf(), Arc::downgrade(&w));
    w
}

/// A run being waited on; leaving drops it from the watcher's query.
pub(crate) struct Waiting {
    watch: Arc<Watch>,
    run_id: i64,
    /// The snapshot last returned.
    seen: u64,
}

impl Watch {
    /// Start waiting on `run_id`: [`Waiting::next`] returns snapshots taken from now on.
    pub(crate) fn wait_on(self: &Arc<Self>, run_id: i64) -> Waiting {
        let mut st = lock(&self.state);
        st.runs.entry(run_id).or_insert(None);
        *st.waiters.entry(run_id).or_insert(0) += 1;
        let seen = st.generation;
        if !st.running {
            self.start(&mut st);
        }
        Waiting {
            watch: Arc::clone(self),
            run_id,
            seen,
        }
    }

    fn start(self: &Arc<Self>, st: &mut State) {
        st.running = true;
        st.polled_at = Some(Instant::now());
        let me = Arc::clone(self);
        std::thread::spawn(move || me.poll_loop());
    }

    fn poll_loop(self: Arc<Self>) {
        let mut project: Option<Project> = None;
        let mut idle_since: Option<Instant> = None;
        loop {
            let ids: Vec<i64> = {
                let mut st = lock(&self.state);
                if st.runs.is_empty() {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= LINGER {
                        st.running = false;
                        return;
                    }
                } else {
                    idle_since = None;
                }
                st.runs.keys().copied().collect()
            };
            if !ids.is_empty() {
                let read = match &project {
                    Some(p) => Ok(p),
                    None => Project::open(&self.root).map(|p| &*project.insert(p)),
                }
                .and_then(|p| Ok(p.store.work_statuses(&ids)?));
                let mut st = lock(&self.state);
                match read {
                    Ok(statuses) => {
                        let mut by_run: HashMap<i64, WorkStatus> =
                            statuses.into_iter().map(|s| (s.run_id, s)).collect();
                        for (id, slot) in st.runs.iter_mut() {
                            *slot = by_run.remove(id);
                        }
                        st.error = None;
                    }
                    Err(e) => {
                        // A new connection next time.
                        project = None;
                        st.error = Some(e.to_string());
                    }
                }
                st.generation += 1;
                st.polled_at = Some(Instant::now());
                self.changed.notify_all();
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Waiting {
    /// The run's status in the next snapshot after the one last returned (`None`: the run has
    /// no work item), or the error that snapshot met.
    pub(crate) fn next(&mut self) -> Result<Option<WorkStatus>, SchedError> {
        let watch = &self.watch;
        let mut st = lock(&watch.state);
        while st.generation <= self.seen {
            if st.polled_at.is_some_and(|t| t.elapsed() > STALLED) {
                watch.start(&mut st);
            }
            st = watch
                .changed
                .wait_timeout(st, POLL * 50)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        self.seen = st.generation;
        if let Some(e) = &st.error {
            return Err(SchedError::ProjectStore(format!(
                "watching run {}'s work item: {e}",
                self.run_id
            )));
        }
        Ok(st.runs.get(&self.run_id).cloned().flatten())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut st = lock(&self.watch.state);
        let left = st.waiters.get_mut(&self.run_id).map(|n| {
            *n -= 1;
            *n
        });
        if left == Some(0) {
            st.waiters.remove(&self.run_id);
            st.runs.remove(&self.run_id);
        }
    }
}
