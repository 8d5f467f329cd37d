//! The SkyPilot executor: each run is a SkyPilot task, through the `sky` CLI of the machine
//! Picidae runs on (its API server, clouds and credentials are the user's own; Picidae
//! provisions nothing itself).
//!
//! * **On a named cluster** (`skypilot:CLUSTER`): `sky exec CLUSTER TASK -d`, so a warm
//!   cluster is reused; states from `sky queue CLUSTER -o json`, logs from `sky logs`,
//!   cancel with `sky cancel`.
//! * **Managed jobs** (`skypilot`): `sky jobs launch TASK -d`; SkyPilot provisions, and
//!   recovers a preempted spot instance by starting the task again elsewhere. Picidae sees the
//!   job go `RECOVERING` and back: the run is not failed, its clock starts again with the new
//!   instance, and the recovery is noted in its log and counted in the outcome
//!   ([`RunOutcome::restarts`](crate::RunOutcome::restarts), stored with the run). States from
//!   `sky jobs queue -o json`, logs from `sky jobs logs`, cancel with `sky jobs cancel`.
//!
//! The task (see `task`) is written next to the run's logs: resources from the run's
//! (`accelerators: H100:1` with the GPU type from the program's executor options, `cpus`,
//! `memory`, optional `cloud`, `region`, `use_spot`), the run's checkout as `workdir`, its
//! variables as `envs`, and the command framed as every remote job's ([`crate::framed`]) as
//! `run`. The job id is the run's handle (`skypilot:managed:ID`, `skypilot:cluster:NAME:ID`),
//! stored before Picidae waits, so a restarted coordinator re-adopts it.
//!
//! * `task` — the task file.
//! * `cli` — the `sky` calls and their answers.
//! * `run` — [`SkyRun`], one job driven to its end.

use std::path::PathBuf;
use std::time::Duration;

use crate::logs::LogFiles;
use crate::{ExecError, JobSpec, RunRequest};

mod cli;
mod run;
mod task;

pub use run::SkyRun;
pub use task::task_json;

/// Prefix of [`RunHandle::id`](crate::RunHandle::id) for SkyPilot runs.
pub const ID_PREFIX: &str = "skypilot:";

/// Settings of a [`SkyExecutor`].
#[derive(Debug, Clone, PartialEq)]
pub struct SkyOptions {
    /// Run on this existing cluster (`sky exec`); `None`: managed jobs.
    pub cluster: Option<String>,
    /// GPU type for `accelerators` (`H100`, `A100-80GB`, ...), needed when a run asks GPUs.
    pub gpu: Option<String>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub use_spot: bool,
    /// The `sky` program.
    pub cli: String,
    /// Pause between two looks at a waiting job.
    pub poll_interval: Duration,
    /// How long looks may fail before the wait gives up.
    pub query_failure_limit: Duration,
    /// Time limit of one `sky` call (a launch provisions nothing when detached, but the API
    /// server may be starting).
    pub call_limit: Duration,
}

impl Default for SkyOptions {
    fn default() -> Self {
        SkyOptions {
            cluster: None,
            gpu: None,
            cloud: None,
            region: None,
            use_spot: false,
            cli: "sky".into(),
            poll_interval: Duration::from_secs(5),
            query_failure_limit: Duration::from_secs(600),
            call_limit: Duration::from_secs(300),
        }
    }
}

/// Where a job lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Managed,
    Cluster(String),
}

/// Runs commands as SkyPilot tasks through the `sky` CLI.
#[derive(Debug, Clone, Default)]
pub struct SkyExecutor {
    opts: SkyOptions,
}

impl SkyExecutor {
    pub fn new(opts: SkyOptions) -> SkyExecutor {
        SkyExecutor { opts }
    }

    pub fn options(&self) -> &SkyOptions {
        &self.opts
    }

    fn target(&self) -> Target {
        match &self.opts.cluster {
            Some(c) => Target::Cluster(c.clone()),
            None => Target::Managed,
        }
    }

    /// Writes the task next to the run's stdout log and launches it, detached; the handle
    /// comes back once SkyPilot accepted the job.
    pub fn spawn_with(&self, req: &RunRequest, spec: &JobSpec) -> Result<SkyRun, ExecError> {
        req.validate()?;
        let nonce = task::nonce(&spec.name);
        let task = task_json(req, spec, &self.opts, &nonce)?;
        let logs = LogFiles::create(req)?;
        if logs.stderr_path != logs.stdout_path {
            crate::logs::note_in_log(
                &logs.stderr_path,
                "[picidae: a SkyPilot job has one log stream; its stderr is in the stdout log]\n",
            );
        }
        let dir = logs
            .stdout_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let task_path = dir.join("skypilot-task.yaml");
        let text = serde_json::to_string_pretty(&task).unwrap_or_default();
        crate::safe_fs::replace_file(&dir, "skypilot-task.yaml", text.as_bytes()).map_err(|e| {
            ExecError::LocalIo {
                path: task_path.clone(),
                source: std::io::Error::other(e),
            }
        })?;
        let target = self.target();
        let job = cli::launch(&self.opts, &target, &task_path, &spec.name)?;
        tracing::info!(job, ?target, "launched skypilot task");
        Ok(self.run(target, job, nonce, req, spec.metrics_path.clone()))
    }

    /// Resumes waiting on a launched job after a restart, from its stored handle
    /// (`skypilot:managed:ID` or `skypilot:cluster:NAME:ID`) and the task's nonce.
    pub fn reattach(
        &self,
        handle: &str,
        req: &RunRequest,
        metrics_path: Option<PathBuf>,
    ) -> Result<SkyRun, ExecError> {
        let (target, job, nonce) = parse_handle(handle)?;
        LogFiles::create(req)?;
        Ok(self.run(target, job, nonce, req, metrics_path))
    }

    fn run(
        &self,
        target: Target,
        job: u64,
        nonce: String,
        req: &RunRequest,
        metrics_path: Option<PathBuf>,
    ) -> SkyRun {
        SkyRun {
            opts: self.opts.clone(),
            target,
            job,
            nonce,
            req: req.clone(),
            metrics_path,
        }
    }
}

/// `skypilot:managed:ID:NONCE` or `skypilot:cluster:NAME:ID:NONCE`.
pub(crate) fn handle(target: &Target, job: u64, nonce: &str) -> String {
    match target {
        Target::Managed => format!("{ID_PREFIX}managed:{job}:{nonce}"),
        Target::Cluster(c) => format!("{ID_PREFIX}cluster:{c}:{job}:{nonce}"),
    }
}

fn parse_handle(h: &str) -> Result<(Target, u64, String), ExecError> {
    let bad = || ExecError::InvalidRequest(format!("{h:?} is not a SkyPilot run handle"));
    let rest = h.strip_prefix(ID_PREFIX).ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (target, job, nonce) = match parts.as_slice() {
        ["managed", job, nonce] => (Target::Managed, job, nonce),
        ["cluster", c, job, nonce] if !c.is_empty() => (Target::Cluster(c.to_string()), job, nonce),
        _ => return Err(bad()),
    };
    let job = job.parse().map_err(|_| bad())?;
    if !task::valid_nonce(nonce) {
        return Err(bad());
    }
    Ok((target, job, nonce.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip() {
        for t in [Target::Managed, Target::Cluster("warm-h100".into())] {
            let h = handle(&t, 17, "picidae-p-run-3-0a1b2c3d");
            assert_eq!(
                parse_handle(&h).unwrap(),
                (t, 17, "picidae-p-run-3-0a1b2c3d".to_string())
            );
        }
        for bad in [
            "skypilot:managed:x:n",
            "skypilot:cluster::1:n",
            "slurm:1",
            "skypilot:managed:1:bad nonce",
        ] {
            assert!(parse_handle(bad).is_err(), "{bad}");
        }
    }
}
