//! The results table: every attempt with its run count and resource use, in order.

use serde::{Deserialize, Serialize};

use crate::{attempt_from_row, Attempt, Result, Store, ATTEMPT_COLS};

/// One row of the results table: an attempt with its aggregate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultRow {
    pub program: String,
    pub attempt: Attempt,
    pub runs: i64,
    pub peak_rss_kb: Option<i64>,
    /// Largest peak GPU memory (MiB) of the attempt's runs, where measured.
    pub peak_gpu_mb: Option<i64>,
    pub wall_secs: Option<f64>,
}

impl Store {
    // ---------------------------------------------------------------- results

    /// The results table: attempts with run counts and resource use, in order.
    pub fn results(&self, program_id: Option<i64>) -> Result<Vec<ResultRow>> {
        let cols = ATTEMPT_COLS
            .split(", ")
            .map(|c| format!("a.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let n = ATTEMPT_COLS.split(", ").count();
        let rows = self.db.query_map(
            &format!(
                "SELECT {cols}, p.name,
                    (SELECT COUNT(*) FROM runs r WHERE r.attempt_id = a.id),
                    (SELECT MAX(peak_rss_kb) FROM runs r WHERE r.attempt_id = a.id),
                    (SELECT SUM(wall_secs) FROM runs r WHERE r.attempt_id = a.id),
                    (SELECT MAX(peak_gpu_mb) FROM runs r WHERE r.attempt_id = a.id)
             FROM attempts a JOIN programs p ON p.id = a.program_id
             WHERE (a.program_id = ?1 OR ?1 IS NULL)
             ORDER BY a.program_id, a.seq"
            ),
            [program_id],
            |r| {
                Ok(ResultRow {
                    attempt: attempt_from_row(r)?,
                    program: r.get(n)?,
                    runs: r.get(n + 1)?,
                    peak_rss_kb: r.get(n + 2)?,
                    wall_secs: r.get(n + 3)?,
                    peak_gpu_mb: r.get(n + 4)?,
                })
            },
        )?;
        Ok(rows)
    }
}
