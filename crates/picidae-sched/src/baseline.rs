//! Measuring a commit: the baseline (the first frontier and the noise floor of an
//! environment) and re-measurements for ground truth: a `impl Runner` block.

use std::path::PathBuf;

use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_store::{Decision, NewAttempt};

use crate::runner::{patch_hash, Events, Finish, LoopEvent, LoopOptions, Measurement, Runner};
use crate::SchedError;

impl Runner<'_> {
    pub(crate) fn baseline(
        &mut self,
        opts: &LoopOptions,
        events: Events<'_>,
    ) -> Result<(), SchedError> {
        let base = self.frontier_commit();
        let attempt = self.project.store.insert_attempt(&NewAttempt {
            program_id: self.program.id,
            kind: AttemptKind::Baseline,
            parent_commit: base.clone(),
            hypothesis: "baseline".into(),
            proposer: "picidae".into(),
            params: None,
        })?;
        self.record_commit(attempt.id, &base, &patch_hash(""), &[], None)?;
        let attempt = self.project.store.attempt(attempt.id)?;
        match self.run_attempt(&attempt, opts, events)? {
            Finish::Decided(AttemptStatus::Kept) => {
                if let Some(p) = self.power()? {
                    events(&LoopEvent::Power(p));
                }
                Ok(())
            }
            Finish::Decided(_) => {
                let runs = self.project.store.runs_of_attempt(attempt.id)?;
                let last = runs.last();
                let reason = last
                    .map(|r| {
                        let mut s = format!("run {} {}", r.id, r.status);
                        if !r.violations.is_empty() {
                            s.push_str(&format!(" ({})", r.violations.join("; ")));
                        }
                        if let Some(e) = &r.error {
                            s.push_str(&format!(" ({e})"));
                        }
                        s
                    })
                    .unwrap_or_else(|| "no run".into());
                let log = last
                    .and_then(|r| r.log_dir.clone())
                    .map(PathBuf::from)
                    .unwrap_or_default();
                Err(SchedError::BaselineFailed { reason, log })
            }
            Finish::Interrupted => Ok(()),
            Finish::Merged(_) => Err(SchedError::Program {
                program: self.program.name.clone(),
                message: "the baseline cannot be merged".into(),
            }),
        }
    }

    /// What verification can detect at the noise this program's runs have shown on this
    /// machine (`noise.rs`); `None` before two seeds of one attempt have run here.
    pub fn power(&self) -> Result<Option<crate::power::Power>, SchedError> {
        let prior = self.noise_prior(false, -1)?;
        let (Some(noise), Some(baseline)) = (prior.run, self.program.frontier_value) else {
            return Ok(None);
        };
        Ok(crate::power::power(
            &self.policy,
            noise,
            baseline,
            self.contract.primary(),
        ))
    }

    /// Re-measure a commit on fresh seeds `first..first + n`, visible and hidden metric per seed,
    /// recorded as an attempt of kind `measure` that is never compared with the frontier. For
    /// ground truth in benchmarks of the policy itself.
    pub fn measure(
        &mut self,
        commit: &str,
        first: i64,
        n: i64,
        label: &str,
    ) -> Result<Vec<Measurement>, SchedError> {
        self.measure_with(commit, (first, n), label, &LoopOptions::default())
    }

    /// [`measure`](Self::measure) with the loop's options (`parallel` seeds at once, its
    /// `shutdown`); an interrupted measurement returns the seeds that finished.
    pub fn measure_with(
        &mut self,
        commit: &str,
        (first, n): (i64, i64),
        label: &str,
        opts: &LoopOptions,
    ) -> Result<Vec<Measurement>, SchedError> {
        self.setup(&mut |_| {})?;
        let attempt = self.project.store.insert_attempt(&NewAttempt {
            program_id: self.program.id,
            kind: AttemptKind::Measure,
            parent_commit: commit.to_string(),
            hypothesis: format!("measure {label}"),
            proposer: "picidae".into(),
            params: None,
        })?;
        self.record_commit(attempt.id, commit, &patch_hash(""), &[], None)?;
        let attempt = self.project.store.attempt(attempt.id)?;
        let results = self
            .run_seed_range(&attempt, first, n, opts, &mut |_| {})?
            .unwrap_or_default();
        let mut out = Vec::new();
        for r in &results {
            let hidden = if self.contract.hidden.is_some() {
                self.hidden_values(&[r.run_id])?.first().copied()
            } else {
                None
            };
            out.push(Measurement {
                seed: r.seed,
                visible: r.value.filter(|_| r.status == RunStatus::Succeeded),
                hidden,
            });
        }
        self.project.store.decide_attempt(
            attempt.id,
            &Decision {
                status: AttemptStatus::Discarded,
                primary_value: None,
                note: Some("measurement".into()),
                advance_frontier: false,
                judged_against: None,
            },
        )?;
        Ok(out)
    }
}
