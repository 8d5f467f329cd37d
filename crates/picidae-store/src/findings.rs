//! Findings, noise floors, hidden-evaluator results and evaluator calibrations.
//!
//! A finding is the validated, user-facing form of an attempt: its statistical evidence, its
//! hidden-evaluator result and its lifecycle. State changes are checked against the lifecycle
//! ([`FindingState::can_move_to`]) and logged in `finding_events`. Hidden results live in their
//! own table, never joined into anything an agent is shown.

use crate::db::{Db, DbResult, OptionalExtension, Row};
use crate::params;
use picidae_core::domain::FindingState;
use serde::{Deserialize, Serialize};

use crate::{conv_err, decide_in, now_ms, Decision, Result, Store, StoreError};

/// The statistical and hidden evidence behind a finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Signed gain on the primary metric (positive = better), candidate vs incumbent.
    pub effect: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub confidence: Option<f64>,
    /// One-sided Welch p-value for "candidate is better".
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg q-value over the program's tested attempts.
    pub q_value: Option<f64>,
    pub n_candidate: Option<i64>,
    pub n_incumbent: Option<i64>,
    /// Minimum effect the noise floor demands.
    pub noise_floor: Option<f64>,
    /// Signed gain on the hidden metric, when evaluated.
    pub hidden_effect: Option<f64>,
    pub hidden_agrees: Option<bool>,
    pub flags: Vec<String>,
    /// The pass rule it was decided by (the test, its seeds, the alpha it spent, a screen).
    pub rule: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: i64,
    pub program_id: i64,
    pub attempt_id: i64,
    /// The attempt it was compared against (the frontier at the time).
    pub incumbent_attempt_id: i64,
    pub state: FindingState,
    pub metric: String,
    pub fingerprint: Option<String>,
    pub evidence: Evidence,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One state change of a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingEvent {
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    pub at: i64,
}

/// One row of a program's noise floor: the baseline's spread across seeds on one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseFloor {
    pub program_id: i64,
    pub fingerprint: String,
    pub attempt_id: i64,
    pub n: i64,
    pub mean: f64,
    pub std: f64,
    pub created_at: i64,
}

/// A hidden evaluation of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiddenResult {
    pub run_id: i64,
    pub ok: bool,
    pub metrics: picidae_core::MetricValues,
    pub error: Option<String>,
    pub evaluated_at: i64,
}

/// An evaluator calibration against gold cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub id: i64,
    pub program_id: i64,
    /// The commit whose evaluator was calibrated.
    pub commit_sha: String,
    pub passed: bool,
    pub rank_correlation: Option<f64>,
    pub max_error: Option<f64>,
    pub details: serde_json::Value,
    pub created_at: i64,
}

const FINDING_COLS: &str = "id, program_id, attempt_id, incumbent_attempt_id, state, metric, \
    fingerprint, evidence_json, note, created_at, updated_at";

fn finding_from_row(r: &Row) -> DbResult<Finding> {
    let state: String = r.get(4)?;
    let evidence: String = r.get(7)?;
    Ok(Finding {
        id: r.get(0)?,
        program_id: r.get(1)?,
        attempt_id: r.get(2)?,
        incumbent_attempt_id: r.get(3)?,
        state: state.parse().map_err(|e| conv_err(4, e))?,
        metric: r.get(5)?,
        fingerprint: r.get(6)?,
        evidence: serde_json::from_str(&evidence).map_err(|e| conv_err(7, e))?,
        note: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn move_in(
    tx: &Db,
    id: i64,
    to: FindingState,
    evidence: Option<&Evidence>,
    reason: &str,
) -> Result<()> {
    let from: String = tx
        .query_row("SELECT state FROM findings WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or(StoreError::NoSuchFinding(id))?;
    let from: FindingState = from
        .parse()
        .map_err(|e: picidae_core::domain::UnknownState| StoreError::Corrupt(e.to_string()))?;
    // Staying in `verifying` is allowed (a verdict withheld, e.g. by a failed calibration);
    // every other move must follow the lifecycle.
    let stays_verifying = from == to && to == FindingState::Verifying;
    if !stays_verifying && !from.can_move_to(to) {
        return Err(StoreError::BadTransition {
            id,
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    let now = now_ms();
    tx.execute(
        "UPDATE findings SET state = ?2, updated_at = ?3, note = ?4,
                evidence_json = COALESCE(?5, evidence_json)
         WHERE id = ?1",
        params![
            id,
            to.as_str(),
            now,
            reason,
            evidence.map(|e| serde_json::to_string(e).unwrap_or_default())
        ],
    )?;
    tx.execute(
        "INSERT INTO finding_events (finding_id, from_state, to_state, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, from.as_str(), to.as_str(), reason, now],
    )?;
    Ok(())
}

impl Store {
    /// Open a finding (state `candidate`) for an attempt that beat the frontier.
    pub fn create_finding(
        &mut self,
        program_id: i64,
        attempt_id: i64,
        incumbent_attempt_id: i64,
        metric: &str,
        fingerprint: Option<&str>,
    ) -> Result<Finding> {
        let now = now_ms();
        let tx = self.db.begin()?;
        let id: i64 = tx.query_row(
            "INSERT INTO findings (program_id, attempt_id, incumbent_attempt_id, state, metric,
                                   fingerprint, evidence_json, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'candidate', ?4, ?5, ?6, ?7, ?7) RETURNING id",
            params![
                program_id,
                attempt_id,
                incumbent_attempt_id,
                metric,
                fingerprint,
                serde_json::to_string(&Evidence::default()).unwrap_or_default(),
                now
            ],
            |r| r.get(0),
        )?;

        tx.execute(
            "INSERT INTO finding_events (finding_id, from_state, to_state, reason, at)
             VALUES (?1, NULL, 'candidate', 'beat the frontier on its first seed', ?2)",
            params![id, now],
        )?;
        tx.commit()?;
        self.finding(id)
    }

    /// Move a finding along its lifecycle, optionally replacing its evidence.
    pub fn move_finding(
        &mut self,
        id: i64,
        to: FindingState,
        evidence: Option<&Evidence>,
        reason: &str,
    ) -> Result<()> {
        let tx = self.db.begin()?;
        move_in(&tx, id, to, evidence, reason)?;
        tx.commit()?;
        Ok(())
    }

    /// Conclude a finding and decide its attempt (and maybe advance the frontier) atomically.
    pub fn conclude_finding(
        &mut self,
        id: i64,
        to: FindingState,
        evidence: &Evidence,
        reason: &str,
        attempt_id: i64,
        decision: &Decision,
    ) -> Result<()> {
        let tx = self.db.begin()?;
        move_in(&tx, id, to, Some(evidence), reason)?;
        decide_in(&tx, attempt_id, decision)?;
        tx.commit()?;
        Ok(())
    }

    /// Retract a validated finding. If its attempt holds the frontier, the frontier moves back
    /// to the latest earlier frontier entry whose finding was not retracted. Returns the new
    /// frontier commit when it moved.
    pub fn retract_finding(&mut self, id: i64, reason: &str) -> Result<Option<String>> {
        let tx = self.db.begin()?;
        move_in(&tx, id, FindingState::Retracted, None, reason)?;
        let (program_id, attempt_id): (i64, i64) = tx.query_row(
            "SELECT program_id, attempt_id FROM findings WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let frontier: Option<i64> = tx.query_row(
            "SELECT frontier_attempt_id FROM programs WHERE id = ?1",
            [program_id],
            |r| r.get(0),
        )?;
        let mut moved = None;
        if frontier == Some(attempt_id) {
            let prev: Option<(i64, String, f64)> = tx
                .query_row(
                    "SELECT h.attempt_id, h.commit_sha, h.value FROM frontier_history h
                     WHERE h.program_id = ?1 AND h.attempt_id != ?2
                       AND NOT EXISTS (SELECT 1 FROM findings f
                                       WHERE f.attempt_id = h.attempt_id AND f.state = 'retracted')
                     ORDER BY h.id DESC LIMIT 1",
                    params![program_id, attempt_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((a, commit, value)) = prev {
                tx.execute(
                    "UPDATE programs SET frontier_attempt_id = ?2, frontier_commit = ?3,
                            frontier_value = ?4 WHERE id = ?1",
                    params![program_id, a, commit, value],
                )?;
                tx.execute(
                    "INSERT INTO frontier_history (program_id, attempt_id, commit_sha, value,
                                                   decided_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![program_id, a, commit, value, now_ms()],
                )?;
                moved = Some(commit);
            }
        }
        tx.commit()?;
        Ok(moved)
    }

    pub fn finding(&self, id: i64) -> Result<Finding> {
        self.db
            .query_row(
                &format!("SELECT {FINDING_COLS} FROM findings WHERE id = ?1"),
                [id],
                finding_from_row,
            )
            .optional()?
            .ok_or(StoreError::NoSuchFinding(id))
    }

    pub fn finding_for_attempt(&self, attempt_id: i64) -> Result<Option<Finding>> {
        Ok(self
            .db
            .query_row(
                &format!(
                    "SELECT {FINDING_COLS} FROM findings WHERE attempt_id = ?1
                     ORDER BY id DESC LIMIT 1"
                ),
                [attempt_id],
                finding_from_row,
            )
            .optional()?)
    }

    /// The latest finding of each of `attempt_ids` that has one, in one statement, keyed by
    /// attempt id.
    pub fn findings_for_attempts(
        &self,
        attempt_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Finding>> {
        if attempt_ids.is_empty() {
            return Ok(Default::default());
        }
        let list: Vec<String> = attempt_ids.iter().map(i64::to_string).collect();
        let all = self.db.query_map(
            &format!(
                "SELECT {FINDING_COLS} FROM findings WHERE attempt_id IN ({}) ORDER BY id",
                list.join(", ")
            ),
            (),
            finding_from_row,
        )?;
        // Later findings replace earlier ones: the latest is kept.
        Ok(all.into_iter().map(|f| (f.attempt_id, f)).collect())
    }

    pub fn findings(
        &self,
        program_id: Option<i64>,
        state: Option<FindingState>,
    ) -> Result<Vec<Finding>> {
        let rows = self.db.query_map(
            &format!(
                "SELECT {FINDING_COLS} FROM findings
             WHERE (program_id = ?1 OR ?1 IS NULL) AND (state = ?2 OR ?2 IS NULL)
             ORDER BY id"
            ),
            params![program_id, state.map(|s| s.as_str())],
            finding_from_row,
        )?;
        Ok(rows)
    }

    /// The state changes of a finding, oldest first.
    pub fn finding_events(&self, id: i64) -> Result<Vec<FindingEvent>> {
        let rows = self.db.query_map(
            "SELECT from_state, to_state, reason, at FROM finding_events
             WHERE finding_id = ?1 ORDER BY id",
            [id],
            |r| {
                Ok(FindingEvent {
                    from: r.get(0)?,
                    to: r.get(1)?,
                    reason: r.get(2)?,
                    at: r.get(3)?,
                })
            },
        )?;
        Ok(rows)
    }

    /// The multiple-testing family of a program, for Benjamini–Hochberg: the p-values of its
    /// tested findings (except `exclude`), plus p = 1 for every explored attempt that ran but
    /// was screened out without a finding (it was tried, and it counts).
    pub fn testing_family(&self, program_id: i64, exclude: Option<i64>) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for f in self.findings(Some(program_id), None)? {
            if Some(f.id) == exclude {
                continue;
            }
            out.push(f.evidence.p_value.unwrap_or(1.0));
        }
        let screened: i64 = self.db.query_row(
            "SELECT COUNT(*) FROM attempts a
             WHERE a.program_id = ?1 AND a.kind = 'explore' AND a.status = 'discarded'
               AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.attempt_id = a.id)",
            [program_id],
            |r| r.get(0),
        )?;
        out.extend(std::iter::repeat_n(1.0, screened as usize));
        Ok(out)
    }

    // ------------------------------------------------------------ noise floors

    pub fn set_noise_floor(&mut self, f: &NoiseFloor) -> Result<()> {
        self.db.execute(
            "INSERT INTO noise_floors (program_id, fingerprint, attempt_id, n, mean, std, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (program_id, fingerprint) DO UPDATE SET
                attempt_id = excluded.attempt_id, n = excluded.n, mean = excluded.mean,
                std = excluded.std, created_at = excluded.created_at",
            params![
                f.program_id,
                f.fingerprint,
                f.attempt_id,
                f.n,
                f.mean,
                f.std,
                f.created_at
            ],
        )?;
        Ok(())
    }

    pub fn noise_floor(&self, program_id: i64, fingerprint: &str) -> Result<Option<NoiseFloor>> {
        Ok(self
            .db
            .query_row(
                "SELECT program_id, fingerprint, attempt_id, n, mean, std, created_at
                 FROM noise_floors WHERE program_id = ?1 AND fingerprint = ?2",
                params![program_id, fingerprint],
                |r| {
                    Ok(NoiseFloor {
                        program_id: r.get(0)?,
                        fingerprint: r.get(1)?,
                        attempt_id: r.get(2)?,
                        n: r.get(3)?,
                        mean: r.get(4)?,
                        std: r.get(5)?,
                        created_at: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    // ------------------------------------------------------------ hidden results

    pub fn set_hidden_result(&mut self, h: &HiddenResult) -> Result<()> {
        self.db.execute(
            "INSERT INTO hidden_results (run_id, ok, metrics_json, error, evaluated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (run_id) DO UPDATE SET ok = excluded.ok,
                 metrics_json = excluded.metrics_json, error = excluded.error,
                 evaluated_at = excluded.evaluated_at",
            params![
                h.run_id,
                h.ok,
                crate::runs::metrics_json(&h.metrics),
                h.error,
                h.evaluated_at
            ],
        )?;
        Ok(())
    }

    pub fn hidden_result(&self, run_id: i64) -> Result<Option<HiddenResult>> {
        Ok(self
            .db
            .query_row(
                "SELECT run_id, ok, metrics_json, error, evaluated_at FROM hidden_results
                 WHERE run_id = ?1",
                [run_id],
                |r| {
                    let m: String = r.get(2)?;
                    Ok(HiddenResult {
                        run_id: r.get(0)?,
                        ok: r.get(1)?,
                        metrics: crate::runs::metrics_from_json(&m),
                        error: r.get(3)?,
                        evaluated_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    // ------------------------------------------------------------ calibrations

    pub fn insert_calibration(&mut self, c: &Calibration) -> Result<i64> {
        let new_id: i64 = self.db.query_row(
            "INSERT INTO calibrations (program_id, commit_sha, passed, rank_correlation,
                                       max_error, details_json, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            params![
                c.program_id,
                c.commit_sha,
                c.passed,
                c.rank_correlation,
                c.max_error,
                c.details.to_string(),
                c.created_at
            ],
            |r| r.get(0),
        )?;
        Ok(new_id)
    }

    pub fn latest_calibration(&self, program_id: i64) -> Result<Option<Calibration>> {
        Ok(self
            .db
            .query_row(
                "SELECT id, program_id, commit_sha, passed, rank_correlation, max_error,
                        details_json, created_at
                 FROM calibrations WHERE program_id = ?1 ORDER BY id DESC LIMIT 1",
                [program_id],
                |r| {
                    let d: String = r.get(6)?;
                    Ok(Calibration {
                        id: r.get(0)?,
                        program_id: r.get(1)?,
                        commit_sha: r.get(2)?,
                        passed: r.get(3)?,
                        rank_correlation: r.get(4)?,
                        max_error: r.get(5)?,
                        details: serde_json::from_str(&d).map_err(|e| conv_err(6, e))?,
                        created_at: r.get(7)?,
                    })
                },
            )
            .optional()?)
    }
}
