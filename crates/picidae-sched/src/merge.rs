//! Recording a decision, and what happens to a winner whose frontier moved while it ran: a
//! seventh `impl Runner` block.
//!
//! Every decision of an attempt that ran is recorded here ([`Runner::settle`]). A winner
//! advances the frontier only from the frontier it was judged against (the store refuses
//! otherwise, in the same transaction: `StoreError::FrontierMoved`). With several attempts in
//! flight, another may have been kept meanwhile; the winner is then not thrown away. It is
//! recorded as `merged`, and its change is three-way merged onto the new frontier as a **merge
//! candidate** (a replay, `replay.rs`, linked to it by `replay_of`), which is queued and judged
//! there like any candidate. Gains found in parallel stack, as kept changes do in series; a
//! change that conflicts with the new frontier is recorded as a rejected merge candidate naming
//! the conflicting files, which the next agent turn sees in its history.

use picidae_core::domain::FindingState;
use picidae_core::AttemptStatus;
use picidae_store::{Attempt, Decision, Evidence, StoreError};

use crate::lifecycle::{Fact, Step, Winner};
use crate::replay::ReplayOf;
use crate::runner::{one_line, Events, Finish, LoopEvent, Proposed, Runner};
use crate::SchedError;

/// The proposer recorded on a merge candidate.
pub const MERGE_PROPOSER: &str = "merge";

/// How a verified candidate's finding concludes, recorded with its attempt's decision.
pub(crate) struct Conclusion {
    pub finding_id: i64,
    pub state: FindingState,
    pub evidence: Evidence,
    pub reason: String,
}

impl Runner<'_> {
    /// Record `d` for `attempt` (with its finding's conclusion, if verified), then update the
    /// frontier ref, the history and `events`. A winner whose frontier moved meanwhile becomes
    /// a merge candidate (see the module docs).
    pub(crate) fn settle(
        &mut self,
        attempt: &Attempt,
        d: Decision,
        conclusion: Option<Conclusion>,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        match self.store_decision(attempt, &d, conclusion.as_ref(), events) {
            Err(SchedError::Store(StoreError::FrontierMoved { .. })) if d.advance_frontier => {
                self.merge_winner(attempt, d, conclusion, events)
            }
            Err(e) => Err(e),
            Ok(()) => self.after_decision(attempt, d, events),
        }
    }

    fn store_decision(
        &mut self,
        attempt: &Attempt,
        d: &Decision,
        conclusion: Option<&Conclusion>,
        events: Events<'_>,
    ) -> Result<(), SchedError> {
        let Some(c) = conclusion else {
            return Ok(self.project.store.decide_attempt(attempt.id, d)?);
        };
        self.project.store.conclude_finding(
            c.finding_id,
            c.state,
            &c.evidence,
            &c.reason,
            attempt.id,
            d,
        )?;
        events(&LoopEvent::Judged {
            seq: attempt.seq,
            finding_id: c.finding_id,
            state: c.state,
            reason: c.reason.clone(),
        });
        Ok(())
    }

    /// `attempt` beat the frontier it was judged against, which is no longer the frontier:
    /// record it as merged and queue its change, merged onto the new frontier, as a new
    /// attempt. A run that breached its containment is rejected instead, and nothing merges.
    fn merge_winner(
        &mut self,
        attempt: &Attempt,
        won: Decision,
        conclusion: Option<Conclusion>,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        self.program = self.project.store.program_by_id(self.program.id)?;
        // The state the store has (the caller's copy may predate the start).
        let attempt = &self.project.store.attempt(attempt.id)?;
        let frontier = self.frontier_commit();
        let pending = self.pending_merge()?;
        let winner = Winner {
            breached: self
                .project
                .store
                .all_runs_of_attempt(attempt.id)?
                .iter()
                .any(|r| r.breach.is_some()),
            verifies: self.policy.verifies(),
            holds_new_frontier: match attempt.commit.as_deref() {
                Some(c) if c != frontier => self.repo.is_ancestor(&frontier, c)?,
                _ => false,
            },
            pending_merge: pending.is_some(),
        };
        let stack = match self.step(attempt, Fact::WonOnMovedFrontier(winner))? {
            Step::RejectBreach => {
                self.reject_breached(attempt, events)?;
                return Ok(Finish::Decided(AttemptStatus::Rejected));
            }
            Step::Rejudge => return self.rejudge_on_frontier(attempt, won, events),
            Step::MergeCandidate { stack } => stack,
            other => return Err(self.out_of_order(attempt, &other)),
        };
        let of = ReplayOf {
            original: attempt,
            hypothesis: format!(
                "merge of #{}: {}",
                attempt.seq,
                one_line(&attempt.hypothesis)
            ),
            why: format!(
                "merge of #{} (it won on a frontier that moved while it ran)",
                attempt.seq
            ),
            verify_all_seeds: false,
            onto: pending.filter(|_| stack),
        };
        let candidate = self.insert_replay(&of, MERGE_PROPOSER)?;
        let merged = format!(
            "won on its frontier, which another attempt replaced while it ran: merged onto the \
             new frontier as #{}",
            candidate.seq
        );
        let d = Decision {
            status: AttemptStatus::Merged,
            primary_value: won.primary_value,
            note: Some(match &won.note {
                Some(n) => format!("{n}; {merged}"),
                None => merged,
            }),
            advance_frontier: false,
            judged_against: None,
        };
        self.store_decision(attempt, &d, conclusion.as_ref(), events)?;
        let finish = self.after_decision(attempt, d, events)?;
        let candidate_decided = match self.replay_into(&candidate, &of, events)? {
            Proposed::Decided(status) => Some(status),
            _ => None,
        };
        debug_assert!(matches!(finish, Finish::Decided(AttemptStatus::Merged)));
        Ok(Finish::Merged(candidate_decided))
    }

    /// The newest merge candidate not yet decided that is built on the current frontier: a new
    /// one goes on top of it (stacked), so wins found together land together, in as many
    /// decisions as there are wins rather than as many rounds of runs.
    fn pending_merge(&self) -> Result<Option<String>, SchedError> {
        let frontier = self.frontier_commit();
        Ok(self
            .project
            .store
            .undecided_attempts(self.program.id)?
            .into_iter()
            .filter(|a| a.proposer == MERGE_PROPOSER && a.parent_commit == frontier)
            .filter_map(|a| a.commit)
            .next_back())
    }

    /// `attempt` won against its parent, and the new frontier is an ancestor of its commit (a
    /// merge candidate it was stacked on was kept): what it ran is the new frontier plus its
    /// own change, so its runs judge it against the new frontier directly.
    fn rejudge_on_frontier(
        &mut self,
        attempt: &Attempt,
        won: Decision,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        let frontier = self.frontier_commit();
        let goal = self.contract.primary().goal;
        let better = match (won.primary_value, self.program.frontier_value) {
            (Some(v), Some(f)) => goal.improves(v, f, self.policy.min_improvement),
            _ => false,
        };
        let held = format!(
            "the frontier moved to #{} while it ran, which its change builds on: judged against it",
            self.frontier_seq()?
        );
        self.project
            .store
            .set_attempt_parent(attempt.id, &frontier)?;
        let attempt = self.project.store.attempt(attempt.id)?;
        let status = match self.step(&attempt, Fact::Rejudged { better })? {
            Step::Decide(status) => status,
            other => return Err(self.out_of_order(&attempt, &other)),
        };
        let d = Decision {
            status,
            primary_value: won.primary_value,
            note: Some(if better {
                held
            } else {
                format!("{held}, and it is not better")
            }),
            advance_frontier: better,
            judged_against: self.program.frontier_attempt_id,
        };
        self.settle(&attempt, d, None, events)
    }

    /// The sequence number of the frontier attempt (0 when there is none).
    fn frontier_seq(&self) -> Result<i64, SchedError> {
        Ok(match self.program.frontier_attempt_id {
            Some(id) => self.project.store.attempt(id)?.seq,
            None => 0,
        })
    }
}
