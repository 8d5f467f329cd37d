//! Moving a store from one backend to another (`picidae migrate sqlite-to-postgres`): every
//! table copied row for row in one transaction on the destination, identity counters moved past
//! the copied ids, then each table's row count and checksum compared on both sides.
//!
//! The checksum of a table is SHA-256 over its rows in primary-key order, each value written
//! with its type (integer, real by its bits, text, bytes or null), so a value that changed
//! type or precision on the way shows up as a mismatch rather than passing unnoticed.

use sha2::Digest;

use crate::db::{Backend, Db, Value};
use crate::{params, schema, Result, Store, StoreError};

/// What was copied of one table, and whether both sides agree.
#[derive(Debug, Clone, PartialEq)]
pub struct TableCopy {
    pub table: String,
    pub rows_from: i64,
    pub rows_to: i64,
    pub checksum_from: String,
    pub checksum_to: String,
}

impl TableCopy {
    pub fn matches(&self) -> bool {
        self.rows_from == self.rows_to && self.checksum_from == self.checksum_to
    }
}

/// How a table is ordered (its primary key) and which of its columns is an identity counter.
fn key_of(table: &str) -> (&'static str, Option<&'static str>) {
    match table {
        "fingerprints" => ("hash", None),
        "noise_floors" => ("program_id, fingerprint", None),
        "hidden_results" => ("run_id", None),
        "coordinators" => ("name", None),
        _ => ("id", Some("id")),
    }
}

/// The memory index's key column on each backend.
fn memory_key(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "rowid",
        Backend::Postgres => "attempt_id",
    }
}

const MEMORY_COLS: &str = "hypothesis, diff, files, symbols, params, notes, program";

/// The store's tables with their columns, as the source database has them.
fn columns(db: &Db, table: &str) -> Result<Vec<String>> {
    let cols: Vec<String> = match db.backend() {
        Backend::Sqlite => db.query_map(
            &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
            (),
            |r| r.get(0),
        )?,
        Backend::Postgres => db.query_map(
            "SELECT column_name FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
            [table],
            |r| r.get(0),
        )?,
    };
    if cols.is_empty() {
        return Err(StoreError::Migration(format!(
            "table {table} has no columns"
        )));
    }
    Ok(cols)
}

/// Rows read per page: a large store is copied and checked page by page, not held in memory.
const PAGE: i64 = 5_000;

/// Call `f` with the rows of `table` (the listed columns) in key order, a page at a time. An
/// integer key (`id`, `run_id`, the memory's row key) is paged by key; other tables (small:
/// fingerprints, noise floors, coordinators) are read at once.
fn scan(
    db: &Db,
    table: &str,
    cols: &str,
    order: &str,
    mut f: impl FnMut(&[Vec<Value>]) -> Result<()>,
) -> Result<()> {
    let integer_key = matches!(order, "id" | "run_id" | "rowid" | "attempt_id");
    if !integer_key {
        let rows = db.query_map(
            &format!("SELECT {cols} FROM {table} ORDER BY {order}"),
            (),
            |r| Ok(r.clone().into_values()),
        )?;
        return f(&rows);
    }
    // The key is the first column listed, so the page's last key is read back from it.
    let mut after = i64::MIN;
    loop {
        let rows = db.query_map(
            &format!("SELECT {cols} FROM {table} WHERE {order} > ?1 ORDER BY {order} LIMIT ?2"),
            params![after, PAGE],
            |r| Ok(r.clone().into_values()),
        )?;
        if rows.is_empty() {
            return Ok(());
        }
        after = match rows.last().and_then(|r| r.first()) {
            Some(Value::Int(k)) => *k,
            other => {
                return Err(StoreError::Migration(format!(
                    "{table}: key {order} is not an integer: {other:?}"
                )))
            }
        };
        f(&rows)?;
    }
}

/// Columns with the key first, for [`scan`].
fn key_first(cols: &[String], key: &str) -> String {
    let mut out: Vec<&str> = cols
        .iter()
        .map(String::as_str)
        .filter(|c| *c == key)
        .collect();
    out.extend(cols.iter().map(String::as_str).filter(|c| *c != key));
    out.join(", ")
}

/// Count and checksum of a table's rows in key order.
fn digest(db: &Db, table: &str, cols: &str, order: &str) -> Result<(i64, String)> {
    let mut h = sha2::Sha256::new();
    let mut n = 0i64;
    scan(db, table, cols, order, |rows| {
        n += rows.len() as i64;
        hash_rows(&mut h, rows);
        Ok(())
    })?;
    Ok((n, hex::encode(h.finalize())))
}

fn hash_rows(h: &mut sha2::Sha256, rows: &[Vec<Value>]) {
    for row in rows {
        for v in row {
            match v {
                Value::Null => h.update(b"n;"),
                Value::Int(i) => h.update(format!("i{i};")),
                Value::Real(f) => h.update(format!("r{:x};", f.to_bits())),
                Value::Text(s) => {
                    h.update(format!("t{}:", s.len()));
                    h.update(s.as_bytes());
                }
                Value::Blob(b) => {
                    h.update(format!("b{}:", b.len()));
                    h.update(b);
                }
            }
        }
        h.update(b"\n");
    }
}

/// Insert `rows` into `table` in multi-row statements.
fn insert(db: &Db, table: &str, cols: &str, n_cols: usize, rows: &[Vec<Value>]) -> Result<()> {
    let per = (30_000 / n_cols.max(1)).clamp(1, 500);
    for chunk in rows.chunks(per) {
        let one = format!("({})", vec!["?"; n_cols].join(", "));
        let values = vec![one; chunk.len()].join(", ");
        let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
        db.execute(
            &format!("INSERT INTO {table} ({cols}) VALUES {values}"),
            params,
        )?;
    }
    Ok(())
}

/// Copy every row of `from` into `to`, which must be an empty store at the same schema
/// version, in one transaction; then compare counts and checksums table by table. Nothing is
/// written to `from`. Errors if any table differs (the copy is then rolled back only if the
/// error came before the commit; a mismatch found after is reported with the tables).
pub fn copy_store(from: &Store, to: &mut Store) -> Result<Vec<TableCopy>> {
    let (src, dst) = (&from.db, &to.db);
    let (v_from, v_to) = (from.schema_version()?, to.schema_version()?);
    if v_from != v_to {
        return Err(StoreError::Migration(format!(
            "schema versions differ: {v_from} and {v_to}"
        )));
    }
    let existing: i64 = dst.query_row("SELECT COUNT(*) FROM programs", (), |r| r.get(0))?;
    if existing > 0 {
        return Err(StoreError::Migration(format!(
            "the destination already holds {existing} program(s); migrate into an empty store"
        )));
    }
    let tx = dst.begin()?;
    for table in schema::TABLES {
        let cols = columns(src, table)?;
        let (order, _) = key_of(table);
        let list = key_first(&cols, order);
        scan(src, table, &list, order, |rows| {
            insert(&tx, table, &list, cols.len(), rows)
        })?;
    }
    let (key_src, key_dst) = (memory_key(src.backend()), memory_key(dst.backend()));
    scan(
        src,
        "memory_fts",
        &format!("{key_src}, {MEMORY_COLS}"),
        key_src,
        |rows| {
            insert(
                &tx,
                "memory_fts",
                &format!("{key_dst}, {MEMORY_COLS}"),
                8,
                rows,
            )
        },
    )?;
    if dst.backend() == Backend::Postgres {
        // Identity counters continue after the copied ids.
        for table in schema::TABLES {
            if let (_, Some(col)) = key_of(table) {
                tx.query_row(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{col}'),
                                       COALESCE(MAX({col}), 0) + 1, false) FROM {table}"
                    ),
                    (),
                    |_| Ok(()),
                )?;
            }
        }
    }
    tx.commit()?;
    verify(from, to)
}

/// Compare every table of two stores: row counts and checksums.
pub fn verify(a: &Store, b: &Store) -> Result<Vec<TableCopy>> {
    let mut out = Vec::new();
    for table in schema::TABLES {
        let (order, _) = key_of(table);
        let cols = key_first(&columns(&a.db, table)?, order);
        let (rows_from, checksum_from) = digest(&a.db, table, &cols, order)?;
        let (rows_to, checksum_to) = digest(&b.db, table, &cols, order)?;
        out.push(TableCopy {
            table: table.to_string(),
            rows_from,
            rows_to,
            checksum_from,
            checksum_to,
        });
    }
    let (ka, kb) = (memory_key(a.backend()), memory_key(b.backend()));
    let (rows_from, checksum_from) =
        digest(&a.db, "memory_fts", &format!("{ka}, {MEMORY_COLS}"), ka)?;
    let (rows_to, checksum_to) = digest(&b.db, "memory_fts", &format!("{kb}, {MEMORY_COLS}"), kb)?;
    out.push(TableCopy {
        table: "memory_fts".into(),
        rows_from,
        rows_to,
        checksum_from,
        checksum_to,
    });
    Ok(out)
}
