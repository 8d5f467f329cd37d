//! What live views read: what changed in the store since a reader last looked (the API's
//! event stream), the counts behind the Prometheus metrics, and a program's runs as points in
//! time (the cockpit's chart).
//!
//! A [`ChangeWatcher`] remembers the newest ids it has seen and the rows that may still
//! change, each with the state last reported; [`ChangeWatcher::poll`] reads, in one snapshot,
//! what is new or different since: a run that appeared or changed status, an attempt that was
//! decided (again, when a finding under verification concludes). At most [`CHANGE_BATCH`]
//! rows of each kind are read a poll; a larger burst arrives over several polls.

use std::collections::HashMap;

use picidae_core::RunStatus;
use serde::Serialize;

use crate::db::Db;
use crate::{Result, Store};

/// Most rows of one kind a poll reads.
pub const CHANGE_BATCH: i64 = 1000;

/// A run that appeared or changed status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunChange {
    pub id: i64,
    pub program: String,
    pub seq: i64,
    pub seed: i64,
    pub status: String,
    pub value: Option<f64>,
}

/// An attempt that was decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptChange {
    pub id: i64,
    pub program: String,
    pub seq: i64,
    pub status: String,
    pub value: Option<f64>,
    pub decided_at: Option<i64>,
}

/// One change, in the order the store holds them.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Run(RunChange),
    Attempt(AttemptChange),
}

/// Where a reader stands (see the module docs).
#[derive(Debug, Default)]
pub struct ChangeWatcher {
    max_run: i64,
    /// Unfinished runs and their last status.
    open_runs: HashMap<i64, String>,
    max_attempt: i64,
    max_finding: i64,
    /// Attempts that may still be decided (again), with the (status, decided_at) last seen.
    open_attempts: HashMap<i64, Option<(String, i64)>>,
}

fn id_list(ids: impl Iterator<Item = i64>) -> String {
    let v: Vec<String> = ids.map(|i| i.to_string()).collect();
    if v.is_empty() {
        "NULL".into()
    } else {
        v.join(",")
    }
}

/// An attempt row as the watcher reads it, with whether a finding of it is still open.
struct AttemptRow {
    change: AttemptChange,
    open_finding: bool,
}

impl ChangeWatcher {
    /// Start from the store as it is now: only later changes are reported.
    pub fn start(store: &Store) -> Result<ChangeWatcher> {
        let tx = store.db.begin_read()?;
        let max = |table: &str| -> Result<i64> {
            Ok(tx.query_row(
                &format!("SELECT COALESCE(MAX(id), 0) FROM {table}"),
                (),
                |r| r.get(0),
            )?)
        };
        let mut w = ChangeWatcher {
            max_run: max("runs")?,
            max_attempt: max("attempts")?,
            max_finding: max("findings")?,
            ..ChangeWatcher::default()
        };
        for (id, status) in tx.query_map(
            "SELECT id, status FROM runs WHERE status IN ('queued', 'running')",
            (),
            |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)),
        )? {
            w.open_runs.insert(id, status);
        }
        for (id, status, decided) in tx.query_map(
            "SELECT id, status, decided_at FROM attempts WHERE decided_at IS NULL
             OR id IN (SELECT attempt_id FROM findings WHERE state IN ('candidate', 'verifying'))",
            (),
            |r| {
                Ok((
                    r.get::<i64>(0)?,
                    r.get::<String>(1)?,
                    r.get::<Option<i64>>(2)?,
                ))
            },
        )? {
            w.open_attempts.insert(id, decided.map(|d| (status, d)));
        }
        tx.commit()?;
        Ok(w)
    }

    /// What changed since the last poll, read in one snapshot.
    pub fn poll(&mut self, store: &Store) -> Result<Vec<Change>> {
        let tx = store.db.begin_read()?;
        let mut out = Vec::new();

        // Open rows and new rows are read apart, so a pile of stale open rows cannot crowd new
        // ones out of the batch.
        let open = id_list(self.open_runs.keys().copied());
        let mut rows = run_rows(&tx, &format!("r.id IN ({open}) AND r.id > ?1"), 0)?;
        rows.extend(run_rows(&tx, "r.id > ?1", self.max_run)?);
        for run in rows {
            let id = run.id;
            let status = run.status.clone();
            if self.open_runs.get(&id) != Some(&status) {
                out.push(Change::Run(run));
            }
            let terminal = status
                .parse::<RunStatus>()
                .map(|s| s.is_terminal())
                .unwrap_or(true);
            if terminal {
                self.open_runs.remove(&id);
            } else {
                self.open_runs.insert(id, status);
            }
            self.max_run = self.max_run.max(id);
        }

        let open = id_list(self.open_attempts.keys().copied());
        let mut rows = attempt_rows(&tx, &format!("a.id IN ({open}) AND a.id > ?1"), 0)?;
        rows.extend(attempt_rows(&tx, "a.id > ?1", self.max_attempt)?);
        for AttemptRow {
            change,
            open_finding,
        } in rows
        {
            let id = change.id;
            let now = change.decided_at.map(|d| (change.status.clone(), d));
            let before = self.open_attempts.get(&id).cloned().flatten();
            let decided = change.decided_at.is_some();
            if now.is_some() && now != before {
                out.push(Change::Attempt(change));
            }
            if decided && !open_finding {
                self.open_attempts.remove(&id);
            } else {
                self.open_attempts.insert(id, now);
            }
            self.max_attempt = self.max_attempt.max(id);
        }

        // An attempt whose finding opened after it was seen may be decided again when the
        // finding concludes: watch it from now on.
        for (fid, aid, status, decided_at) in tx.query_map(
            "SELECT f.id, a.id, a.status, a.decided_at FROM findings f
             JOIN attempts a ON a.id = f.attempt_id WHERE f.id > ?1 ORDER BY f.id",
            [self.max_finding],
            |r| {
                Ok((
                    r.get::<i64>(0)?,
                    r.get::<i64>(1)?,
                    r.get::<String>(2)?,
                    r.get::<Option<i64>>(3)?,
                ))
            },
        )? {
            self.max_finding = self.max_finding.max(fid);
            if aid <= self.max_attempt {
                self.open_attempts
                    .entry(aid)
                    .or_insert_with(|| decided_at.map(|d| (status, d)));
            }
        }
        tx.commit()?;
        Ok(out)
    }
}

/// Runs matching `cond` (which must use `?1` = `after`: PostgreSQL cannot type an unused
/// parameter), oldest first, at most a batch.
fn run_rows(tx: &Db, cond: &str, after: i64) -> Result<Vec<RunChange>> {
    Ok(tx.query_map(
        &format!(
            "SELECT r.id, p.name, a.seq, r.seed, r.status, r.primary_value
             FROM runs r JOIN attempts a ON a.id = r.attempt_id
                         JOIN programs p ON p.id = r.program_id
             WHERE {cond} ORDER BY r.id LIMIT ?2"
        ),
        [after, CHANGE_BATCH],
        |r| {
            Ok(RunChange {
                id: r.get(0)?,
                program: r.get(1)?,
                seq: r.get(2)?,
                seed: r.get(3)?,
                status: r.get(4)?,
                value: r.get(5)?,
            })
        },
    )?)
}

/// Attempts matching `cond` (which must use `?1` = `after`), oldest first, at most a batch.
fn attempt_rows(tx: &Db, cond: &str, after: i64) -> Result<Vec<AttemptRow>> {
    Ok(tx.query_map(
        &format!(
            "SELECT a.id, p.name, a.seq, a.status, a.primary_value, a.decided_at,
                EXISTS (SELECT 1 FROM findings f WHERE f.attempt_id = a.id
                        AND f.state IN ('candidate', 'verifying'))
             FROM attempts a JOIN programs p ON p.id = a.program_id
             WHERE {cond} ORDER BY a.id LIMIT ?2"
        ),
        [after, CHANGE_BATCH],
        |r| {
            Ok(AttemptRow {
                change: AttemptChange {
                    id: r.get(0)?,
                    program: r.get(1)?,
                    seq: r.get(2)?,
                    status: r.get(3)?,
                    value: r.get(4)?,
                    decided_at: r.get(5)?,
                },
                open_finding: r.get(6)?,
            })
        },
    )?)
}

/// How many rows of one kind a program has in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    pub program: String,
    pub status: String,
    pub n: i64,
}

/// The counts behind the Prometheus metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    /// Programs by status (`active`, `paused`).
    pub programs: Vec<(String, i64)>,
    /// Attempts by program and status, ordered by both.
    pub attempts: Vec<StatusCount>,
    /// Runs by program and status, ordered by both.
    pub runs: Vec<StatusCount>,
}

impl Store {
    /// Programs by status, and attempts and runs by program and status, in one snapshot.
    pub fn status_counts(&self) -> Result<StoreCounts> {
        let tx = self.db.begin_read()?;
        let programs = tx.query_map(
            "SELECT status, COUNT(*) FROM programs GROUP BY status ORDER BY status",
            (),
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
        )?;
        let by_program = |table: &str| -> Result<Vec<StatusCount>> {
            Ok(tx.query_map(
                &format!(
                    "SELECT p.name, t.status, t.n FROM
                       (SELECT program_id, status, COUNT(*) AS n FROM {table}
                        GROUP BY program_id, status) t
                     JOIN programs p ON p.id = t.program_id ORDER BY p.name, t.status"
                ),
                (),
                |r| {
                    Ok(StatusCount {
                        program: r.get(0)?,
                        status: r.get(1)?,
                        n: r.get(2)?,
                    })
                },
            )?)
        };
        let counts = StoreCounts {
            programs,
            attempts: by_program("attempts")?,
            runs: by_program("runs")?,
        };
        tx.commit()?;
        Ok(counts)
    }
}

/// A run as a point in time, for a program's progress chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunPoint {
    pub attempt_id: i64,
    pub id: i64,
    pub seed: i64,
    pub status: String,
    /// Visible primary value (`None` when the run produced none).
    pub value: Option<f64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl Store {
    /// Every run of the program as a point in time, oldest first.
    pub fn run_points(&self, program_id: i64) -> Result<Vec<RunPoint>> {
        Ok(self.db.query_map(
            "SELECT attempt_id, id, seed, status, primary_value, started_at, finished_at
             FROM runs WHERE program_id = ?1 ORDER BY id",
            [program_id],
            |r| {
                Ok(RunPoint {
                    attempt_id: r.get(0)?,
                    id: r.get(1)?,
                    seed: r.get(2)?,
                    status: r.get(3)?,
                    value: r.get(4)?,
                    started_at: r.get(5)?,
                    finished_at: r.get(6)?,
                })
            },
        )?)
    }
}
