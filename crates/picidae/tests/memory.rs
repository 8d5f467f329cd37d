//! Memory in the loop: a duplicate proposal is not run and is answered with the prior outcome;
//! agents are told; the CLI searches by shared key terms.

mod common;

use common::{value_contract, Env, VALUE_RUN};
use picidae_core::AttemptStatus;

#[test]
fn a_duplicate_proposal_is_not_run_and_is_answered_with_the_prior_outcome() {
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 10.0)),
        ("run.sh", VALUE_RUN),
        ("value.txt", "10\n"),
    ]);
    // 7 and 5 are tried on the baseline; then 7 again (discarded before) and, after 5 is kept,
    // "5" again would be no change; `8` twice on the new frontier: the second is a duplicate.
    env.queue_program("p", &["12", "12", "5", "8", "8 "], &[]);
    let out = env.ok(&["run", "p", "-n", "5", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let statuses: Vec<AttemptStatus> = (2..=6)
        .map(|seq| store.attempt_by_seq(p.id, seq).unwrap().unwrap().status)
        .collect();
    assert_eq!(
        statuses,
        vec![
            AttemptStatus::Discarded,
            AttemptStatus::Duplicate,
            AttemptStatus::Kept,
            AttemptStatus::Discarded,
            AttemptStatus::Duplicate,
        ],
        "{out}"
    );
    let first = store.attempt_by_seq(p.id, 2).unwrap().unwrap();
    let dup = store.attempt_by_seq(p.id, 3).unwrap().unwrap();
    assert!(
        store.runs_of_attempt(dup.id).unwrap().is_empty(),
        "a duplicate costs no run"
    );
    let why = dup.rejection.clone().unwrap();
    assert_eq!(why["duplicate_of"], first.id);
    assert_eq!(why["how"], "exact-patch");
    assert_eq!(why["prior"]["status"], "discarded");
    assert!(
        dup.note.as_deref().unwrap().contains("discarded"),
        "{:?}",
        dup.note
    );
    // "8 " differs from "8" only by whitespace: a normalized duplicate.
    let last = store.attempt_by_seq(p.id, 6).unwrap().unwrap();
    assert_eq!(last.rejection.clone().unwrap()["how"], "normalized-patch");
    assert_eq!(store.run_count(Some(p.id)).unwrap(), 4);

    // The agent was told: its next prompt carried the duplicate and its prior outcome.
    let prompt =
        std::fs::read_to_string(env.project.join(".picidae/attempts/p/4/prompt.md")).unwrap();
    assert!(prompt.contains("## What memory says"), "{prompt}");
    assert!(prompt.contains("duplicate"), "{prompt}");
    assert!(prompt.contains("value 12"), "{prompt}");

    // Search through the CLI, by words the hypothesis shares.
    let hits: serde_json::Value =
        serde_json::from_str(&env.ok(&["memory", "search", "what about value 12?", "--json"]))
            .unwrap();
    assert_eq!(hits[0]["hypothesis"], "value 12");
    let summary = env.ok(&["memory", "summary", "value 12", "-p", "p"]);
    assert!(summary.contains("tried 2×"), "{summary}");
    // Rebuilding the index from git gives the same answers.
    env.ok(&["memory", "reindex"]);
    let again: serde_json::Value =
        serde_json::from_str(&env.ok(&["memory", "search", "what about value 12?", "--json"]))
            .unwrap();
    assert_eq!(again[0]["hypothesis"], "value 12");
    assert_eq!(
        again.as_array().unwrap().len(),
        hits.as_array().unwrap().len()
    );
}
