//! The Slurm executor: runs a [`RunRequest`] as a Slurm batch job.
//!
//! This module owns everything Picidae does through the Slurm client
//! commands: writing the batch script, submitting it with `sbatch`, querying
//! job states (`squeue`, then `scontrol show job`, then the completion log
//! via `sacct -c`), signalling and cancelling with `scancel`, and turning a
//! finished job into a [`RunOutcome`](crate::RunOutcome). It also owns the
//! mapping from Slurm's job states to what the scheduler should make of them
//! ([`SlurmJobState`], [`SlurmDisposition`]).
//!
//! Lifecycle of a run:
//!
//! 1. [`SlurmExecutor::spawn_with`] validates the request, creates the log
//!    files, writes `<stdout file name>.sbatch` next to the stdout log (the
//!    script `cd`s to `cwd`, exports `env`, then
//!    `exec /bin/sh -c <command>`), and submits it with
//!    `sbatch --parsable`. Slurm writes stdout/stderr straight into the log
//!    files. The job's own `--time` limit is the request's `timeout + grace`
//!    rounded up to minutes: a backstop only, since Picidae owns budgets.
//! 2. [`SlurmRun::wait`] polls the job every
//!    [`SlurmOptions::poll_interval`]. The request's `timeout` counts from the
//!    moment the job started running (time spent pending in the queue is not
//!    charged). On timeout or cancellation the job's processes get SIGTERM
//!    (`scancel --signal=TERM --full`), then after `grace` SIGKILL and a plain
//!    `scancel`.
//! 3. When the job is finished, the stdout tail is read from the log file and
//!    each log file longer than `log_cap_bytes` is truncated to the cap plus
//!    a marker line.
//!
//! Dropping a [`SlurmRun`] without waiting does **not** cancel the job: the
//! job keeps running under Slurm, and a restarted coordinator resumes waiting
//! on it with [`SlurmExecutor::reattach`] using the persisted
//! [`RunHandle::id`] (`slurm:<jobid>`).
//!
//! Jobs that end for reasons outside the run's control (`NODE_FAIL`,
//! `PREEMPTED`, `BOOT_FAIL`, held by Slurm, or forgotten by Slurm) are not
//! outcomes: [`SlurmRun::wait`] returns [`ExecError::SlurmJobLost`] so the
//! scheduler can requeue the run. Jobs are submitted with `--no-requeue` by
//! default so Slurm does not rerun them behind Picidae's back.
//!
//! All time fields are requested as Unix seconds (`SLURM_TIME_FORMAT=%s`).
//!
//! The work is split by job:
//!
//! * `state` — [`SlurmJobState`], [`SlurmDisposition`], [`SlurmJobInfo`]:
//!   Slurm's job states and what Picidae makes of them.
//! * `submit` — what `sbatch` is given: the batch script, its path and the
//!   argument values.
//! * `query` — running the Slurm client commands (`squeue`, `scontrol`,
//!   `sacct`, `scancel`).
//! * `parse` — reading their output and Picidae's job ids.
//! * `run` — [`SlurmRun`], one submitted job driven to completion.
//! * `log_files` — the run's log files: created before submission, tail read
//!   and capped after the job.
//!
//! This file holds the executor itself ([`SlurmExecutor`]) and its settings.

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::call::now_unix_ms;
use crate::executor::{Executor, RunHandle};
use crate::{ExecError, RunRequest};

mod log_files;
mod parse;
mod query;
mod run;
mod state;
mod submit;

use log_files::{absolute, create_log};
use parse::normalize_job_id;
pub use parse::{
    decode_exit_pair, decode_wait_status, parse_sacct, parse_sbatch_parsable, parse_scontrol_job,
    parse_squeue,
};
use query::{query_jobs, run_slurm, scancel};
pub use run::SlurmRun;
pub use state::{SlurmDisposition, SlurmJobInfo, SlurmJobState};
use submit::{
    batch_script, escape_pattern, is_shell_name, path_str, resource_args, sanitize_job_name,
    script_path_for, time_limit_minutes,
};

/// Default pause between two state queries of one waiting run.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Default job name when neither the options nor the job spec give one.
pub const DEFAULT_JOB_NAME: &str = "picidae";
/// Prefix of [`RunHandle::id`] for Slurm runs.
pub const ID_PREFIX: &str = "slurm:";

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// Resources requested for one job. `None` leaves Slurm's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmResources {
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--mem`, in megabytes.
    pub memory_mb: Option<u64>,
    /// `--gres=gpu:<n>`.
    pub gpus: Option<u32>,
}

/// Per-submission settings for [`SlurmExecutor::spawn_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJobSpec {
    /// `--job-name` (e.g. the run id). `None` uses
    /// [`SlurmOptions::job_name`].
    pub name: Option<String>,
    /// Resources for this job.
    pub resources: SlurmResources,
}

/// Settings of a [`SlurmExecutor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmOptions {
    /// `--partition`; `None` uses the cluster's default partition.
    pub partition: Option<String>,
    /// Extra `sbatch` arguments, passed verbatim before the script path
    /// (e.g. `--account=x`, `--qos=y`).
    pub extra_args: Vec<String>,
    /// Pause between two state queries of a waiting run.
    pub poll_interval: Duration,
    /// Job name used when a [`SlurmJobSpec`] gives none.
    pub job_name: String,
    /// Resources used by [`Executor::spawn`].
    pub resources: SlurmResources,
    /// Let Slurm requeue the job itself (node failure, preemption). Off by
    /// default: Picidae requeues lost runs itself.
    pub requeue: bool,
    /// How long [`SlurmRun::wait`] tolerates failing Slurm queries (e.g. a
    /// restarting controller) before giving up with an error.
    pub query_failure_limit: Duration,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            partition: None,
            extra_args: Vec::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            job_name: DEFAULT_JOB_NAME.to_string(),
            resources: SlurmResources::default(),
            requeue: false,
            query_failure_limit: Duration::from_secs(300),
        }
    }
}

// ---------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------

/// Runs commands as Slurm batch jobs through the Slurm client commands found
/// on `PATH`.
#[derive(Debug, Clone, Default)]
pub struct SlurmExecutor {
    opts: SlurmOptions,
}

impl SlurmExecutor {
    /// Creates an executor with these options.
    pub fn new(opts: SlurmOptions) -> SlurmExecutor {
        SlurmExecutor { opts }
    }

    /// The executor's options.
    pub fn options(&self) -> &SlurmOptions {
        &self.opts
    }

    /// Checks that the Slurm client commands exist and the controller
    /// answers (`sinfo`).
    pub fn check_cluster() -> Result<(), ExecError> {
        run_slurm(
            "sinfo",
            &["-h".to_string(), "-o".to_string(), "%P".to_string()],
        )
        .map(|_| ())
    }

    /// Submits `req` with `spec` and returns a handle on the job as soon as
    /// `sbatch` has accepted it (the job may still be pending).
    pub fn spawn_with(&self, req: &RunRequest, spec: &SlurmJobSpec) -> Result<SlurmRun, ExecError> {
        req.validate()?;
        let cwd = fs::canonicalize(&req.cwd).map_err(|e| {
            ExecError::InvalidRequest(format!("cannot resolve cwd {}: {e}", req.cwd.display()))
        })?;
        let cwd_str = path_str(&cwd, "cwd")?;
        for (k, _) in &req.env {
            if !is_shell_name(k) {
                return Err(ExecError::InvalidRequest(format!(
                    "environment variable name {k:?} is not a shell identifier"
                )));
            }
        }
        let stdout_path = absolute(&req.stdout_path)?;
        let stderr_path = absolute(&req.stderr_path)?;
        let shared = stdout_path == stderr_path;
        create_log(&stdout_path)?;
        if !shared {
            create_log(&stderr_path)?;
        }

        let script_path = script_path_for(&stdout_path);
        let script = batch_script(cwd_str, &req.env, &req.command);
        fs::write(&script_path, script).map_err(|source| ExecError::LocalIo {
            path: script_path.clone(),
            source,
        })?;

        let name = spec.name.as_deref().unwrap_or(&self.opts.job_name);
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name={}", sanitize_job_name(name)),
            format!(
                "--output={}",
                escape_pattern(path_str(&stdout_path, "stdout path")?)?
            ),
        ];
        if !shared {
            args.push(format!(
                "--error={}",
                escape_pattern(path_str(&stderr_path, "stderr path")?)?
            ));
        }
        args.push(format!(
            "--time={}",
            time_limit_minutes(req.timeout.saturating_add(req.grace))
        ));
        args.push(format!("--chdir={cwd_str}"));
        args.push("--open-mode=truncate".to_string());
        if !self.opts.requeue {
            args.push("--no-requeue".to_string());
        }
        if let Some(p) = &self.opts.partition {
            args.push(format!("--partition={p}"));
        }
        args.extend(resource_args(&spec.resources));
        args.extend(self.opts.extra_args.iter().cloned());
        args.push(path_str(&script_path, "script path")?.to_string());

        let submitted_at_unix_ms = now_unix_ms();
        let out = run_slurm("sbatch", &args)?;
        let job_id = parse_sbatch_parsable(&out).ok_or_else(|| ExecError::Slurm {
            command: "sbatch".into(),
            message: format!("unexpected output {:?}", out.trim()),
        })?;
        tracing::info!(job_id = %job_id, name, "submitted slurm job");
        Ok(SlurmRun {
            job_id,
            opts: self.opts.clone(),
            req: req.clone(),
            stdout_path,
            stderr_path,
            submitted_at_unix_ms: Some(submitted_at_unix_ms),
        })
    }

    /// Resumes waiting on an already submitted job (after a coordinator
    /// restart). `job_id` is a Slurm job id or a persisted
    /// [`RunHandle::id`] (`slurm:<jobid>`); `req` is the request the job was
    /// submitted for (its timeout, grace, log paths and cap apply). The
    /// timeout counts from the job's start time as recorded by Slurm.
    pub fn reattach(
        &self,
        job_id: &str,
        req: &RunRequest,
    ) -> Result<Box<dyn RunHandle>, ExecError> {
        Ok(Box::new(self.reattach_run(job_id, req)?))
    }

    /// [`SlurmExecutor::reattach`], returning the concrete handle.
    pub fn reattach_run(&self, job_id: &str, req: &RunRequest) -> Result<SlurmRun, ExecError> {
        let job_id = normalize_job_id(job_id)?;
        Ok(SlurmRun {
            job_id,
            opts: self.opts.clone(),
            req: req.clone(),
            stdout_path: absolute(&req.stdout_path)?,
            stderr_path: absolute(&req.stderr_path)?,
            submitted_at_unix_ms: None,
        })
    }

    /// States of many jobs with one `squeue` call (per 200 ids), falling back
    /// to `scontrol show job` and then `sacct -c` for jobs `squeue` no longer
    /// lists. Keys are the ids as given (`123` or `slurm:123`); jobs that no
    /// source knows are absent. Fails when an id is malformed or when
    /// `squeue` itself fails (e.g. the controller is unreachable).
    pub fn poll<S: AsRef<str>>(
        &self,
        job_ids: &[S],
    ) -> Result<HashMap<String, SlurmJobState>, ExecError> {
        Ok(self
            .query(job_ids)?
            .into_iter()
            .map(|(k, v)| (k, v.state))
            .collect())
    }

    /// Like [`SlurmExecutor::poll`], with exit status and times.
    pub fn query<S: AsRef<str>>(
        &self,
        job_ids: &[S],
    ) -> Result<HashMap<String, SlurmJobInfo>, ExecError> {
        // Normalised id -> the caller's spellings of it.
        let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
        for id in job_ids {
            let given = id.as_ref().to_string();
            let norm = normalize_job_id(&given)?;
            wanted.entry(norm).or_default().push(given);
        }
        let ids: Vec<String> = wanted.keys().cloned().collect();
        let found = query_jobs(&ids)?;
        let mut out = HashMap::new();
        for (norm, info) in found {
            if let Some(keys) = wanted.get(&norm) {
                for k in keys {
                    out.insert(k.clone(), info.clone());
                }
            }
        }
        Ok(out)
    }

    /// Sends `signal` (e.g. `"TERM"`) to all processes of the job, or
    /// cancels it when `signal` is `None`.
    pub fn cancel(&self, job_id: &str, signal: Option<&str>) -> Result<(), ExecError> {
        scancel(&normalize_job_id(job_id)?, signal)
    }
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &str {
        "slurm"
    }

    fn spawn(&self, req: &RunRequest) -> Result<Box<dyn RunHandle>, ExecError> {
        let spec = SlurmJobSpec {
            name: None,
            resources: self.opts.resources,
        };
        Ok(Box::new(self.spawn_with(req, &spec)?))
    }
}
