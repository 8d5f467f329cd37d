//! pooled_noise and PooledNoise

use super::*;

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
