//! Attempt commits carried through the store: for coordinators that share a PostgreSQL store
//! but no directory, each keeps its own clone of a benchmark, and a commit one of them made
//! reaches the others as a git bundle in `commit_bundles` (written before the commit is
//! recorded on its attempt, so a recorded commit always has one). The bundles are opaque
//! here; `picidae-git` makes and reads them.

use crate::db::OptionalExtension;
use crate::{now_ms, params, Result, Store};

impl Store {
    /// Keep the bundle of `commit` for `program_id`; a bundle already kept for it stays (the
    /// same commit packs to the same objects).
    pub fn put_commit_bundle(&self, program_id: i64, commit: &str, bundle: &[u8]) -> Result<()> {
        self.db.execute(
            "INSERT INTO commit_bundles (program_id, commit_sha, bundle, created_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![program_id, commit, bundle.to_vec(), now_ms()],
        )?;
        Ok(())
    }

    /// Whether a bundle of `commit` is kept for `program_id`.
    pub fn has_commit_bundle(&self, program_id: i64, commit: &str) -> Result<bool> {
        Ok(self
            .db
            .query_row(
                "SELECT 1 FROM commit_bundles WHERE program_id = ?1 AND commit_sha = ?2",
                params![program_id, commit],
                |r| r.get::<i64>(0),
            )
            .optional()?
            .is_some())
    }

    /// The bundle of `commit` kept for `program_id`, if any.
    pub fn commit_bundle(&self, program_id: i64, commit: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .query_row(
                "SELECT bundle FROM commit_bundles WHERE program_id = ?1 AND commit_sha = ?2",
                params![program_id, commit],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Every distinct commit a program's attempts are recorded at, with the sequence number of
    /// the first attempt at each, oldest first: an order in which every commit comes after
    /// its parents.
    pub fn program_commits(&self, program_id: i64) -> Result<Vec<(i64, String)>> {
        Ok(self.db.query_map(
            "SELECT MIN(seq), commit_sha FROM attempts
             WHERE program_id = ?1 AND commit_sha IS NOT NULL
             GROUP BY commit_sha ORDER BY MIN(id)",
            [program_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }
}
