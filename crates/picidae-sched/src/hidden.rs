//! The hidden evaluator: a separate step, on a run's declared artifacts, with files no agent
//! or run ever sees; and its calibration against gold cases.
//!
//! The evaluator's code comes from the program's base commit (a trusted checkout an agent never
//! edited), its hidden data from the setup step's `hidden/` directory, which is never passed to
//! runs or agents. The paths in `hidden.files` are deleted from every agent and run checkout
//! ([`scrub`]). Results go to the store's `hidden_results` table, which nothing shown to an agent
//! reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use picidae_core::metrics::{parse_stdout, MetricSource};
use picidae_core::stats::spearman;
use picidae_core::{Contract, MetricSpec, MetricValues};
use picidae_exec::{LocalExecutor, RunRequest};
use picidae_git::Repo;
use picidae_store::{now_ms, Calibration, HiddenResult};
use serde_json::json;

use crate::SchedError;

/// Remove the contract's hidden files from a checkout's benchmark directory.
pub fn scrub(contract: &Contract, bench_dir: &Path) -> Result<(), SchedError> {
    let Some(h) = &contract.hidden else {
        return Ok(());
    };
    for f in &h.files {
        let rel = f.trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            continue;
        }
        let p = bench_dir.join(rel);
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SchedError::io(&p, e)),
        }
    }
    Ok(())
}

/// Remove a file or directory tree if it exists (never following a link).
fn remove_any(path: &Path) -> Result<(), SchedError> {
    let r = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    r.map_err(|e| SchedError::io(path, e))
}

/// Runs the contract's hidden evaluator.
pub struct Evaluator<'a> {
    pub repo: &'a Repo,
    pub contract: &'a Contract,
    /// The trusted commit the evaluator's code is taken from.
    pub commit: &'a str,
    pub hidden_dir: &'a Path,
    pub data_dir: &'a Path,
    /// Scratch space: the evaluator's checkout and logs.
    pub work_dir: &'a Path,
}

impl Evaluator<'_> {
    /// Evaluate one set of artifacts. Failures of the evaluator itself are results (ok = false),
    /// not errors; errors are for Picidae's own I/O.
    pub fn evaluate(
        &self,
        artifacts: &Path,
        label: &str,
    ) -> Result<(bool, MetricValues, Option<String>), SchedError> {
        let Some(spec) = &self.contract.hidden else {
            return Ok((
                false,
                MetricValues::new(),
                Some("no [hidden] evaluator".into()),
            ));
        };
        // The evaluator reads a snapshot of the artifacts' regular files, never the run's own
        // directory, where a link would resolve beside the hidden files.
        let snap = self.work_dir.join(format!("artifacts-{label}"));
        remove_any(&snap)?;
        std::fs::create_dir_all(self.work_dir).map_err(|e| SchedError::io(self.work_dir, e))?;
        if let Err(refused) = crate::artifacts::snapshot(artifacts, &snap) {
            let _ = remove_any(&snap);
            return Ok((false, MetricValues::new(), Some(refused.to_string())));
        }
        let result = self.evaluate_snapshot(spec, &snap, label);
        let _ = remove_any(&snap);
        result
    }

    fn evaluate_snapshot(
        &self,
        spec: &picidae_core::contract::HiddenSpec,
        artifacts: &Path,
        label: &str,
    ) -> Result<(bool, MetricValues, Option<String>), SchedError> {
        let wt_path = self.work_dir.join(format!("checkout-{label}"));
        let _ = self.repo.remove_worktree(&wt_path);
        let wt = self.repo.add_worktree(&wt_path, self.commit)?;
        let log = self.work_dir.join(format!("{label}.log"));
        let req = RunRequest {
            command: spec.command.clone(),
            cwd: wt.bench_dir(),
            env: vec![
                (
                    "PICIDAE_HIDDEN".into(),
                    self.hidden_dir.display().to_string(),
                ),
                ("PICIDAE_DATA".into(), self.data_dir.display().to_string()),
                ("PICIDAE_ARTIFACTS".into(), artifacts.display().to_string()),
            ],
            time_budget: self.contract.run.timeout,
            timeout: self.contract.run.timeout,
            grace: self.contract.run.grace,
            stdout_path: log.clone(),
            stderr_path: self.work_dir.join(format!("{label}.stderr.log")),
            log_cap_bytes: self.contract.run.log_cap_bytes,
        };
        let cancel = AtomicBool::new(false);
        let outcome = LocalExecutor::new()
            .spawn(&req)
            .and_then(|c| c.wait(&cancel));
        let _ = self.repo.remove_worktree(&wt_path);
        let outcome = outcome?;
        let text = std::fs::read_to_string(&log).unwrap_or_else(|_| outcome.stdout_tail.clone());
        let specs: Vec<MetricSpec> = spec
            .metrics
            .iter()
            .map(|m| MetricSpec {
                name: m.clone(),
                goal: spec.goal,
                source: MetricSource::Stdout,
                min: None,
                max: None,
            })
            .collect();
        let (metrics, ambiguous) = parse_stdout(&text, &specs);
        if let Some(e) = ambiguous.first() {
            return Ok((
                false,
                MetricValues::new(),
                Some(format!("ambiguous hidden metric report: {e}")),
            ));
        }
        if !outcome.succeeded() {
            return Ok((
                false,
                metrics,
                Some(format!(
                    "evaluator exited with {:?} (signal {:?}, timed out {})",
                    outcome.exit_code, outcome.signal, outcome.timed_out
                )),
            ));
        }
        let primary = spec.primary().unwrap_or_default();
        match metrics.get(primary) {
            Some(v) if v.is_finite() => Ok((true, metrics, None)),
            Some(v) => Ok((false, metrics.clone(), Some(format!("{primary} is {v}")))),
            None => Ok((false, metrics, Some(format!("{primary} was not printed")))),
        }
    }

    /// Evaluate a run's artifacts into a storable result.
    pub fn evaluate_run(&self, run_id: i64, artifacts: &Path) -> Result<HiddenResult, SchedError> {
        let (ok, metrics, error) = self.evaluate(artifacts, &format!("run-{run_id}"))?;
        Ok(HiddenResult {
            run_id,
            ok,
            metrics,
            error,
            evaluated_at: now_ms(),
        })
    }

    /// Score every gold case and compare with its known score.
    pub fn calibrate(&self, program_id: i64) -> Result<Calibration, SchedError> {
        let Some(spec) = &self.contract.hidden else {
            return Err(SchedError::Program {
                program: format!("#{program_id}"),
                message: "the contract has no [hidden] evaluator to calibrate".into(),
            });
        };
        let primary = spec.primary().unwrap_or_default().to_string();
        let gold_wt = self.work_dir.join("gold-checkout");
        let _ = self.repo.remove_worktree(&gold_wt);
        let wt = self.repo.add_worktree(&gold_wt, self.commit)?;
        let bench = wt.bench_dir();
        let mut cases = Vec::new();
        let mut known = Vec::new();
        let mut measured = Vec::new();
        let mut all_ok = true;
        for (i, g) in self.contract.gold.iter().enumerate() {
            let src = bench.join(&g.path);
            let artifacts = if src.is_dir() {
                src.clone()
            } else {
                let dir = self.work_dir.join(format!("gold-{i}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).map_err(|e| SchedError::io(&dir, e))?;
                let name: PathBuf = self
                    .contract
                    .run
                    .artifacts
                    .first()
                    .map(PathBuf::from)
                    .or_else(|| src.file_name().map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from("artifact"));
                let dst = dir.join(name);
                if let Err(e) = std::fs::copy(&src, &dst) {
                    all_ok = false;
                    cases.push(json!({"name": g.name, "known": g.score, "error": format!("{}: {e}", src.display())}));
                    continue;
                }
                dir
            };
            let (ok, metrics, error) = self.evaluate(&artifacts, &format!("gold-{i}"))?;
            let score = metrics.get(&primary).copied().filter(|v| v.is_finite());
            match (ok, score) {
                (true, Some(s)) => {
                    known.push(g.score);
                    measured.push(s);
                    cases.push(json!({"name": g.name, "known": g.score, "measured": s, "error": (s - g.score).abs()}));
                }
                _ => {
                    all_ok = false;
                    cases.push(json!({"name": g.name, "known": g.score, "error": error.unwrap_or_else(|| "no score".into())}));
                }
            }
        }
        let _ = self.repo.remove_worktree(&gold_wt);
        let rho = spearman(&known, &measured);
        let max_err = known
            .iter()
            .zip(&measured)
            .map(|(k, m)| (k - m).abs())
            .fold(None, |acc: Option<f64>, e| {
                Some(acc.map_or(e, |a| a.max(e)))
            });
        let mut reasons = Vec::new();
        if self.contract.gold.is_empty() {
            reasons.push("no gold cases in the contract".to_string());
        }
        if !all_ok {
            reasons.push("the evaluator failed on at least one gold case".into());
        }
        if known.len() >= 2 {
            match rho {
                Some(r) if r >= spec.min_rank_correlation => {}
                Some(r) => reasons.push(format!(
                    "rank correlation {r:.3} is below {}",
                    spec.min_rank_correlation
                )),
                None => reasons.push("rank correlation is undefined (constant scores)".into()),
            }
        } else if spec.max_error.is_none() {
            reasons.push("need at least 2 gold cases, or hidden.max_error".into());
        }
        if let (Some(limit), Some(e)) = (spec.max_error, max_err) {
            if e > limit {
                reasons.push(format!("max error {e:.6} exceeds {limit}"));
            }
        }
        Ok(Calibration {
            id: 0,
            program_id,
            commit_sha: self.commit.to_string(),
            passed: reasons.is_empty(),
            rank_correlation: rho,
            max_error: max_err,
            details: json!({"cases": cases, "reasons": reasons}),
            created_at: now_ms(),
        })
    }
}
