//! Executing one run: [`RunCtx`] holds everything a run needs apart from a store connection
//! and the repository (the contract, the executor, the slots and resources, the machine's
//! fingerprint), so the runs of one attempt can execute on threads of their own. It owns the
//! path from a queued run to its result: a slot, a placement, a checkout (kept between runs
//! with `run.reuse_checkout`), the request with its environment, the executor (local, under
//! the sandbox, Slurm, SSH or a container), and the classification of the outcome, including
//! sandbox denials.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use picidae_core::{
    Assignment, AttemptKind, Boundary, Contract, RunBreach, RunStatus, SCREEN_SEED,
};
use picidae_exec::slurm::{SlurmJobSpec, SlurmResources};
use picidae_exec::{
    ClusterRun, JobSpec, LocalExecutor, RunHandle, RunOutcome, RunRequest, Sandbox, SandboxSpec,
};
use picidae_git::Repo;
use picidae_store::{Attempt, RunResult};

use crate::cancels::{RunCancels, CANCELLED_BY_USER};
use crate::executors::ExecutorSpec;
use crate::hidden::scrub;
use crate::outcome::REWROTE_PROTECTED;
use crate::remote::{fetch_remote_outputs, remote_request, remote_safe};
use crate::resources::ResourcePool;
use crate::runner::{Events, LoopEvent};
use crate::slots::{Priority, SlotPool};
use crate::{Project, SchedError};

/// A run checkout kept between runs (`run.reuse_checkout`).
#[derive(Debug, Clone)]
pub(crate) struct RunCheckout {
    /// The worktree's path.
    pub(crate) path: PathBuf,
    /// The commit it holds.
    pub(crate) commit: String,
    /// The benchmark directory inside it.
    pub(crate) bench_dir: PathBuf,
}

/// The run checkout a program keeps between runs, if it has one now.
pub(crate) type KeptCheckout = Option<RunCheckout>;

/// Everything executing one run needs, apart from a store connection and the repository:
/// cheap to clone, so runs of one program can execute on threads of their own (each with its
/// own connection) while the loop waits for all of them.
#[derive(Clone)]
pub(crate) struct RunCtx {
    pub(crate) program: String,
    /// A short hash of the project's directory, to keep names on shared daemons apart.
    pub(crate) project_tag: String,
    pub(crate) base_commit: String,
    pub(crate) contract: Contract,
    pub(crate) executor: ExecutorSpec,
    /// Where screen-stage runs execute instead, when the program says so.
    pub(crate) screen_executor: Option<ExecutorSpec>,
    pub(crate) data_dir: PathBuf,
    pub(crate) lease_owner: String,
    pub(crate) host: String,
    pub(crate) fp_hash: String,
    pub(crate) fp_json: String,
    pub(crate) slots: Option<Arc<SlotPool>>,
    pub(crate) resources: Option<Arc<ResourcePool>>,
    /// Where each run registers its cancel flag, so a person's request stops it alone.
    pub(crate) cancels: Option<Arc<RunCancels>>,
}

/// The machine a run executes on, as its run row records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunsOn<'a> {
    pub(crate) host: &'a str,
    /// Hash of its environment fingerprint.
    pub(crate) fp_hash: &'a str,
    /// The fingerprint itself, as JSON.
    pub(crate) fp_json: &'a str,
}

impl RunCtx {
    /// This machine, where the context was made.
    fn here(&self) -> RunsOn<'_> {
        RunsOn {
            host: &self.host,
            fp_hash: &self.fp_hash,
            fp_json: &self.fp_json,
        }
    }

    /// Environment variables carrying an attempt's environment parameters (defaults where the
    /// attempt has no value).
    pub(crate) fn env_param_vars(&self, attempt: &Attempt) -> Vec<(String, String)> {
        let assigned: Option<Assignment> = attempt
            .params
            .as_ref()
            .and_then(|p| serde_json::from_value(p.clone()).ok());
        self.contract
            .params
            .iter()
            .filter_map(|p| {
                let var = p.env.clone()?;
                let v = assigned
                    .as_ref()
                    .and_then(|a| a.get(&p.name).cloned())
                    .or_else(|| p.default.clone())?;
                Some((var, v))
            })
            .collect()
    }

    /// Execute one seed of an attempt in its own checkout. The run is recorded as started
    /// before waiting; the returned result is not yet stored (the caller stores it, together
    /// with the attempt's decision when it is the last one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn execute_run(
        &self,
        project: &mut Project,
        repo: &Repo,
        attempt: &Attempt,
        seed: i64,
        cancel: &AtomicBool,
        events: Events<'_>,
        run_checkout: Option<&mut KeptCheckout>,
    ) -> Result<(i64, RunResult), SchedError> {
        if let (SCREEN_SEED, Some(screen)) = (seed, &self.screen_executor) {
            // The screen stage on its own (cheaper) executor class.
            let ctx = RunCtx {
                executor: screen.clone(),
                screen_executor: None,
                ..self.clone()
            };
            return ctx.execute_run(project, repo, attempt, seed, cancel, events, run_checkout);
        }
        let run = project
            .store
            .insert_run(attempt.id, seed, self.executor.name())?;
        // This run's own flag, set when a person cancels it (or the loop is cancelled); the
        // loop's flag where nothing polls for single runs.
        let registered = self.cancels.as_ref().map(|c| c.register(run.id));
        let cancel: &AtomicBool = match &registered {
            Some(r) => {
                if cancel.load(Ordering::SeqCst) {
                    r.flag.store(true, Ordering::SeqCst);
                }
                &r.flag
            }
            None => cancel,
        };
        let result = self.execute_registered(
            project,
            repo,
            attempt,
            (run.id, seed),
            cancel,
            events,
            run_checkout,
        )?;
        drop(registered);
        Ok((run.id, self.by_user(project, run.id, result)?))
    }

    /// A cancelled run's result says so when a person asked for it: its seed then counts as
    /// done (see [`crate::cancels`]).
    fn by_user(
        &self,
        project: &Project,
        run_id: i64,
        mut result: RunResult,
    ) -> Result<RunResult, SchedError> {
        if result.status == Some(RunStatus::Cancelled)
            && !project.store.cancel_requested_runs(&[run_id])?.is_empty()
        {
            result.error = Some(match result.error.take() {
                Some(e) if e.starts_with("cancelled while") => {
                    format!(
                        "{CANCELLED_BY_USER} ({})",
                        e.trim_start_matches("cancelled ")
                    )
                }
                _ => CANCELLED_BY_USER.to_string(),
            });
        }
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    fn execute_registered(
        &self,
        project: &mut Project,
        repo: &Repo,
        attempt: &Attempt,
        (run_id, seed): (i64, i64),
        cancel: &AtomicBool,
        events: Events<'_>,
        run_checkout: Option<&mut KeptCheckout>,
    ) -> Result<RunResult, SchedError> {
        let name = self.program.clone();
        // Queued until a slot is free (fair share among programs); cancellable while waiting.
        let pool = self.slots.clone();
        let slot = match &pool {
            Some(p) => match p.acquire_as(&name, slot_priority(attempt, seed), &|| {
                cancel.load(Ordering::SeqCst)
            }) {
                Some(g) => Some(g),
                None => {
                    let r = RunResult {
                        status: Some(RunStatus::Cancelled),
                        error: Some("cancelled while waiting for a slot".into()),
                        ..Default::default()
                    };
                    return Ok(r);
                }
            },
            None => None,
        };
        // Then until its GPUs, CPUs and memory are free on this machine (a run on a remote
        // worker uses the worker's).
        let resources = match self.executor {
            // A remote cluster's nodes hold the run, not this machine.
            ExecutorSpec::Workers { .. }
            | ExecutorSpec::Ray { .. }
            | ExecutorSpec::SkyPilot { .. } => None,
            _ => self.resources.clone(),
        };
        let placement = match &resources {
            Some(r) => match r.acquire(&self.contract.run.resources, &|| {
                cancel.load(Ordering::SeqCst)
            }) {
                Ok(Some(p)) => Some(p),
                Ok(None) => {
                    let r = RunResult {
                        status: Some(RunStatus::Cancelled),
                        error: Some("cancelled while waiting for resources".into()),
                        ..Default::default()
                    };
                    return Ok(r);
                }
                Err(why) => {
                    let r = RunResult {
                        status: Some(RunStatus::Crashed),
                        error: Some(format!("cannot be placed: {why}")),
                        ..Default::default()
                    };
                    return Ok(r);
                }
            },
            None => None,
        };
        let gpus: Vec<u32> = placement
            .as_ref()
            .map(|p| p.gpus.clone())
            .unwrap_or_default();
        let gpu_count = if placement.is_some() {
            gpus.len()
        } else {
            self.contract.run.resources.gpus as usize
        };
        project
            .store
            .set_run_placement(run_id, &gpus, gpu_count, &self.lease_owner)?;
        let cuda = placement.as_ref().map(|p| p.cuda_visible_devices());
        let run_dir = project.run_dir(&name, run_id);
        // A checkout is kept between runs only when asked for and when this run is the only
        // one of its program in flight (parallel runs each get their own).
        let reuse = self.contract.run.reuse_checkout && run_checkout.is_some();
        let wt_path = if reuse {
            project.worktree_dir(&name, "run")
        } else {
            project.worktree_dir(&name, &format!("run-{}", run_id))
        };
        let mut run_checkout = run_checkout;
        let result = match self.start_and_wait(
            project,
            repo,
            run_checkout.as_deref_mut(),
            attempt,
            &run_dir,
            &wt_path,
            (run_id, seed),
            cuda,
            cancel,
            events,
        ) {
            Ok(outcome) => {
                let mut r = self.classify(&outcome, &run_dir);
                if self.check_checkout(repo, &wt_path, &mut r) {
                    // A tampered checkout is never reused.
                    if let Some(k) = run_checkout {
                        *k = None;
                    }
                    let _ = repo.remove_worktree(&wt_path);
                }
                r
            }
            Err(e) => RunResult {
                status: Some(RunStatus::Crashed),
                error: Some(format!("could not run: {e}")),
                ..Default::default()
            },
        };
        drop(placement);
        drop(slot);
        if !reuse {
            let _ = repo.remove_worktree(&wt_path);
        }
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_and_wait(
        &self,
        project: &mut Project,
        repo: &Repo,
        run_checkout: Option<&mut KeptCheckout>,
        attempt: &Attempt,
        run_dir: &Path,
        wt_path: &Path,
        (run_id, seed): (i64, i64),
        cuda_visible_devices: Option<String>,
        cancel: &AtomicBool,
        events: Events<'_>,
    ) -> Result<RunOutcome, SchedError> {
        let commit = attempt.commit.clone().ok_or_else(|| SchedError::Program {
            program: self.program.clone(),
            message: format!("attempt {} has no commit", attempt.seq),
        })?;
        let artifacts = run_dir.join("artifacts");
        std::fs::create_dir_all(&artifacts).map_err(|e| SchedError::io(&artifacts, e))?;
        let started = LoopEvent::RunStarted {
            seq: attempt.seq,
            run_id,
            seed,
        };
        if let ExecutorSpec::Workers { pool } = &self.executor {
            // Nothing runs here: the tree goes to a worker (`workers.rs`).
            let env = self.run_env(attempt, run_dir, (run_id, seed), None);
            let spec = self.work_spec(repo, attempt, (run_id, seed), env)?;
            return crate::workers::offer_and_wait(
                project,
                (run_id, pool),
                Some(&spec),
                run_dir,
                cancel,
                || events(&started),
            );
        }
        let mut kept = run_checkout;
        let bench_dir = match kept.as_deref() {
            // The kept checkout already holds this commit.
            Some(Some(k)) if k.path == wt_path && k.commit == commit && k.bench_dir.is_dir() => {
                k.bench_dir.clone()
            }
            _ => {
                if let Some(k) = kept.as_mut() {
                    **k = None;
                }
                let _ = repo.remove_worktree(wt_path);
                let wt = repo.add_worktree(wt_path, &commit)?;
                scrub(&self.contract, &wt.bench_dir())?;
                if let Some(k) = kept {
                    *k = Some(RunCheckout {
                        path: wt_path.to_path_buf(),
                        commit: commit.clone(),
                        bench_dir: wt.bench_dir(),
                    });
                }
                wt.bench_dir()
            }
        };
        let run = &self.contract.run;
        let env = self.run_env(
            attempt,
            run_dir,
            (run_id, seed),
            cuda_visible_devices.clone(),
        );
        let (time_budget, timeout) = self.contract.stage_budget(seed);
        let req = RunRequest {
            command: run.command.clone(),
            cwd: bench_dir,
            env,
            time_budget,
            timeout,
            grace: run.grace,
            stdout_path: run_dir.join("stdout.log"),
            stderr_path: run_dir.join("stderr.log"),
            log_cap_bytes: run.log_cap_bytes,
        };
        match self.executor.clone() {
            ExecutorSpec::Local => {
                let req = if self.contract.run.sandbox {
                    let tracked = repo.tracked_files(&commit)?;
                    self.sandbox_for(wt_path, run_dir, &tracked, repo.prefix())?
                        .wrap(&req)?
                } else {
                    req
                };
                let limits = picidae_exec::Limits {
                    memory_mb: self.contract.run.resources.memory_mb,
                    max_processes: self.contract.run.resources.max_processes,
                };
                let child = LocalExecutor::with_limits(limits).spawn(&req)?;
                project.store.mark_run_started(
                    run_id,
                    child.pid() as i64,
                    child.pgid() as i64,
                    &self.host,
                    Some((&self.fp_hash, &self.fp_json)),
                    &run_dir.display().to_string(),
                )?;
                events(&started);
                Ok(child.wait(cancel)?)
            }
            spec @ ExecutorSpec::Slurm { .. } => {
                let ex = spec.slurm().ok_or_else(|| self.no_executor())?;
                let r = &self.contract.run.resources;
                let job = ex.spawn_with(
                    &req,
                    &SlurmJobSpec {
                        name: Some(format!("picidae-{}-{run_id}", self.program)),
                        resources: SlurmResources {
                            cpus: Some(r.cpus.max(1)),
                            memory_mb: r.memory_mb,
                            gpus: (r.gpus > 0).then_some(r.gpus),
                        },
                    },
                )?;
                let job: Box<dyn RunHandle> = Box::new(job);
                self.wait_remote(project, (run_id, run_dir), job, self.here(), cancel, || {
                    events(&started)
                })
            }
            spec @ ExecutorSpec::Container { .. } => {
                let readonly = if self.data_dir.is_dir() {
                    vec![self.data_dir.clone()]
                } else {
                    Vec::new()
                };
                let gpus = cuda_visible_devices
                    .filter(|d| !d.is_empty())
                    .map(|d| format!("device={d}"))
                    .or_else(|| (self.contract.run.resources.gpus > 0).then(|| "all".to_string()));
                let ex = spec
                    .container(&self.contract.run, gpus, readonly)
                    .ok_or_else(|| self.no_executor())?;
                // Inside the container its GPUs are numbered from 0: the host's indices
                // would name the wrong devices.
                let mut req = req;
                req.env.retain(|(k, _)| k != "CUDA_VISIBLE_DEVICES");
                // Unique on a daemon that several projects share.
                let name = format!(
                    "picidae-{}-{}-run-{run_id}",
                    remote_safe(&self.program),
                    self.project_tag
                );
                let job: Box<dyn RunHandle> = Box::new(ex.spawn_named(&name, &req)?);
                self.wait_remote(project, (run_id, run_dir), job, self.here(), cancel, || {
                    events(&started)
                })
            }
            spec @ ExecutorSpec::Ssh { .. } => {
                let ex = spec.ssh().ok_or_else(|| self.no_executor())??;
                let name = format!("{}-run-{run_id}", remote_safe(&self.program));
                let remote_dir = format!("{}/{name}", ex.remote_root());
                let req = remote_request(req, &remote_dir);
                let fp = ex.machine_fingerprint(Some(&self.base_commit))?;
                let fp_json = serde_json::to_string(&fp).unwrap_or_default();
                let job: Box<dyn RunHandle> = Box::new(ex.spawn_named(&name, &req)?);
                let hash = fp.hash();
                let outcome = self.wait_remote(
                    project,
                    (run_id, run_dir),
                    job,
                    RunsOn {
                        host: &fp.hostname,
                        fp_hash: &hash,
                        fp_json: &fp_json,
                    },
                    cancel,
                    || events(&started),
                )?;
                fetch_remote_outputs(&ex, &remote_dir, run_dir);
                Ok(outcome)
            }
            spec @ (ExecutorSpec::Ray { .. } | ExecutorSpec::SkyPilot { .. }) => {
                let r = &self.contract.run.resources;
                let job_spec = JobSpec {
                    name: self.cluster_job_name(run_id),
                    cpus: r.cpus.max(1),
                    gpus: r.gpus,
                    memory_mb: r.memory_mb,
                    metrics_path: Some(run_dir.join("metrics.jsonl")),
                };
                let job: Box<dyn ClusterRun> = match (spec.ray(), spec.skypilot()) {
                    (Some(ex), _) => Box::new(ex?.spawn_with(&req, &job_spec)?),
                    (None, Some(ex)) => Box::new(ex.spawn_with(&req, &job_spec)?),
                    (None, None) => return Err(self.no_executor()),
                };
                // Stored before anything waits: a restart re-adopts the job, queued or not.
                project.store.set_run_executor_ref(run_id, &job.id())?;
                let node = job.node_fingerprint(Some(&self.base_commit), cancel, Duration::MAX)?;
                self.wait_on_node(project, (run_id, run_dir), job, node, cancel, || {
                    events(&started)
                })
            }
            // Handled before a checkout is made.
            ExecutorSpec::Workers { .. } => Err(self.no_executor()),
        }
    }

    /// Record a remote run as started and wait for it. Its handle is stored before waiting,
    /// so a restarted coordinator re-adopts it; `host` and the fingerprint are the machine
    /// that runs it, where known.
    pub(crate) fn wait_remote(
        &self,
        project: &mut Project,
        (run_id, run_dir): (i64, &Path),
        job: Box<dyn RunHandle>,
        on: RunsOn<'_>,
        cancel: &AtomicBool,
        started: impl FnOnce(),
    ) -> Result<RunOutcome, SchedError> {
        project.store.set_run_executor_ref(run_id, &job.id())?;
        project.store.mark_run_started(
            run_id,
            0,
            0,
            on.host,
            Some((on.fp_hash, on.fp_json)),
            &run_dir.display().to_string(),
        )?;
        started();
        Ok(job.wait(cancel)?)
    }

    /// The name of a run's job on a shared cluster (Ray, SkyPilot): unique across projects.
    fn cluster_job_name(&self, run_id: i64) -> String {
        format!(
            "picidae-{}-{}-run-{run_id}",
            remote_safe(&self.program),
            self.project_tag
        )
    }

    /// Wait for a cluster job (Ray, SkyPilot) whose handle is already stored, recorded as
    /// started on the node that runs it with that node's fingerprint (this machine's when the
    /// job never said).
    fn wait_on_node(
        &self,
        project: &mut Project,
        run: (i64, &Path),
        job: Box<dyn ClusterRun>,
        node: Option<picidae_exec::Fingerprint>,
        cancel: &AtomicBool,
        started: impl FnOnce(),
    ) -> Result<RunOutcome, SchedError> {
        let job: Box<dyn RunHandle> = job;
        let Some(fp) = node else {
            return self.wait_remote(project, run, job, self.here(), cancel, started);
        };
        let (hash, json) = (fp.hash(), serde_json::to_string(&fp).unwrap_or_default());
        let on = RunsOn {
            host: &fp.hostname,
            fp_hash: &hash,
            fp_json: &json,
        };
        self.wait_remote(project, run, job, on, cancel, started)
    }

    /// A run's environment: the seed, where its metrics and artifacts go, the setup data, the
    /// stage (`PICIDAE_STAGE`: `screen` or `full`) and its time budget, its ids, the attempt's
    /// environment parameters and the GPUs it holds.
    fn run_env(
        &self,
        attempt: &Attempt,
        run_dir: &Path,
        (run_id, seed): (i64, i64),
        cuda_visible_devices: Option<String>,
    ) -> Vec<(String, String)> {
        let run = &self.contract.run;
        let artifacts = run_dir.join("artifacts");
        let mut env = vec![
            (run.seed_env.clone(), seed.to_string()),
            (
                "PICIDAE_METRICS".into(),
                run_dir.join("metrics.jsonl").display().to_string(),
            ),
            ("PICIDAE_ARTIFACTS".into(), artifacts.display().to_string()),
            ("PICIDAE_DATA".into(), self.data_dir.display().to_string()),
            (
                "PICIDAE_TIME_BUDGET".into(),
                format!("{}", self.contract.stage_budget(seed).0.as_secs_f64()),
            ),
            ("PICIDAE_STAGE".into(), stage_name(seed).into()),
            ("PICIDAE_RUN_ID".into(), run_id.to_string()),
            ("PICIDAE_ATTEMPT".into(), attempt.seq.to_string()),
            ("PICIDAE_PROGRAM".into(), self.program.clone()),
        ];
        if run.seed_env != "PICIDAE_SEED" {
            env.push(("PICIDAE_SEED".into(), seed.to_string()));
        }
        env.extend(self.env_param_vars(attempt));
        if let Some(devices) = cuda_visible_devices.clone() {
            // The GPUs this run holds, and only those.
            env.push(("PICIDAE_GPUS".into(), devices.clone()));
            env.push(("CUDA_VISIBLE_DEVICES".into(), devices));
        }
        env
    }

    /// After a run whose checkout is on this machine: a tracked, non-editable file that no
    /// longer matches the commit makes the run invalid ([`crate::readonly`]). Returns whether
    /// the checkout was tampered with.
    fn check_checkout(&self, repo: &Repo, wt_path: &Path, r: &mut RunResult) -> bool {
        if matches!(self.executor, ExecutorSpec::Ssh { .. }) || !wt_path.is_dir() {
            return false;
        }
        let Ok(boundary) = Boundary::new(&self.contract.boundary) else {
            return false;
        };
        let changes = match repo.worktree(wt_path).changed_paths() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("checking run checkout {}: {e}", wt_path.display());
                return false;
            }
        };
        let hidden = self.contract.hidden.as_ref().map(|h| h.files.as_slice());
        let changed = crate::readonly::rewritten(&changes, &boundary, hidden.unwrap_or(&[]));
        if changed.is_empty() {
            return false;
        }
        let why = format!(
            "{REWROTE_PROTECTED}: {} (not editable; changed while the run executed)",
            changed.join(", ")
        );
        if r.status != Some(RunStatus::Cancelled) {
            r.status = Some(RunStatus::Invalid);
            r.primary_value = None;
        }
        r.violations.push(why.clone());
        r.error = Some(why);
        r.breach = Some(RunBreach::RewroteProtected);
        true
    }

    pub(crate) fn no_executor(&self) -> SchedError {
        SchedError::Program {
            program: self.program.clone(),
            message: format!("executor {} is not usable", self.executor.label()),
        }
    }

    /// The sandbox of one run: its checkout writable except the commit's non-editable files
    /// ([`crate::readonly`]), its run directory read-only except `artifacts/` and the metrics
    /// file (the logs there are the harness's), the prepared data read-only, GPUs' device
    /// nodes when it asks for GPUs; nothing else of the machine.
    pub(crate) fn sandbox_for(
        &self,
        checkout: &Path,
        run_dir: &Path,
        tracked: &[String],
        prefix: &Path,
    ) -> Result<Sandbox, SchedError> {
        if !Sandbox::available() {
            return Err(SchedError::Program {
                program: self.program.clone(),
                message: "the contract asks for `run.sandbox` but bubblewrap (`bwrap`) is not available here; install it (Debian: bubblewrap)".into(),
            });
        }
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let mut readonly = if self.data_dir.is_dir() {
            vec![canon(&self.data_dir)]
        } else {
            Vec::new()
        };
        let boundary = Boundary::new(&self.contract.boundary).map_err(|e| SchedError::Program {
            program: self.program.clone(),
            message: format!("boundary.editable: {e}"),
        })?;
        let hidden = self.contract.hidden.as_ref().map(|h| h.files.as_slice());
        let checkout = canon(checkout);
        for rel in
            crate::readonly::protected_binds(tracked, prefix, &boundary, hidden.unwrap_or(&[]))
        {
            let p = checkout.join(rel);
            // A committed link is left as it is (binding would expose its target); the check
            // after the run sees it replaced.
            if std::fs::symlink_metadata(&p).is_ok_and(|m| !m.file_type().is_symlink()) {
                readonly.push(p);
            }
        }
        let run_dir = canon(run_dir);
        let metrics = run_dir.join("metrics.jsonl");
        if std::fs::symlink_metadata(&metrics).is_err() {
            std::fs::File::create(&metrics).map_err(|e| SchedError::io(&metrics, e))?;
        }
        readonly.push(run_dir.clone());
        Ok(Sandbox::new(SandboxSpec {
            writable: vec![checkout, run_dir.join("artifacts"), metrics],
            readonly,
            hidden: Vec::new(),
            devices: if self.contract.run.resources.gpus > 0 {
                picidae_exec::sandbox::nvidia_devices()
            } else {
                Vec::new()
            },
            network: self.contract.run.network.unwrap_or(true),
        }))
    }
}

/// A run's priority for a slot within its program: a baseline's or measurement's seeds and a
/// candidate's seeds after the first (its verification) settle what was found, and go before
/// the first run of a new exploration.
fn slot_priority(attempt: &Attempt, seed: i64) -> Priority {
    if attempt.kind != AttemptKind::Explore || seed > 0 {
        Priority::Verify
    } else {
        Priority::Explore
    }
}

/// What `PICIDAE_STAGE` tells a run on `seed`.
fn stage_name(seed: i64) -> &'static str {
    if seed == SCREEN_SEED {
        "screen"
    } else {
        "full"
    }
}
