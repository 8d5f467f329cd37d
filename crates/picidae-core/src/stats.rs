//! Statistics Picidae uses to decide whether a change is a real improvement.
//!
//! This module holds the numerical decisions the scheduler makes about run metrics: summaries of
//! repeated runs, the candidate-versus-incumbent test, the multiple-testing correction across
//! many candidates, and a rank correlation. Every function is pure (no I/O, no global state,
//! no randomness) and total: it never panics, whatever the input (empty slices, `NaN`,
//! infinities, zero variance, a single value). Where no meaningful answer exists the function
//! returns `None` or a documented conventional value.
//!
//! # Input cleaning
//!
//! Metrics come from user benchmarks, so a run may report `NaN` or `inf`. [`summarize`],
//! [`welch`] and [`mean_ci`] drop non-finite values before doing anything else, and the counts
//! they report (`n`, `n_candidate`, `n_incumbent`) are counts of the *finite* values used.
//! [`spearman`] drops a pair when either of its values is non-finite. [`benjamini_hochberg`]
//! treats a `NaN` p-value as 1 (no evidence) and clamps the rest into `[0, 1]`.
//!
//! # Why these methods
//!
//! - **Welch's t-test** ([`welch`]), not Student's pooled t-test: a change routinely alters the
//!   run-to-run noise as well as the mean (a new optimizer, a different batch size), so equal
//!   variances cannot be assumed. Welch's test with the Welch–Satterthwaite degrees of freedom
//!   is calibrated under unequal variances and loses almost nothing when they are equal. It is
//!   a t-test, not a rank test, because auto-research loops afford only a handful of seeds per
//!   arm (often 3–5), where rank tests such as Mann–Whitney cannot reach small p-values at all
//!   (with 3 vs 3 the smallest one-sided p is 0.05). The p-value is **one-sided** because the
//!   question asked is directional: "is the candidate better?", never "is it different?".
//! - **Benjamini–Hochberg** ([`benjamini_hochberg`], [`bh_q_for`]): a loop tests many candidates
//!   against the frontier, so some will look significant by chance. Controlling the false
//!   discovery rate (the expected share of kept changes that are not real) fits "keep the
//!   changes that are likely real" better than Bonferroni's family-wise control, which grows
//!   far too conservative as the number of attempts grows.
//! - **Spearman rank correlation** ([`spearman`]) with average ranks for ties: used to ask
//!   whether a cheap proxy (a short run, a smaller model) orders candidates the way the full
//!   benchmark does. Only the order matters for that question, and ranks are robust to the
//!   outliers and non-linear scales common in metrics. Ties are handled by giving tied values
//!   their average rank and taking the Pearson correlation of the ranks, which is exact with
//!   ties (the `1 - 6Σd²/(n(n²-1))` shortcut is not).
//! - **t interval for a mean** ([`mean_ci`]): the same small-sample reasoning as for Welch;
//!   a bootstrap interval is unreliable at the 3–10 samples typical here.
//!
//! Distribution functions (Student's t CDF and quantiles) come from the `statrs` crate.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Descriptive statistics of the finite values of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of finite values summarized (always at least 1).
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (denominator `n - 1`); `0.0` when `n == 1` or all values are
    /// equal.
    pub std: f64,
    /// Smallest finite value.
    pub min: f64,
    /// Largest finite value.
    pub max: f64,
}

/// Summarizes the finite values of `xs`; non-finite values (`NaN`, `±inf`) are ignored.
///
/// Returns `None` when `xs` has no finite value. With one finite value `std` is `0.0`. When all
/// finite values are equal, `mean` is exactly that value and `std` is exactly `0.0` (no
/// rounding residue), which [`welch`] relies on to recognise zero-variance samples.
///
/// The mean and standard deviation are computed so that they do not overflow for any finite
/// input, except that `std` is `+inf` when the spread of the values itself exceeds `f64::MAX`
/// (e.g. `[-1e308, 1e308]`).
pub fn summarize(xs: &[f64]) -> Option<Summary> {
    let mut n = 0usize;
    let mut sum = 0.0f64;
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    for &x in xs.iter().filter(|x| x.is_finite()) {
        n += 1;
        sum += x;
        min = min.min(x);
        max = max.max(x);
    }
    if n == 0 {
        return None;
    }
    if min == max {
        return Some(Summary {
            n,
            mean: min,
            std: 0.0,
            min,
            max,
        });
    }
    let nf = n as f64;
    let mut mean = sum / nf;
    if !mean.is_finite() {
        // The plain sum overflowed; dividing first keeps every term and the total in range.
        mean = xs.iter().filter(|x| x.is_finite()).map(|x| x / nf).sum();
    }
    // Keep the mean inside the data's range despite rounding.
    mean = mean.clamp(min, max);
    // n >= 2 here, since min != max.
    // Scale the deviations by the largest one so that squaring cannot overflow.
    let scale = (max - mean).max(mean - min);
    let std = if scale.is_finite() && scale > 0.0 {
        let ss: f64 = xs
            .iter()
            .filter(|x| x.is_finite())
            .map(|x| {
                let d = (x - mean) / scale;
                d * d
            })
            .sum();
        scale * (ss / (nf - 1.0)).sqrt()
    } else if scale > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    Some(Summary {
        n,
        mean,
        std,
        min,
        max,
    })
}

/// The result of comparing a candidate's runs with the incumbent's, see [`welch`].
///
/// Every field is finite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Signed gain of the candidate over the incumbent: positive means the candidate is better.
    /// `mean(candidate) - mean(incumbent)` when higher is better, the reverse otherwise.
    pub effect: f64,
    /// Lower end of the two-sided confidence interval on `effect`.
    pub ci_low: f64,
    /// Upper end of the two-sided confidence interval on `effect`.
    pub ci_high: f64,
    /// One-sided p-value for H1: `effect > 0` (the candidate is truly better), in `[0, 1]`.
    /// About 0.5 when the means are equal; above 0.5 when the candidate looks worse.
    pub p_value: f64,
    /// Welch–Satterthwaite degrees of freedom (see [`welch`] for the zero-variance case).
    pub df: f64,
    /// Number of finite candidate values used.
    pub n_candidate: usize,
    /// Number of finite incumbent values used.
    pub n_incumbent: usize,
    /// Standard error of `effect`: `sqrt(s_c²/n_c + s_i²/n_i)`.
    pub se: f64,
}

/// Welch's unequal-variance t-test of "the candidate is better than the incumbent".
///
/// `higher_is_better` sets the direction of the metric; `confidence` (e.g. `0.95`) sets the
/// level of the two-sided interval `[ci_low, ci_high]` on `effect`. Non-finite values in either
/// sample are ignored. See [`Comparison`] for the fields.
///
/// Returns `None` when:
/// - either sample has fewer than 2 finite values (no variance estimate, so no test);
/// - `confidence` is not strictly between 0 and 1 (this includes `NaN`);
/// - the arithmetic overflows (the difference of the means, the standard error or an end of
///   the interval is not finite, which takes values near `f64::MAX`).
///
/// When both samples have zero variance, `se` is 0 and the t statistic is undefined. The
/// result is then decided by the sign of `effect`: `p_value` is `0.0` if `effect > 0` and
/// `1.0` if `effect <= 0` (identical, noise-free samples give no evidence of improvement), the
/// interval is `[effect, effect]`, and `df` is `n_candidate + n_incumbent - 2` (the pooled
/// value; Welch–Satterthwaite is 0/0 here).
pub fn welch(
    candidate: &[f64],
    incumbent: &[f64],
    higher_is_better: bool,
    confidence: f64,
) -> Option<Comparison> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let c = summarize(candidate)?;
    let i = summarize(incumbent)?;
    if c.n < 2 || i.n < 2 {
        return None;
    }
    let effect = if higher_is_better {
        c.mean - i.mean
    } else {
        i.mean - c.mean
    };
    // Per-arm standard errors; `hypot` keeps their combination from overflowing.
    let se_c = c.std / (c.n as f64).sqrt();
    let se_i = i.std / (i.n as f64).sqrt();
    let se = se_c.hypot(se_i);
    if !effect.is_finite() || !se.is_finite() {
        return None;
    }
    let (n_c, n_i) = (c.n, i.n);
    if se == 0.0 {
        return Some(Comparison {
            effect,
            ci_low: effect,
            ci_high: effect,
            p_value: if effect > 0.0 { 0.0 } else { 1.0 },
            df: (n_c + n_i - 2) as f64,
            n_candidate: n_c,
            n_incumbent: n_i,
            se: 0.0,
        });
    }
    // Welch–Satterthwaite, written with the shares of the variance so it cannot underflow to
    // 0/0: df = 1 / (r²/(n_c-1) + s²/(n_i-1)), r = se_c²/se², s = se_i²/se².
    let r = (se_c / se).powi(2);
    let s = (se_i / se).powi(2);
    let df = 1.0 / (r * r / (n_c - 1) as f64 + s * s / (n_i - 1) as f64);
    // Mathematically df lies in [min(n_c, n_i) - 1, n_c + n_i - 2]; clamping keeps it there
    // when the standard errors are subnormal and the ratios above lose their precision.
    let df = df.clamp((n_c.min(n_i) - 1) as f64, (n_c + n_i - 2) as f64);
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let t = effect / se;
    let p_value = if t.is_finite() {
        dist.sf(t).clamp(0.0, 1.0)
    } else if t > 0.0 {
        0.0
    } else {
        1.0
    };
    let half_width = dist.inverse_cdf(0.5 + confidence / 2.0) * se;
    let (ci_low, ci_high) = (effect - half_width, effect + half_width);
    if !ci_low.is_finite() || !ci_high.is_finite() {
        return None;
    }
    Some(Comparison {
        effect,
        ci_low,
        ci_high,
        p_value,
        df,
        n_candidate: n_c,
        n_incumbent: n_i,
        se,
    })
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the order of `p_values`.
///
/// `q_(k) = min over j >= k of (m · p_(j) / j)`, capped at 1, where `p_(j)` is the j-th smallest
/// p-value and `m = p_values.len()`. The result is monotone in p: a smaller p never gets a
/// larger q. Rejecting every hypothesis with `q <= α` controls the false discovery rate at `α`
/// (for independent or positively dependent tests).
///
/// `NaN` is treated as 1; other values are clamped into `[0, 1]`. An empty input gives an
/// empty output.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let clean: Vec<f64> = p_values
        .iter()
        .map(|&p| if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) })
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| clean[a].total_cmp(&clean[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank0, &idx) in order.iter().enumerate().rev() {
        let adjusted = clean[idx] * m as f64 / (rank0 + 1) as f64;
        running = running.min(adjusted);
        q[idx] = running;
    }
    q
}

/// The Benjamini–Hochberg q-value of `p` among the family `others` plus `p` itself
/// (`m = others.len() + 1`). Same conventions as [`benjamini_hochberg`]; with no `others` this
/// is `p` clamped into `[0, 1]` (`NaN` gives 1).
pub fn bh_q_for(p: f64, others: &[f64]) -> f64 {
    let mut all = Vec::with_capacity(others.len() + 1);
    all.push(p);
    all.extend_from_slice(others);
    benjamini_hochberg(&all)[0]
}

/// Spearman's rank correlation of `xs` and `ys`, in `[-1, 1]`.
///
/// Tied values get the average of the ranks they span, and the coefficient is the Pearson
/// correlation of the ranks (exact with ties). Pairs where either value is non-finite are
/// dropped first.
///
/// Returns `None` when the lengths differ, fewer than 2 pairs remain, or either side is
/// constant over the remaining pairs (the correlation is undefined).
pub fn spearman(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() {
        return None;
    }
    let (fx, fy): (Vec<f64>, Vec<f64>) = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(&x, &y)| (x, y))
        .unzip();
    if fx.len() < 2 {
        return None;
    }
    let rx = average_ranks(&fx);
    let ry = average_ranks(&fy);
    let n = rx.len() as f64;
    // Both rank vectors have mean (n + 1) / 2.
    let mid = (n + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (da, db) = (a - mid, b - mid);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// 1-based ranks of finite `xs`, ties given the average of the ranks they span.
fn average_ranks(xs: &[f64]) -> Vec<f64> {
    let n = xs.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut ranks = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start;
        // `==` rather than total order so that -0.0 and 0.0 tie.
        while end + 1 < n && xs[order[end + 1]] == xs[order[start]] {
            end += 1;
        }
        // Positions start..=end hold ranks start+1 ..= end+1; their average:
        let rank = (start + end) as f64 / 2.0 + 1.0;
        for &idx in &order[start..=end] {
            ranks[idx] = rank;
        }
        start = end + 1;
    }
    ranks
}

/// The mean of the finite values of `xs` with its two-sided Student-t confidence interval at
/// level `confidence`: `(mean, low, high)`.
///
/// Returns `None` when fewer than 2 values are finite, `confidence` is not strictly between 0
/// and 1, or the standard error or an end of the interval overflows. When all values are equal
/// the interval is `(mean, mean)`.
pub fn mean_ci(xs: &[f64], confidence: f64) -> Option<(f64, f64, f64)> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let s = summarize(xs)?;
    if s.n < 2 {
        return None;
    }
    let se = s.std / (s.n as f64).sqrt();
    if !se.is_finite() {
        return None;
    }
    if se == 0.0 {
        return Some((s.mean, s.mean, s.mean));
    }
    let dist = StudentsT::new(0.0, 1.0, (s.n - 1) as f64).ok()?;
    let half_width = dist.inverse_cdf(0.5 + confidence / 2.0) * se;
    let (low, high) = (s.mean - half_width, s.mean + half_width);
    if !low.is_finite() || !high.is_finite() {
        return None;
    }
    Some((s.mean, low, high))
}
