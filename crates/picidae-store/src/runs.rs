//! Runs: one execution of an attempt on one seed, from queued through started to finished
//! once (a second finish is an error, never a second count), and the machine fingerprints
//! they ran on.

use picidae_core::{MetricValues, RunBreach, RunStatus};
use serde::{Deserialize, Serialize};

use crate::db::{Db, DbResult, OptionalExtension, Row};
use crate::{
    conv_err, decide_in, now_ms, params, parse_state, Decision, Result, Store, StoreError,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub id: i64,
    pub attempt_id: i64,
    pub program_id: i64,
    pub seed: i64,
    pub status: RunStatus,
    pub executor: String,
    pub pid: Option<i64>,
    pub pgid: Option<i64>,
    pub host: Option<String>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub wall_secs: Option<f64>,
    pub peak_rss_kb: Option<i64>,
    /// Peak GPU memory in MiB, where the executor could measure it (nvidia-smi).
    pub peak_gpu_mb: Option<i64>,
    pub over_budget: bool,
    pub metrics: MetricValues,
    pub primary_value: Option<f64>,
    pub violations: Vec<String>,
    /// How the run breached its containment, if it did.
    pub breach: Option<RunBreach>,
    pub fingerprint: Option<String>,
    pub log_dir: Option<String>,
    pub error: Option<String>,
    /// The run's handle on its executor (`slurm:<job id>`, `ssh:<host>:<dir>`), if remote.
    pub executor_ref: Option<String>,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Times the engine started the run over on a new machine (a preempted spot instance
    /// SkyPilot recovered); the run is still one run.
    #[serde(default)]
    pub restarts: i64,
}

/// One succeeded run's primary value, by attempt and seed ([`Store::seed_values`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedValue {
    pub attempt_id: i64,
    pub seed: i64,
    pub value: f64,
}

/// What a finished run reports.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub status: Option<RunStatus>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub wall_secs: Option<f64>,
    pub peak_rss_kb: Option<i64>,
    pub peak_gpu_mb: Option<i64>,
    pub over_budget: bool,
    pub metrics: MetricValues,
    pub primary_value: Option<f64>,
    pub violations: Vec<String>,
    /// How the run breached its containment, if it did.
    pub breach: Option<RunBreach>,
    pub error: Option<String>,
    /// Times the engine started the run over on a new machine (a recovered spot instance).
    pub restarts: i64,
}

impl Store {
    // ---------------------------------------------------------------- runs

    /// Queue a run of an attempt with a seed.
    pub fn insert_run(&mut self, attempt_id: i64, seed: i64, executor: &str) -> Result<Run> {
        let inserted = self.db.query_row(
            &format!(
                "INSERT INTO runs (attempt_id, program_id, seed, status, executor, queued_at)
                 VALUES (?1, (SELECT program_id FROM attempts WHERE id = ?1), ?2, 'queued', ?3, ?4)
                 RETURNING {RUN_COLS}"
            ),
            params![attempt_id, seed, executor, now_ms()],
            run_from_row,
        );
        match inserted {
            Ok(run) => Ok(run),
            // A missing attempt fails the insert (no program, no parent row): say which.
            Err(e) => match self.attempt(attempt_id) {
                Err(StoreError::NoSuchAttempt(id)) => Err(StoreError::NoSuchAttempt(id)),
                _ => Err(e.into()),
            },
        }
    }

    /// Record that a run's process has started (its pid lets a restarted harness find it).
    pub fn mark_run_started(
        &mut self,
        id: i64,
        pid: i64,
        pgid: i64,
        host: &str,
        fingerprint: Option<(&str, &str)>,
        log_dir: &str,
    ) -> Result<()> {
        // Two statements, no transaction: the fingerprint row is idempotent and written
        // first, so the run never names a missing one, and a failed update leaves only a
        // fingerprint that other runs may share.
        if let Some((hash, json)) = fingerprint {
            self.db.execute(
                "INSERT INTO fingerprints (hash, json) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![hash, json],
            )?;
        }
        let n = self.db.execute(
            "UPDATE runs SET status = 'running', pid = ?2, pgid = ?3, host = ?4,
                    fingerprint = ?5, log_dir = ?6, started_at = ?7
             WHERE id = ?1 AND status = 'queued'",
            params![
                id,
                pid,
                pgid,
                host,
                fingerprint.map(|f| f.0),
                log_dir,
                now_ms()
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchRun(id));
        }
        Ok(())
    }

    /// Record a run's result. Fails if the run was already finished, so a result is never
    /// counted twice.
    pub fn finish_run(&mut self, id: i64, r: &RunResult) -> Result<()> {
        let tx = self.db.begin()?;
        finish_in(&tx, id, r)?;
        tx.commit()?;
        Ok(())
    }

    /// Finish the last run of an attempt and decide the attempt in one transaction.
    pub fn finish_run_and_decide(
        &mut self,
        run_id: i64,
        r: &RunResult,
        attempt_id: i64,
        d: &Decision,
    ) -> Result<()> {
        let tx = self.db.begin()?;
        finish_in(&tx, run_id, r)?;
        decide_in(&tx, attempt_id, d)?;
        tx.commit()?;
        Ok(())
    }

    pub fn run(&self, id: i64) -> Result<Run> {
        self.db
            .query_row(
                &format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"),
                [id],
                run_from_row,
            )
            .optional()?
            .ok_or(StoreError::NoSuchRun(id))
    }

    /// An attempt's seed runs (seeds 0, 1, ...), oldest first: what its value, its evidence
    /// and every comparison with it are made of. A screen run (a negative seed, see the
    /// contract's `[screen]`) is not one of them.
    pub fn runs_of_attempt(&self, attempt_id: i64) -> Result<Vec<Run>> {
        let rows = self.db.query_map(
            &format!("SELECT {RUN_COLS} FROM runs WHERE attempt_id = ?1 AND seed >= 0 ORDER BY id"),
            [attempt_id],
            run_from_row,
        )?;
        Ok(rows)
    }

    /// Every run of an attempt, its screen run included, oldest first: what it spent, and
    /// everything it did that a breach or an accounting check must see.
    pub fn all_runs_of_attempt(&self, attempt_id: i64) -> Result<Vec<Run>> {
        let rows = self.db.query_map(
            &format!("SELECT {RUN_COLS} FROM runs WHERE attempt_id = ?1 ORDER BY id"),
            [attempt_id],
            run_from_row,
        )?;
        Ok(rows)
    }

    /// Every run, of one program or of all, oldest first.
    pub fn runs(&self, program_id: Option<i64>) -> Result<Vec<Run>> {
        Ok(self.db.query_map(
            &format!(
                "SELECT {RUN_COLS} FROM runs WHERE (program_id = ?1 OR ?1 IS NULL) ORDER BY id"
            ),
            [program_id],
            run_from_row,
        )?)
    }

    /// Runs that are queued or running: after a restart these must be re-adopted or closed.
    pub fn unfinished_runs(&self, program_id: Option<i64>) -> Result<Vec<Run>> {
        let rows = self.db.query_map(
            &format!(
                "SELECT {RUN_COLS} FROM runs
             WHERE status IN ('queued', 'running') AND (program_id = ?1 OR ?1 IS NULL)
             ORDER BY id"
            ),
            [program_id],
            run_from_row,
        )?;
        Ok(rows)
    }

    /// The primary values of a program's latest `limit` succeeded seed runs on one machine
    /// fingerprint, newest first: what the noise of its runs is learned from (screen runs,
    /// on a shorter budget, are not).
    pub fn seed_values(
        &self,
        program_id: i64,
        fingerprint: &str,
        limit: i64,
    ) -> Result<Vec<SeedValue>> {
        Ok(self.db.query_map(
            "SELECT attempt_id, seed, primary_value FROM runs
             WHERE program_id = ?1 AND fingerprint = ?2 AND status = 'succeeded'
               AND primary_value IS NOT NULL AND seed >= 0
             ORDER BY id DESC LIMIT ?3",
            params![program_id, fingerprint, limit],
            |r| {
                Ok(SeedValue {
                    attempt_id: r.get(0)?,
                    seed: r.get(1)?,
                    value: r.get(2)?,
                })
            },
        )?)
    }

    pub fn run_count(&self, program_id: Option<i64>) -> Result<i64> {
        Ok(self.db.query_row(
            "SELECT COUNT(*) FROM runs WHERE (program_id = ?1 OR ?1 IS NULL)",
            [program_id],
            |r| r.get(0),
        )?)
    }

    pub fn fingerprint_json(&self, hash: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .query_row(
                "SELECT json FROM fingerprints WHERE hash = ?1",
                [hash],
                |r| r.get(0),
            )
            .optional()?)
    }
}

pub(crate) fn finish_in(tx: &Db, id: i64, r: &RunResult) -> Result<()> {
    let st = r.status.unwrap_or(RunStatus::Succeeded);
    let n = tx.execute(
        "UPDATE runs SET status = ?2, exit_code = ?3, signal = ?4, wall_secs = ?5,
                peak_rss_kb = ?6, over_budget = ?7, metrics_json = ?8, primary_value = ?9,
                violations_json = ?10, error = ?11, finished_at = ?12, peak_gpu_mb = ?13,
                breach = ?14, restarts = ?15
         WHERE id = ?1 AND status IN ('queued', 'running')",
        params![
            id,
            st.as_str(),
            r.exit_code,
            r.signal,
            r.wall_secs,
            r.peak_rss_kb,
            r.over_budget,
            metrics_json(&r.metrics),
            r.primary_value.filter(|v| v.is_finite()),
            serde_json::to_string(&r.violations).unwrap_or_default(),
            r.error,
            now_ms(),
            r.peak_gpu_mb,
            r.breach.map(|b| b.as_str()),
            r.restarts
        ],
    )?;
    if n == 1 {
        return Ok(());
    }
    // Nothing changed: the run is missing, or finished already (never counted twice).
    let status: Option<String> = tx
        .query_row("SELECT status FROM runs WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()?;
    match status {
        None => Err(StoreError::NoSuchRun(id)),
        Some(s) => {
            parse_state::<RunStatus>(&s)?;
            Err(StoreError::RunAlreadyFinished(id))
        }
    }
}

/// JSON cannot hold NaN or infinities; store them as strings so nothing reported is lost.
pub(crate) fn metrics_json(m: &MetricValues) -> String {
    let map: serde_json::Map<String, serde_json::Value> = m
        .iter()
        .map(|(k, v)| {
            let j = serde_json::Number::from_f64(*v)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(v.to_string()));
            (k.clone(), j)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

pub(crate) fn metrics_from_json(s: &str) -> MetricValues {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(s) else {
        return MetricValues::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let x = match v {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            }?;
            Some((k, x))
        })
        .collect()
}

pub(crate) const RUN_COLS: &str =
    "id, attempt_id, program_id, seed, status, executor, pid, pgid, host, \
    exit_code, signal, wall_secs, peak_rss_kb, over_budget, metrics_json, primary_value, \
    violations_json, fingerprint, log_dir, error, queued_at, started_at, finished_at, \
    executor_ref, peak_gpu_mb, breach, restarts";

pub(crate) fn run_from_row(r: &Row) -> DbResult<Run> {
    let status: String = r.get(4)?;
    let metrics: Option<String> = r.get(14)?;
    let violations: Option<String> = r.get(16)?;
    Ok(Run {
        id: r.get(0)?,
        attempt_id: r.get(1)?,
        program_id: r.get(2)?,
        seed: r.get(3)?,
        status: status.parse().map_err(|e| conv_err(4, e))?,
        executor: r.get(5)?,
        pid: r.get(6)?,
        pgid: r.get(7)?,
        host: r.get(8)?,
        exit_code: r.get(9)?,
        signal: r.get(10)?,
        wall_secs: r.get(11)?,
        peak_rss_kb: r.get(12)?,
        over_budget: r.get::<Option<bool>>(13)?.unwrap_or(false),
        metrics: metrics
            .as_deref()
            .map(metrics_from_json)
            .unwrap_or_default(),
        primary_value: r.get(15)?,
        violations: violations
            .map(|v| serde_json::from_str(&v).map_err(|e| conv_err(16, e)))
            .transpose()?
            .unwrap_or_default(),
        fingerprint: r.get(17)?,
        log_dir: r.get(18)?,
        error: r.get(19)?,
        queued_at: r.get(20)?,
        started_at: r.get(21)?,
        finished_at: r.get(22)?,
        executor_ref: r.get(23)?,
        peak_gpu_mb: r.get(24)?,
        breach: r
            .get::<Option<String>>(25)?
            .map(|b| b.parse())
            .transpose()
            .map_err(|e| conv_err(25, e))?,
        restarts: r.get(26)?,
    })
}
