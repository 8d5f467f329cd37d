//! Statistics for spending fewer seeds on a verification: paired comparisons, a sequential
//! test that may stop after any seed, pooled run-to-run noise, and power.
//!
//! [`crate::stats`] answers "is this candidate better?" once all its seeds are in. This module
//! answers the questions a scheduler asks while the seeds are still coming: can it stop now,
//! and how many seeds will it need. Every function follows the conventions of
//! [`crate::stats`]: pure (no I/O, no global state, no randomness), total (never panics,
//! whatever the input: empty slices, `NaN`, infinities, zero variance), non-finite values
//! dropped before anything else, `None` where no meaningful answer exists.
//!
//! # Conventions
//!
//! An *effect* is signed so that positive means the candidate is better. [`paired`] takes
//! `higher_is_better` like [`crate::stats::welch`] and flips the sign itself; [`look`] and the
//! power functions take effects that the caller has already signed that way.
//!
//! # Why these methods
//!
//! - **Paired t-test** ([`paired`]): runs with the same seed share much of their noise (the
//!   same initialisation, data order, evaluation sample). Differencing per seed cancels that
//!   shared part, so the per-seed differences vary far less than the runs do and a handful of
//!   seeds can resolve an effect that Welch's unpaired test cannot. It is the ordinary
//!   one-sample t-test on the differences; with a [`PooledNoise`] prior the sum of squares and
//!   degrees of freedom of the prior are pooled with those of the differences.
//! - **Alpha spending with a union bound** ([`look`]): testing after every seed at level
//!   `alpha` and stopping at the first success inflates the false-win rate well above
//!   `alpha` (the tests share data and each is another chance). Splitting `alpha` over the
//!   `max_looks` possible looks, `alpha_k = alpha / max_looks` at look `k`, bounds it:
//!   `P(any false win) <= sum_k P(test k falsely wins) <= sum_k alpha_k = alpha`. The bound
//!   needs nothing about how the looks depend on each other, so it holds for *any* stopping
//!   rule (stop on a loss, on a budget, on a whim), with estimated variances and with a prior
//!   noise estimate. Exact group-sequential boundaries (Pocock, O'Brien–Fleming) are less
//!   conservative but rely on the joint normal law of the looks with a known variance and a
//!   fixed look schedule, none of which holds here. The equal split is Pocock-like (the same
//!   nominal level at every look), which suits the goal: decide clear cases on the first
//!   seeds rather than save `alpha` for the last one. Where a keep needs several seeds anyway
//!   ([`Look::first_win`]), only a few looks may win (that many seeds, twice as many, …, the
//!   last) and `alpha` is split over those alone: the same bound, with larger shares.
//! - **Non-binding futility** ([`look`], [`FUTILITY_BETA`]): stopping for futility can only
//!   remove chances to win, so it never raises the false-win rate. It tests the effect the
//!   design is meant to find ([`Look::futility_effect`], at least the threshold): a candidate
//!   whose upper bound is below it is not worth more seeds. Its own error, abandoning a
//!   candidate that truly reaches that effect, is spent the same way as `alpha`, over a few
//!   futility looks only ([`futility_looks`]: the first seed, 2, 4, …, the last), so such a
//!   candidate is wrongly abandoned with probability at most `FUTILITY_BETA` over the whole
//!   verification, and each futility look gets a share large enough to stop a poor candidate
//!   early.
//! - **Pooled within-group noise** ([`pooled_noise`]): the seed-to-seed spread of a benchmark
//!   barely depends on the configuration, while a few seeds estimate it badly (3 seeds give
//!   2 degrees of freedom and a t quantile of 2.92 where the normal one is 1.64). Pooling the
//!   within-group sums of squares of every configuration already run gives a spread with many
//!   degrees of freedom, which is what lets [`look`] decide a clear loser on one seed.
//! - **Power** ([`min_detectable_effect`], [`seeds_for_effect`]): the usual one-sided
//!   approximation `(q(1-alpha) + q(power)) · sd / sqrt(n)`, with t quantiles when the spread
//!   is estimated.
//!
//! # Assumptions
//!
//! The tests are exact when the differences are independent normal draws with a common
//! spread, and a prior [`PooledNoise`] comes from *other* runs than the ones tested (pooling
//! a candidate's own seeds into its prior counts them twice) with the same spread.
//!
//! Student's t quantiles are computed here rather than with `statrs`'s `inverse_cdf`, which
//! panics or loses all accuracy for some inputs (fewer than 1 degree of freedom, far tails,
//! more than about 10⁶ degrees of freedom); its `sf`, `pdf` and the normal distribution are
//! used as they are.

use std::collections::BTreeMap;
use std::f64::consts::PI;

use serde::{Deserialize, Serialize};
use statrs::distribution::{Continuous, ContinuousCDF, Normal, StudentsT};

use crate::stats::{summarize, Comparison};

/// Total probability of wrongly stopping for futility a candidate whose true effect reaches
/// the threshold, spent over the looks like `alpha` (see [`look`]).
pub const FUTILITY_BETA: f64 = 0.2;

/// From this many degrees of freedom on, t quantiles and tails use an expansion around the
/// normal distribution: it is accurate there, and `statrs`'s t functions are not.
const LARGE_DF: f64 = 1e5;

/// A run-to-run standard deviation with its degrees of freedom, pooled over groups of runs
/// that share a configuration (see [`pooled_noise`]).
///
/// Used as a prior by [`paired`] and [`look`], where `sd` must be on the scale of one of the
/// differences being tested (see [`PooledNoise::of_difference`]). It is *usable* when `sd` is
/// finite and `>= 0` and `df > 0` (`+inf` means the spread is known exactly); an unusable
/// prior is ignored, as if none were given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PooledNoise {
    /// Standard deviation of one value.
    pub sd: f64,
    /// Degrees of freedom of `sd`: `sum(n_i - 1)` over the pooled groups.
    pub df: f64,
}

impl PooledNoise {
    fn usable(self) -> Option<Self> {
        (self.sd.is_finite() && self.sd >= 0.0 && self.df > 0.0).then_some(self)
    }

    /// The noise of a difference between the mean of `runs_a` runs and the mean of `runs_b`
    /// *independent* runs: `sd · sqrt(1/runs_a + 1/runs_b)`, with the same degrees of freedom.
    /// One run against one run gives `sqrt(2) · sd`.
    ///
    /// Runs that share a seed also share part of their noise, which the difference cancels, so
    /// for paired differences this is an upper bound (conservative as a prior). A caller that
    /// has paired differences from earlier comparisons should pool *those* with
    /// [`pooled_noise`] instead: that estimates the paired spread directly.
    ///
    /// `None` when either count is 0, the noise is not usable, or the result overflows.
    pub fn of_difference(self, runs_a: usize, runs_b: usize) -> Option<PooledNoise> {
        let noise = self.usable()?;
        if runs_a == 0 || runs_b == 0 {
            return None;
        }
        let sd = noise.sd * (1.0 / runs_a as f64 + 1.0 / runs_b as f64).sqrt();
        sd.is_finite().then_some(PooledNoise { sd, df: noise.df })
    }
}

/// The within-group standard deviation pooled over `groups`: `sqrt(sum SS_i / sum(n_i - 1))`,
/// where `SS_i` is the sum of squared deviations of group `i` from its own mean.
///
/// Each group holds the runs of one configuration (a baseline's seeds, an attempt's seeds), so
/// differences between configurations do not count as noise. Non-finite values are dropped
/// first; a group with fewer than 2 finite values contributes nothing. `None` when no group
/// has 2 finite values or the result overflows. A pooled `sd` of exactly 0 (every group
/// constant, a deterministic benchmark) is returned as such; [`look`] then decides on the sign
/// of the effect alone.
pub fn pooled_noise(groups: &[&[f64]]) -> Option<PooledNoise> {
    let parts: Vec<(f64, f64)> = groups
        .iter()
        .filter_map(|g| summarize(g))
        .filter(|s| s.n >= 2)
        .map(|s| (s.std, (s.n - 1) as f64))
        .collect();
    let df: f64 = parts.iter().map(|p| p.1).sum();
    if df == 0.0 {
        return None;
    }
    // Scale by the largest spread so the squares cannot overflow.
    let scale = parts.iter().map(|p| p.0).fold(0.0, f64::max);
    if !scale.is_finite() {
        return None;
    }
    let sd = if scale == 0.0 {
        0.0
    } else {
        let ss: f64 = parts.iter().map(|&(s, d)| d * (s / scale).powi(2)).sum();
        scale * (ss / df).sqrt()
    };
    sd.is_finite().then_some(PooledNoise { sd, df })
}

/// Paired t-test of "the candidate is better than the incumbent", matching runs by seed.
///
/// Values are `(seed, metric)`. Non-finite metrics are dropped; a seed with several finite
/// values on one side uses their mean; seeds present on only one side are ignored. The test
/// is the one-sample t-test on the per-seed differences (`candidate - incumbent` when
/// `higher_is_better`, the reverse otherwise), reported as a [`Comparison`]:
/// `n_candidate == n_incumbent ==` the number of pairs, `se` the standard error of the mean
/// difference, `df` = pairs − 1, `p_value` one-sided for "the candidate is better",
/// `[ci_low, ci_high]` two-sided at level `confidence`.
///
/// With a usable `noise` prior (the spread of one *difference*, see
/// [`PooledNoise::of_difference`]) its sum of squares and degrees of freedom are pooled with
/// the differences' own: `df` = pairs − 1 + `noise.df`, and a single pair suffices.
///
/// Returns `None` when `confidence` is not strictly between 0 and 1, there are fewer than 2
/// pairs (1 with a usable prior), or the arithmetic overflows. When the pooled spread is 0,
/// the result is decided by the sign of the effect as in [`crate::stats::welch`]: `p_value`
/// 0 if the effect is positive and 1 otherwise, the interval `[effect, effect]`.
pub fn paired(
    candidate: &[(i64, f64)],
    incumbent: &[(i64, f64)],
    higher_is_better: bool,
    confidence: f64,
    noise: Option<PooledNoise>,
) -> Option<Comparison> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let (cand, inc) = (seed_means(candidate), seed_means(incumbent));
    let mut diffs = Vec::new();
    for (seed, c) in &cand {
        if let Some(i) = inc.get(seed) {
            let d = if higher_is_better { c - i } else { i - c };
            if !d.is_finite() {
                return None;
            }
            diffs.push(d);
        }
    }
    let est = estimate(&diffs, noise)?;
    let se = est.sd / (est.n as f64).sqrt();
    let effect = est.mean;
    let (p_value, half_width) = if se == 0.0 {
        (if effect > 0.0 { 0.0 } else { 1.0 }, 0.0)
    } else {
        let p = t_sf(effect / se, est.df)?;
        (p, t_upper((1.0 - confidence) / 2.0, est.df)? * se)
    };
    let (ci_low, ci_high) = (effect - half_width, effect + half_width);
    if !ci_low.is_finite() || !ci_high.is_finite() {
        return None;
    }
    Some(Comparison {
        effect,
        ci_low,
        ci_high,
        p_value,
        df: est.df,
        n_candidate: est.n,
        n_incumbent: est.n,
        se,
    })
}

/// The mean of the finite values of each seed.
fn seed_means(xs: &[(i64, f64)]) -> BTreeMap<i64, f64> {
    let mut by_seed: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for &(seed, x) in xs.iter().filter(|(_, x)| x.is_finite()) {
        by_seed.entry(seed).or_default().push(x);
    }
    by_seed
        .into_iter()
        .filter_map(|(seed, v)| summarize(&v).map(|s| (seed, s.mean)))
        .collect()
}

/// Mean, spread and degrees of freedom of a sample of differences, pooled with a prior.
struct Estimate {
    n: usize,
    mean: f64,
    /// Standard deviation of one difference (finite, `>= 0`).
    sd: f64,
    /// Degrees of freedom of `sd` (`> 0`, possibly `+inf`).
    df: f64,
}

/// `None` when `xs` has no finite value, or one without a usable prior, or the spread
/// overflows.
fn estimate(xs: &[f64], noise: Option<PooledNoise>) -> Option<Estimate> {
    let s = summarize(xs)?;
    let own_df = (s.n - 1) as f64;
    let (sd, df) = match noise.and_then(PooledNoise::usable) {
        None if s.n < 2 => return None,
        None => (s.std, own_df),
        // A single value has no spread of its own; an infinite df means the spread is known.
        Some(p) if s.n < 2 || p.df == f64::INFINITY => (p.sd, p.df),
        Some(p) => {
            let df = own_df + p.df;
            let scale = s.std.max(p.sd);
            let sd = if scale == 0.0 {
                0.0
            } else {
                let (a, b) = (s.std / scale, p.sd / scale);
                scale * ((own_df * a * a + p.df * b * b) / df).sqrt()
            };
            (sd, df)
        }
    };
    sd.is_finite().then_some(Estimate {
        n: s.n,
        mean: s.mean,
        sd,
        df,
    })
}

/// One look of a sequential verification, see [`look`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look<'a> {
    /// The per-seed effects so far, in the order the seeds finished, positive = better:
    /// independent differences such as paired ones (candidate minus incumbent on the same
    /// seed) for [`look`], or candidate runs minus one incumbent mean for
    /// [`look_against_mean`]. Non-finite values are dropped; the number of finite ones is the
    /// look index `k`.
    pub diffs: &'a [f64],
    /// Prior spread (see [`PooledNoise`]) of one difference for [`look`], of one run for
    /// [`look_against_mean`], pooled with the differences' own.
    pub noise: Option<PooledNoise>,
    /// The most looks (seeds) this verification may take, fixed before the first look.
    pub max_looks: usize,
    /// The first look at which a win may be declared, fixed in advance ([`win_looks`]): at most
    /// 1, every look may win and each spends `alpha / max_looks`; more, only the looks
    /// `first_win`, twice that, … and `max_looks` may, and each of them spends an equal share
    /// of `alpha` (fewer, larger shares: more power where a keep needs several seeds anyway).
    pub first_win: usize,
    /// Total false-win probability, strictly between 0 and 1, spent over the looks.
    pub alpha: f64,
    /// The smallest effect worth a win; the threshold is `max(0, min_effect)` (`NaN` counts
    /// as 0, `+inf` makes the design invalid).
    pub min_effect: f64,
    /// The effect the verification is meant to find (e.g. what it can detect by its last
    /// look, [`min_detectable_effect`]): futility is tested against the larger of it and the
    /// threshold, so a candidate that cannot plausibly reach it stops early. A value that is
    /// not finite, or at most the threshold, tests futility against the threshold itself.
    pub futility_effect: f64,
}

/// The numbers behind a [`Verdict`], enough to record the rule that passed or failed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LookStats {
    /// The look index: the number of finite differences used.
    pub k: usize,
    /// Mean of the differences.
    pub effect: f64,
    /// Spread of one difference (own sample pooled with the prior).
    pub sd: f64,
    /// Standard error of `effect`.
    pub se: f64,
    /// Degrees of freedom of `sd` (`+inf` with a known spread).
    pub df: f64,
    /// Level of this look's win test: `alpha` over the number of win-looks, 0 at a look that
    /// cannot win.
    pub alpha_spent: f64,
    /// Level of this look's futility test: `FUTILITY_BETA` over the number of futility looks
    /// ([`futility_looks`]), 0 at a look that cannot stop for futility.
    pub beta_spent: f64,
    /// `max(0, min_effect)`.
    pub threshold: f64,
    /// One-sided lower bound at level `alpha_spent`; a win needs `ci_low > threshold`.
    pub ci_low: f64,
    /// Upper bound at level `alpha_spent`, so `[ci_low, ci_high]` is a two-sided interval at
    /// `1 - 2 · alpha_spent`, and the intervals of all looks hold together with probability
    /// at least `1 - 2 · alpha`.
    pub ci_high: f64,
    /// One-sided upper bound at the level of a futility look; futile, at a futility look,
    /// when below `futility_target`.
    pub futility_bound: f64,
    /// What futility is tested against: the larger of `threshold` and
    /// [`Look::futility_effect`].
    #[serde(default)]
    pub futility_target: f64,
    /// A win may be declared at this look ([`win_looks`]).
    pub win_look: bool,
    /// One-sided p-value for "the effect is above `threshold`", adjusted for the looks:
    /// `min(1, L · p)` with `p` this look's t-test p-value and `L` the number of win-looks. It stays valid whatever the
    /// stopping rule (the union bound), so it can join a multiple-testing family; with a
    /// non-zero spread, Win holds when (up to rounding) it is below `alpha`.
    pub p_value: f64,
}

/// Why a verification is over without a win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoseReason {
    /// The effect is confidently below the threshold.
    Futile,
    /// The last look (`k >= max_looks`) passed without a win.
    Exhausted,
    /// `alpha` is not strictly between 0 and 1, `max_looks` is 0 or `min_effect` is `+inf`:
    /// nothing can win.
    Invalid,
}

/// The decision at one look, see [`look`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// The candidate's effect is above the threshold; stop and keep it.
    Win { stats: LookStats },
    /// Stop; the candidate is not shown better. `stats` is `None` when there was no estimate.
    Lose {
        reason: LoseReason,
        stats: Option<LookStats>,
    },
    /// Run another seed. `stats` is `None` when nothing can be estimated yet (no difference,
    /// or a single one without a prior).
    Continue { stats: Option<LookStats> },
}

impl Verdict {
    /// The numbers behind the verdict, when there are any.
    pub fn stats(&self) -> Option<&LookStats> {
        match self {
            Verdict::Win { stats } => Some(stats),
            Verdict::Lose { stats, .. } | Verdict::Continue { stats } => stats.as_ref(),
        }
    }
}

/// The looks (numbers of seeds) where a verification of at most `max_looks` seeds may stop
/// for futility: 1, 2, 4, … and `max_looks`. Each spends `FUTILITY_BETA` over their number.
pub fn futility_looks(max_looks: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut k = 1;
    while k < max_looks {
        out.push(k);
        k *= 2;
    }
    if max_looks > 0 {
        out.push(max_looks);
    }
    out
}

/// The looks at which a win may be declared (see [`Look::first_win`]).
pub fn win_looks(first_win: usize, max_looks: usize) -> Vec<usize> {
    if first_win <= 1 {
        return (1..=max_looks).collect();
    }
    let mut k = first_win.min(max_looks);
    let mut out = vec![k];
    while k < max_looks {
        k = (k * 2).min(max_looks);
        out.push(k);
    }
    out
}

/// The share of `total` spent at look `k` of at most `max_looks`: `total / max_looks` for
/// `1 <= k <= max_looks`, 0 otherwise (and when `total` is not positive and finite). The
/// shares of all looks sum to at most `total`.
pub fn spend(total: f64, k: usize, max_looks: usize) -> f64 {
    if k == 0 || k > max_looks || !(total > 0.0 && total.is_finite()) {
        0.0
    } else {
        total / max_looks as f64
    }
}

/// Decides one look of a verification that adds seeds one at a time, up to `max_looks`,
/// when the differences are independent (paired, or any independent per-seed effects).
///
/// At look `k` (the number of finite differences) the mean effect gets a one-sided lower
/// bound at level `alpha` over the number of win-looks ([`win_looks`]) and a one-sided upper
/// bound at level `FUTILITY_BETA` over the number of futility looks ([`futility_looks`]), both
/// Student-t with the pooled spread (see [`Look::noise`]). With the threshold
/// `max(0, min_effect)` and the futility target `max(threshold, futility_effect)`:
/// - **Win** at a win-look when the lower bound is above the threshold;
/// - otherwise **Lose** ([`LoseReason::Futile`]) at a futility look when the upper bound is
///   below the futility target;
/// - otherwise **Lose** ([`LoseReason::Exhausted`]) at `k >= max_looks`;
/// - otherwise **Continue**.
///
/// Whatever the stopping rule, a candidate whose true effect is at most the threshold wins
/// with probability at most `alpha` (the union bound in the module docs), provided each look
/// is called with the differences of the earlier looks plus the new ones, `max_looks` and
/// `alpha` fixed in advance, and a prior (if any) not computed from these differences. A
/// caller may ignore a Win or a Lose and go on (e.g. to reach a minimum number of seeds), or
/// skip looks: that is one more stopping rule, and the bound still holds. A candidate whose
/// true effect reaches the futility target is stopped for futility with probability at most
/// [`FUTILITY_BETA`].
///
/// The spread of one difference is the differences' own sample sd when `k >= 2`, pooled with
/// a usable prior (sums of squares and degrees of freedom added), or the prior alone when
/// `k == 1`: with a prior, a clear loser is decided on its first seed. Without a prior,
/// `k <= 1` gives Continue (Lose at `k >= max_looks`). When the spread is 0 the bounds equal
/// the effect, so the verdict follows its sign, as in [`crate::stats::welch`]. An invalid
/// design ([`LoseReason::Invalid`]) or `k > max_looks` loses without stats.
pub fn look(l: &Look) -> Verdict {
    decide(l, 0)
}

/// [`look`] for differences taken against one incumbent mean: every difference is a
/// candidate run minus the mean of the *same* `incumbent_runs` incumbent runs.
///
/// That mean's error is shared by all the differences and invisible in their spread, so
/// [`look`] would underestimate the standard error and one lucky incumbent mean could make a
/// null change win at every look. Here the standard error of the mean effect is
/// `sd · sqrt(1/k + 1/incumbent_runs)`, the pooled two-sample t-test, with `sd` the spread of
/// *one run*: the differences' own sample sd, pooled with `noise`, which should be the run
/// spread pooled over other attempts *including the incumbent's runs* (so that their spread is
/// counted). Equal spreads for candidate and incumbent are assumed. `incumbent_runs == 0`
/// means no shared mean and is exactly [`look`].
pub fn look_against_mean(l: &Look, incumbent_runs: usize) -> Verdict {
    decide(l, incumbent_runs)
}

fn decide(l: &Look, incumbent_runs: usize) -> Verdict {
    let lose = |reason, stats| Verdict::Lose { reason, stats };
    if !(l.alpha > 0.0 && l.alpha < 1.0) || l.max_looks == 0 || l.min_effect == f64::INFINITY {
        return lose(LoseReason::Invalid, None);
    }
    let k = l.diffs.iter().filter(|d| d.is_finite()).count();
    if k > l.max_looks {
        return lose(LoseReason::Exhausted, None);
    }
    let last = k == l.max_looks;
    let Some(stats) = look_stats(l, k, incumbent_runs) else {
        return if last {
            lose(LoseReason::Exhausted, None)
        } else {
            Verdict::Continue { stats: None }
        };
    };
    if stats.win_look && stats.ci_low > stats.threshold {
        Verdict::Win { stats }
    } else if stats.beta_spent > 0.0 && stats.futility_bound < stats.futility_target {
        lose(LoseReason::Futile, Some(stats))
    } else if last {
        lose(LoseReason::Exhausted, Some(stats))
    } else {
        Verdict::Continue { stats: Some(stats) }
    }
}

/// The bounds of look `k` (`1 <= k <= max_looks`); `None` without an estimate or on overflow.
fn look_stats(l: &Look, k: usize, incumbent_runs: usize) -> Option<LookStats> {
    let est = estimate(l.diffs, l.noise)?;
    let shared = if incumbent_runs > 0 {
        1.0 / incumbent_runs as f64
    } else {
        0.0
    };
    let se = est.sd * (1.0 / k as f64 + shared).sqrt();
    // Every win-look spends an equal share of alpha; the interval of any other look is
    // reported at that level too, but it cannot win.
    let looks = win_looks(l.first_win, l.max_looks);
    let win_here = looks.contains(&k);
    let share = spend(l.alpha, 1, looks.len());
    let alpha_spent = if win_here { share } else { 0.0 };
    let stops = futility_looks(l.max_looks);
    let beta_share = spend(FUTILITY_BETA, 1, stops.len());
    let beta_spent = if stops.contains(&k) { beta_share } else { 0.0 };
    let threshold = l.min_effect.max(0.0);
    let futility_target = if l.futility_effect.is_finite() && l.futility_effect > threshold {
        l.futility_effect
    } else {
        threshold
    };
    let effect = est.mean;
    let (q_win, q_futile, p_nominal) = if se == 0.0 {
        (0.0, 0.0, if effect > threshold { 0.0 } else { 1.0 })
    } else {
        let t = (effect - threshold) / se;
        let p = t_sf(t, est.df)?;
        (t_upper(share, est.df)?, t_upper(beta_share, est.df)?, p)
    };
    let stats = LookStats {
        k,
        effect,
        sd: est.sd,
        se,
        df: est.df,
        alpha_spent,
        beta_spent,
        threshold,
        ci_low: effect - q_win * se,
        ci_high: effect + q_win * se,
        futility_bound: effect + q_futile * se,
        futility_target,
        p_value: (p_nominal * looks.len() as f64).min(1.0),
        win_look: win_here,
    };
    let finite = [stats.se, stats.ci_low, stats.ci_high, stats.futility_bound];
    finite.iter().all(|x| x.is_finite()).then_some(stats)
}

/// The smallest true effect that a one-sided test at level `alpha` on `n` seeds detects with
/// probability `power`: `(q(1 - alpha) + q(power)) · sd_diff / sqrt(n)`, where `sd_diff` is
/// the spread of one difference and `q` the quantile of Student's t with `df` degrees of
/// freedom (normal when `df` is `None` or `+inf`, i.e. a known spread).
///
/// `df` is typically `n - 1`, plus the prior's degrees of freedom when one is pooled. For a
/// sequential verification pass the level of one look ([`spend`]). When `power <= alpha` the
/// formula is not positive and every positive effect already has that power: the result is
/// 0. `None` when `sd_diff` is not finite and `>= 0`, `n == 0`, `alpha` or `power` is not
/// strictly between 0 and 1, `df` is not positive, or the result overflows.
pub fn min_detectable_effect(
    sd_diff: f64,
    n: usize,
    alpha: f64,
    power: f64,
    df: Option<f64>,
) -> Option<f64> {
    if !(sd_diff.is_finite() && sd_diff >= 0.0) || n == 0 || !(power > 0.0 && power < 1.0) {
        return None;
    }
    let df = df.unwrap_or(f64::INFINITY);
    let q = t_upper(alpha, df)? + t_upper(1.0 - power, df)?;
    let mde = q.max(0.0) * sd_diff / (n as f64).sqrt();
    mde.is_finite().then_some(mde)
}

/// The fewest seeds, at most `max`, for which [`min_detectable_effect`] is at most `effect`.
///
/// `prior_df` selects the quantiles: `None` for a known spread (normal), `Some(d)` for a
/// spread estimated from the `n` seeds' own `n - 1` degrees of freedom plus `d` from a prior
/// (`Some(0.0)` without one; an `n` with no degrees of freedom cannot qualify). `None` when
/// `effect` is not finite and positive, the inputs are invalid as for
/// [`min_detectable_effect`], or even `max` seeds are not enough.
pub fn seeds_for_effect(
    effect: f64,
    sd_diff: f64,
    alpha: f64,
    power: f64,
    prior_df: Option<f64>,
    max: usize,
) -> Option<usize> {
    if !(effect.is_finite() && effect > 0.0) || prior_df.is_some_and(|d| d.is_nan() || d < 0.0) {
        return None;
    }
    let enough = |n: usize| {
        let df = prior_df.map(|d| (n - 1) as f64 + d);
        min_detectable_effect(sd_diff, n, alpha, power, df).is_some_and(|m| m <= effect)
    };
    // The detectable effect shrinks as n grows: double n until it is enough, then bisect.
    let (mut lo, mut hi) = (0usize, 1usize);
    while !enough(hi) {
        if hi >= max {
            return None;
        }
        lo = hi;
        hi = hi.saturating_mul(2).min(max);
    }
    // enough(hi) holds and enough(lo) does not (lo == 0 stands for "no seeds").
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if enough(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    (hi <= max).then_some(hi)
}

/// `P(T > t)` for Student's t with `df` degrees of freedom (`+inf`: normal); `t` may be
/// infinite.
fn t_sf(t: f64, df: f64) -> Option<f64> {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return None;
    }
    if t.is_infinite() {
        return Some(if t > 0.0 { 0.0 } else { 1.0 });
    }
    let p = if df >= LARGE_DF {
        // The t tail exceeds the normal one by pdf·(t³ + t)/(4·df) to first order.
        let corr = (-(t * t) / 2.0).exp() / (2.0 * PI).sqrt() * (t * t * t + t) / (4.0 * df);
        Normal::standard().sf(t) + if corr.is_finite() { corr } else { 0.0 }
    } else {
        StudentsT::new(0.0, 1.0, df).ok()?.sf(t)
    };
    Some(p.clamp(0.0, 1.0))
}

/// The upper-tail quantile of Student's t: the `q` with `P(T > q) = tail`, for `tail` strictly
/// between 0 and 1 and `df > 0` (`+inf`: normal). `None` outside that or when `q` overflows.
fn t_upper(tail: f64, df: f64) -> Option<f64> {
    if !(tail > 0.0 && tail < 1.0 && df > 0.0) {
        return None;
    }
    if tail > 0.5 {
        return t_upper(1.0 - tail, df).map(|q| -q);
    }
    if tail == 0.5 {
        return Some(0.0);
    }
    let z = -Normal::standard().inverse_cdf(tail);
    let q = if df >= LARGE_DF {
        cornish_fisher(z, df)
    } else if df == 1.0 {
        1.0 / (PI * tail).tan()
    } else if df == 2.0 {
        (1.0 - 2.0 * tail) / (2.0 * tail * (1.0 - tail)).sqrt()
    } else {
        solve_t_upper(tail, df, z)?
    };
    q.is_finite().then_some(q)
}

/// Fisher's expansion of the t quantile in powers of `1/df` around the normal quantile `z`
/// (Abramowitz & Stegun 26.7.5).
fn cornish_fisher(z: f64, df: f64) -> f64 {
    let z2 = z * z;
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    z + (g1 + (g2 + (g3 + g4 / df) / df) / df) / df
}

/// Safeguarded Newton iteration on `ln P(T > q) = ln tail`, for `0 < tail < 0.5`; falls back to
/// bisection whenever a step leaves the bracket.
fn solve_t_upper(tail: f64, df: f64, z: f64) -> Option<f64> {
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    // The t quantile lies above the normal one; the expansion is a good start for df >= 3.
    let start = if df >= 3.0 { cornish_fisher(z, df) } else { z };
    let mut x = if start.is_finite() { start.max(z) } else { z }.max(f64::MIN_POSITIVE);
    // Bracket: sf(lo) > tail >= sf(hi).
    let (mut lo, mut hi) = (0.0f64, x);
    while dist.sf(hi) > tail {
        lo = hi;
        hi *= 2.0;
        if !hi.is_finite() {
            return None;
        }
    }
    let ln_tail = tail.ln();
    for _ in 0..200 {
        let s = dist.sf(x);
        if s > tail {
            lo = lo.max(x);
        } else {
            hi = hi.min(x);
        }
        let step = (s.ln() - ln_tail) * s / dist.pdf(x);
        let mut next = x + step;
        if !(next > lo && next < hi) {
            next = if lo > 0.0 {
                lo.sqrt() * hi.sqrt()
            } else {
                hi / 2.0
            };
        }
        if (next - x).abs() <= 4.0 * f64::EPSILON * x.abs() || hi - lo <= f64::EPSILON * hi {
            return Some(next);
        }
        x = next;
    }
    Some(hi)
}
