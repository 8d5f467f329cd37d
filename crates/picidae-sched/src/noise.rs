//! What a program has learned of its runs' noise, and what that noise lets it detect.
//!
//! - **Pooled noise**: the seed-to-seed spread of one run, pooled within attempts over the
//!   program's latest runs on this machine fingerprint (the baseline's seeds and the repeated
//!   seeds of every verified attempt), not only the baseline's few; refreshed at every
//!   verification. With pairing, the spread of a *paired difference* is learned the same way
//!   from earlier verifications (candidate minus incumbent on the same seed), which is smaller
//!   wherever the seed's effect is shared by both.
//! - **Diffs**: a candidate's per-seed effects against its incumbent (positive = better): on
//!   the same seed where every seed has a pair, otherwise against the incumbent's mean.
//! - **The effect sought**: what the policy's most seeds detect at this noise, which sequential
//!   verification tests futility against (`power.rs` says it out loud).
//!
//! The assumption behind pooling: a change moves the metric more than it moves the noise. A
//! change that makes runs much noisier is still caught, by its own seeds' spread, which is
//! pooled with the prior rather than replaced by it.

use std::collections::{BTreeMap, HashMap};

use picidae_core::contract::PolicySpec;
use picidae_core::sequential::{pooled_noise, PooledNoise};
use picidae_core::Goal;
use picidae_store::{Run, SeedValue};

use crate::runner::{Runner, SeedResult};
use crate::SchedError;

/// How many of the latest runs the noise is learned from.
pub(crate) const NOISE_RUNS: i64 = 4000;
/// How many of the latest verifications the paired spread is learned from.
const NOISE_PAIRS: usize = 200;

/// A candidate's per-seed effects against its incumbent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Diffs {
    /// Positive = better, one per candidate seed.
    pub values: Vec<f64>,
    /// Taken on the same seeds as the incumbent's runs.
    pub paired: bool,
    /// The incumbent's runs they were taken against.
    pub n_incumbent: usize,
}

/// The candidate's per-seed effects: paired when `paired` and the incumbent has a run on
/// every seed the candidate has, otherwise each seed against the incumbent's mean.
pub(crate) fn seed_diffs(goal: Goal, cand: &[SeedResult], inc: &[Run], paired: bool) -> Diffs {
    let mut by_seed: BTreeMap<i64, f64> = BTreeMap::new();
    for r in inc {
        if let Some(v) = r.primary_value.filter(|v| v.is_finite()) {
            by_seed.entry(r.seed).or_insert(v);
        }
    }
    let values: Vec<(i64, f64)> = cand
        .iter()
        .filter_map(|r| r.value.filter(|v| v.is_finite()).map(|v| (r.seed, v)))
        .collect();
    let n_incumbent = by_seed.len();
    if paired && values.iter().all(|(s, _)| by_seed.contains_key(s)) {
        return Diffs {
            values: values
                .iter()
                .map(|(s, v)| goal.gain(*v, by_seed[s]))
                .collect(),
            paired: true,
            n_incumbent,
        };
    }
    let mean = (n_incumbent > 0).then(|| by_seed.values().sum::<f64>() / n_incumbent as f64);
    Diffs {
        values: match mean {
            Some(m) => values.iter().map(|(_, v)| goal.gain(*v, m)).collect(),
            None => Vec::new(),
        },
        paired: false,
        n_incumbent,
    }
}

/// The noise learned before a look: of one run, and of a paired difference.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct NoisePrior {
    pub run: Option<PooledNoise>,
    pub paired: Option<PooledNoise>,
}

impl NoisePrior {
    /// The prior for a look at `d`: a paired difference's spread where it was learned (else
    /// √2 of one run's, its bound when seeds share nothing); for differences against the
    /// incumbent's mean, one run's (`look_against_mean` counts the mean's own error).
    pub(crate) fn for_diffs(&self, d: &Diffs) -> Option<PooledNoise> {
        if d.paired {
            return self
                .paired
                .or_else(|| self.run.and_then(|r| r.of_difference(1, 1)));
        }
        self.run
    }

    /// [`for_diffs`](Self::for_diffs) without the √2 bound: the spread actually learned for
    /// this kind of difference. A bound from above is safe for a win (it only widens the
    /// interval) but not for the effect futility tests against, which it would inflate.
    pub(crate) fn learned_for(&self, d: &Diffs) -> Option<PooledNoise> {
        if d.paired {
            self.paired
        } else {
            self.run
        }
    }
}

/// Pool the spread of runs within attempts, and of paired differences within verifications
/// (`pairs`: candidate and incumbent attempt ids), over `values`; `exclude` (the attempt being
/// verified) contributes nothing to its own prior.
pub(crate) fn learn(values: &[SeedValue], pairs: &[(i64, i64)], exclude: i64) -> NoisePrior {
    let mut by_attempt: HashMap<i64, BTreeMap<i64, f64>> = HashMap::new();
    for v in values.iter().filter(|v| v.attempt_id != exclude) {
        // Newest first: the first value seen for a seed is its latest run.
        by_attempt
            .entry(v.attempt_id)
            .or_default()
            .entry(v.seed)
            .or_insert(v.value);
    }
    let groups: Vec<Vec<f64>> = by_attempt
        .values()
        .map(|s| s.values().copied().collect())
        .collect();
    let refs: Vec<&[f64]> = groups.iter().map(|g| g.as_slice()).collect();
    let run = pooled_noise(&refs);
    let mut diff_groups: Vec<Vec<f64>> = Vec::new();
    for &(cand, inc) in pairs.iter().filter(|(c, _)| *c != exclude) {
        let (Some(c), Some(i)) = (by_attempt.get(&cand), by_attempt.get(&inc)) else {
            continue;
        };
        let d: Vec<f64> = c
            .iter()
            .filter_map(|(s, v)| i.get(s).map(|w| v - w))
            .collect();
        if d.len() >= 2 {
            diff_groups.push(d);
        }
    }
    let refs: Vec<&[f64]> = diff_groups.iter().map(|g| g.as_slice()).collect();
    // A paired spread from fewer than a handful of differences is not trusted over √2 of the
    // run spread.
    let paired = pooled_noise(&refs).filter(|p| p.df >= 4.0);
    NoisePrior { run, paired }
}

impl Runner<'_> {
    /// What this program has learned of its noise on this machine (see the module docs).
    pub(crate) fn noise_prior(&self, paired: bool, exclude: i64) -> Result<NoisePrior, SchedError> {
        let store = &self.project.store;
        let values = store.seed_values(self.program.id, &self.fp_hash, NOISE_RUNS)?;
        let pairs: Vec<(i64, i64)> = if paired {
            let all = store.findings(Some(self.program.id), None)?;
            all.iter()
                .rev()
                .take(NOISE_PAIRS)
                .map(|f| (f.attempt_id, f.incumbent_attempt_id))
                .collect()
        } else {
            Vec::new()
        };
        Ok(learn(&values, &pairs, exclude))
    }
}

/// The effect a verification of at most `cap` seeds finds with probability [`POWER`](crate::power::POWER) at the
/// level of one win-look, from `noise` (the learned spread of one difference,
/// `NoisePrior::learned_for`)
/// and the diffs' kind: sequential verification stops for futility a candidate that cannot
/// plausibly reach it. `NaN` without a noise estimate (futility is then tested against the
/// threshold alone).
pub(crate) fn sought_effect(
    policy: &PolicySpec,
    noise: Option<PooledNoise>,
    diffs: &Diffs,
    (fewest, cap): (usize, usize),
) -> f64 {
    let Some(n) = noise.filter(|n| n.sd.is_finite() && n.sd > 0.0) else {
        return f64::NAN;
    };
    // Against the incumbent's mean, its own error adds `1 / n_incumbent` to each seed's.
    let sd = if diffs.paired || diffs.n_incumbent == 0 {
        n.sd
    } else {
        n.sd * (1.0 + cap as f64 / diffs.n_incumbent as f64).sqrt()
    };
    crate::power::detectable(policy, PooledNoise { sd, df: n.df }, (fewest, cap))
        .map(|m| policy.min_improvement.max(0.0) + m)
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use picidae_core::RunStatus;

    fn sv(attempt_id: i64, seed: i64, value: f64) -> SeedValue {
        SeedValue {
            attempt_id,
            seed,
            value,
        }
    }

    fn seed(seed: i64, value: f64) -> SeedResult {
        SeedResult {
            seed,
            run_id: seed,
            status: RunStatus::Succeeded,
            value: Some(value),
        }
    }

    #[test]
    fn paired_diffs_need_a_pair_for_every_seed() {
        let inc = |seed: i64, v: f64| Run {
            id: seed,
            attempt_id: 1,
            program_id: 1,
            seed,
            status: RunStatus::Succeeded,
            executor: "local".into(),
            pid: None,
            pgid: None,
            host: None,
            exit_code: Some(0),
            signal: None,
            wall_secs: None,
            peak_rss_kb: None,
            peak_gpu_mb: None,
            over_budget: false,
            metrics: Default::default(),
            primary_value: Some(v),
            violations: Vec::new(),
            breach: None,
            fingerprint: None,
            log_dir: None,
            error: None,
            executor_ref: None,
            queued_at: 0,
            started_at: None,
            finished_at: None,
            restarts: 0,
        };
        let runs = vec![inc(0, 1.0), inc(1, 2.0)];
        let d = seed_diffs(Goal::Minimize, &[seed(0, 0.5), seed(1, 1.0)], &runs, true);
        assert!(d.paired);
        assert_eq!(d.values, vec![0.5, 1.0]);
        // Seed 2 has no pair: every seed is taken against the incumbent's mean (1.5).
        let d = seed_diffs(
            Goal::Minimize,
            &[seed(0, 0.5), seed(1, 1.0), seed(2, 1.5)],
            &runs,
            true,
        );
        assert!(!d.paired);
        assert_eq!(d.values, vec![1.0, 0.5, 0.0]);
        let d = seed_diffs(Goal::Maximize, &[seed(0, 0.5)], &runs, false);
        assert_eq!(d.values, vec![-1.0]);
    }

    #[test]
    fn shared_seed_noise_is_learned_as_a_small_paired_spread() {
        // Seed effects of ±1 shared by every attempt, and a little noise of their own.
        let seed_effect = [0.0, 1.0, -1.0, 0.5, -0.5];
        let own = [0.01, -0.02, 0.015, -0.01, 0.0];
        let mut values = Vec::new();
        let mut pairs = Vec::new();
        for a in 1..=6i64 {
            for s in 0..5 {
                let v = a as f64 * 0.1 + seed_effect[s] + own[(s + a as usize) % 5];
                values.push(sv(a, s as i64, v));
            }
            if a > 1 {
                pairs.push((a, a - 1));
            }
        }
        let p = learn(&values, &pairs, 99);
        let run = p.run.expect("a run spread");
        let paired = p.paired.expect("a paired spread");
        assert!(run.sd > 0.5, "{run:?}");
        assert!(paired.sd < 0.05, "{paired:?}");
        assert_eq!(run.df, 6.0 * 4.0);
        // The attempt under verification is left out of its own prior.
        let without = learn(&values, &pairs, 6);
        assert_eq!(without.run.unwrap().df, 5.0 * 4.0);
    }
}
