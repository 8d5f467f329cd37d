//! Judging a candidate: a third `impl Runner` block.
//!
//! This module owns what the loop asks of the evidence once an attempt's seeds have run: the
//! statistical judgement of a verified candidate (its samples, the incumbent's on this
//! environment, the testing family, calibration), the hidden evaluator's part in it (consulted
//! only when it can still change the decision, once per distinct set of artifacts), the
//! hidden guard of plain keep/revert (`seeds = 1`), and the evaluator's calibration on the
//! gold cases.

use std::path::{Path, PathBuf};

use picidae_core::{AttemptKind, AttemptStatus};
use picidae_store::{Attempt, Calibration, Decision, Finding, HiddenResult, Run};

use crate::hidden::Evaluator;
use crate::runner::{Events, LoopEvent, Runner, SeedResult};
use crate::verify::{
    hidden_agrees, judge, HiddenSamples, JudgeInput, Judgement, SequentialEvidence, FLAG_OVERFIT,
};
use crate::SchedError;

impl Runner<'_> {
    /// Gather the candidate's and incumbent's samples (this environment only), their hidden
    /// results and the testing family, then judge.
    pub(crate) fn judge_candidate(
        &mut self,
        finding: &Finding,
        results: &[SeedResult],
    ) -> Result<Judgement, SchedError> {
        self.judge_candidate_with(finding, results, None)
    }

    /// [`judge_candidate`](Self::judge_candidate) on the sequential test's verdict, where
    /// verification was sequential.
    pub(crate) fn judge_candidate_with(
        &mut self,
        finding: &Finding,
        results: &[SeedResult],
        sequential: Option<SequentialEvidence>,
    ) -> Result<Judgement, SchedError> {
        let candidate: Vec<f64> = results.iter().filter_map(|r| r.value).collect();
        let incumbent_runs: Vec<Run> = self.incumbent_runs(finding.incumbent_attempt_id)?;
        let incumbent: Vec<f64> = incumbent_runs
            .iter()
            .filter_map(|r| r.primary_value)
            .collect();
        let family = self
            .project
            .store
            .testing_family(self.program.id, Some(finding.id))?;
        let noise_std = self.noise_floor()?.map(|f| f.std);
        let calibrated = if self.contract.gold.is_empty() {
            None
        } else {
            Some(
                self.project
                    .store
                    .latest_calibration(self.program.id)?
                    .is_some_and(|c| c.passed),
            )
        };
        let mut input = JudgeInput {
            goal: self.contract.primary().goal,
            candidate: &candidate,
            incumbent: &incumbent,
            noise_std,
            family: &family,
            hidden: None,
            calibrated,
            sequential: sequential.as_ref(),
        };
        // The hidden evaluator is consulted only when it can still change the decision: a
        // candidate the visible evidence refutes (or a failed calibration holds) is decided
        // without it.
        let visible = judge(&input, &self.policy);
        let Some(h) = self.contract.hidden.clone() else {
            return Ok(visible);
        };
        if !visible.validated {
            return Ok(visible);
        }
        let cand_ids: Vec<i64> = results.iter().map(|r| r.run_id).collect();
        let inc_ids: Vec<i64> = incumbent_runs.iter().map(|r| r.id).collect();
        let hidden_c = self.hidden_values(&cand_ids)?;
        let hidden_i = self.hidden_values(&inc_ids)?;
        input.hidden = Some(HiddenSamples {
            goal: h.goal,
            candidate: &hidden_c,
            incumbent: &hidden_i,
            tolerance: h.tolerance,
        });
        Ok(judge(&input, &self.policy))
    }

    /// With `[hidden]` and no verification (`seeds = 1`), a run that would be kept is kept only
    /// when the hidden evaluator agrees: its value on the candidate's run is better than on
    /// the frontier's runs on this environment (and, with `hidden.tolerance`, by enough). A
    /// deterministic benchmark with one seed is guarded like a verified one. The note names
    /// no hidden number.
    pub(crate) fn hidden_guard(
        &mut self,
        attempt: &Attempt,
        results: &[SeedResult],
        d: &mut Decision,
    ) -> Result<(), SchedError> {
        let Some(h) = self.contract.hidden.clone() else {
            return Ok(());
        };
        if d.status != AttemptStatus::Kept || attempt.kind != AttemptKind::Explore {
            return Ok(());
        }
        let Some(incumbent) = self.program.frontier_attempt_id else {
            return Ok(());
        };
        let inc_runs: Vec<Run> = self.incumbent_runs(incumbent)?;
        let cand_ids: Vec<i64> = results.iter().map(|r| r.run_id).collect();
        let inc_ids: Vec<i64> = inc_runs.iter().map(|r| r.id).collect();
        let c = self.hidden_values(&cand_ids)?;
        let i = self.hidden_values(&inc_ids)?;
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let agrees = match (mean(&c), mean(&i)) {
            (Some(c), Some(i)) => {
                let visible_inc: Vec<f64> =
                    inc_runs.iter().filter_map(|r| r.primary_value).collect();
                let visible_rel = match (d.primary_value, mean(&visible_inc)) {
                    (Some(v), Some(m)) if m != 0.0 => {
                        Some(self.contract.primary().goal.gain(v, m) / m.abs())
                    }
                    _ => None,
                };
                hidden_agrees(h.goal.gain(c, i), i, visible_rel, h.tolerance)
            }
            _ => false,
        };
        if !agrees {
            d.status = AttemptStatus::Discarded;
            d.advance_frontier = false;
            d.note = Some(format!(
                "{FLAG_OVERFIT}: the visible metric improved but the hidden evaluator {}",
                if mean(&c).is_some() && mean(&i).is_some() {
                    "does not agree"
                } else {
                    "produced no valid result"
                }
            ));
        }
        Ok(())
    }

    fn evaluator<'a>(&'a self, hidden_dir: &'a Path, work_dir: &'a Path) -> Evaluator<'a> {
        Evaluator {
            repo: &self.repo,
            contract: &self.contract,
            commit: &self.program.base_commit,
            hidden_dir,
            data_dir: &self.data_dir,
            work_dir,
        }
    }

    fn hidden_dirs(&self) -> (PathBuf, PathBuf) {
        let cache = self.data_dir.parent().unwrap_or(&self.data_dir);
        (
            cache.join("hidden"),
            self.project.dir().join("hidden").join(&self.program.name),
        )
    }

    /// Hidden primary values of runs, evaluating (and storing) those not yet evaluated.
    pub(crate) fn hidden_values(&mut self, run_ids: &[i64]) -> Result<Vec<f64>, SchedError> {
        let primary = self
            .contract
            .hidden
            .as_ref()
            .and_then(|h| h.primary())
            .unwrap_or_default()
            .to_string();
        let (hidden_dir, work_dir) = self.hidden_dirs();
        std::fs::create_dir_all(&work_dir).map_err(|e| SchedError::io(&work_dir, e))?;
        let mut out = Vec::new();
        for &id in run_ids {
            let result = match self.project.store.hidden_result(id)? {
                Some(r) => r,
                None => {
                    let run = self.project.store.run(id)?;
                    let artifacts = run
                        .log_dir
                        .map(|d| PathBuf::from(d).join("artifacts"))
                        .unwrap_or_default();
                    // Identical artifacts (a deterministic run's seeds) are scored once.
                    let key = crate::artifacts::content_hash(&artifacts).ok();
                    let cached = key.as_ref().and_then(|k| self.hidden_cache.get(k)).cloned();
                    let r = match cached {
                        Some(c) => HiddenResult {
                            run_id: id,
                            evaluated_at: picidae_store::now_ms(),
                            ..c
                        },
                        None => self
                            .evaluator(&hidden_dir, &work_dir)
                            .evaluate_run(id, &artifacts)?,
                    };
                    if let Some(k) = key {
                        self.hidden_cache.insert(k, r.clone());
                    }
                    self.project.store.set_hidden_result(&r)?;
                    r
                }
            };
            if let Some(v) = result.metrics.get(&primary).filter(|v| v.is_finite()) {
                if result.ok {
                    out.push(*v);
                }
            }
        }
        Ok(out)
    }

    /// With gold cases in the contract, calibrate the evaluator once per base commit.
    pub(crate) fn calibrate_if_needed(&mut self, events: Events<'_>) -> Result<(), SchedError> {
        if self.contract.gold.is_empty() || self.contract.hidden.is_none() {
            return Ok(());
        }
        if let Some(c) = self.project.store.latest_calibration(self.program.id)? {
            if c.commit_sha == self.program.base_commit {
                return Ok(());
            }
        }
        let c = self.calibrate()?;
        events(&LoopEvent::Calibrated {
            passed: c.passed,
            rank_correlation: c.rank_correlation,
            max_error: c.max_error,
        });
        Ok(())
    }

    /// Run the evaluator on the contract's gold cases and record the result.
    pub fn calibrate(&mut self) -> Result<Calibration, SchedError> {
        let (hidden_dir, work_dir) = self.hidden_dirs();
        std::fs::create_dir_all(&work_dir).map_err(|e| SchedError::io(&work_dir, e))?;
        let mut c = self
            .evaluator(&hidden_dir, &work_dir)
            .calibrate(self.program.id)?;
        c.id = self.project.store.insert_calibration(&c)?;
        Ok(c)
    }
}
