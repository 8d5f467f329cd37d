//! The findings layer against a benchmark whose true effects are known by construction
//! (`common::truth_files`): real improvements are validated, noise is not, visible-only gains
//! are flagged, and a broken evaluator fails calibration and blocks promotion.

mod common;

use common::{text, Env, BROKEN_EVALUATOR, GOOD_EVALUATOR};
use picidae_core::domain::FindingState;
use picidae_core::AttemptStatus;
use picidae_store::{AttemptFilter, Store};

const VERIFY: &str = "seeds = 5\nbaseline_seeds = 5";

fn attempts_by_tag(store: &Store, program: &str) -> Vec<(String, AttemptStatus)> {
    let p = store.program(program).unwrap();
    store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .skip(1)
        .map(|a| {
            (
                a.hypothesis
                    .split_whitespace()
                    .last()
                    .unwrap_or("")
                    .to_string(),
                a.status,
            )
        })
        .collect()
}

#[test]
fn validated_findings_match_the_true_improvements() {
    let env = Env::truth(GOOD_EVALUATOR, VERIFY);
    // True effects (lower is better, noise σ = 0.5): -2.5 real, 0 noise, +2 worse,
    // -2.5 real again (from 7.5), 0 noise again.
    env.queue_program(
        "p",
        &[
            "7.5 7.5 real1",
            "7.5 7.5 null1",
            "9.5 9.5 worse",
            "5 5 real2",
            "5 5 null2",
        ],
        &[],
    );
    let out = env.ok(&["run", "p", "-n", "5", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let validated: Vec<String> = store
        .findings(Some(p.id), Some(FindingState::Validated))
        .unwrap()
        .iter()
        .map(|f| store.attempt(f.attempt_id).unwrap().hypothesis)
        .collect();
    assert_eq!(
        validated,
        vec![
            "value 7.5 7.5 real1".to_string(),
            "value 5 5 real2".to_string()
        ],
        "{out}"
    );
    let tags = attempts_by_tag(&store, "p");
    assert_eq!(tags[0], ("real1".into(), AttemptStatus::Kept));
    assert_eq!(tags[3], ("real2".into(), AttemptStatus::Kept));
    for i in [1, 2, 4] {
        assert_eq!(tags[i].1, AttemptStatus::Discarded, "{:?}", tags[i]);
    }
    // The frontier is the last validated finding, measured over its 5 seeds.
    let f = store
        .finding_for_attempt(p.frontier_attempt_id.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(f.state, FindingState::Validated);
    let e = &f.evidence;
    // Five seeds (the fewest a keep needs, `seeds = 5`), each paired with the incumbent's run
    // on the same seed; the incumbent may have more (seeds run for earlier candidates' pairs).
    assert_eq!(e.n_candidate, Some(5));
    assert!(e.n_incumbent >= Some(5), "{e:?}");
    assert!(
        e.rule
            .as_deref()
            .unwrap_or_default()
            .contains("sequential paired"),
        "{e:?}"
    );
    let effect = e.effect.unwrap();
    assert!(e.ci_low.unwrap() > 0.0 && e.ci_low.unwrap() < effect && effect < e.ci_high.unwrap());
    assert!(
        (effect - 2.5).abs() < 1.0,
        "estimated effect {effect} vs true 2.5"
    );
    // The sequential test bounds each candidate's false-keep rate itself: no q-value over the
    // program's family.
    assert_eq!(e.q_value, None, "{e:?}");
    assert!(e.p_value.unwrap() <= 0.05, "{e:?}");
    assert_eq!(e.hidden_agrees, Some(true));
    assert!((e.hidden_effect.unwrap() - 2.5).abs() < 1e-9);
    // The evaluator was calibrated on the gold cases first.
    let c = store.latest_calibration(p.id).unwrap().unwrap();
    assert!(c.passed, "{:?}", c.details);
    assert_eq!(c.rank_correlation, Some(1.0));

    // The report has the evidence a human needs.
    let report = env.ok(&["report", "-p", "p"]);
    assert!(report.contains("## Validated findings"), "{report}");
    assert!(
        report.contains("value 5 5 real2") && report.contains("```diff"),
        "{report}"
    );
    assert!(
        report.contains("- rule: sequential paired test"),
        "{report}"
    );
    let listed = env.ok(&["findings", "-p", "p", "--state", "validated", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    // A person's approval goes into the finding's history; the finding stays validated.
    let out = env.ok(&[
        "findings",
        "approve",
        &f.id.to_string(),
        "--note",
        "checked the diff",
    ]);
    assert!(out.contains("approved"), "{out}");
    let events = store.finding_events(f.id).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.to == "approved" && e.reason.contains("checked the diff")),
        "{events:?}"
    );
    assert_eq!(store.finding(f.id).unwrap().state, FindingState::Validated);

    // Retracting the frontier's finding moves the frontier back to the previous one.
    let before = store.program("p").unwrap();
    drop(store);
    env.ok(&[
        "findings",
        "retract",
        &f.id.to_string(),
        "--reason",
        "did not reproduce",
    ]);
    let store = env.store();
    let after = store.program("p").unwrap();
    assert_ne!(after.frontier_commit, before.frontier_commit);
    let real1 = store.attempt_by_seq(p.id, 2).unwrap().unwrap();
    assert_eq!(after.frontier_commit, real1.commit);
    let repo = picidae_git::Repo::open(&env.bench).unwrap();
    assert_eq!(
        repo.resolve("refs/picidae/p/frontier").unwrap(),
        real1.commit
    );
    assert_eq!(store.finding(f.id).unwrap().state, FindingState::Retracted);
    // A refuted finding cannot be validated later, and a retracted one cannot come back.
    let again = env.picidae(&["findings", "retract", &f.id.to_string(), "--reason", "x"]);
    assert!(!again.status.success());
    // Nor can a retracted finding be approved.
    let approve = env.picidae(&["findings", "approve", &f.id.to_string()]);
    assert!(!approve.status.success());
    assert!(
        text(&approve).contains("only a validated finding"),
        "{}",
        text(&approve)
    );
}

/// Count attempts that moved the frontier although their true effect is zero. Without
/// `hidden`, the contract has no hidden evaluator (an autoresearch-style keep/revert).
fn false_keeps(policy: &str, n: usize, hidden: bool) -> (usize, usize) {
    let env = Env::truth(GOOD_EVALUATOR, policy);
    if !hidden {
        let contract = std::fs::read_to_string(env.bench.join("picidae.toml")).unwrap();
        let visible_only = contract.split("[hidden]").next().unwrap().to_string();
        env.commit_file("picidae.toml", &visible_only, "no hidden evaluator");
    }
    let actions: Vec<String> = (0..n).map(|i| format!("10 10 null{i}")).collect();
    let refs: Vec<&str> = actions.iter().map(String::as_str).collect();
    env.queue_program("p", &refs, &[]);
    env.ok(&["run", "p", "-n", &n.to_string(), "--plain"]);
    let store = env.store();
    let tags = attempts_by_tag(&store, "p");
    assert_eq!(tags.len(), n);
    let kept = tags.iter().filter(|t| t.1 == AttemptStatus::Kept).count();
    (kept, store.run_count(None).unwrap() as usize)
}

#[test]
fn pure_noise_is_not_validated_and_the_false_positive_rate_is_bounded() {
    let n = 40;
    let (picidae, picidae_runs) = false_keeps(VERIFY, n, false);
    let (plain, plain_runs) = false_keeps("seeds = 1\nbaseline_seeds = 5", n, false);
    eprintln!(
        "null changes kept: picidae {picidae}/{n} ({picidae_runs} runs), seeds=1 {plain}/{n} ({plain_runs} runs)"
    );
    // Every keep here is a false positive. Picidae's policy holds the rate at or below 5%;
    // plain keep/revert on single seeds keeps noise several times over.
    assert!(
        picidae * 20 <= n,
        "false-positive rate {picidae}/{n} above 5%"
    );
    assert!(plain > picidae, "seeds=1 kept {plain}, picidae {picidae}");
    // With a hidden evaluator, one seed keeps nothing the hidden metric does not confirm: a
    // null change has no hidden gain.
    let (guarded, _) = false_keeps("seeds = 1\nbaseline_seeds = 5", n / 2, true);
    assert_eq!(
        guarded, 0,
        "seeds=1 with [hidden] kept {guarded} null changes"
    );
}

#[test]
fn a_change_that_only_helps_the_visible_metric_is_flagged() {
    let env = Env::truth(GOOD_EVALUATOR, VERIFY);
    env.queue_program("p", &["7 12 overfit"], &[]);
    env.ok(&["run", "p", "-n", "1", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let findings = store.findings(Some(p.id), None).unwrap();
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(f.state, FindingState::Refuted);
    assert!(
        f.evidence.effect.unwrap() > 2.0,
        "visible gain is real: {:?}",
        f.evidence
    );
    assert_eq!(f.evidence.hidden_agrees, Some(false));
    assert_eq!(f.evidence.flags, vec!["suspected-overfit".to_string()]);
    assert!((f.evidence.hidden_effect.unwrap() + 2.0).abs() < 1e-9);
    // The frontier did not move.
    assert_eq!(store.frontier_history(p.id).unwrap().len(), 1);
    let report = env.ok(&["report", "-p", "p"]);
    assert!(report.contains("suspected-overfit"), "{report}");

    // Hidden numbers never reach the agent: not in its context, prompt or the results an
    // agent reads through the CLI.
    let attempt_dir = env.project.join(".picidae/attempts/p/2");
    for file in ["context.json", "prompt.md"] {
        let text = std::fs::read_to_string(attempt_dir.join(file)).unwrap();
        assert!(!text.contains("hidden_"), "{file}: {text}");
    }
    let results = env.ok(&["results", "-p", "p", "--json"]);
    assert!(!results.contains("hidden_score"), "{results}");
    // The hidden files were never in a run's or the agent's checkout.
    let transcript = std::fs::read_to_string(attempt_dir.join("transcript.txt")).unwrap();
    assert!(transcript.contains("value.txt"), "{transcript}");
    assert!(!transcript.contains("gold"), "{transcript}");
}

#[test]
fn a_broken_evaluator_fails_calibration_and_cannot_promote() {
    let env = Env::truth(BROKEN_EVALUATOR, VERIFY);
    env.queue_program("p", &["6 6 real"], &[]);
    let out = env.picidae(&["evaluator", "calibrate", "-p", "p"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("rank correlation"), "{stdout}");

    env.ok(&["run", "p", "-n", "1", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let f = &store.findings(Some(p.id), None).unwrap()[0];
    assert_eq!(f.state, FindingState::Verifying, "blocked, not refuted");
    assert!(f
        .evidence
        .flags
        .contains(&"evaluator-uncalibrated".to_string()));
    assert_eq!(
        store.frontier_history(p.id).unwrap().len(),
        1,
        "frontier did not move"
    );

    // The same benchmark with a sound evaluator passes.
    let good = Env::truth(GOOD_EVALUATOR, VERIFY);
    good.queue_program("p", &[], &[]);
    let out = good.ok(&["evaluator", "calibrate", "-p", "p"]);
    assert!(out.contains("passed"), "{out}");
}

#[test]
fn seeds_one_is_plain_keep_revert_without_findings() {
    let env = Env::truth(GOOD_EVALUATOR, "seeds = 1\nbaseline_seeds = 2");
    env.queue_program("p", &["7 7 a", "10 10 b"], &[]);
    env.ok(&["run", "p", "-n", "2", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    assert!(store.findings(Some(p.id), None).unwrap().is_empty());
    let runs_per_attempt: Vec<usize> = store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|a| store.runs_of_attempt(a.id).unwrap().len())
        .collect();
    assert_eq!(runs_per_attempt, vec![2, 1, 1]);
    let tags = attempts_by_tag(&store, "p");
    assert_eq!(tags[0].1, AttemptStatus::Kept);
    assert_eq!(tags[1].1, AttemptStatus::Discarded);
}

#[test]
fn a_new_environment_gets_its_own_noise_floor_before_any_comparison() {
    let env = Env::truth(GOOD_EVALUATOR, VERIFY);
    env.queue_program("p", &["7 7 real", "6 6 next"], &[]);
    env.ok(&["run", "p", "-n", "1", "--plain"]);
    {
        // Pretend everything so far was measured on another machine.
        picidae_store::testing::tamper_noise_floor_fingerprints(&env.store(), "elsewhere").unwrap();
    }
    let out = env.ok(&["run", "p", "-n", "1", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let attempts = store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap();
    let kinds: Vec<String> = attempts.iter().map(|a| a.kind.to_string()).collect();
    assert_eq!(
        kinds,
        vec!["baseline", "explore", "baseline", "explore"],
        "{out}"
    );
    // The second baseline re-measured the frontier of its time (the validated `real`), here.
    assert_eq!(
        attempts[2].parent_commit,
        attempts[1].commit.clone().unwrap()
    );
    // Its five seeds measured it; seeds beyond are the pairs of later candidates' seeds.
    let measured: Vec<i64> = store
        .runs_of_attempt(attempts[2].id)
        .unwrap()
        .iter()
        .map(|r| r.seed)
        .filter(|s| *s < 5)
        .collect();
    assert_eq!(measured, vec![0, 1, 2, 3, 4]);
    let here = store.runs_of_attempt(attempts[2].id).unwrap()[0]
        .fingerprint
        .clone()
        .unwrap();
    let floor = store.noise_floor(p.id, &here).unwrap().unwrap();
    assert_eq!((floor.attempt_id, floor.n), (attempts[2].id, 5));
    assert!(
        floor.std > 0.1 && floor.std < 1.5,
        "seed noise σ = 0.5: {floor:?}"
    );
    // The next candidate was compared with the new measurement, not the old one.
    let f = store.finding_for_attempt(attempts[3].id).unwrap().unwrap();
    assert_eq!(f.incumbent_attempt_id, attempts[2].id);
}

/// A run budget holds when candidates are verified sequentially and paired with their
/// incumbent: an attempt is admitted only if its most seeds (the sequential cap) and the
/// incumbent seeds that may have to be run to match them still fit.
#[test]
fn the_run_budget_holds_under_sequential_paired_verification() {
    let env = Env::truth(GOOD_EVALUATOR, VERIFY);
    let actions: Vec<String> = (0..8)
        .map(|i| format!("{} {} step{i}", 9 - i, 9 - i))
        .collect();
    let refs: Vec<&str> = actions.iter().map(String::as_str).collect();
    env.queue_program("p", &refs, &[]);
    env.ok(&["program", "set", "p", "--max-runs", "30"]);
    let out = env.ok(&["run", "p", "-n", "8", "--plain"]);
    let store = env.store();
    let runs = store.run_count(None).unwrap();
    assert!(runs <= 30, "{runs} runs spent on a budget of 30\n{out}");
    assert!(
        runs >= 10,
        "the budget stopped it too early: {runs} runs\n{out}"
    );
    assert!(out.contains("run budget is spent"), "{out}");
}
