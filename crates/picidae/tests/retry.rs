//! `picidae attempt retry`: an idea refuted for lack of power is verified again on request, on
//! the current frontier, before the agent's next turn; one contradicted by its evidence is
//! refused with the reason.

mod common;

use common::Env;
use picidae_core::AttemptStatus;

/// Runs report `score` = value.txt + a spread of ±1 that depends on the attempt and the seed
/// (deterministic, so the test is too), with 3 seeds an attempt, screened on the first one
/// (`sequential = false`).
fn noisy_env() -> Env {
    Env::new(&[
        (
            "picidae.toml",
            r#"[benchmark]
name = "noisy"

[boundary]
editable = ["value.txt"]

[run]
command = "sh run.sh"
time_budget = 10
timeout = 10

[metrics.score]
goal = "minimize"

[policy]
seeds = 3
baseline_seeds = 3
# The subject is the one-seed screen of the fixed-seeds policy, which can hide a small gain.
sequential = false
"#,
        ),
        (
            "run.sh",
            r#"awk -v v="$(cat value.txt)" -v s="$PICIDAE_SEED" -v a="$PICIDAE_ATTEMPT" 'BEGIN {
  o = ((a * 7 + s * 13) % 5 - 2) * 0.5
  printf "score: %.3f\n", v + o
}'
"#,
        ),
        ("value.txt", "10\n"),
    ])
}

#[test]
fn a_screened_out_idea_is_verified_again_on_request_on_every_seed() {
    let env = noisy_env();
    // #2: a small real gain that one noisy seed hides (screened out). Later the agent's "5"
    // moves the frontier and "OUT" edits outside the boundary (rejected).
    env.queue_program("p", &["9.8", "5", "OUT", "11"], &[]);
    env.ok(&["run", "p", "-n", "1", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let weak = store.attempt_by_seq(p.id, 2).unwrap().unwrap();
    assert_eq!(weak.status, AttemptStatus::Discarded, "{weak:?}");
    assert!(weak.note.as_deref().unwrap_or("").contains("screened out"));
    assert_eq!(store.runs_of_attempt(weak.id).unwrap().len(), 1);

    // Queued once, however often it is asked for.
    let first = env.ok(&["attempt", "retry", "p", "2"]);
    assert!(first.contains("retry of p #2 requested"), "{first}");
    let again = env.ok(&["attempt", "retry", "p", "2"]);
    assert!(again.contains("already requested"), "{again}");

    // The next proposal is the retry, not the agent's turn, and it is verified on all three
    // seeds, not screened on one.
    env.ok(&["run", "p", "-n", "1", "--plain"]);
    let retry = store.attempt_by_seq(p.id, 3).unwrap().unwrap();
    assert_eq!(retry.proposer, "retry");
    assert!(
        retry.hypothesis.starts_with("retry of #2: value 9.8"),
        "{retry:?}"
    );
    assert_eq!(retry.parent_commit, weak.parent_commit);
    assert!(retry.note.as_deref().unwrap_or("").contains("retry of #2"));
    assert_eq!(store.runs_of_attempt(retry.id).unwrap().len(), 3);
    let f = store
        .finding_for_attempt(retry.id)
        .unwrap()
        .expect("verified");
    assert_ne!(f.state.to_string(), "verifying", "{f:?}");
    let repo = picidae_git::Repo::open(&env.bench).unwrap();
    let commit = retry.commit.clone().unwrap();
    assert_eq!(
        repo.file_at(&commit, "value.txt").unwrap().unwrap(),
        b"9.8\n"
    );
    assert_eq!(store.open_retries(p.id).unwrap(), []);
    assert_eq!(
        store.retries_of(weak.id).unwrap()[0].consumed_by,
        Some(retry.id)
    );
    let queue = std::fs::read_to_string(env.path("queue.txt")).unwrap();
    assert!(queue.starts_with("5\n"), "the agent was not asked: {queue}");

    // The agent moves the frontier (#4) and then edits outside the boundary (#5).
    env.ok(&["run", "p", "-n", "2", "--plain"]);
    let p = store.program("p").unwrap();
    let kept = store.attempt_by_seq(p.id, 4).unwrap().unwrap();
    assert_eq!(kept.status, AttemptStatus::Kept, "{kept:?}");

    // A rejected attempt is refused, with the reason; so is an unknown one.
    let out = env.picidae(&["attempt", "retry", "p", "5"]);
    assert!(!out.status.success(), "{}", common::text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("attempt #5 cannot be retried: it is rejected"),
        "{err}"
    );
    let out = env.picidae(&["attempt", "retry", "p", "99"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no attempt #99"));
    assert_eq!(store.open_retries(p.id).unwrap(), []);

    // #2 again, now that the frontier changed value.txt too: its change is replayed onto the
    // frontier, conflicts, and the retry is rejected saying where; the loop goes on.
    env.ok(&["attempt", "retry", "p", "2"]);
    env.ok(&["run", "p", "-n", "1", "--plain"]);
    let conflict = store.attempt_by_seq(p.id, 6).unwrap().unwrap();
    assert_eq!(conflict.status, AttemptStatus::Rejected, "{conflict:?}");
    assert_eq!(conflict.parent_commit, kept.commit.clone().unwrap());
    let note = conflict.note.unwrap_or_default();
    assert!(
        note.contains("conflicts with the frontier in value.txt"),
        "{note}"
    );
    assert!(store.runs_of_attempt(conflict.id).unwrap().is_empty());
}
