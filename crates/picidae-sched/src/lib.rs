//! picidae-sched
