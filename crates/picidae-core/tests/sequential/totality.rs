//! Totality

use super::*;

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
        futility_effect in any_f64(),
        incumbent_runs in 0usize..5,
    ) {
        let l = Look {
            diffs: &diffs,
            noise: with_noise.then_some(PooledNoise { sd, df }),
            max_looks,
            first_win: 0,
            alpha,
            min_effect,
            futility_effect,
        };
        let v = look_against_mean(&l, incumbent_runs);
        if incumbent_runs == 0 {
            prop_assert_eq!(v, look(&l));
        }
        if let Some(s) = v.stats() {
            for x in [s.effect, s.sd, s.se, s.ci_low, s.ci_high, s.futility_bound, s.threshold, s.futility_target] {
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
                prop_assert!(s.futility_bound < s.futility_target, "{:?}", s);
                prop_assert!(s.beta_spent > 0.0 && s.futility_target >= s.threshold, "{:?}", s);
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
