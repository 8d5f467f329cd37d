//! Tests for `picidae_core::sequential`.
//!
//! Reference numbers were computed independently in Python with only the standard library:
//! t tail probabilities by Simpson integration of the t density (after the substitution
//! `x = tan u`), quantiles by bisection on that integral, and the df = 3 tail by its closed
//! form `1/2 - (atan(u) + u/(1+u²))/π`, `u = t/√3`.
//!
//! The simulations use a small deterministic generator (xorshift64* with Box–Muller normals)
//! so that they are reproducible without a dependency.

use picidae_core::sequential::{
    look, look_against_mean, min_detectable_effect, paired, pooled_noise, seeds_for_effect, spend,
    Look, LookStats, LoseReason, PooledNoise, Verdict, FUTILITY_BETA,
};
use picidae_core::stats::{mean_ci, welch};
use proptest::prelude::*;

macro_rules! assert_close {
    ($actual:expr, $expected:expr, $tol:expr) => {{
        let (a, e): (f64, f64) = ($actual, $expected);
        assert!(
            (a - e).abs() <= $tol,
            "{} = {a}, expected {e} (tol {})",
            stringify!($actual),
            $tol
        );
    }};
}

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        // In (0, 1): never 0, so the logarithm below is finite.
        (bits as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn normals(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.normal()).collect()
    }

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

// ---------------------------------------------------------------------------------------------
// Quantiles, through min_detectable_effect: at power 0.5 and one seed it is t(1 - alpha, df).

fn quantile(p: f64, df: Option<f64>) -> f64 {
    min_detectable_effect(1.0, 1, 1.0 - p, 0.5, df).unwrap()
}

#[test]
fn quantiles_match_independent_references() {
    assert_close!(quantile(0.975, Some(5.0)), 2.570582, 1e-6);
    assert_close!(quantile(0.99, Some(2.0)), 6.964557, 1e-6);
    assert_close!(quantile(0.95, Some(10.0)), 1.812461, 1e-6);
    assert_close!(quantile(0.995, Some(30.0)), 2.749996, 1e-6);
    assert_close!(quantile(0.999, Some(3.0)), 10.214531852407358, 1e-8);
    assert_close!(quantile(0.95, Some(3.0)), 2.353363434801822, 1e-9);
    assert_close!(quantile(0.8, Some(3.0)), 0.978472312363304, 1e-9);
    assert_close!(quantile(0.96, Some(16.0)), 1.869279, 1e-6);
    assert_close!(quantile(0.95, Some(1.0)), 6.313751514675041, 1e-9);
    assert_close!(quantile(0.975, None), 1.959963984540054, 1e-9);
    assert_close!(
        quantile(0.975, Some(f64::INFINITY)),
        1.959963984540054,
        1e-9
    );
}

#[test]
fn quantiles_are_continuous_where_the_method_changes() {
    // Below 1e5 degrees of freedom a root-finder on statrs's tail, from there an expansion.
    for p in [0.6, 0.975, 1.0 - 1e-6] {
        let (below, above) = (quantile(p, Some(99_999.0)), quantile(p, Some(100_001.0)));
        assert!((below - above).abs() < 1e-7, "{p}: {below} {above}");
        assert!(above > quantile(p, None));
    }
}

#[test]
fn quantiles_survive_extreme_inputs() {
    for df in [
        1e-3,
        0.3,
        0.9,
        1.0,
        1.5,
        2.0,
        2.5,
        7.0,
        1e4,
        1e12,
        1e300,
        f64::INFINITY,
    ] {
        for tail in [1e-300, 1e-12, 1e-3, 0.2, 0.5 - 1e-16] {
            match min_detectable_effect(1.0, 1, tail, 0.5, Some(df)) {
                Some(q) => assert!(q.is_finite() && q >= 0.0, "{df} {tail}: {q}"),
                // Only a quantile beyond f64::MAX (a tiny df in a far tail) has no answer.
                None => assert!(df < 1.0, "{df} {tail}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pooled_noise and PooledNoise

#[test]
fn pooled_noise_is_within_groups() {
    let a = [1.0, 3.0, f64::NAN];
    let b = [10.0, 12.0, 14.0, f64::INFINITY];
    let single = [100.0];
    let p = pooled_noise(&[&a, &b, &single, &[]]).unwrap();
    // SS = 2 + 8 over df = 1 + 2; the group means (2 and 12) do not count as noise.
    assert_close!(p.sd, (10.0f64 / 3.0).sqrt(), 1e-12);
    assert_eq!(p.df, 3.0);
}

#[test]
fn pooled_noise_needs_a_group_of_two() {
    assert!(pooled_noise(&[]).is_none());
    assert!(pooled_noise(&[&[1.0], &[2.0], &[]]).is_none());
    assert!(pooled_noise(&[&[f64::NAN, 1.0, f64::NEG_INFINITY]]).is_none());
    assert!(
        pooled_noise(&[&[-f64::MAX, f64::MAX]]).is_none(),
        "the spread overflows"
    );
    let flat = pooled_noise(&[&[0.5, 0.5], &[2.0, 2.0, 2.0]]).unwrap();
    assert_eq!((flat.sd, flat.df), (0.0, 3.0));
}

#[test]
fn pooled_noise_of_huge_values_does_not_overflow() {
    let p = pooled_noise(&[&[1e300, 3e300], &[-1e300, -3e300]]).unwrap();
    assert_close!(p.sd / 1e300, 2.0f64.sqrt(), 1e-12);
}

#[test]
fn noise_of_a_difference() {
    let n = pn(2.0, 9.0);
    let one = n.of_difference(1, 1).unwrap();
    assert_close!(one.sd, 2.0 * 2.0f64.sqrt(), 1e-12);
    assert_eq!(one.df, 9.0);
    assert_close!(
        n.of_difference(1, 4).unwrap().sd,
        2.0 * 1.25f64.sqrt(),
        1e-12
    );
    assert!(n.of_difference(0, 1).is_none());
    assert!(n.of_difference(1, 0).is_none());
    for bad in [
        pn(f64::NAN, 9.0),
        pn(-1.0, 9.0),
        pn(1.0, 0.0),
        pn(1.0, f64::NAN),
        pn(f64::MAX, 9.0),
    ] {
        assert!(bad.of_difference(1, 1).is_none(), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// paired

/// Candidate and incumbent with per-seed differences 1, 2, 3, 4 (higher is better).
type Seeded = Vec<(i64, f64)>;

fn pairs() -> (Seeded, Seeded) {
    let inc = vec![(10, 5.0), (11, -3.0), (12, 100.0), (13, 0.5)];
    let cand = vec![(13, 4.5), (12, 103.0), (11, -1.0), (10, 6.0)];
    (cand, inc)
}

#[test]
fn paired_matches_the_reference() {
    let (cand, inc) = pairs();
    let c = paired(&cand, &inc, true, 0.95, None).unwrap();
    assert_close!(c.effect, 2.5, 1e-12);
    assert_close!(c.se, 0.6454972243679028, 1e-12);
    assert_eq!(c.df, 3.0);
    assert_eq!((c.n_candidate, c.n_incumbent), (4, 4));
    assert_close!(c.p_value, 0.015233145831085482, 1e-9);
    let half = 3.182446305283709 * 0.6454972243679028;
    assert_close!(c.ci_low, 2.5 - half, 1e-9);
    assert_close!(c.ci_high, 2.5 + half, 1e-9);
    // The interval is the one-sample t interval of the differences.
    let (m, lo, hi) = mean_ci(&[1.0, 2.0, 3.0, 4.0], 0.95).unwrap();
    assert_close!(c.effect, m, 1e-12);
    assert_close!(c.ci_low, lo, 1e-9);
    assert_close!(c.ci_high, hi, 1e-9);
}

#[test]
fn paired_flips_the_sign_when_lower_is_better() {
    let (cand, inc) = pairs();
    let hi = paired(&cand, &inc, true, 0.95, None).unwrap();
    let lo = paired(&cand, &inc, false, 0.95, None).unwrap();
    assert_close!(lo.effect, -hi.effect, 1e-12);
    assert_close!(lo.p_value, 1.0 - hi.p_value, 1e-9);
    assert_close!(lo.ci_low, -hi.ci_high, 1e-9);
}

#[test]
fn paired_matches_by_seed_and_cleans_its_input() {
    let (mut cand, mut inc) = pairs();
    let reference = paired(&cand, &inc, true, 0.95, None).unwrap();
    // Unmatched seeds, non-finite values, and a repeated seed whose values average out.
    cand.extend([(99, 1.0), (10, f64::NAN), (12, 101.0), (12, 105.0)]);
    inc.extend([(98, 2.0), (11, f64::INFINITY)]);
    let c = paired(&cand, &inc, true, 0.95, None).unwrap();
    assert_eq!(c.n_candidate, 4);
    // Seed 12's candidate mean is (103 + 101 + 105) / 3 = 103: nothing changes.
    assert_close!(c.effect, reference.effect, 1e-12);
    assert_close!(c.p_value, reference.p_value, 1e-12);
}

#[test]
fn paired_needs_two_pairs_or_a_prior() {
    let one = [(1, 2.0)];
    let other = [(1, 1.0)];
    assert!(paired(&one, &other, true, 0.95, None).is_none());
    assert!(paired(&[], &[], true, 0.95, None).is_none());
    assert!(paired(&[(1, 2.0)], &[(2, 1.0)], true, 0.95, None).is_none());
    let prior = pn(0.5, 20.0);
    let c = paired(&one, &other, true, 0.95, Some(prior)).unwrap();
    assert_eq!((c.effect, c.se, c.df, c.n_candidate), (1.0, 0.5, 20.0, 1));
    assert!(
        c.p_value < 0.05 && c.ci_low < 0.0 && c.ci_high > 2.0,
        "{c:?}"
    );
    // An unusable prior is ignored.
    let nan = pn(f64::NAN, 20.0);
    assert!(paired(&one, &other, true, 0.95, Some(nan)).is_none());
}

#[test]
fn paired_pools_the_prior_with_the_differences() {
    let (cand, inc) = pairs();
    // Own SS = 5 on 3 df; prior SS = 4 · 1.0² on 4 df: pooled sd = sqrt(9 / 7).
    let c = paired(&cand, &inc, true, 0.95, Some(pn(1.0, 4.0))).unwrap();
    assert_eq!(c.df, 7.0);
    assert_close!(c.se, (9.0f64 / 7.0).sqrt() / 2.0, 1e-12);
    // A known spread (infinite df) replaces the sample's.
    let known = pn(1.0, f64::INFINITY);
    let c = paired(&cand, &inc, true, 0.95, Some(known)).unwrap();
    assert_close!(c.se, 0.5, 1e-12);
    assert_close!(c.ci_high - c.effect, 1.959963984540054 * 0.5, 1e-9);
}

#[test]
fn paired_zero_variance_is_decided_by_the_sign() {
    let inc = [(1, 1.0), (2, 2.0), (3, 3.0)];
    let better = [(1, 1.5), (2, 2.5), (3, 3.5)];
    let c = paired(&better, &inc, true, 0.95, None).unwrap();
    assert_eq!((c.p_value, c.se, c.ci_low, c.ci_high), (0.0, 0.0, 0.5, 0.5));
    let same = paired(&inc, &inc, true, 0.95, None).unwrap();
    assert_eq!((same.effect, same.p_value), (0.0, 1.0));
}

#[test]
fn paired_rejects_bad_confidence_and_overflow() {
    let (cand, inc) = pairs();
    for conf in [0.0, 1.0, -0.5, f64::NAN] {
        assert!(paired(&cand, &inc, true, conf, None).is_none(), "{conf}");
    }
    let big = [(1, f64::MAX), (2, f64::MAX)];
    let small = [(1, -f64::MAX), (2, -f64::MAX)];
    assert!(paired(&big, &small, true, 0.95, None).is_none());
}

#[test]
fn pairing_removes_the_noise_seeds_share() {
    // Seed effects (sd 1) shared by both arms, own noise 0.1, a true gain of 0.3, 5 seeds.
    let mut rng = Rng(0x5eed);
    let (mut ps, mut ws, mut ratios, mut se_ratios) = (vec![], vec![], vec![], vec![]);
    for rep in 0..21 {
        let (mut cand, mut inc) = (Vec::new(), Vec::new());
        for seed in 0..5i64 {
            let shared = rng.normal();
            inc.push((seed, shared + 0.1 * rng.normal()));
            cand.push((seed, shared + 0.3 + 0.1 * rng.normal()));
        }
        let p = paired(&cand, &inc, true, 0.95, None).unwrap();
        let values = |xs: &[(i64, f64)]| xs.iter().map(|x| x.1).collect::<Vec<_>>();
        let w = welch(&values(&cand), &values(&inc), true, 0.95).unwrap();
        assert!(p.p_value < w.p_value, "{rep}: paired {p:?} welch {w:?}");
        ps.push(p.p_value);
        ws.push(w.p_value);
        ratios.push(p.p_value / w.p_value);
        se_ratios.push(p.se / w.se);
    }
    for v in [&mut ps, &mut ws, &mut ratios, &mut se_ratios] {
        v.sort_by(f64::total_cmp);
    }
    // Medians over 21 replications.
    assert!(ps[10] < 0.01, "paired p {ps:?}");
    assert!(ws[10] > 0.1, "welch p {ws:?}");
    assert!(ratios[10] < 0.05, "p ratio {ratios:?}");
    assert!(se_ratios[10] < 0.25, "se ratio {se_ratios:?}");
}

// ---------------------------------------------------------------------------------------------
// spend and look: unit cases

#[test]
fn spending_splits_alpha_equally() {
    assert_eq!(spend(0.05, 1, 5), 0.01);
    assert_eq!(spend(0.05, 5, 5), 0.01);
    assert_eq!(spend(0.05, 0, 5), 0.0);
    assert_eq!(spend(0.05, 6, 5), 0.0);
    assert_eq!(spend(0.05, 1, 0), 0.0);
    assert_eq!(spend(f64::NAN, 1, 5), 0.0);
    assert_eq!(spend(-1.0, 1, 5), 0.0);
    let total: f64 = (0..=12).map(|k| spend(0.05, k, 7)).sum();
    assert!(total <= 0.05 + 1e-15, "{total}");
}

#[test]
fn look_matches_the_reference() {
    // Differences 1..4, no prior, 4 looks at alpha 0.2: each look spends 0.05.
    let v = look(&Look {
        diffs: &[1.0, 2.0, 3.0, 4.0],
        noise: None,
        max_looks: 4,
        first_win: 0,
        alpha: 0.2,
        min_effect: 0.0,
    });
    let s = win_stats(&v);
    assert_eq!((s.k, s.df, s.alpha_spent, s.threshold), (4, 3.0, 0.05, 0.0));
    assert_close!(s.beta_spent, FUTILITY_BETA / 4.0, 1e-15);
    assert_close!(s.se, 0.6454972243679028, 1e-12);
    let q = 2.353363434801822; // t(0.95, 3)
    assert_close!(s.ci_low, 2.5 - q * s.se, 1e-9);
    assert_close!(s.ci_high, 2.5 + q * s.se, 1e-9);
    assert_close!(s.futility_bound, s.ci_high, 1e-9); // beta_spent == alpha_spent here
    assert_close!(s.p_value, 4.0 * 0.015233145831085482, 1e-9);
}

#[test]
fn look_without_evidence_continues_until_the_last_look() {
    assert_eq!(look(&design(&[], None, 5)), CONTINUE);
    assert_eq!(
        look(&design(&[-5.0], None, 5)),
        CONTINUE,
        "one seed without a prior says nothing"
    );
    assert_eq!(
        look(&design(&[-5.0, f64::NAN], None, 1)),
        lose(LoseReason::Exhausted)
    );
}

#[test]
fn look_rejects_invalid_designs_and_extra_looks() {
    let noise = Some(pn(1.0, 10.0));
    for alpha in [0.0, 1.0, -0.1, f64::NAN, f64::INFINITY] {
        let v = look(&Look {
            alpha,
            ..design(&[9.0, 9.0], noise, 5)
        });
        assert_eq!(v, lose(LoseReason::Invalid), "{alpha}");
    }
    assert_eq!(look(&design(&[9.0], noise, 0)), lose(LoseReason::Invalid));
    assert_eq!(
        look(&design(&[9.0, 9.0, 9.0], noise, 2)),
        lose(LoseReason::Exhausted)
    );
}

#[test]
fn look_ignores_garbage() {
    let noise = Some(pn(1.0, 10.0));
    let clean = look(&design(&[0.3, 0.1], noise, 5));
    let dirty = look(&design(
        &[f64::NAN, 0.3, f64::INFINITY, 0.1, f64::NEG_INFINITY],
        noise,
        5,
    ));
    assert_eq!(clean, dirty);
    assert_eq!(clean.stats().unwrap().k, 2);
    // Unusable priors are ignored, as if none were given.
    for bad in [
        pn(f64::NAN, 10.0),
        pn(-1.0, 10.0),
        pn(1.0, -1.0),
        pn(f64::INFINITY, 10.0),
    ] {
        assert_eq!(look(&design(&[0.3], Some(bad), 5)), CONTINUE);
    }
}

#[test]
fn a_clear_loser_is_decided_on_its_first_seed_with_a_prior() {
    let noise = Some(pn(1.0, 20.0));
    match look(&design(&[-5.0], noise, 8)) {
        Verdict::Lose {
            reason: LoseReason::Futile,
            stats: Some(s),
        } => {
            assert_eq!(s.k, 1);
            assert!(s.futility_bound < 0.0, "{s:?}");
        }
        v => panic!("{v:?}"),
    }
    // In simulation: true effect -5 sd, a fresh prior from 8 groups of 3 runs each time.
    let mut rng = Rng(41);
    let trials = 2000;
    let first = (0..trials)
        .filter(|_| {
            let prior = rng.prior(8, 3);
            verify(&mut rng, -5.0, Some(prior), 8) == (false, 1)
        })
        .count();
    assert!(first as f64 >= 0.99 * trials as f64, "{first} of {trials}");
}

#[test]
fn a_clear_winner_wins_within_two_or_three_looks() {
    let mut rng = Rng(7);
    let trials = 2000;
    let mut with_prior = [0usize; 9];
    let mut without = [0usize; 9];
    for _ in 0..trials {
        let prior = rng.prior(8, 3);
        let (won, k) = verify(&mut rng, 5.0, Some(prior), 8);
        assert!(won);
        with_prior[k] += 1;
        let (won, k) = verify(&mut rng, 5.0, None, 8);
        assert!(won);
        without[k] += 1;
    }
    let by =
        |counts: &[usize; 9], k: usize| counts[..=k].iter().sum::<usize>() as f64 / trials as f64;
    assert!(by(&with_prior, 2) >= 0.99, "{with_prior:?}");
    assert_eq!(by(&with_prior, 3), 1.0, "{with_prior:?}");
    // Without a prior the first look cannot decide, and two seeds leave 1 degree of freedom.
    assert!(by(&without, 3) >= 0.5, "{without:?}");
    assert!(by(&without, 4) >= 0.95, "{without:?}");
}

#[test]
fn the_threshold_is_min_effect_but_never_below_zero() {
    let noise = Some(pn(0.1, 30.0));
    let d = [1.0, 1.0, 1.0];
    let at = |min_effect| {
        look(&Look {
            min_effect,
            ..design(&d, noise, 8)
        })
    };
    assert!(matches!(at(0.5), Verdict::Win { .. }));
    assert_eq!(lost(&at(2.0)), Some(LoseReason::Futile));
    assert_eq!(win_stats(&at(-3.0)).threshold, 0.0);
    assert_eq!(win_stats(&at(f64::NAN)).threshold, 0.0);
    // The p-value is against the threshold too.
    assert!(win_stats(&at(0.5)).p_value > win_stats(&at(0.0)).p_value);
    // A negative effect never wins, whatever min_effect says.
    let v = look(&Look {
        min_effect: -3.0,
        ..design(&[-1.0, -1.0, -1.0], noise, 8)
    });
    assert_eq!(lost(&v), Some(LoseReason::Futile), "{v:?}");
}

#[test]
fn zero_spread_is_decided_by_the_sign() {
    let v = look(&design(&[0.5, 0.5], None, 5));
    let s = win_stats(&v);
    assert_eq!((s.se, s.ci_low, s.p_value), (0.0, 0.5, 0.0));
    assert_eq!(
        lost(&look(&design(&[-0.5, -0.5], None, 5))),
        Some(LoseReason::Futile)
    );
    let flat = look(&design(&[0.0, 0.0], None, 5));
    assert!(matches!(flat, Verdict::Continue { stats: Some(_) }));
    let flat = look(&design(&[0.0, 0.0], None, 2));
    assert_eq!(lost(&flat), Some(LoseReason::Exhausted));
}

#[test]
fn the_last_look_without_a_win_loses() {
    let noise = Some(pn(1.0, 10.0));
    let d = [0.5, -0.2, 0.4];
    assert!(matches!(
        look(&design(&d, noise, 5)),
        Verdict::Continue { stats: Some(_) }
    ));
    let v = look(&design(&d, noise, 3));
    assert_eq!(lost(&v), Some(LoseReason::Exhausted), "{v:?}");
    assert!(v.stats().is_some());
}

#[test]
fn against_a_mean_the_shared_error_widens_the_interval() {
    let noise = Some(pn(1.0, 20.0));
    let d = [0.9, 1.1, 1.0, 0.8, 1.2];
    let plain = look(&design(&d, noise, 8));
    let vs_mean = look_against_mean(&design(&d, noise, 8), 3);
    let (p, m) = (plain.stats().unwrap(), vs_mean.stats().unwrap());
    assert_close!(m.se, m.sd * (1.0f64 / 5.0 + 1.0 / 3.0).sqrt(), 1e-12);
    assert!(m.ci_low < p.ci_low && m.effect == p.effect);
    assert_eq!(look_against_mean(&design(&d, noise, 8), 0), plain);
}

// ---------------------------------------------------------------------------------------------
// look: validity under optional stopping

#[test]
fn null_changes_win_at_most_alpha_of_the_time_under_optional_stopping() {
    let trials = 20_000;
    for with_prior in [false, true] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let wins = (0..trials)
            .filter(|_| {
                let prior = with_prior.then(|| rng.prior(8, 3));
                verify(&mut rng, 0.0, prior, 5).0
            })
            .count();
        let rate = wins as f64 / trials as f64;
        assert!(rate <= mc_limit(0.05, trials), "prior {with_prior}: {rate}");
        // Not vacuous: the test does spend its alpha.
        assert!(rate > 0.01, "prior {with_prior}: {rate}");
    }
}

#[test]
fn naive_peeking_would_fail_the_same_simulation() {
    // The simulation above can fail: testing every look at the full alpha inflates the rate.
    let trials = 20_000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let wins = (0..trials)
        .filter(|_| {
            let mut diffs = Vec::new();
            (0..5).any(|_| {
                diffs.push(rng.normal());
                mean_ci(&diffs, 0.9).is_some_and(|(_, low, _)| low > 0.0)
            })
        })
        .count();
    let rate = wins as f64 / trials as f64;
    assert!(rate > mc_limit(0.05, trials) + 0.02, "{rate}");
}

#[test]
fn differences_against_one_incumbent_mean_need_look_against_mean() {
    // Candidate runs minus the mean of the same 3 incumbent runs, under the null. The prior
    // is the run spread pooled over 8 other attempts and the incumbent itself.
    let trials = 10_000;
    let (m, max_looks) = (3usize, 5usize);
    let mut rng = Rng(99);
    let (mut right, mut naive) = (0, 0);
    for _ in 0..trials {
        let inc = rng.normals(m);
        let mut groups: Vec<Vec<f64>> = (0..8).map(|_| rng.normals(3)).collect();
        groups.push(inc.clone());
        let refs: Vec<&[f64]> = groups.iter().map(|g| g.as_slice()).collect();
        let run = pooled_noise(&refs).unwrap();
        let inc_mean = inc.iter().sum::<f64>() / m as f64;
        let cand = rng.normals(max_looks);
        let diffs: Vec<f64> = cand.iter().map(|c| c - inc_mean).collect();
        let first_decision = |f: &dyn Fn(&[f64]) -> Verdict| {
            (1..=max_looks)
                .map(|k| f(&diffs[..k]))
                .find(|v| !matches!(v, Verdict::Continue { .. }))
        };
        let ok = first_decision(&|d| look_against_mean(&design(d, Some(run), max_looks), m));
        right += matches!(ok, Some(Verdict::Win { .. })) as usize;
        // Treating them as independent, with the spread of one difference as the prior.
        let one_diff = run.of_difference(1, m);
        let bad = first_decision(&|d| look(&design(d, one_diff, max_looks)));
        naive += matches!(bad, Some(Verdict::Win { .. })) as usize;
    }
    let (right, naive) = (right as f64 / trials as f64, naive as f64 / trials as f64);
    assert!(right <= mc_limit(0.05, trials), "{right}");
    assert!(naive > mc_limit(0.05, trials), "{naive}");
}

// ---------------------------------------------------------------------------------------------
// Power

#[test]
fn min_detectable_effect_reference_values() {
    // (z(0.95) + z(0.8)) = 1.6448536 + 0.8416212.
    let normal = 1.6448536269514722 + 0.8416212335729143;
    let mde = |sd, n, df| min_detectable_effect(sd, n, 0.05, 0.8, df).unwrap();
    assert_close!(mde(1.0, 1, None), normal, 1e-9);
    assert_close!(mde(2.0, 4, None), normal, 1e-9);
    assert_close!(
        mde(1.0, 4, Some(3.0)),
        (2.353363434801822 + 0.978472312363304) / 2.0,
        1e-9
    );
    assert!(min_detectable_effect(1.0, 4, 0.05, 0.8, Some(3.0)).unwrap() > normal / 2.0);
    assert_eq!(min_detectable_effect(0.0, 4, 0.05, 0.8, None), Some(0.0));
    // power <= alpha: every positive effect already has that power.
    assert_eq!(
        min_detectable_effect(1.0, 4, 0.3, 0.2, Some(3.0)),
        Some(0.0)
    );
}

#[test]
fn min_detectable_effect_rejects_bad_input() {
    let ok = |sd, n, a, p, df| min_detectable_effect(sd, n, a, p, df);
    assert!(ok(f64::NAN, 4, 0.05, 0.8, None).is_none());
    assert!(ok(f64::INFINITY, 4, 0.05, 0.8, None).is_none());
    assert!(ok(-1.0, 4, 0.05, 0.8, None).is_none());
    assert!(ok(1.0, 0, 0.05, 0.8, None).is_none());
    for bad in [0.0, 1.0, f64::NAN, -1.0] {
        assert!(ok(1.0, 4, bad, 0.8, None).is_none());
        assert!(ok(1.0, 4, 0.05, bad, None).is_none());
    }
    for df in [0.0, -1.0, f64::NAN] {
        assert!(ok(1.0, 4, 0.05, 0.8, Some(df)).is_none());
    }
    assert!(ok(f64::MAX, 1, 0.05, 0.8, None).is_none(), "overflow");
}

#[test]
fn the_detectable_effect_is_detected_with_the_stated_power() {
    // Known spread, n = 4, one-sided 0.05: an effect of exactly the MDE is found ~80%.
    let mde = min_detectable_effect(1.0, 4, 0.05, 0.8, None).unwrap();
    let mut rng = Rng(5);
    let trials = 10_000;
    let found = (0..trials)
        .filter(|_| {
            let mean = rng.normals(4).iter().sum::<f64>() / 4.0 + mde;
            mean / 0.5 > 1.6448536269514722
        })
        .count();
    assert_close!(found as f64 / trials as f64, 0.8, 0.015);
}

#[test]
fn seeds_for_effect_reference_values() {
    // Known spread: ceil(((1.645 + 0.842) · 1 / 1)²) = ceil(6.18) = 7.
    assert_eq!(seeds_for_effect(1.0, 1.0, 0.05, 0.8, None, 100), Some(7));
    // Spread estimated from the seeds: (t(.95, 7) + t(.8, 7)) / √8 = 0.9866 <= 1 but
    // (t(.95, 6) + t(.8, 6)) / √7 = 1.0768 > 1.
    assert_eq!(
        seeds_for_effect(1.0, 1.0, 0.05, 0.8, Some(0.0), 100),
        Some(8)
    );
    // A large prior brings it back to the known-spread answer.
    assert_eq!(
        seeds_for_effect(1.0, 1.0, 0.05, 0.8, Some(1e6), 100),
        Some(7)
    );
    assert_eq!(seeds_for_effect(1.0, 1.0, 0.05, 0.8, None, 6), None);
    assert_eq!(seeds_for_effect(1.0, 1.0, 0.05, 0.8, None, 7), Some(7));
    assert_eq!(seeds_for_effect(1.0, 0.0, 0.05, 0.8, None, 7), Some(1));
    assert_eq!(
        seeds_for_effect(0.01, 1.0, 0.05, 0.8, None, usize::MAX),
        Some(61_826)
    );
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(seeds_for_effect(bad, 1.0, 0.05, 0.8, None, 100), None);
    }
    assert_eq!(
        seeds_for_effect(1.0, 1.0, 0.05, 0.8, Some(f64::NAN), 100),
        None
    );
    assert_eq!(seeds_for_effect(1.0, 1.0, 0.05, 0.8, None, 0), None);
}

#[test]
fn seeds_for_effect_is_the_first_n_that_suffices() {
    for &(effect, power, prior) in &[
        (0.5, 0.8, Some(0.0)),
        (0.9, 0.9, Some(3.0)),
        (1.7, 0.6, None),
        (0.3, 0.3, Some(0.0)),
        (2.0, 0.8, Some(0.0)),
    ] {
        let mde = |n: usize| {
            let df = prior.map(|d| (n - 1) as f64 + d);
            min_detectable_effect(1.0, n, 0.05, power, df)
        };
        // The detectable effect never grows with n.
        let curve: Vec<f64> = (1..200).filter_map(mde).collect();
        assert!(curve.windows(2).all(|w| w[1] <= w[0]), "{effect} {power}");
        let n = seeds_for_effect(effect, 1.0, 0.05, power, prior, 1000).unwrap();
        assert!(mde(n).unwrap() <= effect);
        assert!(
            n == 1 || mde(n - 1).is_none_or(|m| m > effect),
            "{effect} {power}: {n}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Totality

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::ANY,
        -10.0f64..10.0,
        Just(0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::MAX),
    ]
}

proptest! {
    #[test]
    fn look_never_panics_and_wins_only_above_the_threshold(
        diffs in proptest::collection::vec(any_f64(), 0..12),
        sd in any_f64(),
        df in any_f64(),
        with_noise in any::<bool>(),
        max_looks in 0usize..12,
        alpha in prop_oneof![0.0f64..1.0, any_f64()],
        min_effect in any_f64(),
        incumbent_runs in 0usize..5,
    ) {
        let l = Look {
            diffs: &diffs,
            noise: with_noise.then_some(PooledNoise { sd, df }),
            max_looks,
            first_win: 0,
            alpha,
            min_effect,
        };
        let v = look_against_mean(&l, incumbent_runs);
        if incumbent_runs == 0 {
            prop_assert_eq!(v, look(&l));
        }
        if let Some(s) = v.stats() {
            for x in [s.effect, s.sd, s.se, s.ci_low, s.ci_high, s.futility_bound, s.threshold] {
                prop_assert!(x.is_finite(), "{:?}", s);
            }
            prop_assert!(s.ci_low <= s.effect && s.effect <= s.ci_high, "{:?}", s);
            prop_assert!((0.0..=1.0).contains(&s.p_value), "{:?}", s);
            prop_assert!(s.threshold >= 0.0 && (min_effect.is_nan() || s.threshold >= min_effect));
            prop_assert!(s.alpha_spent > 0.0 && s.alpha_spent <= alpha);
        }
        match v {
            Verdict::Win { stats } => {
                prop_assert!(stats.ci_low > stats.threshold, "{:?}", stats);
                prop_assert!(stats.k >= 1 && stats.k <= max_looks);
            }
            Verdict::Lose { reason: LoseReason::Futile, stats } => {
                let s = stats.unwrap();
                prop_assert!(s.futility_bound < s.threshold, "{:?}", s);
            }
            _ => {}
        }
    }

    #[test]
    fn the_rest_never_panics(
        a in proptest::collection::vec((-3i64..3, any_f64()), 0..8),
        b in proptest::collection::vec((-3i64..3, any_f64()), 0..8),
        x in any_f64(),
        y in any_f64(),
        z in any_f64(),
        n in 0usize..50,
        with_noise in any::<bool>(),
    ) {
        let noise = with_noise.then_some(PooledNoise { sd: x, df: y });
        if let Some(c) = paired(&a, &b, z > 0.0, 0.9, noise) {
            for v in [c.effect, c.ci_low, c.ci_high, c.se, c.p_value] {
                prop_assert!(v.is_finite(), "{:?}", c);
            }
            prop_assert!((0.0..=1.0).contains(&c.p_value));
        }
        let groups: Vec<Vec<f64>> = a.chunks(3).map(|c| c.iter().map(|p| p.1).collect()).collect();
        let refs: Vec<&[f64]> = groups.iter().map(|g| g.as_slice()).collect();
        if let Some(p) = pooled_noise(&refs) {
            prop_assert!(p.sd.is_finite() && p.sd >= 0.0 && p.df >= 1.0);
        }
        let _ = noise.and_then(|p| p.of_difference(n, 2));
        if let Some(m) = min_detectable_effect(x, n, y.abs() % 1.0, z.abs() % 1.0, Some(y.abs())) {
            prop_assert!(m.is_finite() && m >= 0.0);
        }
        let _ = seeds_for_effect(x, y, 0.05, 0.8, Some(z), n);
    }
}

// ---------------------------------------------------------------------------------------
// win-looks: a keep only at planned looks

#[test]
fn win_looks_double_from_the_first_up_to_the_last() {
    use picidae_core::sequential::win_looks;
    assert_eq!(win_looks(3, 8), vec![3, 6, 8]);
    assert_eq!(win_looks(2, 2), vec![2]);
    assert_eq!(win_looks(9, 4), vec![4]);
    assert_eq!(win_looks(0, 3), vec![1, 2, 3]);
    assert_eq!(win_looks(1, 3), vec![1, 2, 3]);
}

fn planned(diffs: &[f64], noise: Option<PooledNoise>) -> Verdict {
    look(&Look {
        diffs,
        noise,
        max_looks: 8,
        first_win: 3,
        alpha: 0.05,
        min_effect: 0.0,
    })
}

#[test]
fn no_keep_between_win_looks() {
    let noise = Some(PooledNoise { sd: 0.1, df: 30.0 });
    // Four clear winning seeds: 4 is not a win-look (3, 6, 8).
    match planned(&[5.0; 4], noise) {
        Verdict::Continue { stats: Some(s) } => assert!(!s.win_look && s.alpha_spent == 0.0),
        v => panic!("{v:?}"),
    }
    match planned(&[5.0; 3], noise) {
        Verdict::Win { stats } => assert!((stats.alpha_spent - 0.05 / 3.0).abs() < 1e-12),
        v => panic!("{v:?}"),
    }
    // A clear loser still stops on its first seed.
    assert!(matches!(
        planned(&[-5.0], noise),
        Verdict::Lose {
            reason: LoseReason::Futile,
            ..
        }
    ));
}

#[test]
fn planned_win_looks_keep_null_changes_at_most_alpha_of_the_time() {
    for noise in [None, Some(PooledNoise { sd: 1.0, df: 40.0 })] {
        let mut rng = Rng(0x5eed);
        let trials = 20_000;
        let mut wins = 0;
        for _ in 0..trials {
            let mut diffs = Vec::new();
            loop {
                diffs.push(rng.normal());
                match planned(&diffs, noise) {
                    Verdict::Win { .. } => {
                        wins += 1;
                        break;
                    }
                    Verdict::Lose { .. } => break,
                    Verdict::Continue { .. } => assert!(diffs.len() < 8),
                }
            }
        }
        let rate = wins as f64 / trials as f64;
        let margin = 3.0 * (0.05f64 * 0.95 / trials as f64).sqrt();
        assert!(rate <= 0.05 + margin, "{noise:?}: {rate}");
        assert!(rate > 0.005, "{noise:?}: {rate}");
    }
}
