//! Attempts that go stale while they wait in the pipeline: the frontier moved (something was
//! kept) after they were built. They are not run as they are, and their ideas are not lost:
//! each is rejected as stale and its change replayed onto the new frontier as a new attempt,
//! so gains found in parallel stack; a change that conflicts is rejected naming its files.

mod common;

use common::{git, two_file_env, Env};
use picidae_core::AttemptStatus;

/// The attempt that carries `original`'s change onto a newer frontier.
fn replay_of(
    all: &[picidae_store::Attempt],
    original: &picidae_store::Attempt,
) -> picidae_store::Attempt {
    let found: Vec<_> = all
        .iter()
        .filter(|x| x.replay_of == Some(original.id))
        .collect();
    assert_eq!(found.len(), 1, "one replay of #{}: {all:#?}", original.seq);
    found[0].clone()
}

fn attempts(env: &Env) -> Vec<picidae_store::Attempt> {
    common::attempts(&env.store(), "p")
}

#[test]
fn a_stale_attempt_is_replayed_onto_the_new_frontier_and_gains_stack() {
    let env = two_file_env(2.0);
    let agent = env.pair_agent(&["a.txt 4", "b.txt 3"]);
    let bench = env.bench.clone();
    env.command_program("p", &bench, &agent);
    // #2 (a = 4) runs while the proposer builds #3 (b = 3) on the same, old frontier.
    let out = env.ok(&["run", "p", "-n", "3", "--plain", "--pipeline", "1"]);
    let a = attempts(&env);
    let by_seq = |seq: i64| a.iter().find(|x| x.seq == seq).unwrap().clone();
    let first = by_seq(2);
    assert_eq!(first.status, AttemptStatus::Kept, "{a:#?}\n{out}");
    let stale = by_seq(3);
    assert_eq!(stale.status, AttemptStatus::Rejected, "{a:#?}\n{out}");
    assert_eq!(
        stale.parent_commit, first.parent_commit,
        "built on the old frontier"
    );
    // The replay is linked to #3 (its seq depends on whether the agent's next turn came first).
    let replay = replay_of(&a, &stale);
    let note = stale.note.clone().unwrap_or_default();
    assert!(
        note.contains("stale")
            && note.contains(&format!("replayed onto the frontier as #{}", replay.seq)),
        "{note}"
    );
    // The replay carries #3's change on top of #2's, runs there, and is kept: both gains
    // stand.
    assert_eq!(replay.proposer, "replay");
    assert_eq!(replay.parent_commit, first.commit.clone().unwrap());
    assert!(
        replay.hypothesis.starts_with("replay of #3: b.txt = 3"),
        "{replay:?}"
    );
    assert_eq!(replay.status, AttemptStatus::Kept, "{a:#?}\n{out}");
    assert_eq!(replay.primary_value, Some(7.0));
    let p = env.store().program("p").unwrap();
    assert_eq!(p.frontier_value, Some(7.0));
    let frontier = git(&env.bench, &["rev-parse", "refs/picidae/p/frontier"]);
    assert_eq!(frontier, replay.commit.clone().unwrap());
    assert_eq!(
        git(&env.bench, &["show", &format!("{frontier}:a.txt")]),
        "4"
    );
    assert_eq!(
        git(&env.bench, &["show", &format!("{frontier}:b.txt")]),
        "3"
    );
    // The stale commit itself is kept under its ref, so its diff is not lost.
    assert_eq!(
        git(&env.bench, &["rev-parse", "refs/picidae/p/attempts/000003"]),
        stale.commit.unwrap()
    );
}

#[test]
fn a_stale_attempt_that_conflicts_is_rejected_naming_its_files() {
    let env = two_file_env(2.0);
    let agent = env.pair_agent(&["a.txt 4", "a.txt 3"]);
    let bench = env.bench.clone();
    env.command_program("p", &bench, &agent);
    let out = env.ok(&["run", "p", "-n", "3", "--plain", "--pipeline", "1"]);
    let a = attempts(&env);
    let by_seq = |seq: i64| a.iter().find(|x| x.seq == seq).unwrap().clone();
    assert_eq!(by_seq(2).status, AttemptStatus::Kept, "{a:#?}\n{out}");
    assert_eq!(by_seq(3).status, AttemptStatus::Rejected, "{a:#?}\n{out}");
    let replay = replay_of(&a, &by_seq(3));
    assert_eq!(replay.status, AttemptStatus::Rejected, "{a:#?}\n{out}");
    let note = replay.note.unwrap_or_default();
    assert!(
        note.contains("the change of #3 conflicts with the frontier in a.txt"),
        "{note}"
    );
    // Nothing of it ran, and the frontier is #2's.
    let store = env.store();
    assert!(store.runs_of_attempt(replay.id).unwrap().is_empty());
    assert_eq!(store.program("p").unwrap().frontier_value, Some(9.0));
}
