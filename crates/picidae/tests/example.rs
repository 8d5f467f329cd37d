//! The bundled example benchmark, through `picidae demo`, as the README's main job runs it.

mod common;

use common::{bin, text};
use picidae_core::{AttemptKind, RunStatus};
use picidae_store::{AttemptFilter, Store};

#[test]
fn example_contract_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tiny-mlp");
    let out = bin().args(["check", dir]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("val_loss (minimize)"), "{s}");
}

#[test]
fn demo_runs_the_example_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = bin()
        .args(["demo", "--plain", "-n", "3", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 attempts:"), "{stdout}");

    let store = Store::open(&dir.join(".picidae/store.sqlite")).unwrap();
    let p = store.program("tiny-mlp-sweep").unwrap();
    let attempts = store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(attempts.len(), 4);
    assert_eq!(attempts[0].kind, AttemptKind::Baseline);
    // The contract's policy measures the baseline over several seeds (seeds 0..3; any later
    // ones are the pairs of a candidate's seeds under sequential paired verification).
    let baseline_runs: Vec<_> = store
        .runs_of_attempt(attempts[0].id)
        .unwrap()
        .into_iter()
        .filter(|r| r.seed < 3)
        .collect();
    assert_eq!(baseline_runs.len(), 3);
    let seeds: Vec<i64> = baseline_runs.iter().map(|r| r.seed).collect();
    assert_eq!(seeds, vec![0, 1, 2]);
    let values: Vec<f64> = baseline_runs
        .iter()
        .filter_map(|r| r.primary_value)
        .collect();
    assert_eq!(values.len(), 3);
    assert!(
        values.windows(2).any(|w| w[0] != w[1]),
        "seeds give different results: {values:?}"
    );
    for a in &attempts[1..] {
        assert!(a.params.is_some(), "sweep attempts record their assignment");
        assert!(a.hypothesis.contains('→'), "{}", a.hypothesis);
        let runs = store.runs_of_attempt(a.id).unwrap();
        assert!(matches!(
            runs[0].status,
            RunStatus::Succeeded | RunStatus::Invalid
        ));
    }
    // Runs wrote their model artifact.
    let log_dir = baseline_runs[0].log_dir.clone().unwrap();
    assert!(std::path::Path::new(&log_dir)
        .join("artifacts/model.json")
        .exists());
    // The held-out test set is generated outside the run's view.
    let cache = dir.join(".picidae/cache/tiny-mlp-sweep");
    let fp_dir = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(fp_dir.join("hidden/test.csv").exists());
    assert!(!fp_dir.join("data/test.csv").exists());
    // The gold models never reach a run's checkout, and the evaluator reproduces their scores.
    let c = store
        .latest_calibration(p.id)
        .unwrap()
        .expect("calibrated before the loop");
    assert!(c.passed, "{:?}", c.details);
    assert_eq!(c.rank_correlation, Some(1.0));
    assert!(c.max_error.unwrap() < 0.0005);
    let out = bin()
        .args(["--project"])
        .arg(&dir)
        .args(["evaluator", "calibrate", "-p", "tiny-mlp-sweep"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}
