//! The chain check (`picidae findings recheck`): the kept chain of a program re-measured on
//! fresh seeds, and an ablation of each kept change from the final frontier, so a gain that
//! only held on the seeds it was kept on, or that a later change made redundant, is visible.
//!
//! The chain is the current frontier's ancestry through kept attempts (a retracted keep is not
//! on it): base, then each kept change in order. Every commit of the chain is measured on the
//! same fresh seeds (from `first_seed`, 1000 by default: the loop never uses a seed that high),
//! so each step is a paired comparison: the kept commit against the one it replaced. The
//! ablation removes one kept change from the frontier (its change reverted by a three-way
//! merge in the object store, `Repo::replay`; pinned at `refs/picidae/<program>/ablations/N`)
//! and measures that on the same seeds: what the frontier loses without it is what the change
//! still carries. Each measurement is an attempt of kind `measure`, never compared with the
//! frontier, so the runs stay in the store. Effects are signed so that positive is better,
//! with the policy's confidence level.

use picidae_core::stats::{mean_ci, summarize};
use picidae_core::{AttemptKind, Goal};
use picidae_git::Replayed;
use serde::Serialize;

use crate::runner::{LoopOptions, Runner};
use crate::{program_ref, SchedError};

/// What to re-measure and how.
#[derive(Debug, Clone)]
pub struct RecheckOptions {
    /// Fresh seeds per commit.
    pub seeds: i64,
    /// The first of them.
    pub first_seed: i64,
    /// Also remove each kept change from the frontier in turn.
    pub ablation: bool,
    /// Parallel seeds and the stop signal.
    pub run: LoopOptions,
}

impl Default for RecheckOptions {
    fn default() -> Self {
        RecheckOptions {
            seeds: 5,
            first_seed: 1000,
            ablation: true,
            run: LoopOptions::default(),
        }
    }
}

/// A commit's primary metric on the fresh seeds (in seed order; `None` where a run failed).
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub commit: String,
    pub values: Vec<Option<f64>>,
    pub mean: Option<f64>,
}

/// A paired effect on the fresh seeds, positive when better: its mean and interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Effect {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Seeds where both sides have a value.
    pub n: usize,
}

/// What an interval says about an effect that should be positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Holds {
    /// The interval is above zero.
    Yes,
    /// The interval reaches zero.
    Unclear,
    /// The interval is below zero: it is worse.
    Reversed,
    /// Fewer than two pairs.
    Unknown,
}

impl Holds {
    pub fn of(effect: Option<Effect>) -> Holds {
        match effect {
            None => Holds::Unknown,
            Some(e) if e.low > 0.0 => Holds::Yes,
            Some(e) if e.high < 0.0 => Holds::Reversed,
            Some(_) => Holds::Unclear,
        }
    }
}

/// The frontier without one kept change.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ablation {
    /// Not asked for, or the chain has a single change (its step is its ablation).
    NotRun,
    /// Reverting the change conflicts with later ones (they build on it).
    Conflict { files: Vec<String> },
    /// The frontier without it, and what the frontier has over that (positive: the change
    /// still carries gain).
    Measured {
        measured: Measured,
        carries: Option<Effect>,
    },
}

/// One kept change of the chain.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub seq: i64,
    pub hypothesis: String,
    /// The improvement the loop believed when it kept it (positive: better).
    pub claimed: Option<f64>,
    pub measured: Measured,
    /// This commit against the previous one of the chain, on the fresh seeds.
    pub effect: Option<Effect>,
    pub ablation: Ablation,
}

/// The chain check of one program.
#[derive(Debug, Clone, Serialize)]
pub struct Recheck {
    pub program: String,
    pub metric: String,
    pub goal: Goal,
    pub seeds: Vec<i64>,
    pub confidence: f64,
    pub base: Measured,
    pub steps: Vec<Step>,
    /// The frontier against the base, on the fresh seeds.
    pub total: Option<Effect>,
}

impl Runner<'_> {
    /// Re-measure the kept chain and ablate each kept change (see the module docs);
    /// `progress` hears what is being measured.
    pub fn recheck(
        &mut self,
        opts: &RecheckOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Recheck, SchedError> {
        if opts.seeds < 2 {
            return Err(self.recheck_error("a recheck needs at least 2 seeds".into()));
        }
        let (base_commit, chain) = self.kept_chain()?;
        let goal = self.contract.primary().goal;
        let sign = if goal == Goal::Minimize { -1.0 } else { 1.0 };
        let seeds: Vec<i64> = (opts.first_seed..opts.first_seed + opts.seeds).collect();
        let range = (opts.first_seed, opts.seeds);
        progress(&format!(
            "measuring the base {} on seeds {}..{}",
            short(&base_commit),
            seeds[0],
            seeds[seeds.len() - 1]
        ));
        let base = self.measure_on(&base_commit, range, "recheck base", &opts.run)?;
        let mut steps = Vec::new();
        let mut previous = (base.clone(), self.baseline_value()?);
        for (seq, hypothesis, commit, value) in &chain {
            self.stop_check(opts)?;
            progress(&format!("measuring #{seq} {}", short(commit)));
            let measured = self.measure_on(commit, range, &format!("recheck #{seq}"), &opts.run)?;
            let effect = paired(&measured, &previous.0, sign, self.policy.confidence);
            steps.push(Step {
                seq: *seq,
                hypothesis: hypothesis.clone(),
                claimed: value.zip(previous.1).map(|(v, p)| sign * (v - p)),
                measured: measured.clone(),
                effect,
                ablation: Ablation::NotRun,
            });
            previous = (measured, *value);
        }
        let frontier = previous.0;
        if opts.ablation && chain.len() > 1 {
            let tip = frontier.commit.clone();
            for (k, (seq, _, commit, _)) in chain.iter().enumerate() {
                self.stop_check(opts)?;
                let parent = if k == 0 {
                    &base_commit
                } else {
                    &chain[k - 1].2
                };
                let message = format!("ablation: the frontier without #{seq}");
                steps[k].ablation = match self.repo.replay(commit, parent, &tip, &message)? {
                    Replayed::Conflict(files) => Ablation::Conflict { files },
                    Replayed::Committed(sha) => {
                        let leaf = format!("ablations/{seq:06}");
                        self.repo.update_ref(
                            &program_ref(&self.program.name, &leaf),
                            &sha,
                            None,
                        )?;
                        progress(&format!("measuring the frontier without #{seq}"));
                        let label = format!("ablation without #{seq}");
                        let measured = self.measure_on(&sha, range, &label, &opts.run)?;
                        let conf = self.policy.confidence;
                        Ablation::Measured {
                            carries: paired(&frontier, &measured, sign, conf),
                            measured,
                        }
                    }
                };
            }
        }
        Ok(Recheck {
            program: self.program.name.clone(),
            metric: self.contract.primary_metric.clone(),
            goal,
            seeds,
            confidence: self.policy.confidence,
            total: paired(&frontier, &base, sign, self.policy.confidence),
            base,
            steps,
        })
    }

    /// The base commit and the kept changes from it to the current frontier, oldest first:
    /// (seq, hypothesis, commit, the frontier value it was kept at).
    #[allow(clippy::type_complexity)]
    fn kept_chain(&self) -> Result<(String, Vec<(i64, String, String, Option<f64>)>), SchedError> {
        let store = &self.project.store;
        let moves = store.frontier_history(self.program.id)?;
        let Some(mut id) = self.program.frontier_attempt_id else {
            return Err(self.recheck_error("it has no frontier yet (no baseline)".into()));
        };
        let mut chain = Vec::new();
        // Each kept attempt's parent is the frontier it was built on, itself a kept attempt.
        for _ in 0..=moves.len() {
            let a = store.attempt(id)?;
            let commit = a.commit.clone().unwrap_or_default();
            if a.kind == AttemptKind::Baseline {
                chain.reverse();
                return Ok((commit, chain));
            }
            chain.push((a.seq, a.hypothesis.clone(), commit, a.primary_value));
            let Some(m) = moves.iter().rev().find(|m| m.commit == a.parent_commit) else {
                return Err(self.recheck_error(format!(
                    "the parent of kept #{} ({}) was never the frontier",
                    a.seq,
                    short(&a.parent_commit)
                )));
            };
            id = m.attempt_id;
        }
        Err(self.recheck_error("the frontier's ancestry loops".into()))
    }

    fn measure_on(
        &mut self,
        commit: &str,
        range: (i64, i64),
        label: &str,
        run: &LoopOptions,
    ) -> Result<Measured, SchedError> {
        let got = self.measure_with(commit, range, label, run)?;
        let values: Vec<Option<f64>> = (range.0..range.0 + range.1)
            .map(|s| got.iter().find(|m| m.seed == s).and_then(|m| m.visible))
            .collect();
        let measured: Vec<f64> = values.iter().flatten().copied().collect();
        let mean = summarize(&measured).map(|s| s.mean);
        Ok(Measured {
            commit: commit.to_string(),
            values,
            mean,
        })
    }

    fn stop_check(&self, opts: &RecheckOptions) -> Result<(), SchedError> {
        if opts.run.shutdown.draining() || opts.run.shutdown.cancelled() {
            return Err(self.recheck_error("stopped".into()));
        }
        Ok(())
    }

    fn recheck_error(&self, why: String) -> SchedError {
        SchedError::Program {
            program: self.program.name.clone(),
            message: format!("cannot recheck: {why}"),
        }
    }
}

/// `a` minus `b`, seed by seed, signed by `sign`, with its interval.
fn paired(a: &Measured, b: &Measured, sign: f64, confidence: f64) -> Option<Effect> {
    let diffs: Vec<f64> = a
        .values
        .iter()
        .zip(&b.values)
        .filter_map(|(x, y)| Some(sign * (x.as_ref()? - y.as_ref()?)))
        .filter(|d| d.is_finite())
        .collect();
    let (mean, low, high) = mean_ci(&diffs, confidence)?;
    Some(Effect {
        mean,
        low,
        high,
        n: diffs.len(),
    })
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(values: &[f64]) -> Measured {
        Measured {
            commit: String::new(),
            values: values.iter().map(|v| Some(*v)).collect(),
            mean: None,
        }
    }

    #[test]
    fn paired_effects_are_signed_so_better_is_positive() {
        let (a, b) = (m(&[1.0, 2.0, 3.0]), m(&[2.0, 3.1, 3.9]));
        // Minimize: a is lower, so better.
        let e = paired(&a, &b, -1.0, 0.95).unwrap();
        assert!((e.mean - (1.0 + 1.1 + 0.9) / 3.0).abs() < 1e-12, "{e:?}");
        assert_eq!(Holds::of(Some(e)), Holds::Yes);
        let e = paired(&a, &b, 1.0, 0.95).unwrap();
        assert_eq!(Holds::of(Some(e)), Holds::Reversed);
        // A failed seed drops its pair; one pair is no interval.
        let mut c = m(&[1.0, 2.0, 3.0]);
        c.values[1] = None;
        c.values[2] = None;
        assert_eq!(paired(&c, &b, 1.0, 0.95), None);
        assert_eq!(Holds::of(None), Holds::Unknown);
        let e = paired(&m(&[1.0, 2.0, 3.0]), &m(&[1.1, 1.9, 3.0]), 1.0, 0.95).unwrap();
        assert_eq!(Holds::of(Some(e)), Holds::Unclear);
    }
}
