//! The `[screen]` promotion stage (see `picidae_core::contract::screen`): before a candidate
//! gets a full-budget seed, it runs once on the screen seed with the stage's shorter budget
//! and is compared with the incumbent's screen run on the same seed. A candidate worse by more
//! than the stage's margin is discarded there; one that passes goes on to verification, and
//! the stage's rule and numbers are recorded with its finding. The incumbent's screen run is
//! made once, by the first candidate that needs it, and shared by all the others.

use picidae_core::{AttemptStatus, RunStatus, SCREEN_SEED};
use picidae_store::{Attempt, Decision, Finding};

use crate::runner::{Events, Finish, LoopEvent, LoopOptions, Runner, SeedResult};
use crate::stepwise::TopUpTurn;
use crate::SchedError;

/// What the screen stage decided.
pub(crate) enum Screen {
    /// No stage: the contract declares none, or there is nothing to compare with.
    Skipped,
    /// On to the full stage; what the stage saw, for the finding.
    Passed(String),
    /// Discarded at the screen; why, with the numbers.
    Failed(String),
    /// The candidate's screen run did not succeed: it fails as a run would.
    RunFailed(Vec<SeedResult>),
    /// The loop is stopping.
    Interrupted,
}

impl Runner<'_> {
    /// The screen stage of a candidate that has no finding yet, against the frontier: `Ok(None)`
    /// when there is no stage, `Ok(Some(finding))` when it passed (the finding, opened under
    /// verification, records the stage's rule and numbers), or the attempt's end when it was
    /// decided there (discarded, or failed on its screen run) or the loop is stopping.
    pub(crate) fn pass_screen(
        &mut self,
        attempt: &Attempt,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Result<Option<Finding>, Finish>, SchedError> {
        // A retry asks for the full stage by name.
        if attempt.proposer == crate::retry::RETRY_PROPOSER {
            return Ok(Ok(None));
        }
        let incumbent = match self.program.frontier_attempt_id {
            Some(id) if id != attempt.id => Some(self.project.store.attempt(id)?),
            _ => None,
        };
        match self.screen_stage(attempt, incumbent.as_ref(), opts, events)? {
            Screen::Skipped => Ok(Ok(None)),
            Screen::Passed(why) => {
                let f = self.open_finding(attempt.id, &why)?;
                events(&LoopEvent::Verifying {
                    seq: attempt.seq,
                    finding_id: f.id,
                    seeds: self.policy.seed_cap(),
                });
                Ok(Ok(Some(self.project.store.finding(f.id)?)))
            }
            Screen::Failed(note) => {
                let d = Decision {
                    status: AttemptStatus::Discarded,
                    primary_value: None,
                    note: Some(note),
                    advance_frontier: false,
                    judged_against: None,
                };
                Ok(Err(self.settle(attempt, d, None, events)?))
            }
            Screen::RunFailed(results) => {
                let mut d = self.plain_decision(attempt, &results);
                d.note = d.note.map(|n| format!("screen stage: {n}"));
                Ok(Err(self.settle(attempt, d, None, events)?))
            }
            Screen::Interrupted => Ok(Err(Finish::Interrupted)),
        }
    }

    /// Run the screen stage of `attempt` against `incumbent` (see the module docs).
    fn screen_stage(
        &mut self,
        attempt: &Attempt,
        incumbent: Option<&Attempt>,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Screen, SchedError> {
        let (Some(spec), Some(inc)) = (self.contract.screen.clone(), incumbent) else {
            return Ok(Screen::Skipped);
        };
        let Some(mine) = self.run_seed_range(attempt, SCREEN_SEED, 1, opts, events)? else {
            return Ok(Screen::Interrupted);
        };
        let Some(mine_value) = succeeded_value(&mine) else {
            return Ok(Screen::RunFailed(mine));
        };
        let theirs = {
            // Candidates in flight together share the incumbent's screen run.
            let _turn = TopUpTurn::take(self.project.root(), inc.id);
            self.run_seed_range(inc, SCREEN_SEED, 1, opts, events)?
        };
        let Some(theirs) = theirs else {
            return Ok(Screen::Interrupted);
        };
        let rule = spec.rule();
        let Some(their_value) = succeeded_value(&theirs) else {
            // Nothing to compare with: the candidate is not held back by the incumbent's run.
            return Ok(Screen::Passed(format!(
                "screen stage skipped: the incumbent's screen run did not succeed (rule: {rule})"
            )));
        };
        let goal = self.contract.primary().goal;
        let seen = format!(
            "screen run {mine_value:.6} against the incumbent's {their_value:.6} \
             (rule: {rule})"
        );
        if goal.gain(mine_value, their_value) >= -spec.margin {
            Ok(Screen::Passed(format!("screen stage passed: {seen}")))
        } else {
            Ok(Screen::Failed(format!(
                "screened out at the screen stage: {seen}"
            )))
        }
    }
}

fn succeeded_value(results: &[SeedResult]) -> Option<f64> {
    results
        .iter()
        .find(|r| r.status == RunStatus::Succeeded)
        .and_then(|r| r.value)
        .filter(|v| v.is_finite())
}
