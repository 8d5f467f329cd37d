//! Slurm's job states ([`SlurmJobState`]), what Picidae makes of each
//! ([`SlurmDisposition`]), and what a state query learned about one job
//! ([`SlurmJobInfo`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Slurm job state, as printed by `squeue`, `scontrol` and `sacct`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SlurmJobState {
    /// Waiting for resources or priority.
    Pending,
    /// Resources allocated, nodes being readied.
    Configuring,
    /// Running.
    Running,
    /// Finished, resources being released.
    Completing,
    /// Suspended by an administrator or gang scheduling.
    Suspended,
    /// Stopped (SIGSTOP), still holding its resources.
    Stopped,
    /// Being resized.
    Resizing,
    /// Being signalled.
    Signaling,
    /// Staging out data (burst buffers).
    StageOut,
    /// Requeued, will become pending again.
    Requeued,
    /// Requeued to a federation sibling.
    RequeueFed,
    /// Requeued and held: will not run until released.
    RequeueHold,
    /// Requeued and held after a special exit code.
    SpecialExit,
    /// Held because its reservation was deleted.
    ResvDelHold,
    /// Revoked: a federation sibling runs it instead.
    Revoked,
    /// Exited with status 0.
    Completed,
    /// Exited with a non-zero status or failed to launch.
    Failed,
    /// Cancelled (`scancel`).
    Cancelled,
    /// Reached its Slurm time limit.
    Timeout,
    /// Killed by the out-of-memory handler.
    OutOfMemory,
    /// A node it ran on failed.
    NodeFail,
    /// Preempted by a higher-priority job.
    Preempted,
    /// A node could not be booted for it.
    BootFail,
    /// Reached its `--deadline`.
    Deadline,
    /// A state this module does not know (upper-cased text).
    Other(String),
}

/// What Picidae should make of a job state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SlurmDisposition {
    /// Queued or running: keep waiting.
    Active,
    /// Finished with status 0.
    Succeeded,
    /// The run failed (non-zero exit, launch failure, out of memory).
    Failed,
    /// The run hit a time limit.
    TimedOut,
    /// The run was cancelled.
    Cancelled,
    /// The job ended or stalled for reasons outside the run (node failure,
    /// preemption, boot failure, held): requeue the run.
    Lost,
}

impl SlurmJobState {
    /// Parses a state as printed by any Slurm command: long (`RUNNING`) or
    /// compact (`R`) form, any case, ignoring trailing decorations such as
    /// `CANCELLED by 0` or a truncation `+`.
    pub fn parse(text: &str) -> SlurmJobState {
        let word = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+')
            .to_ascii_uppercase();
        use SlurmJobState::*;
        match word.as_str() {
            "PENDING" | "PD" => Pending,
            "CONFIGURING" | "CF" => Configuring,
            "RUNNING" | "R" => Running,
            "COMPLETING" | "CG" => Completing,
            "SUSPENDED" | "S" => Suspended,
            "STOPPED" | "ST" => Stopped,
            "RESIZING" | "RS" => Resizing,
            "SIGNALING" | "SI" => Signaling,
            "STAGE_OUT" | "SO" => StageOut,
            "REQUEUED" | "RQ" => Requeued,
            "REQUEUE_FED" | "RF" => RequeueFed,
            "REQUEUE_HOLD" | "RH" => RequeueHold,
            "SPECIAL_EXIT" | "SE" => SpecialExit,
            "RESV_DEL_HOLD" | "RD" => ResvDelHold,
            "REVOKED" | "RV" => Revoked,
            "COMPLETED" | "CD" => Completed,
            "FAILED" | "F" => Failed,
            "CANCELLED" | "CA" => Cancelled,
            "TIMEOUT" | "TO" => Timeout,
            "OUT_OF_MEMORY" | "OOM" => OutOfMemory,
            "NODE_FAIL" | "NF" => NodeFail,
            "PREEMPTED" | "PR" => Preempted,
            "BOOT_FAIL" | "BF" => BootFail,
            "DEADLINE" | "DL" => Deadline,
            _ => Other(word),
        }
    }

    /// The state's long Slurm name.
    pub fn as_str(&self) -> &str {
        use SlurmJobState::*;
        match self {
            Pending => "PENDING",
            Configuring => "CONFIGURING",
            Running => "RUNNING",
            Completing => "COMPLETING",
            Suspended => "SUSPENDED",
            Stopped => "STOPPED",
            Resizing => "RESIZING",
            Signaling => "SIGNALING",
            StageOut => "STAGE_OUT",
            Requeued => "REQUEUED",
            RequeueFed => "REQUEUE_FED",
            RequeueHold => "REQUEUE_HOLD",
            SpecialExit => "SPECIAL_EXIT",
            ResvDelHold => "RESV_DEL_HOLD",
            Revoked => "REVOKED",
            Completed => "COMPLETED",
            Failed => "FAILED",
            Cancelled => "CANCELLED",
            Timeout => "TIMEOUT",
            OutOfMemory => "OUT_OF_MEMORY",
            NodeFail => "NODE_FAIL",
            Preempted => "PREEMPTED",
            BootFail => "BOOT_FAIL",
            Deadline => "DEADLINE",
            Other(s) => s,
        }
    }

    /// True when Slurm is done with the job: it will not run (again) by
    /// itself. Held states (`REQUEUE_HOLD`, `SPECIAL_EXIT`, `RESV_DEL_HOLD`)
    /// count as terminal because only an operator can release them, and
    /// `REVOKED` because the job runs on another cluster. Unknown states are
    /// not terminal.
    pub fn is_terminal(&self) -> bool {
        use SlurmJobState::*;
        matches!(
            self,
            Completed
                | Failed
                | Cancelled
                | Timeout
                | OutOfMemory
                | NodeFail
                | Preempted
                | BootFail
                | Deadline
                | RequeueHold
                | SpecialExit
                | ResvDelHold
                | Revoked
        )
    }

    /// True when the job's processes have started (or already finished).
    pub fn has_started(&self) -> bool {
        use SlurmJobState::*;
        !matches!(
            self,
            Pending | Configuring | Requeued | RequeueFed | RequeueHold | ResvDelHold | Other(_)
        )
    }

    /// True for held states: the job still exists in the queue and must be
    /// cancelled if Picidae gives up on it.
    pub fn is_held(&self) -> bool {
        use SlurmJobState::*;
        matches!(self, RequeueHold | SpecialExit | ResvDelHold)
    }

    /// How Picidae counts a job in this state.
    pub fn disposition(&self) -> SlurmDisposition {
        use SlurmJobState::*;
        match self {
            Pending | Configuring | Running | Completing | Suspended | Stopped | Resizing
            | Signaling | StageOut | Requeued | RequeueFed | Other(_) => SlurmDisposition::Active,
            Completed => SlurmDisposition::Succeeded,
            Failed | OutOfMemory => SlurmDisposition::Failed,
            Timeout | Deadline => SlurmDisposition::TimedOut,
            Cancelled => SlurmDisposition::Cancelled,
            NodeFail | Preempted | BootFail | RequeueHold | SpecialExit | ResvDelHold | Revoked => {
                SlurmDisposition::Lost
            }
        }
    }
}

impl fmt::Display for SlurmJobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a state query learned about one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJobInfo {
    /// The job id as Slurm prints it.
    pub job_id: String,
    /// Current state.
    pub state: SlurmJobState,
    /// Exit status of the batch script, when it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended the batch script, when one did.
    pub signal: Option<i32>,
    /// Start time (Unix seconds). For pending jobs this may be Slurm's
    /// expected start; only meaningful once the state has started.
    pub start_unix: Option<i64>,
    /// End time (Unix seconds). For running jobs this is the time-limit
    /// end; only meaningful once the state is terminal.
    pub end_unix: Option<i64>,
    /// Slurm's reason text (`None` when it prints `None`).
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_state_and_maps_it() {
        use SlurmDisposition as D;
        use SlurmJobState as S;
        let cases = [
            ("PENDING", S::Pending, false, D::Active),
            ("CONFIGURING", S::Configuring, false, D::Active),
            ("RUNNING", S::Running, false, D::Active),
            ("COMPLETING", S::Completing, false, D::Active),
            ("SUSPENDED", S::Suspended, false, D::Active),
            ("STOPPED", S::Stopped, false, D::Active),
            ("RESIZING", S::Resizing, false, D::Active),
            ("SIGNALING", S::Signaling, false, D::Active),
            ("STAGE_OUT", S::StageOut, false, D::Active),
            ("REQUEUED", S::Requeued, false, D::Active),
            ("REQUEUE_FED", S::RequeueFed, false, D::Active),
            ("REQUEUE_HOLD", S::RequeueHold, true, D::Lost),
            ("SPECIAL_EXIT", S::SpecialExit, true, D::Lost),
            ("RESV_DEL_HOLD", S::ResvDelHold, true, D::Lost),
            ("REVOKED", S::Revoked, true, D::Lost),
            ("COMPLETED", S::Completed, true, D::Succeeded),
            ("FAILED", S::Failed, true, D::Failed),
            ("CANCELLED", S::Cancelled, true, D::Cancelled),
            ("TIMEOUT", S::Timeout, true, D::TimedOut),
            ("OUT_OF_MEMORY", S::OutOfMemory, true, D::Failed),
            ("NODE_FAIL", S::NodeFail, true, D::Lost),
            ("PREEMPTED", S::Preempted, true, D::Lost),
            ("BOOT_FAIL", S::BootFail, true, D::Lost),
            ("DEADLINE", S::Deadline, true, D::TimedOut),
        ];
        for (text, state, terminal, disposition) in cases {
            let parsed = SlurmJobState::parse(text);
            assert_eq!(parsed, state, "{text}");
            assert_eq!(parsed.as_str(), text);
            assert_eq!(parsed.to_string(), text);
            assert_eq!(parsed.is_terminal(), terminal, "{text}");
            assert_eq!(parsed.disposition(), disposition, "{text}");
            // Active states are exactly the non-terminal ones.
            assert_eq!(disposition == D::Active, !terminal, "{text}");
        }
        assert_eq!(SlurmJobState::parse("CANCELLED by 0"), S::Cancelled);
        assert_eq!(SlurmJobState::parse("cancelled+"), S::Cancelled);
        assert_eq!(SlurmJobState::parse("PD"), S::Pending);
        assert_eq!(SlurmJobState::parse("OOM"), S::OutOfMemory);
        assert_eq!(SlurmJobState::parse("NF"), S::NodeFail);
        let other = SlurmJobState::parse("launch_failed");
        assert_eq!(other, S::Other("LAUNCH_FAILED".into()));
        assert!(!other.is_terminal());
        assert_eq!(other.disposition(), D::Active);
        assert!(!S::Pending.has_started() && S::Running.has_started());
        assert!(S::Completed.has_started() && S::RequeueHold.is_held());
    }
}
