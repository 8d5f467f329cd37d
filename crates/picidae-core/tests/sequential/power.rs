//! Power

use super::*;

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
