//! The `sky` calls of the SkyPilot executor and what is read from their answers: the job id a
//! launch prints, a job's record from the JSON queues, its log, its cancellation.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use super::{SkyOptions, Target};
use crate::call::run_limited;
use crate::ExecError;

/// A job as `sky queue -o json` / `sky jobs queue -o json` describe it (what Picidae reads).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SkyJob {
    pub(crate) job_id: Option<u64>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub(crate) start_at: Option<f64>,
    #[serde(default)]
    pub(crate) end_at: Option<f64>,
    /// Managed jobs: how many times SkyPilot recovered it (a preempted spot instance).
    #[serde(default)]
    pub(crate) recovery_count: Option<u32>,
    #[serde(default)]
    pub(crate) failure_reason: Option<String>,
}

fn error(command: &str, message: impl Into<String>) -> ExecError {
    ExecError::Remote {
        run: format!("sky {command}"),
        message: message.into(),
    }
}

/// Runs `sky ARGS`; its stdout when it exits 0.
fn sky(opts: &SkyOptions, args: &[&str]) -> Result<String, ExecError> {
    let what = args.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    let mut cmd = Command::new(&opts.cli);
    cmd.args(args).env("NO_COLOR", "1");
    let out = run_limited(cmd, opts.call_limit)
        .map_err(|e| error(&what, format!("cannot run {}: {e}", opts.cli)))?;
    if out.code() != Some(0) {
        return Err(error(&what, out.failure()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Without terminal colour codes.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The job id a launch printed (`Job submitted, ID: 7`, `Managed Job ID: 7`): the last one.
pub(crate) fn parse_job_id(text: &str) -> Option<u64> {
    plain(text).lines().rev().find_map(|l| {
        let (_, rest) = l.split_once("ID: ")?;
        rest.trim()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

/// Launches the task detached; the job's id.
pub(crate) fn launch(
    opts: &SkyOptions,
    target: &Target,
    task: &Path,
    name: &str,
) -> Result<u64, ExecError> {
    let task = task
        .to_str()
        .ok_or_else(|| error("launch", "task path is not UTF-8"))?;
    let out = match target {
        Target::Cluster(c) => sky(opts, &["exec", c, task, "--name", name, "-d"])?,
        Target::Managed => sky(opts, &["jobs", "launch", task, "--name", name, "-d", "-y"])?,
    };
    parse_job_id(&out).ok_or_else(|| {
        error(
            "launch",
            format!("no job id in its answer: {}", plain(&out).trim()),
        )
    })
}

/// The job's record; `None` when the queue does not list it.
pub(crate) fn job(
    opts: &SkyOptions,
    target: &Target,
    id: u64,
) -> Result<Option<SkyJob>, ExecError> {
    let jobs: Vec<SkyJob> = match target {
        Target::Managed => {
            let text = sky(opts, &["jobs", "queue", "-o", "json"])?;
            serde_json::from_str(json_part(&text))
                .map_err(|e| error("jobs queue", format!("unexpected answer ({e})")))?
        }
        Target::Cluster(c) => {
            let text = sky(opts, &["queue", c, "-o", "json"])?;
            let mut by_cluster: std::collections::BTreeMap<String, Vec<SkyJob>> =
                serde_json::from_str(json_part(&text))
                    .map_err(|e| error("queue", format!("unexpected answer ({e})")))?;
            by_cluster.remove(c).unwrap_or_default()
        }
    };
    Ok(jobs.into_iter().find(|j| j.job_id == Some(id)))
}

/// From the first `[` or `{` on: the CLI may print a line of progress before its JSON.
fn json_part(text: &str) -> &str {
    text.find(['[', '{']).map_or(text, |i| &text[i..])
}

/// Everything the job printed so far.
pub(crate) fn logs(opts: &SkyOptions, target: &Target, id: u64) -> Result<String, ExecError> {
    let id = id.to_string();
    match target {
        Target::Managed => sky(opts, &["jobs", "logs", &id, "--no-follow"]),
        Target::Cluster(c) => sky(opts, &["logs", c, &id, "--no-follow"]),
    }
}

pub(crate) fn cancel(opts: &SkyOptions, target: &Target, id: u64) -> Result<(), ExecError> {
    let id = id.to_string();
    match target {
        Target::Managed => sky(opts, &["jobs", "cancel", &id, "-y"]),
        Target::Cluster(c) => sky(opts, &["cancel", c, &id, "-y"]),
    }
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_read_from_launch_answers() {
        assert_eq!(
            parse_job_id(
                "Submitting job to cluster: warm\n\u{1b}[1mJob submitted, ID: 12\u{1b}[0m\n"
            ),
            Some(12)
        );
        assert_eq!(
            parse_job_id("...\n📋 Useful Commands\nManaged Job ID: 7\n├── To cancel the job: sky jobs cancel 7\n"),
            Some(7)
        );
        assert_eq!(parse_job_id("nothing here"), None);
        assert_eq!(
            json_part("Fetching...\n[{\"job_id\": 1}]"),
            "[{\"job_id\": 1}]"
        );
    }
}
