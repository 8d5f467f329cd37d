//! Picidae's store: the source of truth for programs, attempts, runs, fingerprints and each
//! program's frontier.
//!
//! The default backend is an embedded SQLite database in WAL mode, created and upgraded by
//! numbered migrations. Every state change that must be atomic (a run's result together with
//! its attempt's decision and the frontier's advance) happens in one transaction, so a crash of
//! Picidae at any instant leaves either the old or the new state, never a half-recorded attempt.
//!
//! Invariants kept here:
//! - an attempt's `seq` is unique and dense within its program;
//! - the frontier only moves through [`Store::decide_attempt`], which also writes the history row;
//! - a run is finished at most once (a second finish is an error, not a double count).
//!
//! Write transactions are `IMMEDIATE`: several connections write (the coordinator runs a loop,
//! a proposer and the HTTP API at once), and a deferred transaction that upgrades from read
//! to write would fail at once when another connection wrote first, where an immediate one
//! waits for the busy timeout.

mod arenas;
pub mod audit;
mod carried;
pub mod changes;
mod contributions;
pub mod db;
mod delete;
mod error;
mod findings;
pub mod memory_index;
mod memory_recent;
pub mod migrate;
mod open;
mod results;
mod retries;
mod runs;
mod schema;
mod steering;
#[cfg(feature = "testing")]
pub mod testing;
mod types;
mod work;

pub use arenas::{Arena, ArenaBudget, ArenaEntry, ArenaResult, RunSpend};
pub use contributions::{
    reputation, Contribution, ContributionState, ContributorSpend, NewContribution, Openness,
    Quota, Standing,
};
pub use delete::DeletedProgram;
pub use open::{is_postgres_url, latest_schema, redact_url, url_with_database};
pub use results::ResultRow;
pub use retries::RetryRequest;
pub use runs::{Run, RunResult, SeedValue};
pub use steering::{Followup, Spend, Token};
pub use work::{Renewal, Report, WorkItem, WorkRefusal, WorkStatus, Worker};

pub use findings::{Calibration, Evidence, Finding, FindingEvent, HiddenResult, NoiseFloor};

use db::{Db, DbError, DbResult, OptionalExtension, Row};
use picidae_core::{AttemptStatus, RunStatus};

pub use db::Backend;

pub use error::{Result, StoreError};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub use types::{
    Attempt, AttemptFilter, Decision, FrontierMove, ImportedAttempt, NewAttempt, NewProgram,
    Program,
};

/// The store handle: one connection to SQLite or PostgreSQL.
pub struct Store {
    db: Db,
}

impl Store {
    // ---------------------------------------------------------------- programs

    pub fn create_program(&mut self, p: &NewProgram) -> Result<Program> {
        let exists: Option<i64> = self
            .db
            .query_row("SELECT id FROM programs WHERE name = ?1", [&p.name], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(StoreError::ProgramExists(p.name.clone()));
        }
        self.db.execute(
            "INSERT INTO programs (name, benchmark_dir, program_md, agent_json, policy_json,
                                   base_commit, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7)",
            params![
                p.name,
                p.benchmark_dir,
                p.program_md,
                p.agent.to_string(),
                p.policy.to_string(),
                p.base_commit,
                now_ms()
            ],
        )?;
        self.program(&p.name)
    }

    pub fn program(&self, name: &str) -> Result<Program> {
        self.db
            .query_row(
                &format!("SELECT {PROGRAM_COLS} FROM programs WHERE name = ?1"),
                [name],
                program_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchProgram(name.to_string()))
    }

    pub fn program_by_id(&self, id: i64) -> Result<Program> {
        self.db
            .query_row(
                &format!("SELECT {PROGRAM_COLS} FROM programs WHERE id = ?1"),
                [id],
                program_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NoSuchProgram(format!("#{id}")))
    }

    pub fn programs(&self) -> Result<Vec<Program>> {
        Ok(self.db.query_map(
            &format!("SELECT {PROGRAM_COLS} FROM programs ORDER BY id"),
            (),
            program_from_row,
        )?)
    }

    // ---------------------------------------------------------------- attempts

    /// Record a new attempt (status `proposed`) with the next sequence number of its program.
    pub fn insert_attempt(&mut self, a: &NewAttempt) -> Result<Attempt> {
        // The next sequence number is read inside the insert, under the write lock.
        let tx = self.db.begin()?;
        let attempt = tx.query_row(
            &format!(
                "INSERT INTO attempts (program_id, seq, kind, status, parent_commit, hypothesis,
                                       proposer, params_json, created_at)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM attempts
                              WHERE program_id = ?1),
                         ?2, 'proposed', ?3, ?4, ?5, ?6, ?7)
                 RETURNING {ATTEMPT_COLS}"
            ),
            params![
                a.program_id,
                a.kind.as_str(),
                a.parent_commit,
                a.hypothesis,
                a.proposer,
                a.params.as_ref().map(|p| p.to_string()),
                now_ms()
            ],
            attempt_from_row,
        )?;
        tx.commit()?;
        Ok(attempt)
    }

    /// Record that attempt `id` is built on `parent` after all: a commit its own commit
    /// descends from (the frontier moved to a merge candidate it was stacked on).
    pub fn set_attempt_parent(&mut self, id: i64, parent: &str) -> Result<()> {
        let n = self.db.execute(
            "UPDATE attempts SET parent_commit = ?2 WHERE id = ?1",
            params![id, parent],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchAttempt(id));
        }
        Ok(())
    }

    /// A program's attempts after sequence number `seq`, oldest first.
    pub fn attempts_after(&self, program_id: i64, seq: i64) -> Result<Vec<Attempt>> {
        Ok(self.db.query_map(
            &format!(
                "SELECT {ATTEMPT_COLS} FROM attempts WHERE program_id = ?1 AND seq > ?2 ORDER BY seq"
            ),
            [program_id, seq],
            attempt_from_row,
        )?)
    }

    /// The attempts that carry attempt `id`'s change onto a newer frontier (replays, retries,
    /// merge candidates), oldest first.
    pub fn replays_of(&self, id: i64) -> Result<Vec<Attempt>> {
        Ok(self.db.query_map(
            &format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE replay_of = ?1 ORDER BY seq"),
            [id],
            attempt_from_row,
        )?)
    }

    /// Record that attempt `id` carries the change of attempt `of` onto a newer frontier.
    /// A contribution being verified by `of` follows its change to the replay `id`.
    pub fn set_attempt_replay_of(&mut self, id: i64, of: i64) -> Result<()> {
        let tx = self.db.begin()?;
        let n = tx.execute(
            "UPDATE attempts SET replay_of = ?2 WHERE id = ?1",
            params![id, of],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchAttempt(id));
        }
        tx.execute(
            "UPDATE contributions SET attempt_id = ?1 WHERE attempt_id = ?2 AND state = 'verifying'",
            params![id, of],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Set the attempt's note (what the harness wants a reader of the attempt to know, e.g.
    /// files it left out of the change). A later decision's note is appended to it.
    pub fn set_attempt_note(&mut self, id: i64, note: &str) -> Result<()> {
        let n = self.db.execute(
            "UPDATE attempts SET note = ?2 WHERE id = ?1",
            params![id, note],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchAttempt(id));
        }
        Ok(())
    }

    /// Record the git commit that holds the attempt's change.
    pub fn set_attempt_commit(
        &mut self,
        id: i64,
        commit: &str,
        patch_hash: &str,
        touched: &[String],
        hypothesis: Option<&str>,
    ) -> Result<()> {
        let n = self.db.execute(
            "UPDATE attempts SET commit_sha = ?2, patch_hash = ?3, touched_json = ?4,
                    hypothesis = COALESCE(?5, hypothesis)
             WHERE id = ?1",
            params![
                id,
                commit,
                patch_hash,
                serde_json::to_string(touched).unwrap_or_default(),
                hypothesis
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchAttempt(id));
        }
        Ok(())
    }

    /// Record the parameter assignment an agent wrote.
    pub fn set_attempt_params(&mut self, id: i64, params: &serde_json::Value) -> Result<()> {
        self.db.execute(
            "UPDATE attempts SET params_json = ?2 WHERE id = ?1",
            params![id, params.to_string()],
        )?;
        Ok(())
    }

    /// Record attempts made elsewhere (an imported results.tsv), each with one run carrying its
    /// value and memory, all in one transaction: an import is all or nothing. Imported attempts
    /// never move the frontier.
    pub fn insert_imported(&mut self, program_id: i64, rows: &[ImportedAttempt]) -> Result<usize> {
        let tx = self.db.begin()?;
        let mut seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM attempts WHERE program_id = ?1",
            [program_id],
            |r| r.get(0),
        )?;
        let now = now_ms();
        for row in rows {
            seq += 1;
            let attempt_id: i64 = tx.query_row(
                "INSERT INTO attempts (program_id, seq, kind, status, parent_commit, commit_sha,
                                       hypothesis, proposer, primary_value, note, created_at,
                                       decided_at)
                 VALUES (?1, ?2, 'imported', ?3, '', ?4, ?5, ?6, ?7, ?8, ?9, ?9) RETURNING id",
                params![
                    program_id,
                    seq,
                    row.status.as_str(),
                    row.commit,
                    row.hypothesis,
                    row.source,
                    row.primary_value,
                    format!("imported from {}", row.source),
                    now
                ],
                |r| r.get(0),
            )?;

            let run_status = if row.status == AttemptStatus::Failed {
                RunStatus::Crashed
            } else {
                RunStatus::Succeeded
            };
            tx.execute(
                "INSERT INTO runs (attempt_id, program_id, seed, status, executor, peak_gpu_mb,
                                   primary_value, queued_at, finished_at)
                 VALUES (?1, ?2, 0, ?3, 'imported', ?4, ?5, ?6, ?6)",
                params![
                    attempt_id,
                    program_id,
                    run_status.as_str(),
                    row.peak_gpu_mb,
                    row.primary_value,
                    now
                ],
            )?;
        }
        tx.commit()?;
        Ok(rows.len())
    }

    /// Mark a proposed attempt `queued`: checked, committed, and ready to run.
    pub fn queue_attempt(&mut self, id: i64) -> Result<()> {
        self.db.execute(
            "UPDATE attempts SET status = 'queued' WHERE id = ?1 AND status = 'proposed'",
            [id],
        )?;
        Ok(())
    }

    /// The oldest queued attempt of a program, and how many are queued.
    pub fn queued_attempts(&self, program_id: i64) -> Result<(Option<Attempt>, i64)> {
        let n: i64 = self.db.query_row(
            "SELECT COUNT(*) FROM attempts WHERE program_id = ?1 AND status = 'queued'",
            [program_id],
            |r| r.get(0),
        )?;
        let first = self
            .db
            .query_row(
                &format!(
                    "SELECT {ATTEMPT_COLS} FROM attempts
                     WHERE program_id = ?1 AND status = 'queued' ORDER BY seq LIMIT 1"
                ),
                [program_id],
                attempt_from_row,
            )
            .optional()?;
        Ok((first, n))
    }

    /// Mark an attempt `running` (its runs are being executed).
    pub fn start_attempt(&mut self, id: i64) -> Result<()> {
        self.db.execute(
            "UPDATE attempts SET status = 'running' WHERE id = ?1 AND status IN ('proposed', 'queued')",
            [id],
        )?;
        Ok(())
    }

    /// Reject an attempt before any compute is spent (boundary, duplicate, agent failure).
    pub fn reject_attempt(
        &mut self,
        id: i64,
        status: AttemptStatus,
        why: &serde_json::Value,
        note: &str,
    ) -> Result<()> {
        let tx = self.db.begin()?;
        tx.execute(
            "UPDATE attempts SET status = ?2, rejection_json = ?3, note = ?4, decided_at = ?5
             WHERE id = ?1",
            params![id, status.as_str(), why.to_string(), note, now_ms()],
        )?;
        let state = contributions::ContributionState::Refused;
        contributions::conclude_in(&tx, id, state, None, Some(note))?;
        tx.commit()?;
        Ok(())
    }

    /// Decide an attempt and, if asked, advance its program's frontier, in one transaction.
    pub fn decide_attempt(&mut self, id: i64, d: &Decision) -> Result<()> {
        let tx = self.db.begin()?;
        decide_in(&tx, id, d)?;
        tx.commit()?;
        Ok(())
    }

    pub fn attempt(&self, id: i64) -> Result<Attempt> {
        self.db
            .query_row(
                &format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE id = ?1"),
                [id],
                attempt_from_row,
            )
            .optional()?
            .ok_or(StoreError::NoSuchAttempt(id))
    }

    pub fn attempt_by_seq(&self, program_id: i64, seq: i64) -> Result<Option<Attempt>> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE program_id = ?1 AND seq = ?2"),
                [program_id, seq],
                attempt_from_row,
            )
            .optional()?)
    }

    pub fn attempts(&self, f: &AttemptFilter) -> Result<Vec<Attempt>> {
        let rows = self.db.query_map(
            &format!(
                "SELECT {ATTEMPT_COLS} FROM attempts
             WHERE (program_id = ?1 OR ?1 IS NULL) AND (status = ?2 OR ?2 IS NULL)
             ORDER BY program_id, seq LIMIT ?3 OFFSET ?4"
            ),
            params![
                f.program_id,
                f.status.map(|s| s.as_str()),
                f.limit.unwrap_or(i64::MAX),
                f.offset.unwrap_or(0)
            ],
            attempt_from_row,
        )?;
        Ok(rows)
    }

    /// Attempts of a program that were started but never decided (the harness stopped).
    pub fn undecided_attempts(&self, program_id: i64) -> Result<Vec<Attempt>> {
        let rows = self.db.query_map(
            &format!(
                "SELECT {ATTEMPT_COLS} FROM attempts
             WHERE program_id = ?1 AND status IN ('proposed', 'queued', 'running') ORDER BY seq"
            ),
            [program_id],
            attempt_from_row,
        )?;
        Ok(rows)
    }

    /// Count attempts by status for a program.
    pub fn attempt_counts(&self, program_id: i64) -> Result<Vec<(AttemptStatus, i64)>> {
        let rows = self.db.query_map(
            "SELECT status, COUNT(*) FROM attempts WHERE program_id = ?1 GROUP BY status",
            [program_id],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (s, n) = row;
            out.push((parse_state(&s)?, n));
        }
        Ok(out)
    }

    /// The hypothesis of every attempt of a program, in no particular order (what a scan of
    /// the whole log for a phrase reads).
    pub fn hypotheses(&self, program_id: i64) -> Result<Vec<String>> {
        Ok(self.db.query_map(
            "SELECT hypothesis FROM attempts WHERE program_id = ?1",
            [program_id],
            |r| r.get::<String>(0),
        )?)
    }

    /// The frontier's history, oldest first (the first is the baseline's measurement).
    pub fn frontier_history(&self, program_id: i64) -> Result<Vec<FrontierMove>> {
        let rows = self.db.query_map(
            "SELECT attempt_id, commit_sha, value, decided_at FROM frontier_history
             WHERE program_id = ?1 ORDER BY id",
            [program_id],
            |r| {
                Ok(FrontierMove {
                    attempt_id: r.get(0)?,
                    commit: r.get(1)?,
                    value: r.get(2)?,
                    at: r.get(3)?,
                })
            },
        )?;
        Ok(rows)
    }
}

pub(crate) fn decide_in(tx: &Db, id: i64, d: &Decision) -> Result<()> {
    let now = now_ms();
    let (program_id, commit): (i64, Option<String>) = tx
        .query_row(
            "UPDATE attempts SET status = ?2, primary_value = ?3,
                    note = CASE WHEN CAST(?4 AS TEXT) IS NULL THEN note
                                WHEN note IS NULL OR note = '' THEN CAST(?4 AS TEXT)
                                ELSE note || '; ' || CAST(?4 AS TEXT) END,
                    decided_at = ?5
             WHERE id = ?1 RETURNING program_id, commit_sha",
            params![id, d.status.as_str(), d.primary_value, d.note, now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or(StoreError::NoSuchAttempt(id))?;
    if d.status.is_final() {
        // A contributor's claim gets its verdict with the attempt's decision, its gain measured
        // against the frontier it replaces (so before the frontier moves).
        let state = if d.status == AttemptStatus::Kept {
            contributions::ContributionState::Verified
        } else {
            contributions::ContributionState::Refuted
        };
        contributions::conclude_in(tx, id, state, d.primary_value, d.note.as_deref())?;
    }
    if d.advance_frontier {
        if let Some(expected) = d.judged_against {
            let actual: Option<i64> = tx.query_row(
                "SELECT frontier_attempt_id FROM programs WHERE id = ?1",
                [program_id],
                |r| r.get(0),
            )?;
            if actual != Some(expected) {
                return Err(StoreError::FrontierMoved {
                    attempt: id,
                    expected: Some(expected),
                    actual,
                });
            }
        }
        let commit = commit.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "attempt {id} advances the frontier but has no commit"
            ))
        })?;
        let value = d.primary_value.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "attempt {id} advances the frontier without a value"
            ))
        })?;
        tx.execute(
            "UPDATE programs SET frontier_attempt_id = ?2, frontier_commit = ?3,
                    frontier_value = ?4 WHERE id = ?1",
            params![program_id, id, commit, value],
        )?;
        tx.execute(
            "INSERT INTO frontier_history (program_id, attempt_id, commit_sha, value, decided_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![program_id, id, commit, value, now],
        )?;
    }
    Ok(())
}

pub(crate) fn parse_state<T: std::str::FromStr<Err = picidae_core::domain::UnknownState>>(
    s: &str,
) -> Result<T> {
    s.parse()
        .map_err(|e: picidae_core::domain::UnknownState| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn conv_err(col: usize, e: impl std::fmt::Display) -> DbError {
    DbError::Conversion {
        col,
        msg: e.to_string(),
    }
}

fn json_col(r: &Row, i: usize) -> DbResult<Option<serde_json::Value>> {
    let s: Option<String> = r.get(i)?;
    s.map(|s| serde_json::from_str(&s).map_err(|e| conv_err(i, e)))
        .transpose()
}

const PROGRAM_COLS: &str = "id, name, benchmark_dir, program_md, agent_json, policy_json, \
    base_commit, frontier_attempt_id, frontier_commit, frontier_value, status, created_at, \
    weight, max_runs, max_gpu_hours, max_usd, gpu_hour_usd, executor_json, paused_reason";

fn program_from_row(r: &Row) -> DbResult<Program> {
    let status: String = r.get(10)?;
    Ok(Program {
        id: r.get(0)?,
        name: r.get(1)?,
        benchmark_dir: r.get(2)?,
        program_md: r.get(3)?,
        agent: json_col(r, 4)?.unwrap_or_default(),
        policy: json_col(r, 5)?.unwrap_or_default(),
        base_commit: r.get(6)?,
        frontier_attempt_id: r.get(7)?,
        frontier_commit: r.get(8)?,
        frontier_value: r.get(9)?,
        status: status.parse().map_err(|e| conv_err(10, e))?,
        created_at: r.get(11)?,
        weight: r.get(12)?,
        max_runs: r.get(13)?,
        max_gpu_hours: r.get(14)?,
        max_usd: r.get(15)?,
        gpu_hour_usd: r.get(16)?,
        executor: json_col(r, 17)?.unwrap_or_default(),
        paused_reason: r.get(18)?,
    })
}

pub(crate) const ATTEMPT_COLS: &str =
    "id, program_id, seq, kind, status, parent_commit, commit_sha, \
    hypothesis, proposer, params_json, patch_hash, touched_json, rejection_json, primary_value, \
    note, created_at, decided_at, replay_of";
/// How many columns [`ATTEMPT_COLS`] names.
pub(crate) const ATTEMPT_COL_COUNT: usize = 18;

pub(crate) fn attempt_from_row(r: &Row) -> DbResult<Attempt> {
    let kind: String = r.get(3)?;
    let status: String = r.get(4)?;
    let touched: Option<String> = r.get(11)?;
    Ok(Attempt {
        id: r.get(0)?,
        program_id: r.get(1)?,
        seq: r.get(2)?,
        kind: kind.parse().map_err(|e| conv_err(3, e))?,
        status: status.parse().map_err(|e| conv_err(4, e))?,
        parent_commit: r.get(5)?,
        commit: r.get(6)?,
        hypothesis: r.get(7)?,
        proposer: r.get(8)?,
        params: json_col(r, 9)?,
        patch_hash: r.get(10)?,
        touched: touched
            .map(|t| serde_json::from_str(&t).map_err(|e| conv_err(11, e)))
            .transpose()?
            .unwrap_or_default(),
        rejection: json_col(r, 12)?,
        primary_value: r.get(13)?,
        note: r.get(14)?,
        created_at: r.get(15)?,
        decided_at: r.get(16)?,
        replay_of: r.get(17)?,
    })
}
