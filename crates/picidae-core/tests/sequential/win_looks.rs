//! win-looks: a keep only at planned looks

use super::*;

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
        futility_effect: f64::NAN,
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
