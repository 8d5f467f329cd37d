//! An attempt's life as pure transitions: [`next`] takes the state an attempt is in and a
//! [`Fact`] the harness learned about it, and says which [`Step`] to take. It reads nothing
//! and writes nothing; the driver (`driver.rs`), the workers and the merge logic (`merge.rs`)
//! gather the facts, ask, and perform the step through the store and git. So the decisions
//! that matter under concurrency (replay a stale attempt, admit or refuse a start, merge or
//! re-judge a winner whose frontier moved, reject one that breached its containment) are unit
//! tested here without a repository or a process.
//!
//! The states are [`AttemptStatus`]; ARCHITECTURE.md draws the graph. In short:
//!
//! ```text
//! proposed ─gate─▶ queued ─slot, fresh, admitted─▶ running ─judged─▶ kept | discarded | failed
//!    │               │                                 │
//!    ▼               └─stale─▶ rejected + replay       ├─won, frontier moved─▶ merged + merge candidate
//! duplicate | rejected                                 └─breached─▶ rejected
//! ```
//!
//! A final state takes no fact: asking is an [`Illegal`] transition, which the caller reports
//! rather than acts on.

use picidae_core::AttemptStatus;

/// What the harness learned about an attempt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fact {
    /// The driver offers a queued attempt a start.
    Offered {
        /// The program holds fewer attempts in flight than its concurrency.
        free_slot: bool,
        /// It was built on a frontier that has moved since (an explored attempt; a baseline
        /// or a measurement runs where it is).
        stale: bool,
    },
    /// The budgets' verdict on starting it with what the attempts in flight may still spend:
    /// `Err` says why not.
    Admission(Result<(), String>),
    /// It beat the frontier it was built on, and the store refused to advance the frontier
    /// because that frontier is no longer the program's.
    WonOnMovedFrontier(Winner),
    /// A winner re-judged against the new frontier on its own runs: whether it beats it.
    Rejudged { better: bool },
}

/// What is known of a winner whose frontier moved while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Winner {
    /// One of its runs breached its containment (the sandbox denied it something, or it
    /// rewrote a non-editable file).
    pub breached: bool,
    /// The policy verifies candidates on several seeds (findings), rather than plain
    /// keep/revert.
    pub verifies: bool,
    /// The new frontier is an ancestor of its commit: a merge candidate it was stacked on was
    /// kept, so what it ran is the new frontier plus its own change.
    pub holds_new_frontier: bool,
    /// A merge candidate built on the new frontier is still undecided.
    pub pending_merge: bool,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing now: no slot is free.
    Wait,
    /// Reject it as stale and queue its change replayed onto the frontier.
    Replay,
    /// Ask the budgets.
    Admit,
    /// Start its runs.
    Start,
    /// Do not start it: the budgets are spent (why).
    Refuse(String),
    /// Reject it for breaching its containment, whatever its metrics; nothing merges.
    RejectBreach,
    /// Judge it against the new frontier on its own runs.
    Rejudge,
    /// Record it as `merged` and queue its change three-way merged onto the new frontier;
    /// `stack`: onto the newest pending merge candidate, so wins found together land together.
    MergeCandidate { stack: bool },
    /// Record this decision.
    Decide(AttemptStatus),
}

/// A fact that does not apply to the state the attempt is in.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("an attempt that is {state} cannot take {fact:?}")]
pub(crate) struct Illegal {
    pub state: AttemptStatus,
    pub fact: Fact,
}

/// The step an attempt in `state` takes on `fact`.
pub(crate) fn next(state: AttemptStatus, fact: Fact) -> Result<Step, Illegal> {
    use AttemptStatus as S;
    Ok(match (state, fact) {
        (S::Queued, Fact::Offered { stale: true, .. }) => Step::Replay,
        (S::Queued, Fact::Offered { free_slot, .. }) => {
            if free_slot {
                Step::Admit
            } else {
                Step::Wait
            }
        }
        (S::Queued, Fact::Admission(Ok(()))) => Step::Start,
        (S::Queued, Fact::Admission(Err(why))) => Step::Refuse(why),
        (S::Running, Fact::WonOnMovedFrontier(w)) => {
            if w.breached {
                Step::RejectBreach
            } else if !w.verifies && w.holds_new_frontier {
                // Plain keep/revert judges on one run, which it already has on this frontier.
                // Under verification the candidate's seeds were compared with the old
                // incumbent's, so it is merged and verified again instead.
                Step::Rejudge
            } else {
                Step::MergeCandidate {
                    stack: w.pending_merge,
                }
            }
        }
        (S::Running, Fact::Rejudged { better }) => {
            Step::Decide(if better { S::Kept } else { S::Discarded })
        }
        (state, fact) => return Err(Illegal { state, fact }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptStatus as S;

    fn winner() -> Winner {
        Winner {
            breached: false,
            verifies: false,
            holds_new_frontier: false,
            pending_merge: false,
        }
    }

    fn offered(free_slot: bool, stale: bool) -> Fact {
        Fact::Offered { free_slot, stale }
    }

    #[test]
    fn a_stale_queued_attempt_is_replayed_before_anything_else() {
        // Even with no free slot: the replay runs nothing, and the queue then holds the
        // replay, built on the frontier of now.
        assert_eq!(next(S::Queued, offered(false, true)), Ok(Step::Replay));
        assert_eq!(next(S::Queued, offered(true, true)), Ok(Step::Replay));
    }

    #[test]
    fn a_fresh_queued_attempt_waits_for_a_slot_then_asks_the_budgets() {
        assert_eq!(next(S::Queued, offered(false, false)), Ok(Step::Wait));
        assert_eq!(next(S::Queued, offered(true, false)), Ok(Step::Admit));
        assert_eq!(next(S::Queued, Fact::Admission(Ok(()))), Ok(Step::Start));
        assert_eq!(
            next(S::Queued, Fact::Admission(Err("max_runs".into()))),
            Ok(Step::Refuse("max_runs".into()))
        );
    }

    #[test]
    fn a_winner_that_breached_is_rejected_however_it_scored() {
        for verifies in [false, true] {
            for holds in [false, true] {
                let w = Winner {
                    breached: true,
                    verifies,
                    holds_new_frontier: holds,
                    pending_merge: true,
                };
                assert_eq!(
                    next(S::Running, Fact::WonOnMovedFrontier(w)),
                    Ok(Step::RejectBreach)
                );
            }
        }
    }

    #[test]
    fn a_winner_on_a_moved_frontier_becomes_a_merge_candidate_stacked_on_a_pending_one() {
        assert_eq!(
            next(S::Running, Fact::WonOnMovedFrontier(winner())),
            Ok(Step::MergeCandidate { stack: false })
        );
        let w = Winner {
            pending_merge: true,
            ..winner()
        };
        assert_eq!(
            next(S::Running, Fact::WonOnMovedFrontier(w)),
            Ok(Step::MergeCandidate { stack: true })
        );
    }

    #[test]
    fn a_winner_holding_the_new_frontier_is_rejudged_only_under_plain_keep_revert() {
        let plain = Winner {
            holds_new_frontier: true,
            ..winner()
        };
        assert_eq!(
            next(S::Running, Fact::WonOnMovedFrontier(plain)),
            Ok(Step::Rejudge)
        );
        let verified = Winner {
            verifies: true,
            ..plain
        };
        assert_eq!(
            next(S::Running, Fact::WonOnMovedFrontier(verified)),
            Ok(Step::MergeCandidate { stack: false })
        );
        assert_eq!(
            next(S::Running, Fact::Rejudged { better: true }),
            Ok(Step::Decide(S::Kept))
        );
        assert_eq!(
            next(S::Running, Fact::Rejudged { better: false }),
            Ok(Step::Decide(S::Discarded))
        );
    }

    #[test]
    fn facts_out_of_place_are_illegal() {
        // A start is offered only to a queued attempt; a running one is never re-admitted.
        assert!(next(S::Running, offered(true, false)).is_err());
        assert!(next(S::Proposed, Fact::Admission(Ok(()))).is_err());
        // Only a running attempt wins.
        assert!(next(S::Queued, Fact::WonOnMovedFrontier(winner())).is_err());
        // A decided attempt takes no fact at all.
        let all = [
            offered(true, false),
            offered(true, true),
            Fact::Admission(Ok(())),
            Fact::WonOnMovedFrontier(winner()),
            Fact::Rejudged { better: true },
        ];
        for state in [
            S::Kept,
            S::Discarded,
            S::Failed,
            S::Rejected,
            S::Duplicate,
            S::Merged,
        ] {
            assert!(state.is_final());
            for fact in &all {
                let err = next(state, fact.clone()).unwrap_err();
                assert_eq!(err.state, state);
                assert_eq!(&err.fact, fact);
            }
        }
    }
}
