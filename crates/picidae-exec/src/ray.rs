//! The Ray executor: each run is a job of an existing Ray cluster, submitted through the Jobs
//! API of its dashboard (`ray://HEAD:PORT` names `http://HEAD:PORT`).
//!
//! A run becomes a job whose entrypoint is the contract's command (framed, see
//! [`framed`](crate::framed)), with
//! `entrypoint_num_cpus`, `entrypoint_num_gpus` and `entrypoint_memory` from the run's
//! resources and the run's checkout as its working directory: zipped (hidden files and links
//! left out), uploaded as a content-named package unless the cluster already holds it, and
//! named in the job's runtime environment with the run's environment variables. Picidae owns
//! the clock (the shared remote driver: timeout from the moment the job runs, cancel, stop);
//! the job's log streams into the run's stdout log while it runs. The submission id is the
//! run's handle (`ray:<id>`), stored before Picidae waits, so a restarted coordinator
//! re-adopts the job with [`RayExecutor::reattach`].
//!
//! A run that no alive node could hold (more GPUs, CPUs or memory than the largest node has)
//! is refused before submission with the reason ([`ExecError::Refused`]): Ray would leave it
//! pending forever.
//!
//! * `api` — the HTTP calls ([`RayJobInfo`], [`RayNode`]).
//! * `package` — the working directory as a zip package.
//! * `run` — [`RayRun`], one job driven to its end.

use std::path::PathBuf;
use std::time::Duration;

use crate::executor::{Executor, RunHandle};
use crate::logs::LogFiles;
use crate::{ExecError, JobSpec, RunRequest};

mod api;
mod package;
mod run;

pub use api::{RayJobInfo, RayNode};
pub use run::RayRun;

/// Prefix of [`RunHandle::id`] for Ray runs.
pub const ID_PREFIX: &str = "ray:";

/// The variable that carries the job's script (the entrypoint stays short, as Ray prints it);
/// the script unsets it before the command runs.
const ENTRY_VAR: &str = "PICIDAE_RAY_ENTRY";

/// The job's entrypoint, as Ray runs and prints it.
fn entrypoint() -> String {
    format!("/bin/sh -c \"${ENTRY_VAR}\"")
}

/// The start of the job's script: the variable that carried it is unset, and the job stops
/// (status 125) unless it runs in its own package.
fn prelude(hash: &str) -> String {
    format!(
        "unset {ENTRY_VAR}\n\
         if [ \"$(cat {marker} 2>/dev/null)\" != {hash} ]; then\n\
         echo \"picidae: the job does not run in its uploaded working directory ($(pwd -P))\" >&2\n\
         exit 125\nfi\n",
        marker = package::MARKER,
    )
}

/// The line Ray's job supervisor writes into the job's log when it starts the entrypoint. It
/// is flushed once the entrypoint already runs, so it can land anywhere in the first output
/// (inside the header too): it is taken out, once, before the log is read.
pub(crate) fn ray_start_line(job_id: &str) -> String {
    format!("Running entrypoint for job {job_id}: {}\n", entrypoint())
}

/// Settings of a [`RayExecutor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RayOptions {
    /// The dashboard's address, `http://HOST:PORT`.
    pub address: String,
    /// Pause between two looks at a waiting job.
    pub poll_interval: Duration,
    /// How long looks may fail (a restarting head node) before the wait gives up.
    pub query_failure_limit: Duration,
}

impl RayOptions {
    /// Options for the cluster at `address`: `ray://HOST:PORT`, `http://HOST:PORT` or
    /// `https://HOST:PORT`.
    pub fn new(address: &str) -> Result<RayOptions, ExecError> {
        let address = address.trim().trim_end_matches('/');
        let base = if let Some(rest) = address.strip_prefix("ray://") {
            format!("http://{rest}")
        } else if address.starts_with("http://") || address.starts_with("https://") {
            address.to_string()
        } else {
            return Err(ExecError::InvalidRequest(format!(
                "{address:?}: expected ray://HOST:PORT (the dashboard's address)"
            )));
        };
        let host = base.split_once("://").map_or("", |(_, h)| h);
        if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
            return Err(ExecError::InvalidRequest(format!(
                "{address:?}: expected ray://HOST:PORT (the dashboard's address)"
            )));
        }
        Ok(RayOptions {
            address: base,
            poll_interval: Duration::from_secs(1),
            query_failure_limit: Duration::from_secs(300),
        })
    }
}

/// Runs commands as jobs of a Ray cluster.
#[derive(Debug, Clone)]
pub struct RayExecutor {
    opts: RayOptions,
    api: api::RayApi,
}

impl RayExecutor {
    pub fn new(opts: RayOptions) -> RayExecutor {
        let api = api::RayApi::new(opts.address.clone());
        RayExecutor { opts, api }
    }

    pub fn options(&self) -> &RayOptions {
        &self.opts
    }

    /// The cluster's Ray version: the check that its dashboard answers.
    pub fn check_cluster(&self) -> Result<String, ExecError> {
        self.api.version()
    }

    /// The cluster's nodes.
    pub fn nodes(&self) -> Result<Vec<RayNode>, ExecError> {
        self.api.nodes()
    }

    /// A job's status (`PENDING`, `RUNNING`, `STOPPED`, `SUCCEEDED`, `FAILED`); `None` when
    /// the cluster does not know it.
    pub fn job_status(&self, job_id: &str) -> Result<Option<String>, ExecError> {
        let id = job_id.strip_prefix(ID_PREFIX).unwrap_or(job_id);
        Ok(self.api.job(id)?.map(|j| j.status))
    }

    /// Refuses a job that no alive node could hold, saying what is missing.
    pub fn check_placeable(&self, spec: &JobSpec) -> Result<(), ExecError> {
        let nodes: Vec<RayNode> = self
            .api
            .nodes()?
            .into_iter()
            .filter(|n| n.state == "ALIVE")
            .collect();
        let refuse = |reason: String| ExecError::Refused {
            executor: format!("ray {}", self.opts.address),
            reason,
        };
        if nodes.is_empty() {
            return Err(refuse("the cluster has no alive node".into()));
        }
        let memory = spec.memory_mb.map(|mb| mb as f64 * 1024.0 * 1024.0);
        let (cpus, gpus) = ray_counts(spec);
        let fits = |n: &RayNode| {
            gpus.is_none_or(|g| n.total("GPU") >= g)
                && cpus.is_none_or(|c| n.total("CPU") >= c)
                && memory.is_none_or(|m| n.total("memory") >= m)
        };
        if nodes.iter().any(fits) {
            return Ok(());
        }
        let most = |k: &str| nodes.iter().map(|n| n.total(k)).fold(0.0, f64::max);
        let mut missing = Vec::new();
        if let Some(g) = gpus.filter(|g| *g > most("GPU")) {
            missing.push(format!(
                "{g} GPU(s) asked, the largest of {} alive node(s) has {}",
                nodes.len(),
                most("GPU")
            ));
        }
        if let Some(c) = cpus.filter(|c| *c > most("CPU")) {
            missing.push(format!(
                "{c} CPU(s) asked, the largest node has {}",
                most("CPU")
            ));
        }
        if let Some(m) = memory.filter(|m| *m > most("memory")) {
            missing.push(format!(
                "{} MiB of memory asked, the largest node has {:.0} MiB",
                m / 1048576.0,
                most("memory") / 1048576.0
            ));
        }
        if missing.is_empty() {
            missing.push("no single alive node has all the resources asked together".into());
        }
        Err(refuse(missing.join("; ")))
    }

    /// Submits `req` as a job and returns its handle once the cluster accepted it (the job
    /// may still be pending).
    pub fn spawn_with(&self, req: &RunRequest, spec: &JobSpec) -> Result<RayRun, ExecError> {
        req.validate()?;
        self.check_placeable(spec)?;
        let logs = LogFiles::create(req)?;
        if logs.stderr_path != logs.stdout_path {
            crate::logs::note_in_log(
                &logs.stderr_path,
                "[picidae: a Ray job has one log stream; its stderr is in the stdout log]\n",
            );
        }
        let pkg = package::package(&req.cwd)?;
        if pkg.files == 0 {
            // Ray starts a job whose package holds nothing in the node's own directory.
            return Err(ExecError::InvalidRequest(format!(
                "{}: the run's checkout has no file to send to Ray",
                req.cwd.display()
            )));
        }
        if pkg.links_skipped > 0 {
            crate::logs::note_in_log(
                &logs.stderr_path,
                &format!(
                    "[picidae: {} link(s) in the checkout were not sent to Ray]\n",
                    pkg.links_skipped
                ),
            );
        }
        // Sent every time: a package the cluster held may be collected before the job's
        // environment is set up (the same content gives the same name, so this overwrites
        // nothing else).
        self.api.upload_package(&pkg.name, &pkg.bytes)?;
        let job_id = crate::framed::nonce(&spec.name);
        let mut env: serde_json::Map<String, serde_json::Value> = req
            .env
            .iter()
            .filter(|(k, _)| k != "PICIDAE_METRICS" && k != "PICIDAE_ARTIFACTS")
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        env.insert(
            ENTRY_VAR.into(),
            crate::framed::script(&prelude(&pkg.hash), &req.command, &job_id).into(),
        );
        let submit = api::JobSubmit {
            entrypoint: entrypoint(),
            submission_id: job_id.clone(),
            runtime_env: serde_json::json!({
                "working_dir": format!("gcs://{}", pkg.name),
                "env_vars": env,
            }),
            metadata: [("picidae_run".to_string(), spec.name.clone())].into(),
            entrypoint_num_cpus: ray_counts(spec).0,
            entrypoint_num_gpus: ray_counts(spec).1,
            entrypoint_memory: spec.memory_mb.map(|mb| mb * 1024 * 1024),
        };
        self.api.submit(&submit)?;
        tracing::info!(job_id = %job_id, package = %pkg.name, "submitted ray job");
        Ok(self.run(job_id, req, spec.metrics_path.clone(), false))
    }

    /// Resumes waiting on a submitted job after a restart. `job_id` is the submission id or
    /// the stored handle (`ray:<id>`); the timeout counts from Ray's start time.
    pub fn reattach(
        &self,
        job_id: &str,
        req: &RunRequest,
        metrics_path: Option<PathBuf>,
    ) -> Result<RayRun, ExecError> {
        let id = job_id.strip_prefix(ID_PREFIX).unwrap_or(job_id);
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Err(ExecError::InvalidRequest(format!(
                "{job_id:?} is not a Ray submission id"
            )));
        }
        // The log file is rewritten from the start: Ray keeps the whole log.
        LogFiles::create(req)?;
        Ok(self.run(id.to_string(), req, metrics_path, true))
    }

    fn run(
        &self,
        job_id: String,
        req: &RunRequest,
        metrics_path: Option<PathBuf>,
        reattached: bool,
    ) -> RayRun {
        RayRun {
            api: self.api.clone(),
            job_id,
            req: req.clone(),
            metrics_path,
            poll_interval: self.opts.poll_interval,
            query_failure_limit: self.opts.query_failure_limit,
            reattached,
        }
    }
}

/// The CPUs and GPUs a job asks, as Ray counts them (`None`: not asked).
fn ray_counts(spec: &JobSpec) -> (Option<f64>, Option<f64>) {
    let some = |n: u32| (n > 0).then_some(f64::from(n));
    (some(spec.cpus), some(spec.gpus))
}

impl Executor for RayExecutor {
    fn name(&self) -> &str {
        "ray"
    }

    fn spawn(&self, req: &RunRequest) -> Result<Box<dyn RunHandle>, ExecError> {
        let spec = JobSpec {
            name: "picidae".into(),
            ..JobSpec::default()
        };
        Ok(Box::new(self.spawn_with(req, &spec)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            RayOptions::new("ray://head:8265").unwrap().address,
            "http://head:8265"
        );
        assert_eq!(
            RayOptions::new("https://ray.example/").unwrap().address,
            "https://ray.example"
        );
        for bad in ["head:8265", "ray://", "ray://h/x", "slurm"] {
            assert!(RayOptions::new(bad).is_err(), "{bad}");
        }
        let id = crate::framed::nonce("picidae-prog/1 run 3");
        assert!(id.starts_with("picidae-prog-1-run-3-"), "{id}");
        assert_ne!(id, crate::framed::nonce("picidae-prog/1 run 3"));
        assert!(crate::framed::valid_nonce(&id) && !crate::framed::valid_nonce("a b"));
    }
}
