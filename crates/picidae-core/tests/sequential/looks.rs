//! spend and look: unit cases

use super::*;

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
        futility_effect: f64::NAN,
    });
    let s = win_stats(&v);
    assert_eq!((s.k, s.df, s.alpha_spent, s.threshold), (4, 3.0, 0.05, 0.0));
    // Futility looks 1, 2 and 4: each spends a third of beta.
    assert_close!(s.beta_spent, FUTILITY_BETA / 3.0, 1e-15);
    assert_close!(s.se, 0.6454972243679028, 1e-12);
    let q = 2.353363434801822; // t(0.95, 3)
    assert_close!(s.ci_low, 2.5 - q * s.se, 1e-9);
    assert_close!(s.ci_high, 2.5 + q * s.se, 1e-9);
    // beta_spent > alpha_spent: a smaller quantile than the interval's.
    assert!(
        s.effect < s.futility_bound && s.futility_bound < s.ci_high,
        "{s:?}"
    );
    assert_eq!(s.futility_target, 0.0);
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
    let d = [1.0, 1.0, 1.0, 1.0];
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
        ..design(&[-1.0, -1.0, -1.0, -1.0], noise, 8)
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

#[test]
fn futility_stops_only_at_its_looks_and_against_the_effect_sought() {
    assert_eq!(futility_looks(8), vec![1, 2, 4, 8]);
    assert_eq!(futility_looks(6), vec![1, 2, 4, 6]);
    assert_eq!(futility_looks(1), vec![1]);
    assert_eq!(futility_looks(0), Vec::<usize>::new());
    let noise = Some(pn(1.0, 1000.0));
    // A middling effect: not futile against zero, futile against an effect of 2 it cannot
    // plausibly reach; only at a futility look.
    let d = [0.2, 0.3, 0.1, 0.2];
    let against = |futility_effect, n| {
        look(&Look {
            futility_effect,
            ..design(&d[..n], noise, 8)
        })
    };
    assert!(matches!(against(f64::NAN, 4), Verdict::Continue { .. }));
    assert_eq!(lost(&against(2.0, 4)), Some(LoseReason::Futile));
    assert_eq!(against(2.0, 4).stats().unwrap().futility_target, 2.0);
    let between = against(2.0, 3);
    assert!(matches!(between, Verdict::Continue { .. }), "{between:?}");
    assert_eq!(between.stats().unwrap().beta_spent, 0.0);
    // Below the threshold it changes nothing; a non-finite one neither.
    for e in [-1.0, f64::INFINITY] {
        assert_eq!(against(e, 4).stats().unwrap().futility_target, 0.0);
    }
}
