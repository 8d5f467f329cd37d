//! Sequential verification of a candidate (`policy.sequential`, the default): a `impl Runner`
//! block. The statistics are `picidae_core::sequential`'s; what is learned of the noise is
//! `noise.rs`'s.
//!
//! Seeds are added one at a time, from seed 0 (the screen) up to `policy.max_seeds`, and each
//! look asks the sequential test whether the evidence is decisive: a clear loser is screened
//! out on its first seed, a clear winner is kept after `policy.seeds` (the fewest a keep
//! needs), and a candidate whose interval still straddles its threshold gets another seed. With
//! `policy.paired` each seed of the candidate is compared with the incumbent's run on the same
//! seed (common random numbers); a seed the incumbent lacks on this machine is run for it
//! first, so pairs always exist. The test spends its alpha over the looks where a keep may be
//! declared, so stopping early never raises the false-keep rate above `alpha`. A winner is then
//! judged as every candidate is (`verify::judge`: the testing family, the noise floor,
//! calibration, the hidden evaluator), on the sequential test's interval.
//!
//! Everything it needs is recomputed from the runs in the store at each look, so an attempt
//! interrupted between two seeds resumes where it stopped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, LazyLock, Mutex};

use picidae_core::sequential::{look, look_against_mean, Look, Verdict};
use picidae_core::{AttemptStatus, RunStatus};
use picidae_store::{Attempt, Evidence, Run};

use crate::noise::{seed_diffs, sought_effect};
use crate::runner::{Events, Finish, LoopEvent, LoopOptions, Runner, SeedResult};
use crate::verify::SequentialEvidence;
use crate::SchedError;

impl Runner<'_> {
    /// Verify `attempt` seed by seed (see the module docs) and record its decision.
    pub(crate) fn verify_sequential(
        &mut self,
        attempt: &Attempt,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        let goal = self.contract.primary().goal;
        let cap = self.policy.seed_cap().max(1) as i64;
        let fewest = (self.policy.seeds as i64).clamp(1, cap);
        let incumbent = match self.program.frontier_attempt_id {
            Some(id) => Some(self.project.store.attempt(id)?),
            None => None,
        };
        let prior = self.noise_prior(self.policy.paired, attempt.id)?;
        let mut finding = self.project.store.finding_for_attempt(attempt.id)?;
        // A retry is not screened: its first look is the first that may keep it.
        let retry = attempt.proposer == crate::retry::RETRY_PROPOSER;
        let mut k = if retry { fewest } else { 1 };
        if finding.is_none() {
            match self.pass_screen(attempt, opts, events)? {
                Ok(passed) => finding = passed,
                Err(end) => return Ok(end),
            }
        }
        loop {
            let Some(results) = self.run_seeds(attempt, k, opts, events)? else {
                return Ok(Finish::Interrupted);
            };
            if let Some(bad) = results.iter().find(|r| r.status != RunStatus::Succeeded) {
                if finding.is_none() {
                    let d = self.plain_decision(attempt, &results);
                    return self.settle(attempt, d, None, events);
                }
                let reason = format!("seed {} ended {}", bad.seed, bad.status);
                return self.conclude(attempt, finding, &results, None, reason, events);
            }
            let inc = match (&incumbent, self.policy.paired) {
                (Some(inc), true) => {
                    // The incumbent's runs on these seeds, run now where it lacks them here.
                    // Candidates in flight together pair with the same incumbent: one runs a
                    // missing seed, the others wait and then find it in the store.
                    let _turn = TopUpTurn::take(self.project.root(), inc.id);
                    if self.run_seed_range(inc, 0, k, opts, events)?.is_none() {
                        return Ok(Finish::Interrupted);
                    }
                    self.incumbent_runs(inc.id)?
                }
                (Some(inc), false) => self.incumbent_runs(inc.id)?,
                (None, _) => Vec::new(),
            };
            let diffs = seed_diffs(goal, &results, &inc, self.policy.paired);
            let noise = prior.for_diffs(&diffs);
            let design = Look {
                diffs: &diffs.values,
                noise,
                max_looks: cap as usize,
                first_win: fewest as usize,
                alpha: self.policy.alpha,
                min_effect: self.policy.min_improvement,
                futility_effect: sought_effect(
                    &self.policy,
                    prior.learned_for(&diffs),
                    &diffs,
                    (fewest as usize, cap as usize),
                ),
            };
            let verdict = if diffs.paired {
                look(&design)
            } else {
                look_against_mean(&design, diffs.n_incumbent)
            };
            let decisive = !matches!(verdict, Verdict::Continue { .. }) || k >= cap;
            if !decisive {
                if finding.is_none() {
                    let f = self.open_finding(
                        attempt.id,
                        &format!("screen passed; seeds added one at a time up to {cap}"),
                    )?;
                    events(&LoopEvent::Verifying {
                        seq: attempt.seq,
                        finding_id: f.id,
                        seeds: cap as u32,
                    });
                    finding = Some(self.project.store.finding(f.id)?);
                }
                k = next_look(k, fewest, cap, opts.parallel);
                continue;
            }
            let seq = SequentialEvidence::from_verdict(&verdict, diffs.paired, cap as usize);
            if finding.is_none() && !matches!(verdict, Verdict::Win { .. }) {
                // Decided on the screen: no finding is opened for a clear loser.
                let mut d = self.plain_decision(attempt, &results);
                d.status = AttemptStatus::Discarded;
                d.advance_frontier = false;
                d.note = Some(format!("screened out on its first seed: {}", seq.reason()));
                return self.settle(attempt, d, None, events);
            }
            let reason = seq.reason();
            return self.conclude(attempt, finding, &results, Some(seq), reason, events);
        }
    }

    /// The incumbent's succeeded runs on this machine (what a candidate is compared with).
    pub(crate) fn incumbent_runs(&self, incumbent: i64) -> Result<Vec<Run>, SchedError> {
        Ok(self
            .project
            .store
            .runs_of_attempt(incumbent)?
            .into_iter()
            .filter(|r| {
                r.status == RunStatus::Succeeded && r.fingerprint.as_deref() == Some(&self.fp_hash)
            })
            .collect())
    }

    /// Record the end of a verification: a winner of the sequential test is judged in full
    /// (`verify::judge`); anything else is refuted with `reason`.
    fn conclude(
        &mut self,
        attempt: &Attempt,
        finding: Option<picidae_store::Finding>,
        results: &[SeedResult],
        seq: Option<SequentialEvidence>,
        reason: String,
        events: Events<'_>,
    ) -> Result<Finish, SchedError> {
        let finding = match finding {
            Some(f) => f,
            None => {
                let f = self.open_finding(attempt.id, "decided at once")?;
                self.project.store.finding(f.id)?
            }
        };
        let judgement = match seq {
            Some(s) if s.won => self.judge_candidate_with(&finding, results, Some(s))?,
            s => crate::verify::Judgement {
                validated: false,
                blocked: false,
                evidence: s
                    .map(|s| s.evidence(self.policy.confidence))
                    .unwrap_or_else(|| Evidence {
                        n_candidate: Some(results.len() as i64),
                        ..Default::default()
                    }),
                reason,
            },
        };
        self.record_judgement(attempt, &finding, results, judgement, events)
    }
}

/// The number of seeds at the look after one at `k` seeds: up to `parallel` more at once (they
/// run together), but never past the next look where a keep may be declared, so the test's
/// planned win-looks are all taken and its alpha holds. The looks in between only stop for
/// futility, which is non-binding: skipping them never raises the false-keep rate.
pub(crate) fn next_look(k: i64, fewest: i64, cap: i64, parallel: usize) -> i64 {
    let next_win = picidae_core::sequential::win_looks(fewest.max(1) as usize, cap as usize)
        .into_iter()
        .map(|w| w as i64)
        .find(|w| *w > k)
        .unwrap_or(cap);
    (k + parallel.max(1) as i64)
        .min(next_win)
        .clamp(k + 1, cap.max(k + 1))
}

/// The turn of one worker to run an incumbent's missing seeds, per (project, incumbent): the
/// workers of one process (`driver.rs`) take turns, so no seed of a shared incumbent runs
/// twice. One process drives a program at a time (its lock), so a process-wide turn is enough.
pub(crate) struct TopUpTurn {
    key: (PathBuf, i64),
}

struct TopUps {
    busy: Mutex<HashSet<(PathBuf, i64)>>,
    freed: Condvar,
}

static TOP_UPS: LazyLock<TopUps> = LazyLock::new(|| TopUps {
    busy: Mutex::new(HashSet::new()),
    freed: Condvar::new(),
});

impl TopUpTurn {
    /// Wait until no other worker tops up `incumbent` in `project`, then hold the turn until
    /// dropped.
    pub(crate) fn take(project: &Path, incumbent: i64) -> TopUpTurn {
        let key = (project.to_path_buf(), incumbent);
        let mut busy = TOP_UPS.busy.lock().unwrap_or_else(|e| e.into_inner());
        while busy.contains(&key) {
            busy = TOP_UPS.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        busy.insert(key.clone());
        TopUpTurn { key }
    }
}

impl Drop for TopUpTurn {
    fn drop(&mut self) {
        let mut busy = TOP_UPS.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.remove(&self.key);
        TOP_UPS.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::{next_look, TopUpTurn};

    #[test]
    fn looks_batch_up_to_the_next_win_look() {
        // One slot: one seed at a time.
        assert_eq!(next_look(1, 3, 8, 1), 2);
        assert_eq!(next_look(2, 3, 8, 1), 3);
        // Three slots: the screen, then straight to the first win-look (3), then to 6, then 8.
        assert_eq!(next_look(1, 3, 8, 3), 3);
        assert_eq!(next_look(3, 3, 8, 3), 6);
        assert_eq!(next_look(6, 3, 8, 3), 8);
        // Many slots never skip a win-look.
        assert_eq!(next_look(1, 2, 8, 16), 2);
        assert_eq!(next_look(2, 2, 8, 16), 4);
        assert_eq!(next_look(4, 2, 8, 16), 8);
    }

    #[test]
    fn one_worker_at_a_time_tops_up_an_incumbent() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let root = std::path::Path::new("/project");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let _turn = TopUpTurn::take(root, 7);
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    inside.fetch_sub(1, Ordering::SeqCst);
                });
            }
            // Another incumbent is not held up.
            s.spawn(|| drop(TopUpTurn::take(root, 8)));
        });
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }
}
