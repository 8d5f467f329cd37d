//! Runs handed to remote workers (`picidae worker`): the workers that registered, one work
//! item per run sent to a worker pool, its lease and its result, and the results refused.
//!
//! A work item is **offered** to its pool, **claimed** by one worker under a lease (a random
//! nonce with an expiry the worker's heartbeat renews), and **reported** once: a report must
//! carry the lease it claimed with, so a worker that lost its lease (killed, stopped, cut off
//! past the expiry, the item re-offered and claimed by another) is refused, and the refusal is
//! recorded. Reporting the same result again under the same lease is accepted as the same
//! report (an upload retried after a dropped connection). The run row itself stays with the
//! coordinator that waits for the item; only that coordinator records the run's result, once.

use std::collections::HashMap;

use picidae_core::WorkState;
use serde::{Deserialize, Serialize};

use crate::db::{OptionalExtension, Row};
use crate::{conv_err, now_ms, params, parse_state, Result, Store, StoreError};

/// A worker that registered with a coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    pub id: i64,
    pub name: String,
    /// The token it registered with.
    pub token_id: i64,
    /// The pool it takes runs of (`""`: the default pool).
    pub pool: String,
    /// Hash of its environment fingerprint.
    pub fingerprint: String,
    pub fingerprint_json: String,
    /// What it offers: `{"gpus": [0, 1], "cpus": 8, "memory_mb": 64000}`.
    pub capacity: serde_json::Value,
    pub registered_at: i64,
    pub heartbeat_at: i64,
}

/// A run handed to a worker pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    pub run_id: i64,
    pub pool: String,
    /// What the worker needs to run it (the coordinator's own format).
    pub spec: serde_json::Value,
    pub state: WorkState,
    pub worker_id: Option<i64>,
    pub lease: Option<String>,
    pub lease_expires_at: Option<i64>,
    /// How many times it was claimed (more than once: a worker lost it).
    pub claims: i64,
    pub result: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where a run handed to workers stands: the small part of a [`WorkItem`] a waiter polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkStatus {
    pub run_id: i64,
    pub state: WorkState,
    pub worker_id: Option<i64>,
    pub lease_expires_at: Option<i64>,
}

/// What a worker's heartbeat learns about the leases it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Renewal {
    /// Runs whose lease was renewed.
    pub held: Vec<i64>,
    /// Runs it no longer holds: stop them, their results will be refused.
    pub lost: Vec<i64>,
    /// Runs of those held that a person or the coordinator asked to cancel.
    pub cancel: Vec<i64>,
}

/// How a report was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// Recorded as the run's result.
    Accepted,
    /// The same lease reported before; the first report stands.
    AlreadyReported,
    /// Refused (and the refusal recorded): why.
    Refused(String),
}

/// A result a worker reported for a lease it no longer held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkRefusal {
    pub run_id: i64,
    pub worker_id: Option<i64>,
    pub reason: String,
    pub at: i64,
}

const WORKER_COLS: &str = "id, name, token_id, pool, fingerprint, fingerprint_json, \
                           capacity_json, registered_at, heartbeat_at";

fn worker_from_row(r: &Row) -> crate::db::DbResult<Worker> {
    let capacity: String = r.get(6)?;
    Ok(Worker {
        id: r.get(0)?,
        name: r.get(1)?,
        token_id: r.get(2)?,
        pool: r.get(3)?,
        fingerprint: r.get(4)?,
        fingerprint_json: r.get(5)?,
        capacity: serde_json::from_str(&capacity).map_err(|e| conv_err(6, e))?,
        registered_at: r.get(7)?,
        heartbeat_at: r.get(8)?,
    })
}

const ITEM_COLS: &str = "run_id, pool, spec_json, state, worker_id, lease, lease_expires_at, \
                         claims, result_json, created_at, updated_at";
/// How many columns [`ITEM_COLS`] names.
const ITEM_COL_COUNT: usize = 11;

/// A row of `ITEM_COLS`, its state still text.
fn item_from_row(r: &Row) -> crate::db::DbResult<(WorkItem, String)> {
    let spec: String = r.get(2)?;
    let result: Option<String> = r.get(8)?;
    Ok((
        WorkItem {
            run_id: r.get(0)?,
            pool: r.get(1)?,
            spec: serde_json::from_str(&spec).map_err(|e| conv_err(2, e))?,
            state: WorkState::Offered,
            worker_id: r.get(4)?,
            lease: r.get(5)?,
            lease_expires_at: r.get(6)?,
            claims: r.get(7)?,
            result: result
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| conv_err(8, e))?,
            created_at: r.get(9)?,
            updated_at: r.get(10)?,
        },
        r.get(3)?,
    ))
}

fn with_state((mut item, state): (WorkItem, String)) -> Result<WorkItem> {
    item.state = parse_state(&state)?;
    Ok(item)
}

/// The work item of `run_id` as `db` (a connection or a transaction) sees it.
fn item_of(db: &crate::db::Db, run_id: i64) -> Result<Option<WorkItem>> {
    db.query_row(
        &format!("SELECT {ITEM_COLS} FROM work_items WHERE run_id = ?1"),
        [run_id],
        item_from_row,
    )
    .optional()?
    .map(with_state)
    .transpose()
}

/// Record that worker `id` was heard from at `now`.
fn touch(db: &crate::db::Db, id: i64, now: i64) -> Result<()> {
    db.execute(
        "UPDATE workers SET heartbeat_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Offered items a claim looks at, oldest first, before giving up on finding one that fits.
const CLAIM_SCAN: i64 = 64;

impl Store {
    /// Register a worker, or refresh its registration (same token, same name).
    pub fn register_worker(
        &mut self,
        token_id: i64,
        name: &str,
        pool: &str,
        (fingerprint, fingerprint_json): (&str, &str),
        capacity: &serde_json::Value,
    ) -> Result<Worker> {
        let now = now_ms();
        let tx = self.db.begin()?;
        tx.execute(
            "INSERT INTO workers (name, token_id, pool, fingerprint, fingerprint_json,
                                  capacity_json, registered_at, heartbeat_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (token_id, name) DO UPDATE SET
                 pool = excluded.pool, fingerprint = excluded.fingerprint,
                 fingerprint_json = excluded.fingerprint_json,
                 capacity_json = excluded.capacity_json, heartbeat_at = excluded.heartbeat_at",
            params![
                name,
                token_id,
                pool,
                fingerprint,
                fingerprint_json,
                capacity.to_string(),
                now
            ],
        )?;
        let w = tx.query_row(
            &format!("SELECT {WORKER_COLS} FROM workers WHERE token_id = ?1 AND name = ?2"),
            params![token_id, name],
            worker_from_row,
        )?;
        tx.commit()?;
        Ok(w)
    }

    /// A worker by id.
    pub fn worker(&self, id: i64) -> Result<Worker> {
        self.db
            .query_row(
                &format!("SELECT {WORKER_COLS} FROM workers WHERE id = ?1"),
                [id],
                worker_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("no worker {id}")))
    }

    /// Every worker that registered, with the runs each holds now.
    pub fn workers(&self) -> Result<Vec<(Worker, Vec<i64>)>> {
        let workers = self.db.query_map(
            &format!("SELECT {WORKER_COLS} FROM workers ORDER BY id"),
            (),
            worker_from_row,
        )?;
        let held: Vec<(i64, i64)> = self.db.query_map(
            "SELECT worker_id, run_id FROM work_items
             WHERE state = 'claimed' AND worker_id IS NOT NULL ORDER BY run_id",
            (),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(workers
            .into_iter()
            .map(|w| {
                let runs = held
                    .iter()
                    .filter(|(id, _)| *id == w.id)
                    .map(|(_, r)| *r)
                    .collect();
                (w, runs)
            })
            .collect())
    }

    /// Offer `run_id` to the workers of `pool`. Offering a run again (a coordinator that
    /// restarted and waits for it anew) leaves the item as it is.
    pub fn offer_work(&mut self, run_id: i64, pool: &str, spec: &serde_json::Value) -> Result<()> {
        let now = now_ms();
        self.db.execute(
            "INSERT INTO work_items (run_id, pool, spec_json, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'offered', ?4, ?4)
             ON CONFLICT (run_id) DO NOTHING",
            params![run_id, pool, spec.to_string(), now],
        )?;
        Ok(())
    }

    /// The work item of `run_id`, if it was handed to workers.
    pub fn work_item(&self, run_id: i64) -> Result<Option<WorkItem>> {
        item_of(&self.db, run_id)
    }

    /// Where each of `run_ids` stands, in one query per 500 ids; runs never handed to workers
    /// are left out. What one watcher polls for every run waited on (`picidae-sched`).
    pub fn work_statuses(&self, run_ids: &[i64]) -> Result<Vec<WorkStatus>> {
        let mut out = Vec::with_capacity(run_ids.len());
        for chunk in run_ids.chunks(500) {
            // Integers only, so the list is safe to write into the statement.
            let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let rows = self.db.query_map(
                &format!(
                    "SELECT run_id, state, worker_id, lease_expires_at FROM work_items
                     WHERE run_id IN ({})",
                    ids.join(", ")
                ),
                (),
                |r| {
                    Ok((
                        r.get::<i64>(0)?,
                        r.get::<String>(1)?,
                        r.get::<Option<i64>>(2)?,
                        r.get::<Option<i64>>(3)?,
                    ))
                },
            )?;
            for (run_id, state, worker_id, lease_expires_at) in rows {
                out.push(WorkStatus {
                    run_id,
                    state: parse_state(&state)?,
                    worker_id,
                    lease_expires_at,
                });
            }
        }
        Ok(out)
    }

    /// Give worker `worker_id` a run offered to its pool that `fits` it, under a new lease
    /// expiring in `lease_ms`; `None` when there is none. Also its heartbeat. Programs share
    /// the pool by weight, as they share local slots: the run goes to the program with the
    /// fewest runs in flight on the pool per unit of weight, and within it to the oldest.
    pub fn claim_work(
        &mut self,
        worker_id: i64,
        fits: &dyn Fn(&serde_json::Value) -> bool,
        lease_ms: i64,
    ) -> Result<Option<WorkItem>> {
        let now = now_ms();
        let tx = self.db.begin()?;
        touch(&tx, worker_id, now)?;
        let pool: String =
            tx.query_row("SELECT pool FROM workers WHERE id = ?1", [worker_id], |r| {
                r.get(0)
            })?;
        // The oldest few offered items of each program, with the program and its weight.
        let offered = tx.query_map(
            &format!(
                "SELECT {ITEM_COLS}, program_id, weight FROM (
                     SELECT w.*, r.program_id, p.weight,
                            ROW_NUMBER() OVER (PARTITION BY r.program_id ORDER BY w.id) AS k
                     FROM work_items w JOIN runs r ON r.id = w.run_id
                          JOIN programs p ON p.id = r.program_id
                     WHERE w.state = 'offered' AND w.pool = ?1
                 ) o WHERE k <= {CLAIM_SCAN} ORDER BY run_id"
            ),
            [&pool],
            |r| {
                let (item, _) = item_from_row(r)?;
                Ok((
                    item,
                    r.get::<i64>(ITEM_COL_COUNT)?,
                    r.get::<f64>(ITEM_COL_COUNT + 1)?,
                ))
            },
        )?;
        let in_flight: HashMap<i64, i64> = tx
            .query_map(
                "SELECT r.program_id, COUNT(*) FROM work_items w JOIN runs r ON r.id = w.run_id
                 WHERE w.state = 'claimed' AND w.pool = ?1 GROUP BY r.program_id",
                [&pool],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect();
        // Weighted fair share: the program furthest below its weight (the fewest runs in
        // flight on the pool's workers per unit of weight) goes first; within one, and
        // between equals, the oldest item.
        let share = |program: i64, weight: f64| {
            let w = if weight.is_finite() && weight > 0.0 {
                weight
            } else {
                1.0
            };
            in_flight.get(&program).copied().unwrap_or(0) as f64 / w
        };
        let Some((item, _, _)) = offered
            .into_iter()
            .filter(|(i, _, _)| fits(&i.spec))
            .min_by(|(a, pa, wa), (b, pb, wb)| {
                share(*pa, *wa)
                    .total_cmp(&share(*pb, *wb))
                    .then(a.run_id.cmp(&b.run_id))
            })
        else {
            tx.commit()?;
            return Ok(None);
        };
        let lease = hex::encode(rand::random::<[u8; 16]>());
        tx.execute(
            "UPDATE work_items SET state = 'claimed', worker_id = ?2, lease = ?3,
                 lease_expires_at = ?4, claims = claims + 1, updated_at = ?5
             WHERE run_id = ?1 AND state = 'offered'",
            params![item.run_id, worker_id, lease, now + lease_ms, now],
        )?;
        tx.commit()?;
        self.work_item(item.run_id)
    }

    /// A worker's heartbeat: renew the leases it still holds by `lease_ms`, and say which it
    /// lost and which are to be cancelled.
    pub fn renew_work(
        &mut self,
        worker_id: i64,
        leases: &[(i64, String)],
        lease_ms: i64,
    ) -> Result<Renewal> {
        let now = now_ms();
        let tx = self.db.begin()?;
        touch(&tx, worker_id, now)?;
        let mut out = Renewal::default();
        for (run_id, lease) in leases {
            let n = tx.execute(
                "UPDATE work_items SET lease_expires_at = ?4, updated_at = ?5
                 WHERE run_id = ?1 AND worker_id = ?2 AND lease = ?3 AND state = 'claimed'
                   AND lease_expires_at >= ?5",
                params![run_id, worker_id, lease, now + lease_ms, now],
            )?;
            if n == 0 {
                out.lost.push(*run_id);
                continue;
            }
            out.held.push(*run_id);
            let cancel: Option<i64> = tx.query_row(
                "SELECT cancel_requested_at FROM runs WHERE id = ?1",
                [run_id],
                |r| r.get(0),
            )?;
            if cancel.is_some() {
                out.cancel.push(*run_id);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Take a worker's result for `run_id` under `lease` (see the module docs).
    pub fn report_work(
        &mut self,
        run_id: i64,
        worker_id: i64,
        lease: &str,
        result: &serde_json::Value,
    ) -> Result<Report> {
        let now = now_ms();
        let tx = self.db.begin()?;
        let item = item_of(&tx, run_id)?;
        let held =
            |i: &WorkItem| i.worker_id == Some(worker_id) && i.lease.as_deref() == Some(lease);
        let refusal = match &item {
            None => Some(format!("run {run_id} was never offered to workers")),
            Some(i) if i.state == WorkState::Reported && held(i) => {
                tx.commit()?;
                return Ok(Report::AlreadyReported);
            }
            Some(i) if i.state == WorkState::Claimed && held(i) => {
                if i.lease_expires_at.is_some_and(|t| t < now) {
                    Some(format!(
                        "the lease on run {run_id} expired {} ms before the report",
                        now - i.lease_expires_at.unwrap_or(now)
                    ))
                } else {
                    None
                }
            }
            Some(i) if i.state == WorkState::Cancelled => {
                Some(format!("run {run_id} was cancelled"))
            }
            Some(_) => Some(format!(
                "worker {worker_id} no longer holds the lease on run {run_id} (it was \
                 re-offered or taken by another worker)"
            )),
        };
        if let Some(reason) = refusal {
            tx.execute(
                "INSERT INTO work_refusals (run_id, worker_id, reason, at)
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)",
                params![run_id, worker_id, reason, now],
            )?;
            tx.commit()?;
            return Ok(Report::Refused(reason));
        }
        tx.execute(
            "UPDATE work_items SET state = 'reported', result_json = ?2, updated_at = ?3
             WHERE run_id = ?1",
            params![run_id, result.to_string(), now],
        )?;
        tx.commit()?;
        Ok(Report::Accepted)
    }

    /// Put `run_id` back on offer if its lease expired before `now`; whether it did.
    pub fn expire_work(&mut self, run_id: i64, now: i64) -> Result<bool> {
        let n = self.db.execute(
            "UPDATE work_items SET state = 'offered', worker_id = NULL, lease = NULL,
                 lease_expires_at = NULL, updated_at = ?2
             WHERE run_id = ?1 AND state = 'claimed' AND lease_expires_at < ?2",
            params![run_id, now],
        )?;
        Ok(n == 1)
    }

    /// Give `run_id` back to its pool at once: its worker (holding `lease`) cannot run it.
    /// Whether it was given back (false: the lease was not held).
    pub fn release_work(&mut self, run_id: i64, worker_id: i64, lease: &str) -> Result<bool> {
        let n = self.db.execute(
            "UPDATE work_items SET state = 'offered', worker_id = NULL, lease = NULL,
                 lease_expires_at = NULL, updated_at = ?4
             WHERE run_id = ?1 AND worker_id = ?2 AND lease = ?3 AND state = 'claimed'",
            params![run_id, worker_id, lease, now_ms()],
        )?;
        Ok(n == 1)
    }

    /// Withdraw `run_id` from the workers (its coordinator cancelled it); a result already
    /// reported stays.
    pub fn cancel_work(&mut self, run_id: i64) -> Result<()> {
        self.db.execute(
            "UPDATE work_items SET state = 'cancelled', updated_at = ?2
             WHERE run_id = ?1 AND state IN ('offered', 'claimed')",
            params![run_id, now_ms()],
        )?;
        Ok(())
    }

    /// Record the machine that ran `run_id` (a worker that reported it), its fingerprint
    /// written first so the run never names a missing one.
    pub fn set_run_machine(
        &mut self,
        run_id: i64,
        host: &str,
        (fingerprint, json): (&str, &str),
    ) -> Result<()> {
        self.db.execute(
            "INSERT INTO fingerprints (hash, json) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![fingerprint, json],
        )?;
        self.db.execute(
            "UPDATE runs SET host = ?2, fingerprint = ?3 WHERE id = ?1",
            params![run_id, host, fingerprint],
        )?;
        Ok(())
    }

    /// Results refused because their worker no longer held the lease, oldest first.
    pub fn work_refusals(&self, run_id: Option<i64>) -> Result<Vec<WorkRefusal>> {
        let row = |r: &Row| {
            Ok(WorkRefusal {
                run_id: r.get(0)?,
                worker_id: r.get(1)?,
                reason: r.get(2)?,
                at: r.get(3)?,
            })
        };
        const COLS: &str = "SELECT run_id, worker_id, reason, at FROM work_refusals";
        Ok(match run_id {
            Some(id) => {
                self.db
                    .query_map(&format!("{COLS} WHERE run_id = ?1 ORDER BY id"), [id], row)?
            }
            None => self.db.query_map(&format!("{COLS} ORDER BY id"), (), row)?,
        })
    }
}
