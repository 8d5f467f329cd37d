//! Runs on remote workers, the coordinator's side. A program whose executor is
//! `workers[:POOL]` runs nothing here: each run's tree is exported without the hidden files
//! (`picidae_git::Repo::export_tree`), offered to the pool as a work item with what the worker
//! needs ([`WorkSpec`]), and waited for. A worker (`picidae worker`, over the HTTP API) claims
//! it under a lease, runs it and reports; the report's outputs are written into the run's
//! directory here, so the run is classified, judged and scored by the hidden evaluator exactly
//! as a local one. A worker that stops renewing its lease loses the run: once the lease has
//! expired it is offered again, and a late report under the old lease is refused. The run row
//! belongs to this coordinator throughout, so it is recorded once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use picidae_core::{Boundary, WorkState};
use picidae_exec::work::{WorkResult, WorkSetup, WorkSpec};
use picidae_exec::RunOutcome;
use picidae_git::Repo;
use picidae_store::{Attempt, WorkItem};

use crate::run::RunCtx;
use crate::{Project, SchedError};

/// A worker pool's name: letters, digits, `-`, `_` and `.`.
pub(crate) fn valid_pool(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The handle recorded on a run sent to workers.
pub(crate) fn handle(run_id: i64) -> String {
    format!("workers:{run_id}")
}

impl RunCtx {
    /// What a worker needs to run `attempt`'s run `run_id` on `seed` with `env`.
    pub(crate) fn work_spec(
        &self,
        repo: &Repo,
        attempt: &Attempt,
        (run_id, seed): (i64, i64),
        env: Vec<(String, String)>,
    ) -> Result<WorkSpec, SchedError> {
        let commit = attempt.commit.clone().ok_or_else(|| SchedError::Program {
            program: self.program.clone(),
            message: format!("attempt {} has no commit", attempt.seq),
        })?;
        let prefix = repo.prefix();
        let hidden: &[String] = self
            .contract
            .hidden
            .as_ref()
            .map(|h| h.files.as_slice())
            .unwrap_or(&[]);
        let drop = staying_home(repo, &self.contract);
        let tree = repo.export_tree(&commit, &drop)?;
        let setup = match &self.contract.setup {
            Some(setup) => {
                let tree = repo.export_tree(&self.base_commit, &drop)?;
                let key = crate::runner::patch_hash(&format!("{tree}\n{}", setup.command));
                Some(WorkSetup {
                    command: setup.command.clone(),
                    tree,
                    key: key[..16].to_string(),
                })
            }
            None => None,
        };
        let run = &self.contract.run;
        // Paths of this machine mean nothing on a worker, which sets its own.
        let env = env
            .into_iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "PICIDAE_METRICS" | "PICIDAE_ARTIFACTS" | "PICIDAE_DATA"
                )
            })
            .collect();
        let protected = if run.sandbox {
            let boundary =
                Boundary::new(&self.contract.boundary).map_err(|e| SchedError::Program {
                    program: self.program.clone(),
                    message: format!("boundary.editable: {e}"),
                })?;
            let tracked = repo.tracked_files(&commit)?;
            crate::readonly::protected_binds(&tracked, prefix, &boundary, hidden)
                .into_iter()
                .map(|p| p.display().to_string())
                .collect()
        } else {
            Vec::new()
        };
        Ok(WorkSpec {
            program: self.program.clone(),
            run_id,
            attempt_seq: attempt.seq,
            seed,
            tree,
            bench_dir: prefix.display().to_string(),
            command: run.command.clone(),
            env,
            time_budget_secs: self.contract.stage_budget(seed).0.as_secs_f64(),
            timeout_secs: self.contract.stage_budget(seed).1.as_secs_f64(),
            grace_secs: run.grace.as_secs_f64(),
            log_cap_bytes: run.log_cap_bytes,
            gpus: run.resources.gpus,
            cpus: run.resources.cpus,
            memory_mb: run.resources.memory_mb,
            max_processes: run.resources.max_processes,
            sandbox: run.sandbox,
            network: run.network.unwrap_or(true),
            protected,
            setup,
        })
    }
}

/// Offer run `run_id` to `pool` (again, after a restart: the item stays as it was) and wait
/// for its result; see the module docs. `started` is told once a worker has claimed it.
pub(crate) fn offer_and_wait(
    project: &mut Project,
    (run_id, pool): (i64, &str),
    spec: Option<&WorkSpec>,
    run_dir: &Path,
    cancel: &AtomicBool,
    started: impl FnOnce(),
) -> Result<RunOutcome, SchedError> {
    if let Some(spec) = spec {
        let json = serde_json::to_value(spec).map_err(|e| SchedError::Program {
            program: spec.program.clone(),
            message: format!("work spec: {e}"),
        })?;
        project.store.offer_work(run_id, pool, &json)?;
    }
    project
        .store
        .set_run_executor_ref(run_id, &handle(run_id))?;
    let mut started = Some(started);
    let mut holder: Option<i64> = None;
    let mut waiting = crate::work_watch::watch(project.root()).wait_on(run_id);
    loop {
        let item = waiting
            .next()?
            .ok_or_else(|| SchedError::ProjectStore(format!("run {run_id}: no work item")))?;
        if cancel.load(Ordering::SeqCst) && item.state != WorkState::Reported {
            project.store.cancel_work(run_id)?;
            return Ok(cancelled());
        }
        match item.state {
            WorkState::Reported => {
                let item = project.store.work_item(run_id)?.ok_or_else(|| {
                    SchedError::ProjectStore(format!("run {run_id}: no work item"))
                })?;
                return write_result(project, &item, run_dir);
            }
            WorkState::Cancelled => return Ok(cancelled()),
            WorkState::Claimed => {
                let now = picidae_store::now_ms();
                if item.lease_expires_at.is_some_and(|t| t < now)
                    && project.store.expire_work(run_id, now)?
                {
                    tracing::warn!(
                        "run {run_id}: worker {} stopped renewing its lease; offered again",
                        item.worker_id.unwrap_or(0)
                    );
                } else if item.worker_id != holder {
                    holder = item.worker_id;
                    if let Some(id) = holder {
                        claimed(project, run_id, id, run_dir)?;
                        if let Some(f) = started.take() {
                            f();
                        }
                    }
                }
            }
            WorkState::Offered => {}
        }
    }
}

/// A worker claimed the run: the first claim starts it, on that worker's machine.
fn claimed(
    project: &mut Project,
    run_id: i64,
    worker_id: i64,
    run_dir: &Path,
) -> Result<(), SchedError> {
    let run = project.store.run(run_id)?;
    if run.status != picidae_core::RunStatus::Queued {
        return Ok(());
    }
    let w = project.store.worker(worker_id)?;
    project.store.mark_run_started(
        run_id,
        0,
        0,
        &w.name,
        Some((&w.fingerprint, &w.fingerprint_json)),
        &run_dir.display().to_string(),
    )?;
    Ok(())
}

/// Write what the worker reported into the run's directory (its logs and metrics file, as a
/// local run leaves them) and return its outcome.
fn write_result(
    project: &mut Project,
    item: &WorkItem,
    run_dir: &Path,
) -> Result<RunOutcome, SchedError> {
    let bad = |message: String| SchedError::ProjectStore(format!("run {}: {message}", item.run_id));
    let result: WorkResult = item
        .result
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| bad(format!("unreadable worker report: {e}")))?
        .ok_or_else(|| bad("reported without a result".into()))?;
    let files = [
        ("stdout.log", Some(&result.stdout)),
        ("stderr.log", Some(&result.stderr)),
        ("metrics.jsonl", result.metrics_jsonl.as_ref()),
    ];
    std::fs::create_dir_all(run_dir.join("artifacts")).map_err(|e| SchedError::io(run_dir, e))?;
    for (name, text) in files {
        if let Some(text) = text {
            picidae_exec::safe_fs::replace_file(run_dir, name, text.as_bytes())
                .map_err(|e| bad(format!("writing {name}: {e}")))?;
        }
    }
    // The worker that ran it (the one that reported, which may not be the first claimant)
    // and its machine's fingerprint.
    let host = match item.worker_id {
        Some(id) => project.store.worker(id)?.name,
        None => result.host.clone(),
    };
    project.store.set_run_machine(
        item.run_id,
        &host,
        (&result.fingerprint, &result.fingerprint_json),
    )?;
    Ok(result.outcome)
}

fn cancelled() -> RunOutcome {
    RunOutcome::not_run(true)
}

/// The paths (repository-relative) that never leave this machine in an export: the hidden
/// evaluator's files.
pub fn staying_home(repo: &Repo, contract: &picidae_core::Contract) -> Vec<String> {
    contract
        .hidden
        .iter()
        .flat_map(|h| h.files.iter())
        .map(|f| f.trim_start_matches('/'))
        .filter(|f| !f.split('/').any(|c| c == ".."))
        .map(|f| repo.prefix().join(f).display().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names() {
        assert!(valid_pool("a100-east.2"));
        assert!(!valid_pool(""));
        assert!(!valid_pool("a b"));
        assert!(!valid_pool("../x"));
    }
}
