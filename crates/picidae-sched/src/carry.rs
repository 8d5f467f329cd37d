//! Team mode without a shared directory, the loop's side: every commit a coordinator records
//! on an attempt is first packed into the store (`Store::put_commit_bundle`), and a
//! coordinator that takes a program over brings the commits its own clone lacks in from there
//! before it does anything else, with the program's refs. Only a shared store (PostgreSQL)
//! carries commits; a SQLite project has one clone.

use picidae_git::Repo;
use picidae_store::{Backend, Program, Store};

use crate::{attempt_ref, program_ref, SchedError};

/// Pack `commit` into the store for `program`, unless the store is not shared, the commit is
/// the program's base (every clone holds it), or it is packed already. Called before the
/// commit is recorded on its attempt, so a recorded commit always travels.
pub(crate) fn carry_commit(
    store: &Store,
    repo: &Repo,
    program: &Program,
    commit: &str,
) -> Result<(), SchedError> {
    if store.backend() != Backend::Postgres
        || commit == program.base_commit
        || store.has_commit_bundle(program.id, commit)?
    {
        return Ok(());
    }
    let bundle = repo.pack_commit(commit)?;
    store.put_commit_bundle(program.id, commit, &bundle)?;
    Ok(())
}

/// Bring into `repo` every commit of `program`'s attempts it lacks, oldest first (each
/// bundle's parents arrive before it), and point the base, attempt and frontier refs at
/// them. Returns how many commits arrived.
pub(crate) fn fetch_commits(
    store: &Store,
    repo: &Repo,
    program: &Program,
) -> Result<usize, SchedError> {
    if store.backend() != Backend::Postgres {
        return Ok(0);
    }
    let commits = store.program_commits(program.id)?;
    let mut asked: Vec<String> = commits.iter().map(|(_, c)| c.clone()).collect();
    asked.push(program.base_commit.clone());
    let missing = repo.missing_commits(&asked)?;
    let fail = |message: String| SchedError::Program {
        program: program.name.clone(),
        message,
    };
    if missing.contains(&program.base_commit) {
        return Err(fail(format!(
            "the clone at {} lacks the program's base commit {}: fetch it into this clone \
             (or name the right clone in .picidae/{})",
            repo.root().display(),
            program.base_commit,
            crate::clones::CLONES_FILE
        )));
    }
    let mut arrived = 0;
    for (seq, sha) in commits.iter().filter(|(_, c)| missing.contains(c)) {
        let bundle = store.commit_bundle(program.id, sha)?.ok_or_else(|| {
            fail(format!(
                "commit {sha} of attempt #{seq} is neither in the clone at {} nor in the store",
                repo.root().display()
            ))
        })?;
        repo.unpack_commit(&bundle, sha)?;
        repo.update_ref(&attempt_ref(&program.name, *seq), sha, None)?;
        arrived += 1;
    }
    repo.update_ref(
        &program_ref(&program.name, "base"),
        &program.base_commit,
        None,
    )?;
    if let Some(frontier) = &program.frontier_commit {
        repo.update_ref(&program_ref(&program.name, "frontier"), frontier, None)?;
    }
    Ok(arrived)
}

impl crate::Runner<'_> {
    /// Record `commit` on the attempt `attempt_id` (see `Store::set_attempt_commit`), packed
    /// into the store first where the store is shared.
    pub(crate) fn record_commit(
        &mut self,
        attempt_id: i64,
        commit: &str,
        patch_hash: &str,
        touched: &[String],
        hypothesis: Option<&str>,
    ) -> Result<(), SchedError> {
        carry_commit(&self.project.store, &self.repo, &self.program, commit)?;
        self.project
            .store
            .set_attempt_commit(attempt_id, commit, patch_hash, touched, hypothesis)?;
        Ok(())
    }
}
