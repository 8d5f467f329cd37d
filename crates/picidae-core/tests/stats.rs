//! Tests for `picidae_core::stats`.
//!
//! Reference numbers for the Welch example were computed independently in Python with only the
//! standard library: means and sample variances by hand, the Welch–Satterthwaite df by formula,
//! the t tail probability by Simpson integration of the t density (200 000 intervals), and the
//! quantile by bisection on that integral (which reproduces the table value t(0.975, 5) =
//! 2.570582).

use picidae_core::stats::{
    benjamini_hochberg, bh_q_for, mean_ci, spearman, summarize, welch, Comparison,
};

#[macro_use]
mod common;

use common::Rng;

const CAND: [f64; 6] = [20.0, 22.0, 19.0, 20.0, 22.0, 18.0];
const INC: [f64; 6] = [17.0, 18.0, 19.0, 15.0, 16.0, 17.0];

// Independent Python reference values for CAND vs INC, higher is better, 95%.
const EFFECT: f64 = 3.166_666_666_666_668;
const SE: f64 = 0.872_416_821_886_826_7;
const DF: f64 = 9.848_357_645_083_428;
const T: f64 = 3.629_763_419_529_134_6;
const P_ONE_SIDED: f64 = 0.002_365_367_581_323_774;
const CI_LOW: f64 = 1.218_736_083_613_553_7;
const CI_HIGH: f64 = 5.114_597_249_719_782_5;

// ---------------------------------------------------------------------------------------------
// summarize

#[test]
fn summarize_basic_values() {
    let s = summarize(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(s.n, 4);
    assert_close!(s.mean, 2.5, 1e-12);
    // Sample variance: (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3.
    assert_close!(s.std, (5.0f64 / 3.0).sqrt(), 1e-12);
    assert_eq!(s.min, 1.0);
    assert_eq!(s.max, 4.0);
}

#[test]
fn summarize_ignores_non_finite_values() {
    let s = summarize(&[f64::NAN, 1.0, f64::INFINITY, 3.0, f64::NEG_INFINITY]).unwrap();
    assert_eq!(s.n, 2);
    assert_close!(s.mean, 2.0, 1e-12);
    assert_close!(s.std, 2.0f64.sqrt(), 1e-12);
    assert_eq!((s.min, s.max), (1.0, 3.0));
}

#[test]
fn summarize_single_value_has_zero_std() {
    let s = summarize(&[7.5]).unwrap();
    assert_eq!((s.n, s.mean, s.std, s.min, s.max), (1, 7.5, 0.0, 7.5, 7.5));
}

#[test]
fn summarize_constant_sample_is_exact() {
    // Naively, (0.1 + 0.1 + 0.1) / 3 != 0.1 and the std would be a tiny non-zero residue.
    let s = summarize(&[0.1, 0.1, 0.1]).unwrap();
    assert_eq!(s.mean, 0.1);
    assert_eq!(s.std, 0.0);
}

#[test]
fn summarize_empty_or_all_non_finite_is_none() {
    assert!(summarize(&[]).is_none());
    assert!(summarize(&[f64::NAN, f64::INFINITY]).is_none());
}

#[test]
fn summarize_does_not_overflow_on_huge_values() {
    let s = summarize(&[f64::MAX, f64::MAX / 2.0]).unwrap();
    assert!(s.mean.is_finite() && s.std.is_finite(), "{s:?}");
    assert_close!(s.mean / f64::MAX, 0.75, 1e-12);
    // Deviations are ±MAX/4, so std = sqrt(2 · (MAX/4)²) = MAX · sqrt(2)/4.
    assert_close!(s.std / f64::MAX, 2.0f64.sqrt() / 4.0, 1e-12);
}

// ---------------------------------------------------------------------------------------------
// welch

#[test]
fn welch_matches_independent_reference() {
    let c = welch(&CAND, &INC, true, 0.95).unwrap();
    assert_eq!((c.n_candidate, c.n_incumbent), (6, 6));
    assert_close!(c.effect, EFFECT, 1e-9);
    assert_close!(c.se, SE, 1e-9);
    assert_close!(c.df, DF, 1e-9);
    assert_close!(c.effect / c.se, T, 1e-9);
    assert_close!(c.p_value, P_ONE_SIDED, 1e-6);
    assert_close!(c.ci_low, CI_LOW, 1e-4);
    assert_close!(c.ci_high, CI_HIGH, 1e-4);
}

#[test]
fn welch_confidence_level_changes_only_the_interval() {
    let c95 = welch(&CAND, &INC, true, 0.95).unwrap();
    let c99 = welch(&CAND, &INC, true, 0.99).unwrap();
    assert_eq!(c95.p_value, c99.p_value);
    assert!(c99.ci_low < c95.ci_low && c99.ci_high > c95.ci_high);
    // Interval symmetric around the effect.
    assert_close!(c99.effect - c99.ci_low, c99.ci_high - c99.effect, 1e-9);
}

#[test]
fn welch_lower_is_better_flips_the_sign() {
    // Same data, but now lower is better: the candidate (higher mean) is worse.
    let c = welch(&CAND, &INC, false, 0.95).unwrap();
    assert_close!(c.effect, -EFFECT, 1e-9);
    assert_close!(c.ci_low, -CI_HIGH, 1e-4);
    assert_close!(c.ci_high, -CI_LOW, 1e-4);
    assert_close!(c.p_value, 1.0 - P_ONE_SIDED, 1e-6);
    assert!(c.p_value > 0.5);
    assert_close!(c.df, DF, 1e-9);

    // Swapping the roles as well makes the (lower) incumbent-data the better candidate.
    let swapped = welch(&INC, &CAND, false, 0.95).unwrap();
    assert_close!(swapped.effect, EFFECT, 1e-9);
    assert_close!(swapped.p_value, P_ONE_SIDED, 1e-6);
}

#[test]
fn welch_worse_candidate_has_p_above_half() {
    let c = welch(&INC, &CAND, true, 0.95).unwrap();
    assert!(c.effect < 0.0);
    assert_close!(c.p_value, 1.0 - P_ONE_SIDED, 1e-6);
}

#[test]
fn welch_equal_means_give_p_one_half() {
    let c = welch(&[1.0, 2.0, 3.0], &[0.0, 2.0, 4.0], true, 0.95).unwrap();
    assert_eq!(c.effect, 0.0);
    assert_close!(c.p_value, 0.5, 1e-12);
}

#[test]
fn welch_needs_two_finite_values_per_arm() {
    assert!(welch(&[1.0], &[1.0, 2.0], true, 0.95).is_none());
    assert!(welch(&[1.0, 2.0], &[1.0], true, 0.95).is_none());
    assert!(welch(&[], &[], true, 0.95).is_none());
    assert!(welch(&[1.0, f64::NAN], &[1.0, 2.0], true, 0.95).is_none());
    // NaNs are dropped, and the counts report the finite values actually used.
    let c = welch(&[1.0, f64::NAN, 2.0, 3.0], &[1.0, 2.0], true, 0.95).unwrap();
    assert_eq!((c.n_candidate, c.n_incumbent), (3, 2));
}

#[test]
fn welch_rejects_invalid_confidence() {
    for conf in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        assert!(
            welch(&CAND, &INC, true, conf).is_none(),
            "confidence {conf}"
        );
    }
}

#[test]
fn welch_zero_variance_in_both_arms() {
    let better = welch(&[2.0, 2.0, 2.0], &[1.0, 1.0], true, 0.95).unwrap();
    assert_eq!(
        better,
        Comparison {
            effect: 1.0,
            ci_low: 1.0,
            ci_high: 1.0,
            p_value: 0.0,
            df: 3.0,
            n_candidate: 3,
            n_incumbent: 2,
            se: 0.0,
        }
    );
    let worse = welch(&[2.0, 2.0, 2.0], &[1.0, 1.0], false, 0.95).unwrap();
    assert_eq!((worse.effect, worse.p_value), (-1.0, 1.0));
    let same = welch(&[0.1, 0.1, 0.1], &[0.1, 0.1, 0.1], true, 0.95).unwrap();
    assert_eq!((same.effect, same.p_value, same.se), (0.0, 1.0, 0.0));
}

#[test]
fn welch_zero_variance_in_one_arm_uses_the_other_arms_df() {
    // Welch–Satterthwaite with s_c = 0 reduces to n_i - 1.
    let c = welch(&[5.0, 5.0, 5.0, 5.0], &[0.0, 1.0, 2.0], true, 0.95).unwrap();
    assert_close!(c.df, 2.0, 1e-12);
    assert_close!(c.se, (1.0f64 / 3.0).sqrt(), 1e-12);
    assert_close!(c.effect, 4.0, 1e-12);
    // t = 4 / sqrt(1/3) = 6.9282 on 2 df; P(T > t) = (1 - t/sqrt(t² + 2)) / 2 in closed form.
    let t = 4.0 / (1.0f64 / 3.0).sqrt();
    assert_close!(c.p_value, (1.0 - t / (t * t + 2.0).sqrt()) / 2.0, 1e-9);
}

#[test]
fn welch_df_is_textbook_formula_with_unequal_sizes() {
    // Candidate var 1 over n 3, incumbent var 10/4 = 2.5 over n 5: v_c = 1/3, v_i = 1/2,
    // df = (1/3 + 1/2)² / ((1/3)²/2 + (1/2)²/4) = (25/36) / (17/144) = 100/17.
    let c = welch(&[0.0, 1.0, 2.0], &[-2.0, -1.0, 0.0, 1.0, 2.0], true, 0.95).unwrap();
    assert_close!(c.df, 100.0 / 17.0, 1e-12);
    assert_close!(c.se, (5.0f64 / 6.0).sqrt(), 1e-12);
}

fn null_rejection_rate(
    seed: u64,
    trials: usize,
    n_c: usize,
    sd_c: f64,
    n_i: usize,
    sd_i: f64,
) -> f64 {
    let mut rng = Rng(seed);
    let mut rejections = 0;
    for _ in 0..trials {
        let c = rng.sample(n_c, 10.0, sd_c);
        let i = rng.sample(n_i, 10.0, sd_i);
        let cmp = welch(&c, &i, true, 0.95).unwrap();
        // One-sided: a small p is only ever evidence for a positive effect.
        assert_eq!(cmp.p_value < 0.5, cmp.effect > 0.0, "{cmp:?}");
        if cmp.p_value < 0.05 {
            rejections += 1;
        }
    }
    rejections as f64 / trials as f64
}

#[test]
fn welch_is_calibrated_under_the_null() {
    // One-sided p < 0.05 should happen ~5% of the time when nothing changed (binomial sd
    // ~0.5% over 2000 trials). A p for the wrong direction would also reject ~5%; the helper
    // catches that (and a two-sided p) by checking that p < 0.5 exactly when the effect is
    // positive.
    let rate = null_rejection_rate(0x9E37_79B9_7F4A_7C15, 2000, 5, 1.0, 5, 1.0);
    assert!((0.03..=0.07).contains(&rate), "null rejection rate {rate}");
}

#[test]
fn welch_is_calibrated_with_unequal_variances_and_sizes() {
    // The small arm is the noisy one: a pooled-variance t-test rejects far too often here
    // (its pooled variance is dominated by the quiet large arm); Welch stays near 5%.
    let rate = null_rejection_rate(0xD1B5_4A32_D192_ED03, 2000, 4, 3.0, 12, 0.5);
    assert!((0.03..=0.07).contains(&rate), "null rejection rate {rate}");
}

#[test]
fn welch_has_power_against_a_real_improvement() {
    let mut rng = Rng(42);
    let mut detected = 0;
    for _ in 0..500 {
        let c = rng.sample(5, 12.0, 1.0);
        let i = rng.sample(5, 10.0, 1.0);
        if welch(&c, &i, true, 0.95).unwrap().p_value < 0.05 {
            detected += 1;
        }
    }
    // A 2-sd shift with 5 vs 5 runs is detected most of the time (power ~0.9).
    assert!(detected > 400, "detected {detected}/500");
}

// ---------------------------------------------------------------------------------------------
// Benjamini–Hochberg

#[test]
fn bh_known_vector() {
    let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
    let expected = [0.02, 0.04, 0.04, 0.02];
    assert_eq!(q.len(), 4);
    for (a, e) in q.iter().zip(expected) {
        assert_close!(*a, e, 1e-12);
    }
}

#[test]
fn bh_second_known_vector() {
    // Sorted: 0.01, 0.02, 0.04, 0.5, 0.9 (m = 5): raw 0.05, 0.05, 0.0667, 0.625, 0.9.
    let q = benjamini_hochberg(&[0.5, 0.01, 0.02, 0.9, 0.04]);
    let expected = [0.625, 0.05, 0.05, 0.9, 0.04 * 5.0 / 3.0];
    for (a, e) in q.iter().zip(expected) {
        assert_close!(*a, e, 1e-12);
    }
}

#[test]
fn bh_step_down_minimum_applies() {
    // Sorted 0.01, 0.011, 0.012, 0.5 (m = 4): raw m·p/rank = 0.04, 0.022, 0.016, 0.5; the
    // running minimum from the top lowers the first two to 0.016.
    let q = benjamini_hochberg(&[0.5, 0.012, 0.01, 0.011]);
    let expected = [0.5, 0.016, 0.016, 0.016];
    for (a, e) in q.iter().zip(expected) {
        assert_close!(*a, e, 1e-12);
    }
}

#[test]
fn bh_caps_at_one_and_is_monotone() {
    let mut rng = Rng(7);
    let p: Vec<f64> = (0..200).map(|_| rng.uniform()).collect();
    let q = benjamini_hochberg(&p);
    for a in 0..p.len() {
        assert!(q[a] >= p[a] - 1e-15, "q < p at {a}");
        assert!((0.0..=1.0).contains(&q[a]));
        for b in 0..p.len() {
            if p[a] < p[b] {
                assert!(
                    q[a] <= q[b],
                    "not monotone: p {} -> q {}, p {} -> q {}",
                    p[a],
                    q[a],
                    p[b],
                    q[b]
                );
            }
        }
    }
    // All large p: 0.9 · 2 / 1 would exceed 1 without the cap.
    assert_eq!(benjamini_hochberg(&[0.9, 0.95]), vec![0.95, 0.95]);
}

#[test]
fn bh_nan_is_treated_as_one_and_out_of_range_clamped() {
    let q = benjamini_hochberg(&[f64::NAN, 0.01]);
    assert_eq!(q[0], 1.0);
    assert_close!(q[1], 0.02, 1e-12);
    let q = benjamini_hochberg(&[-0.5, 2.0, f64::INFINITY]);
    assert_eq!(q, vec![0.0, 1.0, 1.0]);
    assert!(benjamini_hochberg(&[]).is_empty());
}

#[test]
fn bh_q_for_matches_full_adjustment() {
    assert_close!(bh_q_for(0.01, &[0.04, 0.03, 0.005]), 0.02, 1e-12);
    assert_close!(bh_q_for(0.04, &[0.01, 0.03, 0.005]), 0.04, 1e-12);
    assert_eq!(bh_q_for(0.3, &[]), 0.3);
    assert_eq!(bh_q_for(f64::NAN, &[]), 1.0);
}

// ---------------------------------------------------------------------------------------------
// Spearman

#[test]
fn spearman_perfect_monotone_and_reversed() {
    let x = [1.0, 2.0, 3.0, 4.0, 5.0];
    // Monotone but far from linear: Spearman is still exactly 1.
    let y = [1.0, 10.0, 100.0, 1000.0, 1e6];
    assert_close!(spearman(&x, &y).unwrap(), 1.0, 1e-12);
    let rev = [5.0, 4.0, 3.0, 2.0, -100.0];
    assert_close!(spearman(&x, &rev).unwrap(), -1.0, 1e-12);
}

#[test]
fn spearman_with_ties_hand_computed() {
    // Ranks x: [1, 2.5, 2.5, 4, 5], ranks y: [2, 1, 5, 3.5, 3.5]; both centred on 3.
    // Σdxdy = 2 + 1 - 1 + 0.5 + 1 = 3.5, Σdx² = Σdy² = 9.5, so rho = 3.5 / 9.5 = 7/19.
    let x = [1.0, 2.0, 2.0, 3.0, 4.0];
    let y = [2.0, 1.0, 4.0, 3.0, 3.0];
    assert_close!(spearman(&x, &y).unwrap(), 7.0 / 19.0, 1e-12);
    // Ranks [1, 2.5, 2.5, 4] vs [1, 3, 2, 4]: 4.5 / sqrt(4.5 · 5).
    let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
    assert_close!(r, 4.5 / (4.5f64 * 5.0).sqrt(), 1e-12);
}

#[test]
fn spearman_undefined_cases_are_none() {
    assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
    assert!(spearman(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]).is_none());
    assert!(spearman(&[1.0, 2.0], &[1.0]).is_none());
    assert!(spearman(&[1.0], &[1.0]).is_none());
    assert!(spearman(&[], &[]).is_none());
    // NaN pairs are dropped: only one pair remains.
    assert!(spearman(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, f64::NAN]).is_none());
    // ...and with enough pairs left, the rest is used.
    let r = spearman(&[1.0, f64::NAN, 2.0, 3.0], &[3.0, 0.0, 2.0, 1.0]).unwrap();
    assert_close!(r, -1.0, 1e-12);
}

// ---------------------------------------------------------------------------------------------
// mean_ci

#[test]
fn mean_ci_matches_reference() {
    // Python: mean 20.1667, t(0.975, 5) = 2.5705818, se = sqrt(2.5667 / 6).
    let (m, lo, hi) = mean_ci(&CAND, 0.95).unwrap();
    assert_close!(m, 20.166_666_666_666_668, 1e-12);
    assert_close!(lo, 18.485_384_740_121_013, 1e-4);
    assert_close!(hi, 21.847_948_593_212_323, 1e-4);
}

#[test]
fn mean_ci_edge_cases() {
    assert!(mean_ci(&[], 0.95).is_none());
    assert!(mean_ci(&[1.0], 0.95).is_none());
    assert!(mean_ci(&[1.0, f64::NAN], 0.95).is_none());
    assert!(mean_ci(&CAND, 1.0).is_none());
    assert!(mean_ci(&CAND, f64::NAN).is_none());
    assert_eq!(mean_ci(&[3.0, 3.0], 0.95), Some((3.0, 3.0, 3.0)));
    // n = 2, values 0 and 2: mean 1, se 1, t(0.975, 1) = tan(0.475π) = 12.7062.
    let (m, lo, hi) = mean_ci(&[0.0, 2.0], 0.95).unwrap();
    let t = (0.475 * std::f64::consts::PI).tan();
    assert_close!(m, 1.0, 1e-12);
    assert_close!(lo, 1.0 - t, 1e-6);
    assert_close!(hi, 1.0 + t, 1e-6);
}

// ---------------------------------------------------------------------------------------------
// No panics, and every returned number is sane, on awkward inputs.

#[test]
fn no_panics_on_awkward_inputs() {
    let tiny = f64::MIN_POSITIVE * f64::EPSILON; // smallest subnormal
    let samples: Vec<Vec<f64>> = vec![
        vec![],
        vec![f64::NAN],
        vec![1.0],
        vec![f64::NAN, f64::NAN, f64::NAN],
        vec![f64::INFINITY, f64::NEG_INFINITY],
        vec![1.0, 1.0],
        vec![0.0, -0.0],
        vec![tiny, 0.0],
        vec![tiny, 0.0, tiny],
        vec![f64::MAX, -f64::MAX],
        vec![f64::MAX, f64::MAX, f64::MAX],
        vec![f64::MAX, f64::MAX / 2.0, 0.0],
        vec![1e300, -1e300, 1e-300],
        vec![1.0, 2.0, f64::NAN, 3.0],
    ];
    let confidences = [
        0.95,
        0.0,
        1.0,
        -1.0,
        f64::NAN,
        1e-300,
        1.0 - f64::EPSILON,
        0.5,
    ];
    for a in &samples {
        if let Some(s) = summarize(a) {
            assert!(
                s.n >= 1 && s.mean.is_finite() && s.std >= 0.0,
                "{a:?}: {s:?}"
            );
            assert!(s.min <= s.mean && s.mean <= s.max, "{a:?}: {s:?}");
        }
        for &conf in &confidences {
            if let Some((m, lo, hi)) = mean_ci(a, conf) {
                assert!(
                    lo.is_finite() && hi.is_finite() && lo <= m && m <= hi,
                    "{a:?} {conf}"
                );
            }
        }
        for b in &samples {
            for &conf in &confidences {
                for hib in [true, false] {
                    if let Some(c) = welch(a, b, hib, conf) {
                        let fields = [c.effect, c.ci_low, c.ci_high, c.p_value, c.df, c.se];
                        assert!(fields.iter().all(|v| v.is_finite()), "{a:?} {b:?}: {c:?}");
                        assert!((0.0..=1.0).contains(&c.p_value), "{a:?} {b:?}: {c:?}");
                        assert!(c.ci_low <= c.effect && c.effect <= c.ci_high, "{c:?}");
                        assert!(c.df >= 1.0 && c.se >= 0.0, "{c:?}");
                    }
                }
            }
            if let Some(r) = spearman(a, b) {
                assert!((-1.0..=1.0).contains(&r), "{a:?} {b:?}: {r}");
            }
            let q = benjamini_hochberg(a);
            assert_eq!(q.len(), a.len());
            assert!(q.iter().all(|v| (0.0..=1.0).contains(v)));
            let _ = bh_q_for(a.first().copied().unwrap_or(f64::NAN), b);
        }
    }
}
