//! paired

use super::*;

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
