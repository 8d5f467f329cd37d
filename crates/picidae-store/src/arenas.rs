//! Arenas: program.md files run against each other. An arena names a benchmark, a budget
//! (runs or GPU-hours, the same for every entry) and a number of trials; each entry and trial
//! is one program of its own (`arena_entries`). The hidden truth of the commits an arena is
//! scored on is kept once measured (`arena_truth`), so a score is read again, not re-measured.
//! The last ranking is kept per entry (`arena_results`): the cockpit and the memory's
//! program.md results read it without measuring anything.

use crate::db::OptionalExtension;
use crate::{now_ms, params, Result, Store, StoreError};

/// What an arena's budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArenaBudget {
    Runs,
    GpuHours,
}

impl ArenaBudget {
    pub fn as_str(self) -> &'static str {
        match self {
            ArenaBudget::Runs => "runs",
            ArenaBudget::GpuHours => "gpu_hours",
        }
    }
}

/// An arena as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Arena {
    pub id: i64,
    pub name: String,
    pub benchmark_dir: String,
    pub budget_kind: ArenaBudget,
    pub budget: f64,
    pub trials: i64,
    pub created_at: i64,
}

/// One entry's program in one trial.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArenaEntry {
    pub label: String,
    pub trial: i64,
    pub program_id: i64,
    pub program_md: String,
}

/// One entry's place in an arena's last scored ranking (its aggregate over trials: no
/// commit's own truth is in it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArenaResult {
    pub label: String,
    /// 1 is best, of `entries`.
    pub rank: i64,
    pub entries: i64,
    /// What a rate is per: `run` or `GPU-hour`.
    pub per: String,
    pub truth_metric: String,
    /// Whether the truth was the hidden evaluator (else the visible metric on fresh seeds).
    pub hidden: bool,
    /// Fresh seeds per measured commit, and the trials scored.
    pub seeds: i64,
    pub trials: i64,
    /// True gain per unit of budget (mean over trials) and its 95% interval.
    pub rate: Option<f64>,
    pub rate_low: Option<f64>,
    pub rate_high: Option<f64>,
    pub keeps: i64,
    pub false_keeps: i64,
    pub runs: i64,
    pub gpu_hours: f64,
    pub scored_at: i64,
}

/// A finished run's spend: when it finished and its GPU-milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSpend {
    pub finished_at: i64,
    pub gpu_ms: f64,
}

fn arena_from_row(r: &crate::db::Row) -> crate::db::DbResult<Arena> {
    let kind: String = r.get(3)?;
    Ok(Arena {
        id: r.get(0)?,
        name: r.get(1)?,
        benchmark_dir: r.get(2)?,
        budget_kind: if kind == "gpu_hours" {
            ArenaBudget::GpuHours
        } else {
            ArenaBudget::Runs
        },
        budget: r.get(4)?,
        trials: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn insert_entries(tx: &crate::db::Db, arena_id: i64, entries: &[ArenaEntry]) -> Result<()> {
    for e in entries {
        tx.execute(
            "INSERT INTO arena_entries (arena_id, label, trial, program_id, program_md)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![arena_id, e.label, e.trial, e.program_id, e.program_md],
        )?;
    }
    Ok(())
}

const ARENA_COLS: &str = "id, name, benchmark_dir, budget_kind, budget, trials, created_at";

impl Store {
    /// Record an arena and its entries (`(label, trial, program id, program.md)`) in one
    /// transaction. A name already taken is refused.
    pub fn create_arena(
        &mut self,
        name: &str,
        benchmark_dir: &str,
        (budget_kind, budget): (ArenaBudget, f64),
        trials: i64,
        entries: &[ArenaEntry],
    ) -> Result<Arena> {
        if self.arena(name)?.is_some() {
            return Err(StoreError::ArenaExists(name.to_string()));
        }
        let tx = self.db.begin()?;
        let id: i64 = tx.query_row(
            "INSERT INTO arenas (name, benchmark_dir, budget_kind, budget, trials, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            params![
                name,
                benchmark_dir,
                budget_kind.as_str(),
                budget,
                trials,
                now_ms()
            ],
            |r| r.get(0),
        )?;
        insert_entries(&tx, id, entries)?;
        tx.commit()?;
        self.arena(name)?
            .ok_or_else(|| StoreError::Corrupt(format!("arena {name:?} vanished")))
    }

    /// Add entries to an arena (a program.md entered in a later round).
    pub fn add_arena_entries(&mut self, arena_id: i64, entries: &[ArenaEntry]) -> Result<()> {
        let tx = self.db.begin()?;
        insert_entries(&tx, arena_id, entries)?;
        tx.commit()?;
        Ok(())
    }

    pub fn arena(&self, name: &str) -> Result<Option<Arena>> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {ARENA_COLS} FROM arenas WHERE name = ?1"),
                [name],
                arena_from_row,
            )
            .optional()?)
    }

    pub fn arenas(&self) -> Result<Vec<Arena>> {
        Ok(self.db.query_map(
            &format!("SELECT {ARENA_COLS} FROM arenas ORDER BY id"),
            (),
            arena_from_row,
        )?)
    }

    /// An arena's entries, by label then trial.
    pub fn arena_entries(&self, arena_id: i64) -> Result<Vec<ArenaEntry>> {
        Ok(self.db.query_map(
            "SELECT label, trial, program_id, program_md FROM arena_entries
             WHERE arena_id = ?1 ORDER BY label, trial",
            [arena_id],
            |r| {
                Ok(ArenaEntry {
                    label: r.get(0)?,
                    trial: r.get(1)?,
                    program_id: r.get(2)?,
                    program_md: r.get(3)?,
                })
            },
        )?)
    }

    /// Every program that is an arena's entry (`arena run` drives those, in rounds).
    pub fn arena_program_ids(&self) -> Result<std::collections::HashSet<i64>> {
        Ok(self
            .db
            .query_map("SELECT program_id FROM arena_entries", (), |r| r.get(0))?
            .into_iter()
            .collect())
    }

    /// The hidden truth of `commit` kept for the arena: (mean value, seeds), if measured.
    pub fn arena_truth(&self, arena_id: i64, commit: &str) -> Result<Option<(Option<f64>, i64)>> {
        Ok(self
            .db
            .query_row(
                "SELECT value, seeds FROM arena_truth WHERE arena_id = ?1 AND commit_sha = ?2",
                params![arena_id, commit],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Keep the hidden truth of `commit` (the first measurement stays).
    pub fn put_arena_truth(
        &self,
        arena_id: i64,
        commit: &str,
        value: Option<f64>,
        seeds: i64,
    ) -> Result<()> {
        self.db.execute(
            "INSERT INTO arena_truth (arena_id, commit_sha, value, seeds)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![arena_id, commit, value, seeds],
        )?;
        Ok(())
    }

    /// Replace the arena's stored ranking with `results` (one transaction).
    pub fn put_arena_results(&mut self, arena_id: i64, results: &[ArenaResult]) -> Result<()> {
        let tx = self.db.begin()?;
        tx.execute("DELETE FROM arena_results WHERE arena_id = ?1", [arena_id])?;
        for r in results {
            tx.execute(
                "INSERT INTO arena_results (arena_id, label, rank, entries, per, truth_metric,
                     hidden, seeds, trials, rate, rate_low, rate_high, keeps, false_keeps, runs,
                     gpu_hours, scored_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17)",
                params![
                    arena_id,
                    r.label,
                    r.rank,
                    r.entries,
                    r.per,
                    r.truth_metric,
                    r.hidden,
                    r.seeds,
                    r.trials,
                    r.rate,
                    r.rate_low,
                    r.rate_high,
                    r.keeps,
                    r.false_keeps,
                    r.runs,
                    r.gpu_hours,
                    r.scored_at
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The arena's last stored ranking, best first (empty until it is scored).
    pub fn arena_results(&self, arena_id: i64) -> Result<Vec<ArenaResult>> {
        Ok(self.db.query_map(
            "SELECT label, rank, entries, per, truth_metric, hidden, seeds, trials, rate,
                    rate_low, rate_high, keeps, false_keeps, runs, gpu_hours, scored_at
             FROM arena_results WHERE arena_id = ?1 ORDER BY rank, label",
            [arena_id],
            |r| {
                Ok(ArenaResult {
                    label: r.get(0)?,
                    rank: r.get(1)?,
                    entries: r.get(2)?,
                    per: r.get(3)?,
                    truth_metric: r.get(4)?,
                    hidden: r.get(5)?,
                    seeds: r.get(6)?,
                    trials: r.get(7)?,
                    rate: r.get(8)?,
                    rate_low: r.get(9)?,
                    rate_high: r.get(10)?,
                    keeps: r.get(11)?,
                    false_keeps: r.get(12)?,
                    runs: r.get(13)?,
                    gpu_hours: r.get(14)?,
                    scored_at: r.get(15)?,
                })
            },
        )?)
    }

    /// Each finished run of a program with its GPU-milliseconds, in the order they finished:
    /// the x axis of progress over spend.
    pub fn run_spend(&self, program_id: i64) -> Result<Vec<RunSpend>> {
        Ok(self.db.query_map(
            "SELECT finished_at, gpu_count * (finished_at - COALESCE(started_at, finished_at))
             FROM runs WHERE program_id = ?1 AND finished_at IS NOT NULL
             ORDER BY finished_at, id",
            [program_id],
            |r| {
                Ok(RunSpend {
                    finished_at: r.get(0)?,
                    gpu_ms: r.get::<Option<f64>>(1)?.unwrap_or(0.0),
                })
            },
        )?)
    }
}
