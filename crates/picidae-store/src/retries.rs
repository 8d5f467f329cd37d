//! Retry requests: a person asks for an attempt's change to be verified again (`picidae attempt
//! retry`, the API, the cockpit); the program's next proposal takes the oldest open request
//! instead of asking its agent, and records which attempt consumed it. Whether an attempt may
//! be retried at all is the memory's judgement, not the store's.

use crate::db::OptionalExtension;
use crate::params;
use crate::{now_ms, Result, Store};

/// One request to verify an attempt again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RetryRequest {
    pub id: i64,
    pub program_id: i64,
    /// The attempt whose change is verified again.
    pub attempt_id: i64,
    pub author: String,
    pub created_at: i64,
    /// The attempt that took the request, once taken.
    pub consumed_by: Option<i64>,
}

const COLS: &str = "id, program_id, attempt_id, author, created_at, consumed_by";

fn from_row(r: &crate::db::Row) -> crate::db::DbResult<RetryRequest> {
    Ok(RetryRequest {
        id: r.get(0)?,
        program_id: r.get(1)?,
        attempt_id: r.get(2)?,
        author: r.get(3)?,
        created_at: r.get(4)?,
        consumed_by: r.get(5)?,
    })
}

impl Store {
    /// Ask for `attempt_id`'s change to be verified again in `program_id`. A request for the
    /// same attempt that is still open is returned instead of a second one (`false`: not new).
    pub fn request_retry(
        &mut self,
        program_id: i64,
        attempt_id: i64,
        author: &str,
    ) -> Result<(RetryRequest, bool)> {
        let tx = self.db.begin()?;
        let open = tx
            .query_row(
                &format!(
                    "SELECT {COLS} FROM retries
                     WHERE program_id = ?1 AND attempt_id = ?2 AND consumed_at IS NULL"
                ),
                params![program_id, attempt_id],
                from_row,
            )
            .optional()?;
        if let Some(r) = open {
            tx.commit()?;
            return Ok((r, false));
        }
        let now = now_ms();
        let id: i64 = tx.query_row(
            "INSERT INTO retries (program_id, attempt_id, author, created_at)
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![program_id, attempt_id, author, now],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok((
            RetryRequest {
                id,
                program_id,
                attempt_id,
                author: author.to_string(),
                created_at: now,
                consumed_by: None,
            },
            true,
        ))
    }

    /// The program's retry requests not yet taken, oldest first.
    pub fn open_retries(&self, program_id: i64) -> Result<Vec<RetryRequest>> {
        Ok(self.db.query_map(
            &format!(
                "SELECT {COLS} FROM retries WHERE program_id = ?1 AND consumed_at IS NULL
                 ORDER BY id"
            ),
            [program_id],
            from_row,
        )?)
    }

    /// Mark a request as taken by `attempt_id`. False when it was already taken (by another
    /// proposal): the caller must not retry it a second time.
    pub fn consume_retry(&mut self, id: i64, attempt_id: i64) -> Result<bool> {
        let n = self.db.execute(
            "UPDATE retries SET consumed_by = ?2, consumed_at = ?3
             WHERE id = ?1 AND consumed_at IS NULL",
            params![id, attempt_id, now_ms()],
        )?;
        Ok(n == 1)
    }

    /// The requests that named `attempt_id`, oldest first (taken or not).
    pub fn retries_of(&self, attempt_id: i64) -> Result<Vec<RetryRequest>> {
        Ok(self.db.query_map(
            &format!("SELECT {COLS} FROM retries WHERE attempt_id = ?1 ORDER BY id"),
            [attempt_id],
            from_row,
        )?)
    }
}
