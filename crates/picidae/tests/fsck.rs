//! `picidae fsck` and the check every loop makes when it starts, through the real binary, real
//! git and the real store: attempt refs an unsandboxed agent deletes are reported and restored
//! from the store (a commit `git gc` took is reported); a store edited between two runs keeps
//! the next run from starting and is left exactly as it was; normal runs, verified ones and a
//! retraction included, leave nothing to report.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::{text, value_contract, Env, GOOD_EVALUATOR, VALUE_RUN};
use picidae_core::domain::FindingState;
use picidae_core::AttemptStatus;
use picidae_store::{testing, Attempt, AttemptFilter, Store};

fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .args(args)
        .output()
        .unwrap()
}

/// The program's refs, name → sha.
fn refs(env: &Env) -> BTreeMap<String, String> {
    common::git(
        &env.bench,
        &[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/picidae/p/",
        ],
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(n, s)| (n.to_string(), s.to_string()))
    .collect()
}

fn attempts(store: &Store) -> Vec<Attempt> {
    let p = store.program("p").unwrap();
    store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap()
}

fn attempt_ref(seq: i64) -> String {
    format!("refs/picidae/p/attempts/{seq:06}")
}

/// The value benchmark (lower is better, one seed) with program `p` driven by `agent`.
fn value_env(agent: &str) -> Env {
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 10.0)),
        ("run.sh", VALUE_RUN),
        ("value.txt", "10\n"),
    ]);
    let script = env.path("agent.sh");
    std::fs::write(&script, agent).unwrap();
    let bench = env.bench.clone();
    env.command_program("p", &bench, &format!("sh {}", script.display()));
    env
}

/// Attempt 2 proposes 8 (kept), 3 proposes 9 (discarded), 4 proposes 7 (kept).
const VALUES: &str = r#"case $PICIDAE_ATTEMPT in 2) v=8;; 3) v=9;; *) v=7;; esac
echo $v > value.txt; echo "HYPOTHESIS: value $v"
"#;

fn fsck(env: &Env, args: &[&str]) -> (bool, String) {
    let mut all = vec!["fsck"];
    all.extend_from_slice(args);
    let out = env.picidae(&all);
    (out.status.success(), text(&out))
}

#[test]
fn refs_an_agent_deletes_are_reported_and_restored_from_the_store() {
    // Unsandboxed, the agent runs as the user: from its checkout it deletes every attempt ref
    // that exists, each turn, leaving its earlier commits unreachable.
    let env = value_env(&format!(
        "cat > /dev/null\n\
         for r in $(git for-each-ref --format='%(refname)' refs/picidae/p/attempts/); do\n\
           git update-ref -d \"$r\"\n\
         done\n{VALUES}"
    ));
    let out = env.ok(&["run", "p", "-n", "3", "--plain"]);
    assert!(out.contains("3 attempts: 2 kept, 1 discarded"), "{out}");
    let store = env.store();
    let all = attempts(&store);
    let commit = |seq: i64| all[seq as usize - 1].commit.clone().unwrap();
    let before = refs(&env);
    assert!(!before.contains_key(&attempt_ref(2)), "{before:?}");
    assert!(!before.contains_key(&attempt_ref(3)), "{before:?}");
    assert_eq!(before.get(&attempt_ref(4)), Some(&commit(4)));

    // Reported, one line per ref, with the commit the store holds; nothing moved.
    let (ok, log) = fsck(&env, &["p"]);
    assert!(!ok, "{log}");
    for seq in [2, 3] {
        let line = log
            .lines()
            .find(|l| l.contains(&attempt_ref(seq)))
            .unwrap_or_else(|| panic!("no line for attempt {seq}: {log}"));
        assert!(line.starts_with("p: "), "{line}");
        assert!(
            line.contains("missing") && line.contains(&commit(seq)),
            "{line}"
        );
    }
    assert_eq!(refs(&env), before);
    let json: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(
        &env.picidae(&["fsck", "p", "--json"]).stdout,
    ))
    .unwrap();
    assert_eq!(json["clean"], false);
    let problems = json["programs"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{json:#}");
    assert!(problems.iter().all(|p| p["check"] == "ref-missing"));
    assert!(problems.iter().all(|p| p["blocks_start"] == false));

    // --repair restores each to the store's commit; then nothing is left.
    let (ok, log) = fsck(&env, &["p", "--repair"]);
    assert!(ok, "{log}");
    assert!(log.contains("restored"), "{log}");
    let after = refs(&env);
    for seq in [2, 3, 4] {
        assert_eq!(
            after.get(&attempt_ref(seq)),
            Some(&commit(seq)),
            "{after:?}"
        );
    }
    let (ok, log) = fsck(&env, &[]);
    assert!(ok && log.contains("p: clean"), "{log}");

    // The next `picidae run` restores refs before anything else: one deleted, one moved.
    let base = store.program("p").unwrap().base_commit;
    common::git(&env.bench, &["update-ref", "-d", &attempt_ref(3)]);
    common::git(&env.bench, &["update-ref", &attempt_ref(2), &base]);
    common::git(
        &env.bench,
        &["update-ref", "refs/picidae/p/frontier", &base],
    );
    let out = env.picidae(&["run", "p", "-n", "0", "--plain"]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = refs(&env);
    assert_eq!(restored.get(&attempt_ref(2)), Some(&commit(2)));
    assert_eq!(restored.get(&attempt_ref(3)), Some(&commit(3)));
    assert_eq!(
        restored.get("refs/picidae/p/frontier"),
        Some(&commit(4)),
        "{restored:?}"
    );

    // A ref the store does not account for is reported and left in place.
    common::git(
        &env.bench,
        &["update-ref", "refs/picidae/p/attempts/000001", &base],
    );
    let (ok, log) = fsck(&env, &["p", "--repair"]);
    assert!(!ok, "{log}");
    assert!(
        log.contains("attempts/000001") && log.contains("baseline"),
        "{log}"
    );
    assert!(refs(&env).contains_key(&attempt_ref(1)));
    common::git(&env.bench, &["update-ref", "-d", &attempt_ref(1)]);

    // Once unreachable, a discarded attempt's commit is lost to `git gc`: fsck says so, cannot
    // restore it, and the loop still starts (the store is not in doubt).
    common::git(&env.bench, &["update-ref", "-d", &attempt_ref(3)]);
    common::git(&env.bench, &["reflog", "expire", "--expire=now", "--all"]);
    common::git(&env.bench, &["gc", "--quiet", "--prune=now"]);
    let gone = git(
        &env.bench,
        &["cat-file", "-e", &format!("{}^{{commit}}", commit(3))],
    );
    assert!(!gone.status.success(), "gc kept the unreachable commit");
    let (ok, log) = fsck(&env, &["p", "--repair"]);
    assert!(!ok, "{log}");
    let line = log
        .lines()
        .find(|l| l.contains(&attempt_ref(3)))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("not in the repository"), "{line}");
    let out = env.picidae(&["run", "p", "-n", "0", "--plain"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Every row of the tables the loop writes, as text.
fn dump(store: &Store) -> Vec<String> {
    let mut rows = Vec::new();
    for table in [
        "programs",
        "attempts",
        "runs",
        "frontier_history",
        "findings",
        "finding_events",
        "noise_floors",
    ] {
        rows.extend(
            testing::table_rows(store, table)
                .unwrap()
                .into_iter()
                .map(|row| format!("{table}: {row:?}")),
        );
    }
    rows
}

/// After the edit `edit`, the next run refuses to start naming `needle`, changes nothing, and
/// fsck reports it; undoing the edit with `undo` makes the project clean again.
fn edited_store_blocks_the_next_run(
    env: &Env,
    edit: impl Fn(&Store) -> picidae_store::Result<()>,
    undo: impl Fn(&Store) -> picidae_store::Result<()>,
    needles: &[&str],
) {
    let store = env.store();
    edit(&store).unwrap();
    let before = dump(&store);
    let refs_before = refs(env);

    let out = env.picidae(&["run", "p", "-n", "1", "--plain"]);
    let log = text(&out);
    assert!(!out.status.success(), "the run started:\n{log}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inconsistent"), "{log}");
    for n in needles {
        assert!(
            stderr.contains(n),
            "the refusal does not name {n:?}:\n{log}"
        );
    }
    assert_eq!(dump(&store), before, "the refused run changed the store");
    assert_eq!(refs(env), refs_before, "the refused run moved a ref");

    let (ok, log) = fsck(env, &["p"]);
    assert!(!ok, "{log}");
    for n in needles {
        assert!(
            log.lines().any(|l| l.starts_with("p: ") && l.contains(n)),
            "fsck does not name {n:?}:\n{log}"
        );
    }
    // --repair never writes the store.
    let (ok, _) = fsck(env, &["p", "--repair"]);
    assert!(!ok);
    assert_eq!(dump(&store), before, "fsck --repair changed the store");

    undo(&store).unwrap();
    let (ok, log) = fsck(env, &["p"]);
    assert!(ok, "{log}");
}

#[test]
fn a_store_edited_between_runs_keeps_the_next_run_from_starting() {
    let env = value_env(&format!("cat > /dev/null\n{VALUES}"));
    env.ok(&["run", "p", "-n", "3", "--plain"]);
    let store = env.store();
    let all = attempts(&store);
    let p = store.program("p").unwrap();
    let (discarded, kept) = (&all[2], &all[3]);
    assert_eq!(discarded.status, AttemptStatus::Discarded);
    assert_eq!(p.frontier_attempt_id, Some(kept.id));

    // A discarded attempt promoted to kept, the frontier pointed at it.
    let c = discarded.commit.clone().unwrap();
    let k = kept.commit.clone().unwrap();
    edited_store_blocks_the_next_run(
        &env,
        |s| {
            testing::tamper_attempt_status(s, discarded.id, AttemptStatus::Kept)?;
            testing::tamper_frontier(s, p.id, discarded.id, &c, 9.0)
        },
        |s| {
            testing::tamper_attempt_status(s, discarded.id, AttemptStatus::Discarded)?;
            testing::tamper_frontier(s, p.id, kept.id, &k, 7.0)
        },
        &["attempt 3"],
    );

    // A kept attempt's run reported better than it measured.
    let run = &store.runs_of_attempt(all[1].id).unwrap()[0];
    edited_store_blocks_the_next_run(
        &env,
        |s| testing::tamper_run_value(s, run.id, 1.0),
        |s| testing::tamper_run_value(s, run.id, 8.0),
        &[&format!("run {} (attempt 2)", run.id), "attempt 2:"],
    );

    // Undone, the loop starts again.
    let out = env.ok(&["run", "p", "-n", "1", "--plain"]);
    assert!(
        out.contains("1 attempts") || out.contains("1 attempt"),
        "{out}"
    );
}

#[test]
fn normal_runs_leave_nothing_to_report() {
    // Plain keep/revert with every kind of outcome: kept, discarded, no change, a boundary
    // violation.
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 10.0)),
        ("run.sh", VALUE_RUN),
        ("value.txt", "10\n"),
    ]);
    env.queue_program("p", &["8", "9", "NOTHING", "OUT", "7"], &[]);
    env.ok(&["run", "p", "-n", "5", "--plain"]);
    let (ok, log) = fsck(&env, &["p"]);
    assert!(ok, "{log}");
    assert!(log.contains("p: clean (6 attempts"), "{log}");
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["fsck", "--json"])).unwrap();
    assert_eq!(json["clean"], true);
    assert_eq!(json["programs"][0]["problems"], serde_json::json!([]));

    // Verified attempts (findings validated and refuted), then a retraction that moves the
    // frontier back: still clean, and the loop starts on it.
    let env = Env::truth(GOOD_EVALUATOR, "seeds = 3\nbaseline_seeds = 3");
    env.queue_program("p", &["7.5 7.5 real", "9.5 9.5 worse", "5 5 next"], &[]);
    env.ok(&["run", "p", "-n", "2", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let validated = store
        .findings(Some(p.id), Some(FindingState::Validated))
        .unwrap();
    assert_eq!(validated.len(), 1, "{:?}", store.findings(Some(p.id), None));
    let (ok, log) = fsck(&env, &["p"]);
    assert!(ok, "{log}");
    env.ok(&[
        "findings",
        "retract",
        &validated[0].id.to_string(),
        "--reason",
        "checked by hand",
    ]);
    let (ok, log) = fsck(&env, &["p"]);
    assert!(ok, "{log}");
    env.ok(&["run", "p", "-n", "1", "--plain"]);
    let (ok, log) = fsck(&env, &[]);
    assert!(ok, "{log}");
}
