//! A pool of execution slots shared by programs, granted by weighted fair share.
//!
//! Every run takes one slot for its duration. When several programs wait, the slot goes to the
//! program whose share is furthest below its weight: the one with the fewest slot-seconds used
//! per unit of weight (ties: the one waiting longest). A program with weight 3 therefore gets
//! about three times the slot time of a program with weight 1 while both have work, and an
//! idle program's share is not hoarded for it. Weights can change at run time.
//!
//! A program between two runs (recording a result, checking out the next attempt) is not
//! waiting for a few hundred milliseconds, and a purely work-conserving pool would hand its
//! slot to whoever waits, making every share equal. So a freed slot is held briefly
//! ([`HOLD`]) for the most under-served program that asked for a slot recently
//! ([`ACTIVE_WINDOW`]), if that is not already a waiting one: a short anticipation that makes
//! weights hold at the cost of at most `HOLD` idle time per hand-over.
//!
//! Within a program, a run that settles what was already found goes first ([`Priority`]):
//! a baseline's seeds and a candidate's verification seeds take a slot before the first run
//! of a new exploration of the same program, so attempts in flight do not starve a finding.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a freed slot is held for the most under-served recently active program.
pub const HOLD: Duration = Duration::from_millis(400);
/// A program that asked for a slot this recently counts as active.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(3);

/// How urgent a run's slot is within its program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Priority {
    /// The first run of a new exploration.
    #[default]
    Explore,
    /// A baseline's seeds, a measurement, or the further seeds of a candidate under
    /// verification.
    Verify,
}

/// A run waiting for a slot.
#[derive(Debug)]
struct Waiter {
    ticket: u64,
    program: String,
    since: Instant,
    priority: Priority,
}

#[derive(Debug, Default)]
struct State {
    free: usize,
    /// Slot-seconds used per program, finished runs only.
    used: HashMap<String, f64>,
    weights: HashMap<String, f64>,
    /// Runs waiting, in arrival order.
    waiting: Vec<Waiter>,
    next_ticket: u64,
    in_use: HashMap<String, usize>,
    /// When each program last asked for a slot.
    last_request: HashMap<String, Instant>,
    /// A freed slot held for a program until the instant given.
    reserved: Option<(String, Instant)>,
}

/// The shared pool.
#[derive(Debug)]
pub struct SlotPool {
    capacity: usize,
    state: Mutex<State>,
    changed: Condvar,
}

/// A held slot; dropping it gives the slot back and charges the time to its program.
#[derive(Debug)]
pub struct SlotGuard<'a> {
    pool: &'a SlotPool,
    program: String,
    since: Instant,
}

impl SlotPool {
    pub fn new(capacity: usize) -> SlotPool {
        SlotPool {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                free: capacity.max(1),
                ..Default::default()
            }),
            changed: Condvar::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set a program's weight (default 1).
    pub fn set_weight(&self, program: &str, weight: f64) {
        let w = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        self.lock().weights.insert(program.to_string(), w);
        self.changed.notify_all();
    }

    /// Slots in use right now, per program.
    pub fn in_use(&self) -> HashMap<String, usize> {
        self.lock().in_use.clone()
    }

    /// Slot-seconds used so far, per program.
    pub fn used(&self) -> HashMap<String, f64> {
        self.lock().used.clone()
    }

    /// Block until `program` may run; `None` if `give_up` returns true while waiting.
    pub fn acquire(&self, program: &str, give_up: &dyn Fn() -> bool) -> Option<SlotGuard<'_>> {
        self.acquire_as(program, Priority::Explore, give_up)
    }

    /// [`acquire`](Self::acquire) for a run of the given priority within its program.
    pub fn acquire_as(
        &self,
        program: &str,
        priority: Priority,
        give_up: &dyn Fn() -> bool,
    ) -> Option<SlotGuard<'_>> {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.waiting.push(Waiter {
            ticket,
            program: program.to_string(),
            since: Instant::now(),
            priority,
        });
        st.last_request.insert(program.to_string(), Instant::now());
        loop {
            let held_for_other = match &st.reserved {
                Some((p, until)) if *until > Instant::now() => p != program,
                _ => false,
            };
            let free = st.free.saturating_sub(usize::from(held_for_other));
            if free > 0 && Self::chosen(&st) == Some(ticket) {
                st.waiting.retain(|w| w.ticket != ticket);
                st.free -= 1;
                if st.reserved.as_ref().is_some_and(|(p, _)| p == program) {
                    st.reserved = None;
                }
                *st.in_use.entry(program.to_string()).or_default() += 1;
                self.changed.notify_all();
                return Some(SlotGuard {
                    pool: self,
                    program: program.to_string(),
                    since: Instant::now(),
                });
            }
            if give_up() {
                st.waiting.retain(|w| w.ticket != ticket);
                self.changed.notify_all();
                return None;
            }
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn share(st: &State, program: &str) -> f64 {
        let w = st.weights.get(program).copied().unwrap_or(1.0);
        st.used.get(program).copied().unwrap_or(0.0) / w
    }

    /// The waiting ticket that gets the next free slot: the holder of a live reservation if it
    /// waits, else the most under-served waiting program; within the program, the most urgent
    /// run, then the one waiting longest.
    fn chosen(st: &State) -> Option<u64> {
        let first_of = |w: &&Waiter| (std::cmp::Reverse(w.priority), w.since, w.ticket);
        if let Some((p, until)) = &st.reserved {
            if *until > Instant::now() {
                if let Some(w) = st
                    .waiting
                    .iter()
                    .filter(|w| &w.program == p)
                    .min_by_key(first_of)
                {
                    return Some(w.ticket);
                }
            }
        }
        st.waiting
            .iter()
            .min_by(|a, b| {
                Self::share(st, &a.program)
                    .total_cmp(&Self::share(st, &b.program))
                    .then(first_of(a).cmp(&first_of(b)))
            })
            .map(|w| w.ticket)
    }

    /// After a slot is freed: hold it for the most under-served recently active program, unless
    /// that program is already waiting (then it simply gets it).
    fn reserve_after_release(st: &mut State) {
        let now = Instant::now();
        let best = st
            .last_request
            .iter()
            .filter(|(_, t)| now.duration_since(**t) < ACTIVE_WINDOW)
            .map(|(p, _)| p.clone())
            .min_by(|a, b| Self::share(st, a).total_cmp(&Self::share(st, b)));
        st.reserved = match best {
            Some(p) if !st.waiting.iter().any(|w| w.program == p) => Some((p, now + HOLD)),
            _ => None,
        };
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.pool.lock();
        st.free += 1;
        *st.used.entry(self.program.clone()).or_default() += self.since.elapsed().as_secs_f64();
        if let Some(n) = st.in_use.get_mut(&self.program) {
            *n = n.saturating_sub(1);
        }
        SlotPool::reserve_after_release(&mut st);
        self.pool.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Two programs with weights 3 and 1 compete for one slot for `millis`; each run holds
    /// the slot for 5 or 20 ms, then the program pauses `gap` before asking again. Returns
    /// the ratio of runs a / b.
    fn share_ratio(hold_ms: u64, gap: Duration, millis: u64) -> (f64, f64, f64) {
        let pool = Arc::new(SlotPool::new(1));
        pool.set_weight("a", 3.0);
        pool.set_weight("b", 1.0);
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let mut threads = Vec::new();
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let (pool, stop, counts) = (pool.clone(), stop.clone(), counts.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Some(_g) = pool.acquire(name, &|| stop.load(Ordering::SeqCst)) {
                        std::thread::sleep(Duration::from_millis(hold_ms));
                        counts[i].fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(gap);
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(millis));
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        let (a, b) = (
            counts[0].load(Ordering::SeqCst) as f64,
            counts[1].load(Ordering::SeqCst) as f64,
        );
        (a, b, a / b.max(1.0))
    }

    #[test]
    fn weights_split_slot_time() {
        let (a, b, ratio) = share_ratio(5, Duration::ZERO, 800);
        assert!((2.2..=4.0).contains(&ratio), "a {a}, b {b}, ratio {ratio}");
    }

    #[test]
    fn a_program_that_pauses_between_runs_keeps_its_share() {
        // bookkeeping between runs, while the other program waits
        let (a, b, ratio) = share_ratio(20, Duration::from_millis(5), 1500);
        assert!((2.2..=4.0).contains(&ratio), "a {a}, b {b}, ratio {ratio}");
    }

    #[test]
    fn verification_runs_of_a_program_go_before_its_new_explorations() {
        let pool = Arc::new(SlotPool::new(1));
        let held = pool.acquire("a", &|| false).unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        // Two explorations queue first, then a verification seed.
        for (name, priority) in [
            ("explore-1", Priority::Explore),
            ("explore-2", Priority::Explore),
            ("verify", Priority::Verify),
        ] {
            let (shared, order) = (pool.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _g = shared.acquire_as("a", priority, &|| false).unwrap();
                order.lock().unwrap().push(name);
                std::thread::sleep(Duration::from_millis(10));
            }));
            // Arrival order is the order of the loop.
            while pool.lock().waiting.len() < threads.len() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["verify", "explore-1", "explore-2"],
            "the verification seed waited least"
        );
    }

    #[test]
    fn capacity_is_never_exceeded_and_give_up_works() {
        let pool = SlotPool::new(2);
        let g1 = pool.acquire("a", &|| false).unwrap();
        let _g2 = pool.acquire("b", &|| false).unwrap();
        assert!(pool.acquire("c", &|| true).is_none(), "no third slot");
        drop(g1);
        // The freed slot may be held for a moment for another program; c gets it after that.
        let start = Instant::now();
        assert!(pool
            .acquire("c", &|| start.elapsed() > Duration::from_secs(2))
            .is_some());
        assert_eq!(pool.in_use().values().sum::<usize>(), 1);
    }
}
