//! What a loop is given and what it reports: [`LoopOptions`], [`LoopEvent`], [`LoopSummary`],
//! and the per-seed results the loop passes between its parts.

use std::sync::Arc;

use picidae_core::domain::FindingState;
use picidae_core::{AttemptKind, AttemptStatus, RunStatus};

use crate::cancels::RunCancels;
use crate::resources::ResourcePool;
use crate::runner::Finish;
use crate::shutdown::Shutdown;
use crate::slots::SlotPool;

/// Options of one invocation of the loop.
#[derive(Debug, Clone, Default)]
pub struct LoopOptions {
    /// Stop after this many new attempts (resumed ones are not counted). `None` = never stop.
    pub max_attempts: Option<u64>,
    /// Start no new attempt once this many runs have been spent in this invocation.
    pub max_runs: Option<u64>,
    /// How the loop is told to end: drained, it finishes the attempts in flight and stops;
    /// cancelled, it kills their runs, and the attempts resume next time.
    pub shutdown: Shutdown,
    /// Slots shared with other programs (the coordinator's); every run holds one.
    pub slots: Option<Arc<SlotPool>>,
    /// The machine's GPUs, CPUs and memory, shared with other programs (the coordinator's);
    /// every run holds what its contract declares, and sees only its own GPUs.
    pub resources: Option<Arc<ResourcePool>>,
    /// Proposals to keep ready ahead of the runs (0: propose, then run, in turn). With a
    /// depth, the agent works in a thread of its own while runs execute.
    pub pipeline: usize,
    /// Runs of one attempt (its seeds: a baseline's, a candidate's verification) that may
    /// execute at once (0 or 1: one after another). Under a coordinator every run still
    /// holds a slot, so the slots bound this too.
    pub parallel: usize,
    /// The flags of this loop's runs in flight, set when a person asks for a run to be
    /// cancelled (see [`RunCancels`]) or when the loop is cancelled; whoever passes them polls the
    /// store for requests (the coordinator does). `None`: the loop polls on a thread of its own.
    pub run_cancels: Option<Arc<RunCancels>>,
}

/// What the loop reports as it goes (for progress displays and logs).
#[derive(Debug, Clone, PartialEq)]
pub enum LoopEvent {
    Recovered {
        runs_interrupted: usize,
        /// Remote runs still alive on their executor, waited for again.
        runs_readopted: usize,
        attempts_resumed: usize,
        attempts_failed: usize,
    },
    Setup {
        cached: bool,
        secs: f64,
    },
    RunStarted {
        seq: i64,
        run_id: i64,
        seed: i64,
    },
    RunFinished {
        seq: i64,
        run_id: i64,
        status: RunStatus,
        value: Option<f64>,
        wall_secs: f64,
    },
    Proposed {
        seq: i64,
        hypothesis: String,
    },
    Rejected {
        seq: i64,
        status: AttemptStatus,
        reason: String,
    },
    Calibrated {
        passed: bool,
        rank_correlation: Option<f64>,
        max_error: Option<f64>,
    },
    Verifying {
        seq: i64,
        finding_id: i64,
        seeds: u32,
    },
    /// What verification can detect at the noise measured by the baseline (`noise.rs`).
    Power(crate::power::Power),
    Judged {
        seq: i64,
        finding_id: i64,
        state: FindingState,
        reason: String,
    },
    Decided {
        seq: i64,
        kind: AttemptKind,
        status: AttemptStatus,
        value: Option<f64>,
        frontier: Option<f64>,
        hypothesis: String,
    },
}

/// Counts for one invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoopSummary {
    pub attempts: u64,
    pub kept: u64,
    pub discarded: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Won against the frontier they were built on after it had moved: merged onto the new
    /// one as merge candidates (counted again when those are decided).
    pub merged: u64,
    pub baseline: Option<f64>,
    pub frontier: Option<f64>,
    /// Why the loop ended before `max_attempts`, if it did.
    pub stopped: Option<String>,
}

/// One seed of a [`Runner::measure`]ment: the visible primary metric and the hidden one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub seed: i64,
    pub visible: Option<f64>,
    pub hidden: Option<f64>,
}

/// One seed's outcome within an attempt.
#[derive(Debug, Clone)]
pub(crate) struct SeedResult {
    pub(crate) seed: i64,
    pub(crate) run_id: i64,
    pub(crate) status: RunStatus,
    pub(crate) value: Option<f64>,
}

impl LoopSummary {
    /// Attempts decided for good: a merged one waits for its merge candidate's verdict.
    pub(crate) fn decided(&self) -> u64 {
        self.attempts - self.merged
    }

    /// Count what an attempt that ran came to.
    pub(crate) fn finish(&mut self, f: &Finish) {
        match f {
            Finish::Decided(status) => self.count(*status),
            Finish::Merged(candidate) => {
                self.count(AttemptStatus::Merged);
                if let Some(status) = candidate {
                    self.count(*status);
                }
            }
            Finish::Interrupted => self.attempts += 1,
        }
    }

    pub(crate) fn count(&mut self, status: AttemptStatus) {
        self.attempts += 1;
        match status {
            AttemptStatus::Kept => self.kept += 1,
            AttemptStatus::Discarded => self.discarded += 1,
            AttemptStatus::Merged => self.merged += 1,
            AttemptStatus::Rejected | AttemptStatus::Duplicate => self.rejected += 1,
            _ => self.failed += 1,
        }
    }
}
