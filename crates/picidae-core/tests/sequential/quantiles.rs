//! Quantiles, through min_detectable_effect: at power 0.5 and one seed it is t(1 - alpha, df).

use super::*;

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
