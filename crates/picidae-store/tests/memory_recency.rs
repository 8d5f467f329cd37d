//! The memory's newest matches at a size where PostgreSQL narrows its looks to the newest
//! attempts (`memory_recent.rs`): whatever path a query takes (one look, a wider second look,
//! or the whole index), the answer is exactly the newest matches, the same as FTS5's on
//! SQLite. Run on both backends; the expected ids are computed from how the rows were made.

use picidae_store::testing::TestStore;
use picidae_store::{Backend, Store};

/// Rows in the index: enough that a look over the newest attempts covers a small share.
const ROWS: i64 = 200_000;
const WINDOW: i64 = 400;

/// Fill the index with `ROWS` documents whose words follow their ids: `alpha` in every one,
/// `beta` in every 50th, `gamma` in every 3,000th, `delta` in every 7th and `epsilon` in every
/// 11th (so both in every 77th), in one statement.
fn fill(s: &Store) {
    let words = "'alpha'
        || CASE WHEN g % 50 = 0 THEN ' beta' ELSE '' END
        || CASE WHEN g % 3000 = 0 THEN ' gamma' ELSE '' END
        || CASE WHEN g % 7 = 0 THEN ' delta' ELSE '' END
        || CASE WHEN g % 11 = 0 THEN ' epsilon' ELSE '' END";
    let sql = match s.backend() {
        Backend::Sqlite => format!(
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {ROWS})
             INSERT INTO memory_fts (rowid, hypothesis, program) SELECT g, {words}, 'prog1' FROM s"
        ),
        Backend::Postgres => format!(
            "INSERT INTO memory_fts (attempt_id, hypothesis, program)
             SELECT g, {words}, 'prog1' FROM generate_series(1, {ROWS}) g"
        ),
    };
    s.db().execute(&sql, ()).unwrap();
    s.analyze().unwrap();
}

/// The newest `WINDOW` ids that `matches`, newest first.
fn newest(matches: impl Fn(i64) -> bool) -> Vec<i64> {
    (1..=ROWS)
        .rev()
        .filter(|&g| matches(g))
        .take(WINDOW as usize)
        .collect()
}

fn found(s: &Store, sqlite: &str, postgres: &str) -> Vec<i64> {
    let q = match s.backend() {
        Backend::Sqlite => sqlite,
        Backend::Postgres => postgres,
    };
    s.memory_matches(q, WINDOW)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

fn the_newest_matches_whatever_their_density(t: &TestStore) {
    let s = t.open();
    fill(&s);
    // In every document: the first look over the newest attempts is full.
    assert_eq!(found(&s, "alpha", "alpha"), newest(|_| true));
    // One in 50: the first look finds too few, and a wider one (of older ids only) the rest.
    assert_eq!(found(&s, "beta", "beta"), newest(|g| g % 50 == 0));
    // One in 77, through an AND of two words.
    assert_eq!(
        found(&s, "delta AND epsilon", "delta & epsilon"),
        newest(|g| g % 77 == 0)
    );
    // One in 3,000: too rare for any span to pay, so the whole index answers, with all 66.
    let rare = found(&s, "gamma", "gamma");
    assert_eq!(rare.len(), (ROWS / 3000) as usize);
    assert_eq!(rare, newest(|g| g % 3000 == 0));
    // With the program's token, as a scoped search asks.
    assert_eq!(
        found(&s, "program:prog1 AND beta", "prog1 & beta"),
        newest(|g| g % 50 == 0)
    );
    // Nothing matches: nothing is found, and no look fails.
    assert!(found(&s, "zeta", "zeta").is_empty());
}

picidae_store::on_both_backends!(the_newest_matches_whatever_their_density);
