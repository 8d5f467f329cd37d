//! `picidae migrate sqlite-to-postgres` on a project with real attempts, runs, memory,
//! follow-ups and tokens: every table arrives with the same rows and checksum, the project then
//! runs on PostgreSQL (new ids continue after the copied ones, memory search answers), and a
//! second migration or one into a non-empty database is refused with nothing changed.

mod common;

use common::{text, value_contract, Env, VALUE_RUN};
use picidae_store::{AttemptFilter, Backend, Store};

fn counts(store: &Store) -> (usize, i64, usize) {
    let attempts = store.attempts(&AttemptFilter::default()).unwrap().len();
    let runs = store.run_count(None).unwrap();
    let followups = store
        .open_followups(store.program("p").unwrap().id)
        .unwrap()
        .len();
    (attempts, runs, followups)
}

#[test]
fn a_sqlite_project_moves_to_postgres_with_nothing_lost() {
    let Some(url) = picidae_store::testing::postgres_url() else {
        return;
    };
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 20.0)),
        ("run.sh", VALUE_RUN),
        ("value.txt", "100\n"),
    ]);
    let cmd = env.down_agent("down.sh");
    env.command_program("p", &env.bench.clone(), &cmd);
    env.ok(&["run", "p", "-n", "4", "--plain"]);
    env.ok(&["program", "followup", "p", "try the value 42"]);
    env.ok(&["token", "create", "ci"]);
    let before = counts(&env.store());
    let last_seq = env
        .store()
        .attempts(&AttemptFilter::default())
        .unwrap()
        .iter()
        .map(|a| a.seq)
        .max()
        .unwrap();
    assert!(before.0 >= 4 && before.1 >= 4, "{before:?}");

    // A dry run verifies and changes nothing.
    let dry_url = picidae_store::testing::postgres_url().unwrap();
    let out = env.ok(&["migrate", "sqlite-to-postgres", &dry_url, "--dry-run"]);
    assert!(out.contains("--dry-run"), "{out}");
    assert_eq!(env.store().backend(), Backend::Sqlite);

    let out = env.ok(&["migrate", "sqlite-to-postgres", &url]);
    assert!(
        out.contains("verified") && !out.contains("DIFFERS"),
        "{out}"
    );
    for table in [
        "programs",
        "attempts",
        "runs",
        "followups",
        "tokens",
        "memory_fts",
    ] {
        assert!(out.contains(table), "{table} missing from:\n{out}");
    }
    assert!(env.project.join(".picidae/store.url").exists());
    assert!(!env.project.join(".picidae/store.sqlite").exists());
    assert!(env
        .project
        .join(".picidae/store.sqlite.before-postgres")
        .exists());

    let store = env.store();
    assert_eq!(store.backend(), Backend::Postgres);
    assert_eq!(counts(&store), before);
    // The moved store verifies against the kept SQLite file.
    let old = Store::open(&env.project.join(".picidae/store.sqlite.before-postgres")).unwrap();
    let check = picidae_store::migrate::verify(&old, &store).unwrap();
    assert!(check.iter().all(|t| t.matches()), "{check:?}");
    drop((old, store));

    // The project goes on on PostgreSQL: new attempts, runs and ids after the copied ones.
    env.ok(&["run", "p", "-n", "2", "--plain"]);
    let store = env.store();
    let attempts = store.attempts(&AttemptFilter::default()).unwrap();
    assert!(
        attempts.iter().any(|a| a.seq == last_seq + 1),
        "{attempts:?}"
    );
    assert!(store.run_count(None).unwrap() >= before.1 + 2);
    let hits = env.ok(&["memory", "search", "value", "--json"]);
    let hits: serde_json::Value = serde_json::from_str(&hits).unwrap();
    assert!(
        hits.as_array().is_some_and(|h| !h.is_empty()),
        "memory answers on PostgreSQL: {hits}"
    );

    // Migrating again is refused, and so is copying into a database that holds programs.
    let again = env.picidae(&["migrate", "sqlite-to-postgres", &url]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already"), "{}", text(&again));
    let other = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 20.0)),
        ("run.sh", VALUE_RUN),
        ("value.txt", "100\n"),
    ]);
    other.command_program("p", &other.bench.clone(), &cmd);
    let into_full = other.picidae(&["migrate", "sqlite-to-postgres", &url]);
    assert!(!into_full.status.success());
    assert!(
        text(&into_full).contains("empty store"),
        "{}",
        text(&into_full)
    );
    assert_eq!(other.store().backend(), Backend::Sqlite);
}
