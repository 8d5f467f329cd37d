//! Talking to Slurm: runs the client commands (`sbatch`, `sinfo`,
//! `scancel`) and looks up job states, with `squeue`, then
//! `scontrol show job`, then the completion log (`sacct -c`).

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};

use super::parse::{parse_sacct, parse_scontrol_job, parse_squeue};
use super::SlurmJobInfo;
use crate::ExecError;

/// `squeue --Format` fields, in the order [`parse_squeue`] expects them.
const SQUEUE_FORMAT: &str = "JobID:|,State:|,exit_code:|,StartTime:|,EndTime:|,Reason:|";
/// `sacct` fields, in the order [`parse_sacct`] expects them.
const SACCT_FORMAT: &str = "JobID,State,ExitCode,Start,End";
/// Job ids per `squeue` / `sacct` call.
const QUERY_CHUNK: usize = 200;

/// Runs a Slurm client command and returns its stdout. A non-zero exit is an
/// error carrying stderr.
pub(crate) fn run_slurm(program: &str, args: &[String]) -> Result<String, ExecError> {
    let out = Command::new(program)
        .args(args)
        .env("SLURM_TIME_FORMAT", "%s")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ExecError::Slurm {
            command: program.to_string(),
            message: format!("cannot run: {e}"),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ExecError::Slurm {
            command: program.to_string(),
            message: format!("{}: {}", out.status, stderr.trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True for the error Slurm gives when none of the listed jobs is known.
fn is_invalid_job_id(err: &ExecError) -> bool {
    matches!(err, ExecError::Slurm { message, .. } if message.contains("Invalid job id"))
}

pub(crate) fn scancel(job_id: &str, signal: Option<&str>) -> Result<(), ExecError> {
    let mut args = Vec::new();
    if let Some(sig) = signal {
        args.push(format!("--signal={sig}"));
        args.push("--full".to_string());
    }
    args.push(job_id.to_string());
    run_slurm("scancel", &args).map(|_| ())
}

/// Queries `ids` (normalised): `squeue`, then `scontrol` for the missing,
/// then `sacct -c` for the still missing.
pub(crate) fn query_jobs(ids: &[String]) -> Result<HashMap<String, SlurmJobInfo>, ExecError> {
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut found: HashMap<String, SlurmJobInfo> = HashMap::new();
    for chunk in ids.chunks(QUERY_CHUNK) {
        let args = vec![
            "-h".to_string(),
            "-t".to_string(),
            "all".to_string(),
            "-j".to_string(),
            chunk.join(","),
            "-O".to_string(),
            SQUEUE_FORMAT.to_string(),
        ];
        match run_slurm("squeue", &args) {
            Ok(text) => {
                for info in parse_squeue(&text) {
                    if wanted.contains(info.job_id.as_str()) {
                        found.insert(info.job_id.clone(), info);
                    }
                }
            }
            Err(err) if is_invalid_job_id(&err) => {}
            Err(err) => return Err(err),
        }
    }

    let missing: Vec<&String> = ids.iter().filter(|id| !found.contains_key(*id)).collect();
    let mut still_missing = Vec::new();
    for id in missing {
        match run_slurm("scontrol", &["show".into(), "job".into(), id.clone()]) {
            Ok(text) => match parse_scontrol_job(&text) {
                Some(info) if info.job_id == *id => {
                    found.insert(id.clone(), info);
                }
                _ => still_missing.push(id.clone()),
            },
            Err(err) => {
                if !is_invalid_job_id(&err) {
                    tracing::debug!(job_id = %id, error = %err, "scontrol show job failed");
                }
                still_missing.push(id.clone());
            }
        }
    }

    for chunk in still_missing.chunks(QUERY_CHUNK) {
        let args = vec![
            "-c".to_string(),
            "-n".to_string(),
            "-P".to_string(),
            "-o".to_string(),
            SACCT_FORMAT.to_string(),
            "-j".to_string(),
            chunk.join(","),
        ];
        match run_slurm("sacct", &args) {
            Ok(text) => {
                for info in parse_sacct(&text) {
                    if wanted.contains(info.job_id.as_str()) {
                        found.insert(info.job_id.clone(), info);
                    }
                }
            }
            Err(err) => tracing::debug!(error = %err, "sacct -c failed"),
        }
    }
    Ok(found)
}
