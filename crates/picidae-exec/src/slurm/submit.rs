//! What `sbatch` is given: the batch script and where it is written, and
//! the values of its arguments (job name, `--output` / `--error` patterns,
//! `--time`, resources), each checked so Slurm reads them as meant.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{SlurmResources, DEFAULT_JOB_NAME};
use crate::shell::quote;
use crate::ExecError;

/// Longest `--time` passed to Slurm, in minutes (one year).
const MAX_TIME_MINUTES: u64 = 365 * 24 * 60;

pub(crate) fn is_shell_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The batch script for one run.
pub(crate) fn batch_script(cwd: &str, env: &[(String, String)], command: &str) -> String {
    let mut s = String::from("#!/bin/sh\n# One Picidae run, submitted with sbatch.\n");
    s.push_str(&format!("cd {} || exit 125\n", quote(cwd)));
    for (k, v) in env {
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    s.push_str(&format!("exec /bin/sh -c {}\n", quote(command)));
    s
}

/// `<dir of stdout>/<stdout file name>.sbatch`.
pub(crate) fn script_path_for(stdout_path: &Path) -> PathBuf {
    let mut name = stdout_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "run".into());
    name.push(".sbatch");
    stdout_path.with_file_name(name)
}

/// Keeps job names to characters every Slurm tool prints unambiguously.
pub(crate) fn sanitize_job_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        DEFAULT_JOB_NAME.to_string()
    } else {
        cleaned
    }
}

/// Escapes `%` in an `--output` / `--error` path so Slurm does not expand
/// it; a backslash would switch expansion off altogether, so it is refused.
pub(crate) fn escape_pattern(path: &str) -> Result<String, ExecError> {
    if path.contains('\\') || path.contains('\n') {
        return Err(ExecError::InvalidRequest(format!(
            "log path {path:?} contains a backslash or newline"
        )));
    }
    Ok(path.replace('%', "%%"))
}

/// `--time` in whole minutes, rounded up, at least 1.
pub(crate) fn time_limit_minutes(limit: Duration) -> u64 {
    let secs = limit
        .as_secs()
        .saturating_add(u64::from(limit.subsec_nanos() > 0));
    secs.div_ceil(60).clamp(1, MAX_TIME_MINUTES)
}

pub(crate) fn resource_args(r: &SlurmResources) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(mb) = r.memory_mb {
        args.push(format!("--mem={mb}"));
    }
    if let Some(n) = r.gpus {
        args.push(format!("--gres=gpu:{n}"));
    }
    if let Some(n) = r.cpus {
        args.push(format!("--cpus-per-task={n}"));
    }
    args
}

pub(crate) fn path_str<'a>(path: &'a Path, what: &str) -> Result<&'a str, ExecError> {
    path.to_str().ok_or_else(|| {
        ExecError::InvalidRequest(format!("{what} {} is not valid UTF-8", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use super::*;

    #[test]
    fn builds_submission_pieces() {
        assert_eq!(time_limit_minutes(Duration::from_secs(0)), 1);
        assert_eq!(time_limit_minutes(Duration::from_secs(3)), 1);
        assert_eq!(time_limit_minutes(Duration::from_secs(60)), 1);
        assert_eq!(time_limit_minutes(Duration::from_millis(60_500)), 2);
        assert_eq!(time_limit_minutes(Duration::from_secs(61)), 2);
        assert_eq!(time_limit_minutes(Duration::MAX), MAX_TIME_MINUTES);
        assert_eq!(sanitize_job_name("run-42"), "run-42");
        assert_eq!(sanitize_job_name("a b\n,c"), "a_b__c");
        assert_eq!(sanitize_job_name(""), DEFAULT_JOB_NAME);
        assert_eq!(escape_pattern("/a/50%/x").unwrap(), "/a/50%%/x");
        assert!(escape_pattern("/a\\b").is_err());
        assert!(is_shell_name("_A1") && !is_shell_name("1A") && !is_shell_name("A-B"));
        let args = resource_args(&SlurmResources {
            cpus: Some(4),
            memory_mb: Some(2048),
            gpus: Some(1),
        });
        assert_eq!(args, ["--mem=2048", "--gres=gpu:1", "--cpus-per-task=4"]);
        assert!(resource_args(&SlurmResources::default()).is_empty());
        assert_eq!(
            script_path_for(Path::new("/l/run1/stdout.log")),
            Path::new("/l/run1/stdout.log.sbatch")
        );
    }

    #[test]
    fn batch_script_round_trips_through_sh() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("it's a dir");
        fs::create_dir(&cwd).unwrap();
        let env = vec![
            ("PLAIN".to_string(), "v".to_string()),
            (
                "TRICKY".to_string(),
                "a 'b' \"c\" $HOME `id`\nline2".to_string(),
            ),
        ];
        let script = batch_script(
            cwd.to_str().unwrap(),
            &env,
            "printf '%s|%s|%s' \"$PLAIN\" \"$TRICKY\" \"$(pwd)\"",
        );
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!(
                "v|a 'b' \"c\" $HOME `id`\nline2|{}",
                fs::canonicalize(&cwd).unwrap().display()
            )
        );
    }
}
