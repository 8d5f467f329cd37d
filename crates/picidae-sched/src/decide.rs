//! Deciding an attempt from its seeds: plain keep/revert on their mean, or screening on one
//! seed and verification of a candidate as a finding: a `impl Runner` block. The statistics
//! are `verify.rs`'s, the hidden evaluator's guard `judging.rs`'s, the recording `merge.rs`'s.

use picidae_core::domain::FindingState;
use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_store::{Attempt, Decision, Evidence};

use crate::cancels::CANCELLED_BY_USER;
use crate::lifecycle::{self, Fact, Step};
use crate::merge::Conclusion;
use crate::runner::{Events, Finish, LoopEvent, LoopOptions, Runner, SeedResult};
use crate::verify::Judgement;
use crate::SchedError;

impl Runner<'_> {
    /// The step `a` takes on `fact` ([`crate::lifecycle`]); a fact out of place for its state
    /// is an error of the harness, reported rather than acted on.
    pub(crate) fn step(&self, a: &Attempt, fact: Fact) -> Result<Step, SchedError> {
        lifecycle::next(a.status, fact).map_err(|e| SchedError::Program {
            program: self.program.name.clone(),
            message: format!("attempt #{}: {e}", a.seq),
        })
    }

    /// The error for a step its caller does not take in that place.
    pub(crate) fn out_of_order(&self, a: &Attempt, step: &Step) -> SchedError {
        SchedError::Program {
            program: self.program.name.clone(),
            message: format!(
                "attempt #{} ({}): unexpected step {step:?}",
                a.seq, a.status
            ),
        }
    }

    /// A finding for `attempt_id` against the current frontier, under verification (`why`
    /// says how it got there).
    pub(crate) fn open_finding(
        &mut self,
        attempt_id: i64,
        why: &str,
    ) -> Result<picidae_store::Finding, SchedError> {
        let incumbent = self.program.frontier_attempt_id.unwrap_or(attempt_id);
        let f = self.project.store.create_finding(
            self.program.id,
            attempt_id,
            incumbent,
            &self.contract.primary_metric,
            Some(&self.fp_hash),
        )?;
        self.project
            .store
            .move_finding(f.id, FindingState::Verifying, None, why)?;
        Ok(f)
    }

    /// Screen on one seed; a candidate that beats the frontier gets the policy's remaining
    /// seeds at once (verification before new exploration) and is judged statistically.
    /// Under `policy.sequential` (the default) seeds are added one at a time instead
    /// (`stepwise.rs`).
    pub(crate) fn verify_attempt(
        &mut self,
        attempt: &Attempt,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        if self.policy.sequential {
            return self.verify_sequential(attempt, opts, events);
        }
        let goal = self.contract.primary().goal;
        let mut finding = self.project.store.finding_for_attempt(attempt.id)?;
        if finding.is_none() {
            // The contract's screen stage, where it declares one, stands in for the one-seed
            // screen below.
            match self.pass_screen(attempt, opts, events)? {
                Ok(passed) => finding = passed,
                Err(end) => return Ok(end),
            }
        }
        if finding.is_none() {
            let Some(screen) = self.run_seeds(attempt, 1, opts, events)? else {
                return Ok(Finish::Interrupted);
            };
            let first = &screen[0];
            // With `policy.paired`, the screen compares the seed with the incumbent's run on
            // the same seed where it has one (their shared noise cancels), else with the
            // frontier's mean.
            let frontier = self.program.frontier_value.unwrap_or(f64::NAN);
            let pair = match (self.policy.paired, self.program.frontier_attempt_id) {
                (true, Some(inc)) => self
                    .incumbent_runs(inc)?
                    .iter()
                    .find(|r| r.seed == first.seed)
                    .and_then(|r| r.primary_value),
                _ => None,
            };
            let against = pair.unwrap_or(frontier);
            let beats = first.status == RunStatus::Succeeded
                && first
                    .value
                    .is_some_and(|v| goal.improves(v, against, self.policy.min_improvement));
            if !beats {
                let mut d = self.plain_decision(attempt, &screen);
                if d.status == AttemptStatus::Kept {
                    // Beating the frontier's mean is not enough where the pair says otherwise.
                    d.status = AttemptStatus::Discarded;
                    d.advance_frontier = false;
                }
                if d.status == AttemptStatus::Discarded {
                    d.note = Some(
                        if pair.is_some() {
                            "screened out: did not beat the incumbent on the same first seed"
                        } else {
                            "screened out: did not beat the frontier on its first seed"
                        }
                        .into(),
                    );
                }
                return self.settle(attempt, d, None, events);
            }
            let f = self.open_finding(
                attempt.id,
                &format!("queued {} more seeds", self.policy.seeds - 1),
            )?;
            events(&LoopEvent::Verifying {
                seq: attempt.seq,
                finding_id: f.id,
                seeds: self.policy.seeds,
            });
            finding = Some(self.project.store.finding(f.id)?);
        }
        let finding = finding.ok_or_else(|| SchedError::Program {
            program: self.program.name.clone(),
            message: format!("attempt {} lost its finding", attempt.seq),
        })?;
        let Some(results) = self.run_seeds(attempt, self.policy.seeds as i64, opts, events)? else {
            return Ok(Finish::Interrupted);
        };
        let judgement = if let Some(bad) = results.iter().find(|r| r.status != RunStatus::Succeeded)
        {
            Judgement {
                validated: false,
                blocked: false,
                evidence: Evidence {
                    n_candidate: Some(results.len() as i64),
                    ..Default::default()
                },
                reason: if bad.status == RunStatus::Cancelled {
                    format!(
                        "not verified: seed {} (run {}) was {CANCELLED_BY_USER}",
                        bad.seed, bad.run_id
                    )
                } else {
                    format!("seed {} ended {}", bad.seed, bad.status)
                },
            }
        } else {
            self.judge_candidate(&finding, &results)?
        };
        self.record_judgement(attempt, &finding, &results, judgement, events)
    }

    /// Record a verified candidate's judgement: its finding's state, its attempt's decision
    /// (kept on a validated finding, at the mean of its seeds) and the frontier move.
    pub(crate) fn record_judgement(
        &mut self,
        attempt: &Attempt,
        finding: &picidae_store::Finding,
        results: &[SeedResult],
        judgement: Judgement,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        let state = if judgement.validated {
            FindingState::Validated
        } else if judgement.blocked {
            FindingState::Verifying
        } else {
            FindingState::Refuted
        };
        let values: Vec<f64> = results.iter().filter_map(|r| r.value).collect();
        let mean = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        let d = Decision {
            status: if judgement.validated {
                AttemptStatus::Kept
            } else {
                AttemptStatus::Discarded
            },
            primary_value: mean,
            note: Some(format!(
                "finding {} {state}: {}",
                finding.id, judgement.reason
            )),
            advance_frontier: judgement.validated,
            judged_against: self.program.frontier_attempt_id,
        };
        let conclusion = Conclusion {
            finding_id: finding.id,
            state,
            evidence: judgement.evidence,
            reason: judgement.reason,
        };
        self.settle(attempt, d, Some(conclusion), events)
    }

    /// Keep/revert on the mean of the seeds; any failed seed fails the attempt.
    pub(crate) fn plain_decision(&self, attempt: &Attempt, results: &[SeedResult]) -> Decision {
        let values: Vec<f64> = results
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .filter_map(|r| r.value)
            .collect();
        let mean = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        if values.len() < results.len() || mean.is_none() {
            let statuses: Vec<String> = results.iter().map(|r| r.status.to_string()).collect();
            // Only a run a person cancelled reaches a decision as `cancelled`.
            let note = match results.iter().find(|r| r.status == RunStatus::Cancelled) {
                Some(r) => format!(
                    "run {} (seed {}) {CANCELLED_BY_USER}; runs: {}",
                    r.run_id,
                    r.seed,
                    statuses.join(", ")
                ),
                None => format!("runs: {}", statuses.join(", ")),
            };
            return Decision {
                status: AttemptStatus::Failed,
                primary_value: mean,
                note: Some(note),
                advance_frontier: false,
                judged_against: None,
            };
        }
        let mean = mean.unwrap_or(f64::NAN);
        let goal = self.contract.primary().goal;
        let better = attempt.kind == AttemptKind::Baseline
            || match self.program.frontier_value {
                Some(f) => goal.improves(mean, f, self.policy.min_improvement),
                None => true,
            };
        Decision {
            status: if better {
                AttemptStatus::Kept
            } else {
                AttemptStatus::Discarded
            },
            primary_value: Some(mean),
            note: None,
            advance_frontier: better,
            // The baseline measures the frontier; everything else must beat the one it was
            // judged against, still in place when it is recorded (`merge.rs`).
            judged_against: if attempt.kind == AttemptKind::Baseline {
                None
            } else {
                self.program.frontier_attempt_id
            },
        }
    }
}
