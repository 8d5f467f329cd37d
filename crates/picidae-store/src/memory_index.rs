//! The memory's rows and queries: the full-text index `memory_fts` (FTS5 on SQLite, a
//! weighted `tsvector` on PostgreSQL) and the attempts' deduplication keys. `picidae-memory`
//! decides what goes in and how a question becomes a query; this module is the SQL of it, so
//! the store stays the only place that speaks to the database.

use serde::Serialize;

use crate::db::{Backend, OptionalExtension};
use crate::{attempt_from_row, params, Attempt, Result, Store, ATTEMPT_COLS, ATTEMPT_COL_COUNT};

/// One attempt's row of the index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexRow {
    pub attempt_id: i64,
    pub hypothesis: String,
    pub diff: String,
    pub files: String,
    pub symbols: String,
    pub params: String,
    pub notes: String,
    /// The program as a token of the index (`prog<id>`), so a search can be scoped to it.
    pub program: String,
}

/// The words of an indexed attempt that say what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedWords {
    pub hypothesis: String,
    pub files: String,
    pub symbols: String,
    pub params: String,
}

/// An attempt as a memory hit shows it (see [`Store::memory_hit_rows`]).
#[derive(Debug, Clone)]
pub struct HitRow {
    pub attempt: Attempt,
    /// The program's name.
    pub program: String,
    /// The attempt this one was found to repeat.
    pub duplicate_of: Option<i64>,
}

/// Which key makes a proposal a repeat of an earlier attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupKey {
    /// The same patch on the same parent commit.
    ExactPatch,
    /// The same normalized patch on the same parent commit.
    NormalizedPatch,
    /// The same parameter assignment, whatever the parent.
    SameParameters,
}

impl DedupKey {
    pub fn as_str(self) -> &'static str {
        match self {
            DedupKey::ExactPatch => "exact-patch",
            DedupKey::NormalizedPatch => "normalized-patch",
            DedupKey::SameParameters => "same-parameters",
        }
    }
}

impl Store {
    /// The column holding the attempt id in `memory_fts`.
    fn memory_key(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "rowid",
            Backend::Postgres => "attempt_id",
        }
    }

    /// Put an attempt's row into the index, replacing any it had.
    pub fn memory_put(&self, row: &IndexRow) -> Result<()> {
        let key = self.memory_key();
        self.db.execute(
            &format!("DELETE FROM memory_fts WHERE {key} = ?1"),
            [row.attempt_id],
        )?;
        self.db.execute(
            &format!(
                "INSERT INTO memory_fts ({key}, hypothesis, diff, files, symbols, params, notes, program)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                row.attempt_id,
                row.hypothesis,
                row.diff,
                row.files,
                row.symbols,
                row.params,
                row.notes,
                row.program
            ],
        )?;
        Ok(())
    }

    /// The indexed words of an attempt, if it is in the index.
    pub fn memory_words(&self, attempt_id: i64) -> Result<Option<IndexedWords>> {
        Ok(self
            .db
            .query_row(
                &format!(
                    "SELECT hypothesis, files, symbols, params FROM memory_fts WHERE {} = ?1",
                    self.memory_key()
                ),
                [attempt_id],
                |r| {
                    Ok(IndexedWords {
                        hypothesis: r.get(0)?,
                        files: r.get(1)?,
                        symbols: r.get(2)?,
                        params: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// The most recent `window` attempts matching the engine's query `q`, each with its rank
    /// (lower is better): FTS5's bm25 with the schema's column weights on SQLite; on PostgreSQL
    /// `ts_rank` with weights D=0 (the program and recency tokens), C=0.2, B=0.4, A=1, negated,
    /// found through the recency tokens (`memory_recent.rs`).
    pub fn memory_matches(&self, q: &str, window: i64) -> Result<Vec<(i64, f64)>> {
        match self.backend() {
            Backend::Sqlite => Ok(self.db.query_map(
                "SELECT rowid, rank FROM memory_fts WHERE memory_fts MATCH ?1
                 ORDER BY rowid DESC LIMIT ?2",
                params![q, window],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?),
            Backend::Postgres => self.memory_matches_recent(q, window),
        }
    }

    /// How many indexed attempts match the engine's query `q`, counting no further than
    /// `cap`. SQLite counts the matches; PostgreSQL answers from its planner's statistics of
    /// the index, which costs a plan rather than a visit to every matching row. A query with
    /// characters other than letters, digits, `_`, spaces and `& | ( )` counts as 0.
    pub fn memory_match_count(&self, q: &str, cap: i64) -> Result<i64> {
        match self.backend() {
            Backend::Sqlite => Ok(self.db.query_row(
                "SELECT COUNT(*) FROM (SELECT 1 FROM memory_fts WHERE memory_fts MATCH ?1 LIMIT ?2)",
                params![q, cap],
                |r| r.get(0),
            )?),
            Backend::Postgres => {
                // The query stands in the plan's text, so it must hold no quote.
                if !q
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | ' ' | '&' | '|' | '(' | ')'))
                {
                    return Ok(0);
                }
                let plan: String = self.db.query_row(
                    &format!(
                        "EXPLAIN (FORMAT JSON) SELECT 1 FROM memory_fts
                         WHERE doc @@ to_tsquery('picidae', '{q}')"
                    ),
                    (),
                    |r| r.get(0),
                )?;
                let rows = serde_json::from_str::<serde_json::Value>(&plan)
                    .ok()
                    .and_then(|v| v[0]["Plan"]["Plan Rows"].as_f64())
                    .unwrap_or(0.0);
                Ok((rows as i64).min(cap))
            }
        }
    }

    /// The index's size in bytes (FTS5's shadow tables, or the PostgreSQL table with its
    /// indexes); 0 where the engine cannot say.
    pub fn memory_index_bytes(&self) -> Result<i64> {
        let sql = match self.backend() {
            Backend::Sqlite => "SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'memory_fts%'",
            Backend::Postgres => "SELECT pg_total_relation_size('memory_fts')",
        };
        let n: Option<i64> = self
            .db
            .query_row(sql, (), |r| r.get(0))
            .optional()
            .unwrap_or(None)
            .flatten();
        Ok(n.unwrap_or(0))
    }

    /// Record an attempt's deduplication keys (its patch hash is set with its commit).
    pub fn set_dedup_keys(
        &self,
        attempt_id: i64,
        norm_hash: &str,
        params_hash: Option<&str>,
    ) -> Result<()> {
        self.db.execute(
            "UPDATE attempts SET norm_hash = ?2, params_hash = ?3 WHERE id = ?1",
            params![attempt_id, norm_hash, params_hash],
        )?;
        Ok(())
    }

    /// The oldest attempt on the benchmark at `benchmark_dir`, other than `exclude`, that
    /// shares `value` under `key` (on the same `parent` commit, for the patch keys) and was
    /// decided or is queued or running: an idea in flight is taken.
    pub fn first_with_key(
        &self,
        benchmark_dir: &str,
        parent: &str,
        key: DedupKey,
        value: &str,
        exclude: i64,
    ) -> Result<Option<i64>> {
        let (column, same_parent) = match key {
            DedupKey::ExactPatch => ("patch_hash", "a.parent_commit = ?2"),
            DedupKey::NormalizedPatch => ("norm_hash", "a.parent_commit = ?2"),
            // PostgreSQL cannot type an unused parameter: use it where it changes nothing.
            DedupKey::SameParameters => ("params_hash", "CAST(?2 AS TEXT) = CAST(?2 AS TEXT)"),
        };
        Ok(self
            .db
            .query_row(
                &format!(
                    "SELECT a.id FROM attempts a
                     WHERE a.program_id IN (SELECT id FROM programs WHERE benchmark_dir = ?1)
                     AND {same_parent} AND a.{column} = ?3 AND a.id != ?4
                     AND a.status IN ('kept', 'discarded', 'failed', 'duplicate', 'queued', 'running')
                     ORDER BY a.id LIMIT 1"
                ),
                params![benchmark_dir, parent, value, exclude],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// What a memory hit shows of each of `ids`, in one statement: the attempt, its program's
    /// name and the attempt it was found to repeat. Ids not in the store are left out; the
    /// order is `ids`'s.
    pub fn memory_hit_rows(&self, ids: &[i64]) -> Result<Vec<HitRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let mut rows = self.db.query_map(
            &format!(
                "SELECT {ATTEMPT_COLS},
                        (SELECT name FROM programs WHERE programs.id = attempts.program_id),
                        duplicate_of
                 FROM attempts WHERE id IN ({})",
                list.join(", ")
            ),
            (),
            |r| {
                Ok(HitRow {
                    attempt: attempt_from_row(r)?,
                    program: r.get(ATTEMPT_COL_COUNT)?,
                    duplicate_of: r.get(ATTEMPT_COL_COUNT + 1)?,
                })
            },
        )?;
        rows.sort_by_key(|h| ids.iter().position(|&i| i == h.attempt.id));
        Ok(rows)
    }

    /// The attempt `attempt_id` was found to repeat, if any.
    pub fn duplicate_of(&self, attempt_id: i64) -> Result<Option<i64>> {
        Ok(self
            .db
            .query_row(
                "SELECT duplicate_of FROM attempts WHERE id = ?1",
                [attempt_id],
                |r| r.get::<Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Record that `attempt_id` repeats `of`.
    pub fn set_duplicate_of(&self, attempt_id: i64, of: i64) -> Result<()> {
        self.db.execute(
            "UPDATE attempts SET duplicate_of = ?2 WHERE id = ?1",
            params![attempt_id, of],
        )?;
        Ok(())
    }

    /// How many programs the store holds.
    pub fn program_count(&self) -> Result<i64> {
        Ok(self
            .db
            .query_row("SELECT COUNT(*) FROM programs", (), |r| r.get(0))?)
    }

    /// The largest attempt id (0 when there is none); ids are dense enough to stand in for the
    /// number of attempts without counting them.
    pub fn max_attempt_id(&self) -> Result<i64> {
        Ok(self
            .db
            .query_row("SELECT COALESCE(MAX(id), 0) FROM attempts", (), |r| {
                r.get(0)
            })?)
    }

    /// The program's most recent failed or duplicate attempts, newest first.
    pub fn recent_failed_attempts(&self, program_id: i64, limit: usize) -> Result<Vec<i64>> {
        Ok(self.db.query_map(
            "SELECT id FROM attempts WHERE program_id = ?1 AND status IN ('failed', 'duplicate')
             ORDER BY id DESC LIMIT ?2",
            params![program_id, limit as i64],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_column_count_is_the_columns_named() {
        assert_eq!(ATTEMPT_COLS.split(',').count(), ATTEMPT_COL_COUNT);
    }
}
