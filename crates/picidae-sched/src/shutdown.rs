//! How a loop is told to end: one [`Shutdown`] signal with three levels. **Run** (the
//! default); **drain**: start nothing new, let the attempts in flight finish; **cancel**: also
//! kill the runs in flight, whose attempts resume on the next start. A child signal (one
//! program's loop under a coordinator) drains when it is told to or when its parent drains,
//! and shares its parent's cancel, so stopping one program or all of them needs no watcher.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where a [`Shutdown`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Run,
    Drain,
    Cancel,
}

/// A shutdown signal; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    drain: Arc<AtomicBool>,
    /// Shared by a parent and its children; executors watch this flag itself.
    cancel: Arc<AtomicBool>,
    parent: Option<Arc<Shutdown>>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A signal that drains with this one (or on its own) and cancels with it.
    pub fn child(&self) -> Shutdown {
        Shutdown {
            drain: Arc::new(AtomicBool::new(false)),
            cancel: self.cancel.clone(),
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Start nothing new; what is in flight finishes.
    pub fn drain(&self) {
        self.drain.store(true, Ordering::SeqCst);
    }

    /// Kill the runs in flight too (for this signal, its parent and every child).
    pub fn cancel(&self) {
        self.drain();
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// The first call drains, a later one cancels (a second Ctrl-C); returns the new mode.
    pub fn escalate(&self) -> Mode {
        if self.drain.swap(true, Ordering::SeqCst) {
            self.cancel();
        }
        self.mode()
    }

    pub fn mode(&self) -> Mode {
        if self.cancelled() {
            Mode::Cancel
        } else if self.draining() {
            Mode::Drain
        } else {
            Mode::Run
        }
    }

    /// Whether new work must not start (drained or cancelled, here or above).
    pub fn draining(&self) -> bool {
        self.drain.load(Ordering::SeqCst)
            || self.cancelled()
            || self.parent.as_ref().is_some_and(|p| p.draining())
    }

    /// Whether runs in flight are to be killed.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// The cancel flag itself, for what waits on a run (executors, watchers).
    pub fn cancel_flag(&self) -> &Arc<AtomicBool> {
        &self.cancel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_drains_then_cancels() {
        let s = Shutdown::new();
        assert_eq!(s.mode(), Mode::Run);
        assert_eq!(s.escalate(), Mode::Drain);
        assert!(s.draining() && !s.cancelled());
        assert_eq!(s.escalate(), Mode::Cancel);
        assert!(s.cancel_flag().load(Ordering::SeqCst));
    }

    #[test]
    fn a_child_drains_alone_or_with_its_parent_and_shares_the_cancel() {
        let parent = Shutdown::new();
        let (a, b) = (parent.child(), parent.child());
        a.drain();
        assert_eq!(
            (a.mode(), b.mode(), parent.mode()),
            (Mode::Drain, Mode::Run, Mode::Run)
        );
        parent.drain();
        assert_eq!(b.mode(), Mode::Drain);
        assert!(!b.cancelled());
        parent.cancel();
        assert_eq!((a.mode(), b.mode()), (Mode::Cancel, Mode::Cancel));
        // A child's cancel is everyone's: the runs share one machine and one harness.
        let other = Shutdown::new();
        other.child().cancel();
        assert_eq!(other.mode(), Mode::Cancel);
    }
}
