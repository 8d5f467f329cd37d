//! A program's records as they are stored, read in one snapshot for `picidae fsck`, which
//! checks them against each other and against git. States stay the raw stored words: an
//! audit must be able to report a state this version does not know, not fail to read it.

use crate::{Program, Result, Store};

/// An attempt, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAttempt {
    pub id: i64,
    pub seq: i64,
    pub kind: String,
    pub status: String,
    pub parent_commit: String,
    pub commit: Option<String>,
    pub primary_value: Option<f64>,
    /// When it was decided (ms since the Unix epoch).
    pub decided_at: Option<i64>,
}

/// A run, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: i64,
    pub attempt_id: i64,
    /// Negative for a screen run, which is not one of the attempt's seeds.
    pub seed: i64,
    pub status: String,
    pub primary_value: Option<f64>,
    /// The metrics object as stored (non-finite values are strings in it).
    pub metrics_json: Option<String>,
    pub finished_at: Option<i64>,
    pub cancel_requested_at: Option<i64>,
}

/// A finding, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFinding {
    pub id: i64,
    pub attempt_id: i64,
    pub state: String,
}

/// A row of the frontier's history.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFrontierMove {
    pub id: i64,
    pub attempt_id: i64,
    pub commit: String,
    pub value: f64,
}

/// Everything of one program an audit reads, from one read transaction.
#[derive(Debug, Clone)]
pub struct ProgramRecords {
    pub program: Program,
    /// By sequence number.
    pub attempts: Vec<StoredAttempt>,
    /// By id.
    pub runs: Vec<StoredRun>,
    /// By id.
    pub findings: Vec<StoredFinding>,
    /// Oldest first.
    pub history: Vec<StoredFrontierMove>,
}

impl Store {
    /// The program's attempts, runs, findings and frontier history, in one snapshot.
    pub fn program_records(&self, name: &str) -> Result<ProgramRecords> {
        let tx = self.db.begin_read()?;
        let program = self.program(name)?;
        let pid = program.id;
        let attempts = tx.query_map(
            "SELECT id, seq, kind, status, parent_commit, commit_sha, primary_value, decided_at
             FROM attempts WHERE program_id = ?1 ORDER BY seq",
            [pid],
            |r| {
                Ok(StoredAttempt {
                    id: r.get(0)?,
                    seq: r.get(1)?,
                    kind: r.get(2)?,
                    status: r.get(3)?,
                    parent_commit: r.get(4)?,
                    commit: r.get(5)?,
                    primary_value: r.get(6)?,
                    decided_at: r.get(7)?,
                })
            },
        )?;
        let runs = tx.query_map(
            "SELECT id, attempt_id, status, primary_value, metrics_json, finished_at,
                    cancel_requested_at, seed
             FROM runs WHERE program_id = ?1 ORDER BY id",
            [pid],
            |r| {
                Ok(StoredRun {
                    id: r.get(0)?,
                    attempt_id: r.get(1)?,
                    seed: r.get(7)?,
                    status: r.get(2)?,
                    primary_value: r.get(3)?,
                    metrics_json: r.get(4)?,
                    finished_at: r.get(5)?,
                    cancel_requested_at: r.get(6)?,
                })
            },
        )?;
        let findings = tx.query_map(
            "SELECT id, attempt_id, state FROM findings WHERE program_id = ?1 ORDER BY id",
            [pid],
            |r| {
                Ok(StoredFinding {
                    id: r.get(0)?,
                    attempt_id: r.get(1)?,
                    state: r.get(2)?,
                })
            },
        )?;
        let history = tx.query_map(
            "SELECT id, attempt_id, commit_sha, value FROM frontier_history
             WHERE program_id = ?1 ORDER BY id",
            [pid],
            |r| {
                Ok(StoredFrontierMove {
                    id: r.get(0)?,
                    attempt_id: r.get(1)?,
                    commit: r.get(2)?,
                    value: r.get(3)?,
                })
            },
        )?;
        drop(tx);
        Ok(ProgramRecords {
            program,
            attempts,
            runs,
            findings,
            history,
        })
    }
}
