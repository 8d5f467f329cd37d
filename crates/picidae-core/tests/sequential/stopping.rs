//! look: validity under optional stopping

use super::*;

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
