//! Deleting a program with everything recorded about it, in one transaction.

use crate::Backend;
use crate::{Program, Result, Store, StoreError};

/// What [`Store::delete_program`] removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedProgram {
    /// The program as it was.
    pub program: Program,
    pub attempt_seqs: Vec<i64>,
    pub run_ids: Vec<i64>,
    pub findings: i64,
}

impl Store {
    /// Delete a program and everything recorded about it (attempts, runs and their hidden
    /// results, frontier history, findings and their events, noise floors, calibrations,
    /// follow-ups, memory rows) in one transaction. Refused while any of its runs is
    /// `running`. Another program's attempt marked a duplicate of one of these loses the mark.
    pub fn delete_program(&mut self, name: &str) -> Result<DeletedProgram> {
        let program = self.program(name)?;
        let backend = self.db.backend();
        let tx = self.db.begin()?;
        let id = program.id;
        let running: Vec<i64> = tx.query_map(
            "SELECT id FROM runs WHERE program_id = ?1 AND status = 'running' ORDER BY id",
            [id],
            |r| r.get(0),
        )?;
        if !running.is_empty() {
            return Err(StoreError::ProgramRunning {
                program: program.name,
                runs: running,
            });
        }
        let run_ids: Vec<i64> = tx.query_map(
            "SELECT id FROM runs WHERE program_id = ?1 ORDER BY id",
            [id],
            |r| r.get(0),
        )?;
        let attempt_seqs: Vec<i64> = tx.query_map(
            "SELECT seq FROM attempts WHERE program_id = ?1 ORDER BY seq",
            [id],
            |r| r.get(0),
        )?;
        let findings: i64 = tx.query_row(
            "SELECT COUNT(*) FROM findings WHERE program_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let of_attempts = "SELECT id FROM attempts WHERE program_id = ?1";
        let memory = match backend {
            Backend::Sqlite => format!("DELETE FROM memory_fts WHERE rowid IN ({of_attempts})"),
            Backend::Postgres => {
                format!("DELETE FROM memory_fts WHERE attempt_id IN ({of_attempts})")
            }
        };
        let statements = [
            memory,
            format!(
                "UPDATE attempts SET duplicate_of = NULL
                 WHERE program_id <> ?1 AND duplicate_of IN ({of_attempts})"
            ),
            "UPDATE programs SET frontier_attempt_id = NULL WHERE id = ?1".into(),
            "DELETE FROM hidden_results WHERE run_id IN (SELECT id FROM runs WHERE program_id = ?1)"
                .into(),
            "DELETE FROM finding_events WHERE finding_id IN
                 (SELECT id FROM findings WHERE program_id = ?1)"
                .into(),
            "DELETE FROM findings WHERE program_id = ?1".into(),
            "DELETE FROM noise_floors WHERE program_id = ?1".into(),
            "DELETE FROM calibrations WHERE program_id = ?1".into(),
            "DELETE FROM followups WHERE program_id = ?1".into(),
            "DELETE FROM retries WHERE program_id = ?1".into(),
            "DELETE FROM frontier_history WHERE program_id = ?1".into(),
            "DELETE FROM commit_bundles WHERE program_id = ?1".into(),
            "DELETE FROM contributions WHERE program_id = ?1".into(),
            "DELETE FROM open_programs WHERE program_id = ?1".into(),
            "DELETE FROM arena_entries WHERE program_id = ?1".into(),
            "DELETE FROM work_refusals WHERE run_id IN (SELECT id FROM runs WHERE program_id = ?1)"
                .into(),
            "DELETE FROM work_items WHERE run_id IN (SELECT id FROM runs WHERE program_id = ?1)"
                .into(),
            "DELETE FROM runs WHERE program_id = ?1".into(),
            "UPDATE attempts SET duplicate_of = NULL WHERE program_id = ?1".into(),
            "DELETE FROM attempts WHERE program_id = ?1".into(),
            "DELETE FROM programs WHERE id = ?1".into(),
        ];
        for sql in &statements {
            tx.execute(sql, [id])?;
        }
        tx.commit()?;
        Ok(DeletedProgram {
            program,
            attempt_seqs,
            run_ids,
            findings,
        })
    }
}
