//! The nouns every other crate shares: attempt and run states, decisions, and the boundary check.
//!
//! States are stored as their lowercase names (`as_str`/`FromStr`), so the store and the JSON
//! output speak the same words as the CLI.

use std::fmt;
use std::str::FromStr;

use globset::GlobSet;
use serde::{Deserialize, Serialize};

use crate::contract::{BoundarySpec, CONTRACT_FILE};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownState { kind: stringify!($name), value: other.to_string() }),
                }
            }
        }
    };
}

/// A stored state string that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

string_enum! {
    /// Where an attempt is in its life.
    AttemptStatus {
        Proposed => "proposed",
        Queued => "queued",
        Rejected => "rejected",
        Duplicate => "duplicate",
        Running => "running",
        Kept => "kept",
        Discarded => "discarded",
        Failed => "failed",
        Merged => "merged",
    }
}

impl AttemptStatus {
    /// A decided attempt will not change state again. `Merged`: it beat the frontier it was
    /// built on, but another attempt was kept meanwhile, so its change was merged onto the new
    /// frontier as a new attempt (a merge candidate) that is judged there.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AttemptStatus::Rejected
                | AttemptStatus::Duplicate
                | AttemptStatus::Kept
                | AttemptStatus::Discarded
                | AttemptStatus::Failed
                | AttemptStatus::Merged
        )
    }
}

string_enum! {
    /// Whether a program's loop may start new attempts.
    ProgramStatus {
        Active => "active",
        Paused => "paused",
    }
}

string_enum! {
    /// How a run reached for what its contract keeps from it, which rejects its attempt as a
    /// boundary violation whatever its metrics: the sandbox denied it something, or it rewrote
    /// a non-editable file of its checkout while it ran.
    RunBreach {
        SandboxDenied => "sandbox-denied",
        RewroteProtected => "rewrote-protected",
    }
}

string_enum! {
    /// A run handed to remote workers (`picidae worker`): offered to the pool, claimed by one
    /// worker under a lease, reported once; or cancelled before a result came.
    WorkState {
        Offered => "offered",
        Claimed => "claimed",
        Reported => "reported",
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// What kind of attempt this is (`measure`: a re-measurement of a commit for ground truth,
    /// never compared with the frontier).
    AttemptKind {
        Baseline => "baseline",
        Explore => "explore",
        Imported => "imported",
        Measure => "measure",
    }
}

string_enum! {
    /// One execution's state.
    RunStatus {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Crashed => "crashed",
        TimedOut => "timed-out",
        Invalid => "invalid",
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// A finding's life: candidate → verifying → validated | refuted; validated → retracted.
    FindingState {
        Candidate => "candidate",
        Verifying => "verifying",
        Validated => "validated",
        Refuted => "refuted",
        Retracted => "retracted",
    }
}

impl FindingState {
    /// Whether the lifecycle allows moving from `self` to `to`.
    pub fn can_move_to(self, to: FindingState) -> bool {
        use FindingState::*;
        matches!(
            (self, to),
            (Candidate, Verifying)
                | (Candidate, Refuted)
                | (Verifying, Validated)
                | (Verifying, Refuted)
                | (Validated, Retracted)
        )
    }
}

/// Finding flag: the visible metric improves and the hidden one does not.
pub const FLAG_OVERFIT: &str = "suspected-overfit";
/// Finding flag: the evaluator failed (or lacks) calibration.
pub const FLAG_UNCALIBRATED: &str = "evaluator-uncalibrated";

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

/// Checks the files an agent changed against the contract's editable globs.
#[derive(Debug, Clone)]
pub struct Boundary {
    set: GlobSet,
}

/// A change the boundary refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundaryViolation {
    pub path: String,
    pub reason: String,
}

impl Boundary {
    pub fn new(spec: &BoundarySpec) -> Result<Boundary, globset::Error> {
        Ok(Boundary {
            set: spec.globset()?,
        })
    }

    /// `path` is relative to the benchmark directory with `/` separators; `outside` marks paths
    /// that lie outside the benchmark directory altogether.
    pub fn check_one(&self, path: &str, outside: bool) -> Option<BoundaryViolation> {
        let reason = if outside || path.starts_with("../") || path.starts_with('/') {
            "outside the benchmark directory"
        } else if path == CONTRACT_FILE {
            "the contract is never editable"
        } else if !self.set.is_match(path) {
            "not matched by boundary.editable"
        } else {
            return None;
        };
        Some(BoundaryViolation {
            path: path.to_string(),
            reason: reason.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), *s);
        }
        for s in AttemptStatus::ALL {
            assert_eq!(s.as_str().parse::<AttemptStatus>().unwrap(), *s);
        }
        assert!("weird".parse::<RunStatus>().is_err());
        use FindingState::*;
        assert!(Candidate.can_move_to(Verifying));
        assert!(Verifying.can_move_to(Validated));
        assert!(Validated.can_move_to(Retracted));
        assert!(!Refuted.can_move_to(Validated));
        assert!(!Retracted.can_move_to(Validated));
        assert!(!Candidate.can_move_to(Validated));
    }

    #[test]
    fn boundary() {
        let b = Boundary::new(&BoundarySpec {
            editable: vec!["train.py".into(), "models/*.py".into()],
            sandbox_agents: false,
            sandbox_agents_unset: false,
        })
        .unwrap();
        assert!(b.check_one("train.py", false).is_none());
        assert!(b.check_one("models/a.py", false).is_none());
        assert!(b.check_one("prepare.py", false).is_some());
        assert!(b.check_one("train.py", true).is_some());
        assert!(b.check_one("picidae.toml", false).is_some());
    }
}
