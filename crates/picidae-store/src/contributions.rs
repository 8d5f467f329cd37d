//! Contributions from untrusted contributors: a program opened to them (`open_programs`), and
//! each submission (`contributions`) from the check made before any compute to its verdict.
//!
//! States: `refused` (before compute, with the reason), `queued`, `verifying` (the program's
//! loop made it an attempt), then `verified` (the attempt was kept) or `refuted` (it was not,
//! or it was rejected before its runs). The verdict is written in the same transaction as the
//! attempt's decision (`decide_in`, `reject_attempt`), so a contribution is never verified
//! without its attempt being kept, nor left `verifying` once its attempt is decided. The
//! measured gain of a verified contribution is the attempt's value against the frontier it
//! replaced, in the direction the contract's goal counts as better (`sign`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::db::{Db, OptionalExtension, Row};
use crate::{conv_err, now_ms, params, Result, Store, StoreError};

/// Where a contribution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContributionState {
    Refused,
    Queued,
    Verifying,
    Verified,
    Refuted,
}

impl ContributionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContributionState::Refused => "refused",
            ContributionState::Queued => "queued",
            ContributionState::Verifying => "verifying",
            ContributionState::Verified => "verified",
            ContributionState::Refuted => "refuted",
        }
    }
}

impl fmt::Display for ContributionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContributionState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "refused" => ContributionState::Refused,
            "queued" => ContributionState::Queued,
            "verifying" => ContributionState::Verifying,
            "verified" => ContributionState::Verified,
            "refuted" => ContributionState::Refuted,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown contribution state {other:?}"
                )))
            }
        })
    }
}

/// How a program is open to contributors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Openness {
    /// What each contributor's verifications may spend.
    pub quota: Quota,
    /// The largest patch accepted, in KiB.
    pub max_patch_kb: i64,
}

/// What each contributor's claims on a program may spend of its compute (none: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quota {
    /// Runs, counting one per contribution still queued.
    pub runs: Option<i64>,
    /// GPU-hours of the runs that verified the contributor's claims.
    pub gpu_hours: Option<f64>,
    /// Dollars: those GPU-hours at the program's `gpu_hour_usd`.
    pub usd: Option<f64>,
}

/// What one contributor's claims on a program have spent (see [`Quota`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ContributorSpend {
    pub runs: i64,
    pub gpu_hours: f64,
    pub usd: f64,
}

impl Quota {
    /// Why `spent` leaves no room for another claim, if it does not.
    pub fn exceeded(&self, spent: &ContributorSpend) -> Option<String> {
        if let Some(q) = self.runs.filter(|q| spent.runs >= *q) {
            return Some(format!(
                "quota spent: your claims used {} of your {q} runs here (queued ones count \
                 one each); wait for their verdicts",
                spent.runs
            ));
        }
        if let Some(q) = self.gpu_hours.filter(|q| spent.gpu_hours >= *q) {
            return Some(format!(
                "quota spent: your claims used {:.4} of your {q} GPU-hours here",
                spent.gpu_hours
            ));
        }
        if let Some(q) = self.usd.filter(|q| spent.usd >= *q) {
            return Some(format!(
                "quota spent: your claims used ${:.2} of your ${q:.2} here",
                spent.usd
            ));
        }
        None
    }
}

/// A submission, as the hub checked it.
#[derive(Debug, Clone)]
pub struct NewContribution {
    pub program_id: i64,
    pub token_id: i64,
    pub contributor: String,
    /// The commit the patch was made against.
    pub parent_commit: String,
    pub patch: String,
    pub hypothesis: String,
    pub claimed_value: f64,
    /// The claim against the frontier when it was submitted, positive when better.
    pub claimed_gain: f64,
    /// What else was claimed (seeds, a log), as the contributor sent it.
    pub claimed: serde_json::Value,
    /// +1 when the goal maximizes the metric, -1 when it minimizes it.
    pub sign: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contribution {
    pub id: i64,
    pub program_id: i64,
    pub token_id: i64,
    pub contributor: String,
    pub parent_commit: String,
    pub patch: String,
    pub hypothesis: String,
    pub claimed_value: f64,
    pub claimed_gain: f64,
    pub state: ContributionState,
    pub reason: Option<String>,
    pub attempt_id: Option<i64>,
    pub measured_value: Option<f64>,
    pub measured_gain: Option<f64>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

/// One contributor's standing on a program's leaderboard.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    pub contributor: String,
    /// Submissions that passed the checks before compute.
    pub claims: i64,
    pub verified: i64,
    pub refuted: i64,
    /// Refused before compute.
    pub refused: i64,
    /// The sum of the verified contributions' measured gains.
    pub verified_gain: f64,
    /// Runs spent verifying this contributor's claims.
    pub runs: i64,
}

/// A contributor's reputation, from every verdict on their claims: verified over decided,
/// smoothed so a newcomer starts at one half (Laplace's rule).
pub fn reputation(verified: i64, decided: i64) -> f64 {
    (verified as f64 + 1.0) / (decided as f64 + 2.0)
}

const COLS: &str = "id, program_id, token_id, contributor, parent_commit, patch, hypothesis, \
                    claimed_value, claimed_gain, state, reason, attempt_id, measured_value, \
                    measured_gain, created_at, decided_at";

fn from_row(r: &Row) -> crate::db::DbResult<Contribution> {
    let state: String = r.get(9)?;
    Ok(Contribution {
        id: r.get(0)?,
        program_id: r.get(1)?,
        token_id: r.get(2)?,
        contributor: r.get(3)?,
        parent_commit: r.get(4)?,
        patch: r.get(5)?,
        hypothesis: r.get(6)?,
        claimed_value: r.get(7)?,
        claimed_gain: r.get(8)?,
        state: state.parse().map_err(|e| conv_err(9, e))?,
        reason: r.get(10)?,
        attempt_id: r.get(11)?,
        measured_value: r.get(12)?,
        measured_gain: r.get(13)?,
        created_at: r.get(14)?,
        decided_at: r.get(15)?,
    })
}

impl Store {
    /// Open `program` to contributors (again: its terms are replaced).
    pub fn open_program(&mut self, program: &str, quota: Quota, max_patch_kb: i64) -> Result<()> {
        let id = self.program_id(program)?;
        self.db.execute(
            "INSERT INTO open_programs (program_id, quota_runs, max_patch_kb, opened_at,
                 quota_gpu_hours, quota_usd)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (program_id) DO UPDATE SET quota_runs = excluded.quota_runs,
                 max_patch_kb = excluded.max_patch_kb,
                 quota_gpu_hours = excluded.quota_gpu_hours, quota_usd = excluded.quota_usd",
            params![
                id,
                quota.runs,
                max_patch_kb,
                now_ms(),
                quota.gpu_hours,
                quota.usd
            ],
        )?;
        Ok(())
    }

    /// Close `program` to contributors: nothing new is accepted; the queue stays.
    pub fn close_program(&mut self, program: &str) -> Result<()> {
        let id = self.program_id(program)?;
        self.db
            .execute("DELETE FROM open_programs WHERE program_id = ?1", [id])?;
        Ok(())
    }

    /// How `program_id` is open to contributors; `None` when it is not.
    pub fn openness(&self, program_id: i64) -> Result<Option<Openness>> {
        Ok(self
            .db
            .query_row(
                "SELECT quota_runs, max_patch_kb, quota_gpu_hours, quota_usd FROM open_programs
                 WHERE program_id = ?1",
                [program_id],
                |r| {
                    Ok(Openness {
                        quota: Quota {
                            runs: r.get(0)?,
                            gpu_hours: r.get(2)?,
                            usd: r.get(3)?,
                        },
                        max_patch_kb: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Record a submission in `state` (`queued`, or `refused` with its `reason`).
    pub fn add_contribution(
        &mut self,
        c: &NewContribution,
        state: ContributionState,
        reason: Option<&str>,
    ) -> Result<Contribution> {
        let now = now_ms();
        let decided = (state == ContributionState::Refused).then_some(now);
        let id: i64 = self.db.query_row(
            "INSERT INTO contributions (program_id, token_id, contributor, parent_commit, patch,
                 hypothesis, claimed_value, claimed_gain, claimed_json, sign, state, reason,
                 created_at, decided_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) RETURNING id",
            params![
                c.program_id,
                c.token_id,
                c.contributor,
                c.parent_commit,
                c.patch,
                c.hypothesis,
                c.claimed_value,
                c.claimed_gain,
                c.claimed.to_string(),
                c.sign,
                state.as_str(),
                reason,
                now,
                decided
            ],
            |r| r.get(0),
        )?;
        self.contribution(id)
    }

    pub fn contribution(&self, id: i64) -> Result<Contribution> {
        self.db
            .query_row(
                &format!("SELECT {COLS} FROM contributions WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("no contribution {id}")))
    }

    /// A program's contributions, newest first; only `token_id`'s when given.
    pub fn contributions(
        &self,
        program_id: i64,
        token_id: Option<i64>,
    ) -> Result<Vec<Contribution>> {
        Ok(self.db.query_map(
            &format!(
                "SELECT {COLS} FROM contributions
                 WHERE program_id = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR token_id = ?2)
                 ORDER BY id DESC"
            ),
            params![program_id, token_id],
            from_row,
        )?)
    }

    /// A contribution to `program_id` of the same `patch` on the same `parent`, not refused:
    /// what a second submission of one change repeats.
    pub fn same_contribution(
        &self,
        program_id: i64,
        parent: &str,
        patch: &str,
    ) -> Result<Option<Contribution>> {
        Ok(self
            .db
            .query_row(
                &format!(
                    "SELECT {COLS} FROM contributions
                     WHERE program_id = ?1 AND parent_commit = ?2 AND patch = ?3
                       AND state <> 'refused' ORDER BY id LIMIT 1"
                ),
                params![program_id, parent, patch],
                from_row,
            )
            .optional()?)
    }

    /// The contribution whose attempt is `attempt_id`, if any.
    pub fn contribution_of_attempt(&self, attempt_id: i64) -> Result<Option<Contribution>> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {COLS} FROM contributions WHERE attempt_id = ?1"),
                [attempt_id],
                from_row,
            )
            .optional()?)
    }

    /// What `token_id`'s contributions to `program_id` have spent against a quota: the runs
    /// their attempts used plus one for each contribution still waiting, the GPU-hours of
    /// those runs (a running one up to now), and their price at the program's `gpu_hour_usd`.
    pub fn contributor_spend(&self, program_id: i64, token_id: i64) -> Result<ContributorSpend> {
        let now = now_ms();
        // One pass over the runs that verified the contributor's claims.
        let (runs, gpu_ms, queued, price): (i64, f64, i64, f64) = self.db.query_row(
            "SELECT COUNT(*),
                    COALESCE(SUM(gpu_count * (COALESCE(finished_at, ?3)
                                              - COALESCE(started_at, ?3))), 0),
                    (SELECT COUNT(*) FROM contributions
                     WHERE program_id = ?1 AND token_id = ?2 AND state = 'queued'),
                    (SELECT gpu_hour_usd FROM programs WHERE id = ?1)
             FROM runs WHERE attempt_id IN
                 (SELECT attempt_id FROM contributions
                  WHERE program_id = ?1 AND token_id = ?2 AND attempt_id IS NOT NULL)",
            params![program_id, token_id, now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let gpu_hours = gpu_ms / 3_600_000.0;
        Ok(ContributorSpend {
            runs: runs + queued,
            gpu_hours,
            usd: gpu_hours * price,
        })
    }

    /// Verdicts over all programs of the contributors with a claim queued on `program_id`:
    /// (verified, decided) per token.
    fn track_records(&self, program_id: i64) -> Result<HashMap<i64, (i64, i64)>> {
        Ok(self
            .db
            .query_map(
                "SELECT token_id,
                        SUM(CASE WHEN state = 'verified' THEN 1 ELSE 0 END),
                        SUM(CASE WHEN state IN ('verified', 'refuted') THEN 1 ELSE 0 END)
                 FROM contributions
                 WHERE token_id IN (SELECT token_id FROM contributions
                                    WHERE program_id = ?1 AND state = 'queued')
                 GROUP BY token_id",
                [program_id],
                |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))),
            )?
            .into_iter()
            .collect())
    }

    /// The queued contribution of `program_id` to verify next: the largest claimed gain
    /// weighed by its contributor's reputation (a contributor whose claims were refuted sinks),
    /// the oldest first between equals.
    pub fn next_contribution(&self, program_id: i64) -> Result<Option<Contribution>> {
        let queued = self.db.query_map(
            &format!(
                "SELECT {COLS} FROM contributions WHERE program_id = ?1 AND state = 'queued'
                 ORDER BY id LIMIT 1000"
            ),
            [program_id],
            from_row,
        )?;
        // Asked before every proposal: a program with nothing queued costs one indexed lookup.
        if queued.is_empty() {
            return Ok(None);
        }
        let records = self.track_records(program_id)?;
        let weight = |c: &Contribution| {
            let (v, d) = records.get(&c.token_id).copied().unwrap_or((0, 0));
            c.claimed_gain.max(0.0) * reputation(v, d)
        };
        Ok(queued
            .into_iter()
            .max_by(|a, b| weight(a).total_cmp(&weight(b)).then(b.id.cmp(&a.id))))
    }

    /// Mark contribution `id` as being verified by attempt `attempt_id`; false when it was no
    /// longer queued (another loop took it).
    pub fn start_contribution(&mut self, id: i64, attempt_id: i64) -> Result<bool> {
        Ok(self.db.execute(
            "UPDATE contributions SET state = 'verifying', attempt_id = ?2
             WHERE id = ?1 AND state = 'queued'",
            params![id, attempt_id],
        )? == 1)
    }

    /// A program's leaderboard: each contributor's claims and verdicts, the gain verified,
    /// and the runs spent on them; the largest verified gain first.
    pub fn leaderboard(&self, program_id: i64) -> Result<Vec<Standing>> {
        let mut rows = self.db.query_map(
            "SELECT contributor,
                    SUM(CASE WHEN state <> 'refused' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN state = 'verified' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN state = 'refuted' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN state = 'refused' THEN 1 ELSE 0 END),
                    COALESCE(SUM(CASE WHEN state = 'verified'
                                      THEN COALESCE(measured_gain, 0) ELSE 0 END), 0),
                    (SELECT COUNT(*) FROM runs WHERE runs.attempt_id IN
                        (SELECT c2.attempt_id FROM contributions c2
                         WHERE c2.program_id = ?1 AND c2.contributor = c.contributor))
             FROM contributions c WHERE program_id = ?1 GROUP BY contributor",
            [program_id],
            |r| {
                Ok(Standing {
                    contributor: r.get(0)?,
                    claims: r.get(1)?,
                    verified: r.get(2)?,
                    refuted: r.get(3)?,
                    refused: r.get(4)?,
                    verified_gain: r.get(5)?,
                    runs: r.get(6)?,
                })
            },
        )?;
        rows.sort_by(|a, b| {
            b.verified_gain
                .total_cmp(&a.verified_gain)
                .then(a.contributor.cmp(&b.contributor))
        });
        Ok(rows)
    }
}

/// The verdict on the contribution verified by attempt `attempt_id`, written with the
/// attempt's decision and before the frontier moves: `verified` with the measured gain against
/// the program's frontier (the one the attempt replaces) when it was kept, `refuted` with its
/// value (if any) and `note` when it was not, `refused` when it was rejected before any run.
pub(crate) fn conclude_in(
    tx: &Db,
    attempt_id: i64,
    state: ContributionState,
    value: Option<f64>,
    note: Option<&str>,
) -> Result<()> {
    let reason = note.map(str::to_string).or_else(|| match (state, value) {
        (ContributionState::Refuted, Some(v)) => Some(format!(
            "not kept: its verification measured {v:.6}, no real improvement on the frontier"
        )),
        (ContributionState::Refuted, None) => Some("not kept".to_string()),
        _ => None,
    });
    tx.execute(
        "UPDATE contributions SET state = ?2, measured_value = ?3,
                measured_gain = CASE WHEN ?2 = 'verified'
                                     THEN sign * (CAST(?3 AS DOUBLE PRECISION)
                                                  - (SELECT frontier_value FROM programs
                                                     WHERE programs.id = contributions.program_id))
                                END,
                reason = COALESCE(CAST(?4 AS TEXT),
                                  (SELECT note FROM attempts WHERE attempts.id = ?1), reason),
                decided_at = ?5
         WHERE attempt_id = ?1 AND state = 'verifying'",
        params![attempt_id, state.as_str(), value, reason, now_ms()],
    )?;
    Ok(())
}
