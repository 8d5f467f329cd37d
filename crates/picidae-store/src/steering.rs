//! Steering state a human changes while programs run: pause/resume, fair-share weight, run
//! budget and money/GPU-hour budgets with what was spent, run placement and leases (heartbeats),
//! requests to cancel a run, follow-up ideas for the next agent turn, a person's approval of a
//! validated finding, and the API tokens that authorise changes.
//! The scheduler reads this state (between attempts, and cancel requests while runs are in
//! flight); nothing here talks to a running loop.

use crate::db::{DbResult, OptionalExtension, Row};
use crate::params;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::{now_ms, Result, Store, StoreError};
use picidae_core::ProgramStatus;

/// An idea queued for a program's next agent turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Followup {
    pub id: i64,
    pub program_id: i64,
    pub text: String,
    pub author: String,
    pub created_at: i64,
    pub consumed_by: Option<i64>,
}

/// An API token (its secret is never stored, only a hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub read_only: bool,
    /// A worker's token (`picidae token create NAME --worker`): it may take runs and report
    /// them, nothing else (it is also read-only, so every mutation refuses it).
    #[serde(default)]
    pub worker: bool,
    /// A contributor's token (`picidae token create NAME --contributor`): it may read an open
    /// program's public frontier and leaderboard and submit contributions, nothing else.
    #[serde(default)]
    pub contributor: bool,
    pub created_at: i64,
    pub revoked: bool,
}

const FOLLOWUP_COLS: &str = "id, program_id, text, author, created_at, consumed_by";

fn followup_from_row(r: &Row) -> DbResult<Followup> {
    Ok(Followup {
        id: r.get(0)?,
        program_id: r.get(1)?,
        text: r.get(2)?,
        author: r.get(3)?,
        created_at: r.get(4)?,
        consumed_by: r.get(5)?,
    })
}

fn token_hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// What a program has spent; see [`Store::program_spend`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spend {
    pub runs: i64,
    pub gpu_hours: f64,
    pub agent_usd: f64,
    pub agent_tokens: i64,
    /// GPU-hours at the program's price plus the agents' cost.
    pub usd: f64,
}

impl Store {
    /// The `to` of the [`crate::FindingEvent`] that records a person's approval of a validated
    /// finding ([`Store::approve_finding`]); not a state: the finding stays `validated`.
    pub const APPROVED: &'static str = "approved";

    pub(crate) fn program_id(&self, name: &str) -> Result<i64> {
        self.db
            .query_row("SELECT id FROM programs WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NoSuchProgram(name.to_string()))
    }

    /// Pause (`active = false`) or resume a program. Either clears a pause reason the harness
    /// recorded: a person's pause or resume is its own reason.
    pub fn set_program_active(&mut self, name: &str, active: bool) -> Result<()> {
        let id = self.program_id(name)?;
        self.db.execute(
            "UPDATE programs SET status = ?2, paused_reason = NULL WHERE id = ?1",
            params![
                id,
                if active {
                    ProgramStatus::Active
                } else {
                    ProgramStatus::Paused
                }
                .as_str()
            ],
        )?;
        Ok(())
    }

    /// The harness pauses a program, saying why (shown by `show`, `status` and the cockpit
    /// until the program is resumed).
    pub fn pause_program(&mut self, name: &str, reason: &str) -> Result<()> {
        let id = self.program_id(name)?;
        self.db.execute(
            "UPDATE programs SET status = 'paused', paused_reason = ?2 WHERE id = ?1",
            params![id, reason],
        )?;
        Ok(())
    }

    /// Set (or clear, with `None`) one of a program's policy overrides (`concurrency`,
    /// `seeds`, ...), read by its loop between steps.
    pub fn set_program_policy(
        &mut self,
        name: &str,
        key: &str,
        value: Option<serde_json::Value>,
    ) -> Result<()> {
        let id = self.program_id(name)?;
        let tx = self.db.begin()?;
        let text: String = tx.query_row(
            "SELECT policy_json FROM programs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let mut policy: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("program {name:?} policy: {e}")))?;
        if policy.is_null() {
            policy = serde_json::json!({});
        }
        let map = policy.as_object_mut().ok_or_else(|| {
            StoreError::Corrupt(format!("program {name:?} policy is not an object"))
        })?;
        match value {
            Some(v) => map.insert(key.to_string(), v),
            None => map.remove(key),
        };
        tx.execute(
            "UPDATE programs SET policy_json = ?2 WHERE id = ?1",
            params![id, policy.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn set_program_weight(&mut self, name: &str, weight: f64) -> Result<()> {
        let id = self.program_id(name)?;
        self.db.execute(
            "UPDATE programs SET weight = ?2 WHERE id = ?1",
            params![id, weight],
        )?;
        Ok(())
    }

    /// Set (or clear, with `None`) a program's run budget.
    pub fn set_program_max_runs(&mut self, name: &str, max_runs: Option<i64>) -> Result<()> {
        let id = self.program_id(name)?;
        self.db.execute(
            "UPDATE programs SET max_runs = ?2 WHERE id = ?1",
            params![id, max_runs],
        )?;
        Ok(())
    }

    /// Set a program's GPU-hour and money budgets and its GPU-hour price; `None` leaves a
    /// value as it is, `Some(None)` clears a budget.
    pub fn set_program_cost_budget(
        &mut self,
        name: &str,
        max_gpu_hours: Option<Option<f64>>,
        max_usd: Option<Option<f64>>,
        gpu_hour_usd: Option<f64>,
    ) -> Result<()> {
        let id = self.program_id(name)?;
        let tx = self.db.begin()?;
        if let Some(v) = max_gpu_hours {
            tx.execute(
                "UPDATE programs SET max_gpu_hours = ?2 WHERE id = ?1",
                params![id, v],
            )?;
        }
        if let Some(v) = max_usd {
            tx.execute(
                "UPDATE programs SET max_usd = ?2 WHERE id = ?1",
                params![id, v],
            )?;
        }
        if let Some(v) = gpu_hour_usd {
            tx.execute(
                "UPDATE programs SET gpu_hour_usd = ?2 WHERE id = ?1",
                params![id, v],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// What a program has spent so far: runs, GPU-hours (finished runs, and running ones up to
    /// now), agent cost and tokens, and the total in money at its GPU-hour price.
    pub fn program_spend(&self, program_id: i64) -> Result<Spend> {
        let now = crate::now_ms();
        let (runs, gpu_ms): (i64, f64) = self.db.query_row(
            "SELECT COUNT(*), COALESCE(SUM(r.gpu_count *
                    (COALESCE(r.finished_at, ?2) - COALESCE(r.started_at, ?2))), 0)
             FROM runs r JOIN attempts a ON a.id = r.attempt_id WHERE a.program_id = ?1",
            params![program_id, now],
            |r| Ok((r.get(0)?, r.get::<Option<f64>>(1)?.unwrap_or(0.0))),
        )?;
        let (agent_usd, agent_tokens): (f64, i64) = self.db.query_row(
            "SELECT COALESCE(SUM(agent_cost_usd), 0), COALESCE(SUM(agent_tokens), 0)
             FROM attempts WHERE program_id = ?1",
            [program_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let price: f64 = self.db.query_row(
            "SELECT gpu_hour_usd FROM programs WHERE id = ?1",
            [program_id],
            |r| r.get(0),
        )?;
        let gpu_hours = gpu_ms / 3_600_000.0;
        Ok(Spend {
            runs,
            gpu_hours,
            agent_usd,
            agent_tokens,
            usd: gpu_hours * price + agent_usd,
        })
    }

    /// Record what an agent reported its proposal cost.
    pub fn set_attempt_agent_cost(
        &mut self,
        attempt_id: i64,
        cost_usd: Option<f64>,
        tokens: Option<i64>,
    ) -> Result<()> {
        self.db.execute(
            "UPDATE attempts SET agent_cost_usd = ?2, agent_tokens = ?3 WHERE id = ?1",
            params![attempt_id, cost_usd, tokens],
        )?;
        Ok(())
    }

    /// Record where a run was placed (its GPU indices) and which coordinator holds its lease.
    /// `gpu_count` is what budgets charge (the contract's GPUs where no pool assigned indices).
    pub fn set_run_placement(
        &mut self,
        run_id: i64,
        gpus: &[u32],
        gpu_count: usize,
        owner: &str,
    ) -> Result<()> {
        let list: Vec<String> = gpus.iter().map(|g| g.to_string()).collect();
        self.db.execute(
            "UPDATE runs SET gpus = ?2, gpu_count = ?3, lease_owner = ?4, heartbeat_at = ?5
             WHERE id = ?1",
            params![
                run_id,
                (!gpus.is_empty()).then(|| list.join(",")),
                gpu_count as i64,
                owner,
                crate::now_ms()
            ],
        )?;
        Ok(())
    }

    /// The GPU indices a run was placed on ([`Store::set_run_placement`]); empty when it was
    /// given none.
    pub fn run_gpus(&self, run_id: i64) -> Result<Vec<u32>> {
        let list: Option<String> = self
            .db
            .query_row("SELECT gpus FROM runs WHERE id = ?1", [run_id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(StoreError::NoSuchRun(run_id))?;
        list.iter()
            .flat_map(|l| l.split(','))
            .map(|g| {
                g.parse()
                    .map_err(|_| StoreError::Corrupt(format!("run {run_id}: GPU index {g:?}")))
            })
            .collect()
    }

    /// Set where a program's runs execute (see the scheduler's executor configuration).
    pub fn set_program_executor(&mut self, name: &str, executor: &serde_json::Value) -> Result<()> {
        let id = self.program_id(name)?;
        self.db.execute(
            "UPDATE programs SET executor_json = ?2 WHERE id = ?1",
            params![id, executor.to_string()],
        )?;
        Ok(())
    }

    /// Record a run's handle on a remote executor, before waiting on it.
    pub fn set_run_executor_ref(&mut self, run_id: i64, executor_ref: &str) -> Result<()> {
        self.db.execute(
            "UPDATE runs SET executor_ref = ?2 WHERE id = ?1",
            params![run_id, executor_ref],
        )?;
        Ok(())
    }

    /// Renew the leases of every running run `owner` holds. Returns how many were renewed.
    pub fn heartbeat(&mut self, owner: &str) -> Result<usize> {
        Ok(self.db.execute(
            "UPDATE runs SET heartbeat_at = ?2 WHERE lease_owner = ?1 AND status = 'running'",
            params![owner, crate::now_ms()],
        )?)
    }

    /// Say that the coordinator `name` (with `slots` run slots) is alive.
    pub fn coordinator_heartbeat(&mut self, name: &str, slots: usize) -> Result<()> {
        let now = crate::now_ms();
        self.db.execute(
            "INSERT INTO coordinators (name, slots, started_at, heartbeat_at)
             VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (name) DO UPDATE SET slots = excluded.slots,
                 heartbeat_at = excluded.heartbeat_at",
            params![name, slots as i64, now],
        )?;
        Ok(())
    }

    /// Coordinators that said they were alive within `fresh_ms`: (name, slots).
    pub fn live_coordinators(&self, fresh_ms: i64) -> Result<Vec<(String, i64)>> {
        Ok(self.db.query_map(
            "SELECT name, slots FROM coordinators WHERE heartbeat_at >= ?1 ORDER BY name",
            [crate::now_ms() - fresh_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Forget a coordinator that stopped.
    pub fn remove_coordinator(&mut self, name: &str) -> Result<()> {
        self.db
            .execute("DELETE FROM coordinators WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Renew the leases of the programs `owner` drives; returns the ids it still holds (a
    /// coordinator that stalled past the expiry may have lost some to another).
    pub fn renew_program_leases(&mut self, owner: &str) -> Result<Vec<i64>> {
        self.db.execute(
            "UPDATE programs SET lease_at = ?2 WHERE lease_owner = ?1",
            params![owner, crate::now_ms()],
        )?;
        Ok(self.db.query_map(
            "SELECT id FROM programs WHERE lease_owner = ?1 ORDER BY id",
            [owner],
            |r| r.get(0),
        )?)
    }

    /// Who holds a program's lease, and when it was last renewed.
    pub fn program_lease(&self, program_id: i64) -> Result<Option<(String, i64)>> {
        let row: Option<(Option<String>, Option<i64>)> = self
            .db
            .query_row(
                "SELECT lease_owner, lease_at FROM programs WHERE id = ?1",
                [program_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => Err(StoreError::NoSuchProgram(format!("#{program_id}"))),
            Some((Some(owner), at)) => Ok(Some((owner, at.unwrap_or(0)))),
            Some((None, _)) => Ok(None),
        }
    }

    /// Take the lease of a program for `owner`: granted when the program is free, already
    /// `owner`'s, or still held by exactly the lease `seen` (which the caller judged dead: not
    /// renewed for the expiry, or its process gone). A compare-and-set, so of coordinators
    /// racing for one program exactly one wins; on PostgreSQL the row is taken with `FOR UPDATE
    /// SKIP LOCKED`, so a coordinator never waits on another's claim.
    pub fn claim_program(
        &mut self,
        program_id: i64,
        owner: &str,
        seen: Option<&(String, i64)>,
    ) -> Result<bool> {
        let lock = match self.db.backend() {
            crate::Backend::Sqlite => "",
            crate::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        };
        let (seen_owner, seen_at) = match seen {
            Some((o, at)) => (Some(o.as_str()), Some(*at)),
            None => (None, None),
        };
        let n = self.db.execute(
            &format!(
                "UPDATE programs SET lease_owner = ?1, lease_at = ?2 WHERE id IN (
                     SELECT id FROM programs WHERE id = ?3 AND (
                         lease_owner IS NULL OR lease_owner = ?1
                         OR (lease_owner = ?4 AND COALESCE(lease_at, 0) = ?5))
                     {lock})"
            ),
            params![owner, crate::now_ms(), program_id, seen_owner, seen_at],
        )?;
        Ok(n == 1)
    }

    /// Give a program's lease back (its loop ended here).
    pub fn release_program(&mut self, program_id: i64, owner: &str) -> Result<()> {
        self.db.execute(
            "UPDATE programs SET lease_owner = NULL, lease_at = NULL
             WHERE id = ?1 AND lease_owner = ?2",
            params![program_id, owner],
        )?;
        Ok(())
    }

    /// Running runs whose lease another coordinator renewed within `fresh_ms`: they are alive
    /// elsewhere and must not be recovered here.
    /// Returns (run id, lease owner) pairs.
    pub fn live_foreign_leases(&self, owner: &str, fresh_ms: i64) -> Result<Vec<(i64, String)>> {
        Ok(self.db.query_map(
            "SELECT id, lease_owner FROM runs WHERE status = 'running' AND lease_owner IS NOT NULL
               AND lease_owner != ?1 AND heartbeat_at >= ?2 ORDER BY id",
            params![owner, crate::now_ms() - fresh_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Ask for a queued or running run to be cancelled: the coordinator running it polls for
    /// requests ([`Store::cancel_requested_runs`]) and stops it. Returns when the request was
    /// recorded (the first request's time when it was asked for before), or `None` when the run
    /// has already finished and there is nothing to cancel.
    pub fn request_run_cancel(&mut self, run_id: i64) -> Result<Option<i64>> {
        let tx = self.db.begin()?;
        let (status, asked): (String, Option<i64>) = tx
            .query_row(
                "SELECT status, cancel_requested_at FROM runs WHERE id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(StoreError::NoSuchRun(run_id))?;
        if !matches!(status.as_str(), "queued" | "running") {
            return Ok(None);
        }
        let at = match asked {
            Some(at) => at,
            None => {
                let now = now_ms();
                tx.execute(
                    "UPDATE runs SET cancel_requested_at = ?2 WHERE id = ?1",
                    params![run_id, now],
                )?;
                now
            }
        };
        tx.commit()?;
        Ok(Some(at))
    }

    /// Which of `run_ids` a person asked to cancel (whatever their status now), in id order.
    pub fn cancel_requested_runs(&self, run_ids: &[i64]) -> Result<Vec<i64>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = run_ids.iter().map(|id| id.to_string()).collect();
        Ok(self.db.query_map(
            &format!(
                "SELECT id FROM runs WHERE id IN ({}) AND cancel_requested_at IS NOT NULL ORDER BY id",
                list.join(",")
            ),
            (),
            |r| r.get(0),
        )?)
    }

    /// Record a person's sign-off on a validated finding: a `finding_events` row from
    /// `validated` to `approved` whose reason names `author` (and the note, if any). The
    /// finding's state stays `validated` (it can still be retracted). Fails with
    /// [`StoreError::BadTransition`] unless the finding is validated. Returns the event's time.
    pub fn approve_finding(&mut self, id: i64, author: &str, note: Option<&str>) -> Result<i64> {
        let tx = self.db.begin()?;
        let state: String = tx
            .query_row("SELECT state FROM findings WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(StoreError::NoSuchFinding(id))?;
        if state != "validated" {
            return Err(StoreError::BadTransition {
                id,
                from: state,
                to: Self::APPROVED.to_string(),
            });
        }
        let mut reason = format!("approved by {author}");
        if let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) {
            reason.push_str(": ");
            reason.push_str(note);
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO finding_events (finding_id, from_state, to_state, reason, at)
             VALUES (?1, 'validated', ?2, ?3, ?4)",
            params![id, Self::APPROVED, reason, now],
        )?;
        tx.commit()?;
        Ok(now)
    }

    /// Queue an idea for the program's next agent turn.
    pub fn add_followup(&mut self, name: &str, text: &str, author: &str) -> Result<Followup> {
        let id = self.program_id(name)?;
        let fid: i64 = self.db.query_row(
            "INSERT INTO followups (program_id, text, author, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![id, text, author, now_ms()], |r| r.get(0),)?;

        Ok(Followup {
            id: fid,
            program_id: id,
            text: text.to_string(),
            author: author.to_string(),
            created_at: now_ms(),
            consumed_by: None,
        })
    }

    /// Follow-ups not yet given to an agent, oldest first.
    pub fn open_followups(&self, program_id: i64) -> Result<Vec<Followup>> {
        let rows = self.db.query_map(
            &format!(
                "SELECT {FOLLOWUP_COLS} FROM followups
                 WHERE program_id = ?1 AND consumed_at IS NULL ORDER BY id"
            ),
            [program_id],
            followup_from_row,
        )?;
        Ok(rows)
    }

    /// Every follow-up, given to an agent or not, of one program or of all, oldest first.
    pub fn followups(&self, program_id: Option<i64>) -> Result<Vec<Followup>> {
        let rows = self.db.query_map(
            &format!(
                "SELECT {FOLLOWUP_COLS} FROM followups
                 WHERE (program_id = ?1 OR ?1 IS NULL) ORDER BY id"
            ),
            [program_id],
            followup_from_row,
        )?;
        Ok(rows)
    }

    /// Mark follow-ups as given to the agent that proposed `attempt_id`.
    pub fn consume_followups(&mut self, ids: &[i64], attempt_id: i64) -> Result<()> {
        let tx = self.db.begin()?;
        for id in ids {
            tx.execute(
                "UPDATE followups SET consumed_by = ?2, consumed_at = ?3
                 WHERE id = ?1 AND consumed_at IS NULL",
                params![id, attempt_id, now_ms()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Create a token; returns its secret, shown once.
    pub fn create_token(&mut self, name: &str, read_only: bool) -> Result<(Token, String)> {
        self.insert_token(name, read_only, (false, false))
    }

    /// Create a worker's token: it may take runs and report them, nothing else.
    pub fn create_worker_token(&mut self, name: &str) -> Result<(Token, String)> {
        self.insert_token(name, true, (true, false))
    }

    /// Create a contributor's token: it may read open programs' public frontiers and
    /// leaderboards and submit contributions, nothing else.
    pub fn create_contributor_token(&mut self, name: &str) -> Result<(Token, String)> {
        self.insert_token(name, true, (false, true))
    }

    fn insert_token(
        &mut self,
        name: &str,
        read_only: bool,
        (worker, contributor): (bool, bool),
    ) -> Result<(Token, String)> {
        // ThreadRng is a CSPRNG seeded from the operating system.
        let bytes: [u8; 24] = rand::random();
        let secret = format!("pcd_{}", hex::encode(bytes));
        let id: i64 = self.db.query_row(
            "INSERT INTO tokens (name, hash, read_only, worker, contributor, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            params![
                name,
                token_hash(&secret),
                read_only,
                worker,
                contributor,
                now_ms()
            ],
            |r| r.get(0),
        )?;
        Ok((
            Token {
                id,
                name: name.to_string(),
                read_only,
                worker,
                contributor,
                created_at: now_ms(),
                revoked: false,
            },
            secret,
        ))
    }

    /// The token a secret belongs to, if it exists and is not revoked.
    pub fn check_token(&self, secret: &str) -> Result<Option<Token>> {
        Ok(self
            .db
            .query_row(
                "SELECT id, name, read_only, created_at, worker, contributor FROM tokens
                 WHERE hash = ?1 AND revoked_at IS NULL",
                [token_hash(secret)],
                |r| {
                    Ok(Token {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        read_only: r.get(2)?,
                        worker: r.get(4)?,
                        contributor: r.get(5)?,
                        created_at: r.get(3)?,
                        revoked: false,
                    })
                },
            )
            .optional()?)
    }

    pub fn revoke_token(&mut self, id: i64) -> Result<()> {
        self.db.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now_ms()],
        )?;
        Ok(())
    }

    pub fn tokens(&self) -> Result<Vec<Token>> {
        let rows = self.db.query_map(
            "SELECT id, name, read_only, created_at, revoked_at IS NOT NULL, worker, contributor
             FROM tokens ORDER BY id",
            (),
            |r| {
                Ok(Token {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    read_only: r.get(2)?,
                    worker: r.get(5)?,
                    contributor: r.get(6)?,
                    created_at: r.get(3)?,
                    revoked: r.get(4)?,
                })
            },
        )?;
        Ok(rows)
    }
}
