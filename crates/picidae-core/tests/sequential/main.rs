//! Tests for `picidae_core::sequential`.
//!
//! Reference numbers were computed independently in Python with only the standard library:
//! t tail probabilities by Simpson integration of the t density (after the substitution
//! `x = tan u`), quantiles by bisection on that integral, and the df = 3 tail by its closed
//! form `1/2 - (atan(u) + u/(1+u²))/π`, `u = t/√3`.
//!
//! The simulations use the small deterministic generator of `tests/common` (xorshift64* with
//! Box–Muller normals) so that they are reproducible without a dependency.

use picidae_core::sequential::{
    futility_looks, look, look_against_mean, min_detectable_effect, paired, pooled_noise,
    seeds_for_effect, spend, Look, LookStats, LoseReason, PooledNoise, Verdict, FUTILITY_BETA,
};
use picidae_core::stats::{mean_ci, welch};
use proptest::prelude::*;

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

use common::Rng;

impl Rng {
    /// A pooled noise estimate from `groups` groups of `size` standard normal runs.
    fn prior(&mut self, groups: usize, size: usize) -> PooledNoise {
        let gs: Vec<Vec<f64>> = (0..groups).map(|_| self.normals(size)).collect();
        let refs: Vec<&[f64]> = gs.iter().map(|g| g.as_slice()).collect();
        pooled_noise(&refs).unwrap()
    }
}

fn design(diffs: &[f64], noise: Option<PooledNoise>, max_looks: usize) -> Look<'_> {
    Look {
        diffs,
        noise,
        max_looks,
        first_win: 0,
        alpha: 0.05,
        min_effect: 0.0,
        futility_effect: f64::NAN,
    }
}

fn pn(sd: f64, df: f64) -> PooledNoise {
    PooledNoise { sd, df }
}

const CONTINUE: Verdict = Verdict::Continue { stats: None };

fn lose(reason: LoseReason) -> Verdict {
    Verdict::Lose {
        reason,
        stats: None,
    }
}

/// Why `v` lost; `None` when it did not.
fn lost(v: &Verdict) -> Option<LoseReason> {
    match v {
        Verdict::Lose { reason, .. } => Some(*reason),
        _ => None,
    }
}

fn win_stats(v: &Verdict) -> &LookStats {
    match v {
        Verdict::Win { stats } => stats,
        v => panic!("expected a win: {v:?}"),
    }
}

/// Adds standard-normal seeds around `effect` one at a time until a verdict: (won, seeds).
fn verify(
    rng: &mut Rng,
    effect: f64,
    noise: Option<PooledNoise>,
    max_looks: usize,
) -> (bool, usize) {
    let mut diffs = Vec::with_capacity(max_looks);
    loop {
        diffs.push(effect + rng.normal());
        match look(&design(&diffs, noise, max_looks)) {
            Verdict::Win { .. } => return (true, diffs.len()),
            Verdict::Lose { .. } => return (false, diffs.len()),
            Verdict::Continue { .. } => assert!(diffs.len() < max_looks, "the last look decides"),
        }
    }
}

/// alpha plus three Monte-Carlo standard errors.
fn mc_limit(alpha: f64, trials: usize) -> f64 {
    alpha + 3.0 * (alpha * (1.0 - alpha) / trials as f64).sqrt()
}

mod looks;
mod noise;
mod paired;
mod power;
mod quantiles;
mod stopping;
mod totality;
mod win_looks;
