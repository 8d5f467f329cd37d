//! `picidae program delete`: a program's store rows, its files under `.picidae/` and its
//! `refs/picidae/<program>/` refs, removed while no loop runs it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use picidae_git::Repo;
use picidae_sched::Project;

/// What was removed, for the command's report.
pub struct Deleted {
    pub attempts: usize,
    pub runs: usize,
    pub findings: i64,
    pub refs: usize,
    /// What could not be cleaned up after the store rows were gone (a missing repository, a
    /// directory that would not go), one line each.
    pub warnings: Vec<String>,
}

/// Delete program `name`. Refused while its loop runs: the loop (`picidae run`, or a
/// coordinator's runner) holds `.picidae/locks/<name>.lock`, which is taken here for the whole
/// deletion so none can start meanwhile. A coordinator's fresh lease on the program, or any of
/// its runs `running` (a loop on another machine sharing a PostgreSQL store), refuses it too.
pub fn delete_program(project: &mut Project, name: &str) -> Result<Deleted> {
    let program = project.store.program(name)?;
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("program {name:?}: the name cannot be used as a directory; refusing to delete its files");
    }
    let locks = project.dir().join("locks");
    std::fs::create_dir_all(&locks).with_context(|| format!("creating {}", locks.display()))?;
    let lock_path = locks.join(format!("{name}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "program {name} is running: its loop holds {}; stop it (Ctrl-C, or stop `picidae serve`) before deleting the program",
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
    // A coordinator elsewhere (team mode on a shared PostgreSQL store) drives the program
    // while its lease is renewed: its loop may be between runs.
    if let Some((owner, at)) = project.store.program_lease(program.id)? {
        let age_ms = picidae_store::now_ms() - at;
        if age_ms <= picidae_sched::runner::lease_expiry().as_millis() as i64 {
            bail!(
                "program {name} is driven by the coordinator {owner} (its lease was renewed {:.0}s ago); stop that `picidae serve` before deleting the program",
                age_ms.max(0) as f64 / 1000.0
            );
        }
    }
    let gone = project.store.delete_program(name)?;
    let mut warnings = Vec::new();
    for sub in ["runs", "attempts", "worktrees", "cache"] {
        let dir = project.dir().join(sub).join(name);
        remove_dir(&dir, &mut warnings);
    }
    let mut refs = 0;
    match Repo::open(project.benchmark_dir(&program)) {
        Ok(repo) => {
            let prefix = format!("refs/picidae/{name}/");
            match repo.list_refs(&prefix) {
                Ok(list) => {
                    for (r, _) in list {
                        match repo.delete_ref(&r) {
                            Ok(()) => refs += 1,
                            Err(e) => warnings.push(format!("deleting {r}: {e}")),
                        }
                    }
                }
                Err(e) => warnings.push(format!("listing {prefix} in {}: {e}", program.benchmark_dir)),
            }
            if let Err(e) = repo.prune_worktrees() {
                warnings.push(format!("git worktree prune in {}: {e}", program.benchmark_dir));
            }
        }
        Err(e) => warnings.push(format!(
            "the benchmark repository {} could not be opened ({e}); its refs/picidae/{name}/ refs are left",
            program.benchmark_dir
        )),
    }
    drop(lock);
    let _ = std::fs::remove_file(&lock_path);
    Ok(Deleted {
        attempts: gone.attempt_seqs.len(),
        runs: gone.run_ids.len(),
        findings: gone.findings,
        refs,
        warnings,
    })
}

fn remove_dir(dir: &Path, warnings: &mut Vec<String>) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warnings.push(format!("removing {}: {e}", dir.display())),
    }
}
