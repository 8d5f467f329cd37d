//! Reading Slurm's answers: the job id printed by `sbatch --parsable`, the
//! job lists of `squeue`, `scontrol show job` and `sacct`, exit statuses and
//! times; and checking the job ids Picidae is handed (`123`, `slurm:123`).

use std::collections::HashMap;

use super::{SlurmJobInfo, SlurmJobState, ID_PREFIX};
use crate::ExecError;

/// The job id from `sbatch --parsable` output (`<id>` or `<id>;<cluster>`).
pub fn parse_sbatch_parsable(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// Parses `squeue -h -O JobID:|,State:|,exit_code:|,StartTime:|,EndTime:|,Reason:|`
/// output (times as Unix seconds, exit code as a raw wait status).
pub fn parse_squeue(text: &str) -> Vec<SlurmJobInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.splitn(6, '|').map(str::trim).collect();
        if fields.len() < 5 || fields[0].is_empty() {
            continue;
        }
        let state = SlurmJobState::parse(fields[1]);
        let (exit_code, signal) = match fields[2].parse::<i64>() {
            Ok(raw) if state.has_started() => decode_wait_status(raw),
            _ => (None, None),
        };
        let reason = fields
            .get(5)
            .map(|r| r.trim_end_matches('|').trim())
            .filter(|r| !r.is_empty() && *r != "None" && *r != "(null)")
            .map(str::to_string);
        out.push(SlurmJobInfo {
            job_id: fields[0].to_string(),
            state,
            exit_code,
            signal,
            start_unix: parse_time(fields[3]),
            end_unix: parse_time(fields[4]),
            reason,
        });
    }
    out
}

/// Parses `scontrol show job <id>` output (first job only).
pub fn parse_scontrol_job(text: &str) -> Option<SlurmJobInfo> {
    let mut kv: HashMap<&str, &str> = HashMap::new();
    for token in text.split_whitespace() {
        if let Some((k, v)) = token.split_once('=') {
            if k == "JobId" && kv.contains_key("JobId") {
                break; // a second job
            }
            kv.entry(k).or_insert(v);
        }
    }
    let job_id = kv.get("JobId")?.to_string();
    let state = SlurmJobState::parse(kv.get("JobState")?);
    let (exit_code, signal) = if state.has_started() {
        kv.get("ExitCode")
            .and_then(|v| decode_exit_pair(v))
            .unwrap_or((None, None))
    } else {
        (None, None)
    };
    Some(SlurmJobInfo {
        job_id,
        state,
        exit_code,
        signal,
        start_unix: kv.get("StartTime").and_then(|v| parse_time(v)),
        end_unix: kv.get("EndTime").and_then(|v| parse_time(v)),
        reason: kv
            .get("Reason")
            .filter(|r| **r != "None" && **r != "(null)")
            .map(|r| r.to_string()),
    })
}

/// Parses `sacct -c -n -P -o JobID,State,ExitCode,Start,End` output. Job
/// steps (`123.batch`) are skipped; for a job listed twice (requeued) the
/// last line wins.
pub fn parse_sacct(text: &str) -> Vec<SlurmJobInfo> {
    let mut by_id: Vec<SlurmJobInfo> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        if fields.len() < 5 || fields[0].is_empty() || fields[0].contains('.') {
            continue;
        }
        let state = SlurmJobState::parse(fields[1]);
        let (exit_code, signal) = decode_exit_pair(fields[2]).unwrap_or((None, None));
        let info = SlurmJobInfo {
            job_id: fields[0].to_string(),
            state,
            exit_code,
            signal,
            start_unix: parse_time(fields[3]),
            end_unix: parse_time(fields[4]),
            reason: None,
        };
        by_id.retain(|i| i.job_id != info.job_id);
        by_id.push(info);
    }
    by_id
}

/// Splits a raw wait status into (exit code, signal).
pub fn decode_wait_status(raw: i64) -> (Option<i32>, Option<i32>) {
    let sig = (raw & 0x7f) as i32;
    if sig != 0 {
        (None, Some(sig))
    } else {
        (Some(((raw >> 8) & 0xff) as i32), None)
    }
}

/// Splits Slurm's `<exit>:<signal>` into (exit code, signal).
pub fn decode_exit_pair(text: &str) -> Option<(Option<i32>, Option<i32>)> {
    let (code, sig) = text.trim().split_once(':')?;
    let code: i32 = code.parse().ok()?;
    let sig: i32 = sig.parse().ok()?;
    Some(if sig != 0 {
        (None, Some(sig))
    } else {
        (Some(code), None)
    })
}

/// A time printed with `SLURM_TIME_FORMAT=%s`: positive Unix seconds, or
/// `None` for `N/A`, `Unknown`, `None`, `0`.
fn parse_time(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok().filter(|t| *t > 0)
}

/// Strips the `slurm:` prefix and checks the id is plausible.
pub(crate) fn normalize_job_id(id: &str) -> Result<String, ExecError> {
    let id = id.trim();
    let id = id.strip_prefix(ID_PREFIX).unwrap_or(id);
    let ok = !id.is_empty()
        && id.as_bytes()[0].is_ascii_digit()
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'_' || b == b'+');
    if ok {
        Ok(id.to_string())
    } else {
        Err(ExecError::InvalidRequest(format!(
            "invalid slurm job id {id:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_squeue_output() {
        // Captured from Slurm 22.05 with SLURM_TIME_FORMAT=%s.
        let text = "2|CANCELLED|15|1795472208|1795472211|None|\n\
                    1|FAILED|768|1795472208|1795472208|NonZeroExitCode|\n\
                    3|RUNNING|0|1795472299|1795472419|None|\n\
                    7|PENDING|0|N/A|N/A|Resources|\n\
                    8|COMPLETED|0|1795472300|1795472301|None|\n\n";
        let jobs = parse_squeue(text);
        assert_eq!(jobs.len(), 5);
        let by: HashMap<_, _> = jobs.iter().map(|j| (j.job_id.as_str(), j)).collect();
        assert_eq!(by["1"].state, SlurmJobState::Failed);
        assert_eq!((by["1"].exit_code, by["1"].signal), (Some(3), None));
        assert_eq!(by["1"].reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!((by["2"].exit_code, by["2"].signal), (None, Some(15)));
        assert_eq!(by["2"].end_unix, Some(1795472211));
        assert_eq!(by["2"].reason, None);
        assert_eq!(by["3"].state, SlurmJobState::Running);
        assert_eq!(by["3"].start_unix, Some(1795472299));
        assert_eq!(by["7"].state, SlurmJobState::Pending);
        assert_eq!((by["7"].exit_code, by["7"].start_unix), (None, None));
        assert_eq!(by["7"].reason.as_deref(), Some("Resources"));
        assert_eq!(by["8"].exit_code, Some(0));
    }

    #[test]
    fn parses_scontrol_output() {
        let text = "JobId=1 JobName=t1\n   UserId=root(0) GroupId=root(0) MCS_label=N/A\n   \
            JobState=FAILED Reason=NonZeroExitCode Dependency=(null)\n   \
            Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0\n   \
            RunTime=00:00:00 TimeLimit=00:01:00 TimeMin=N/A\n   \
            SubmitTime=1795472208 EligibleTime=1795472208\n   \
            StartTime=1795472208 EndTime=1795472209 Deadline=N/A\n   \
            Command=/tmp/x/j.sh\n   WorkDir=/tmp/x\n   StdOut=/tmp/x/o1\n\n";
        let info = parse_scontrol_job(text).unwrap();
        assert_eq!(info.job_id, "1");
        assert_eq!(info.state, SlurmJobState::Failed);
        assert_eq!((info.exit_code, info.signal), (Some(3), None));
        assert_eq!(info.start_unix, Some(1795472208));
        assert_eq!(info.end_unix, Some(1795472209));
        assert_eq!(info.reason.as_deref(), Some("NonZeroExitCode"));

        let pending = "JobId=9 JobName=x\n   JobState=PENDING Reason=Priority\n   \
            ExitCode=0:0\n   StartTime=Unknown EndTime=Unknown\n";
        let info = parse_scontrol_job(pending).unwrap();
        assert_eq!(info.state, SlurmJobState::Pending);
        assert_eq!(
            (info.exit_code, info.start_unix, info.end_unix),
            (None, None, None)
        );
        assert!(parse_scontrol_job("slurm_load_jobs error: Invalid job id specified").is_none());
    }

    #[test]
    fn parses_sacct_completion_log() {
        let text = "1|FAILED|3:0|1795472208|1795472208\n\
                    2|CANCELLED by 0|0:15|1795472208|1795472211\n\
                    2.batch|CANCELLED|0:15|1795472208|1795472211\n\
                    4|NODE_FAIL|0:0|1795472100|1795472150\n\
                    4|COMPLETED|0:0|1795472200|1795472250\n";
        let jobs = parse_sacct(text);
        assert_eq!(jobs.len(), 3);
        let by: HashMap<_, _> = jobs.iter().map(|j| (j.job_id.as_str(), j)).collect();
        assert_eq!((by["1"].exit_code, by["1"].signal), (Some(3), None));
        assert_eq!(by["2"].state, SlurmJobState::Cancelled);
        assert_eq!((by["2"].exit_code, by["2"].signal), (None, Some(15)));
        assert_eq!(by["4"].state, SlurmJobState::Completed, "last line wins");
        assert_eq!(by["4"].start_unix, Some(1795472200));
    }

    #[test]
    fn parses_sbatch_output_and_job_ids() {
        assert_eq!(parse_sbatch_parsable("42\n").as_deref(), Some("42"));
        assert_eq!(parse_sbatch_parsable("42;cluster\n").as_deref(), Some("42"));
        assert_eq!(
            parse_sbatch_parsable("sbatch: warning: x\n43\n").as_deref(),
            Some("43")
        );
        assert_eq!(parse_sbatch_parsable("Submitted batch job 42"), None);
        assert_eq!(parse_sbatch_parsable(""), None);
        assert_eq!(normalize_job_id("slurm:12").unwrap(), "12");
        assert_eq!(normalize_job_id(" 12_3 ").unwrap(), "12_3");
        assert!(normalize_job_id("slurm:").is_err());
        assert!(normalize_job_id("12;rm").is_err());
        assert!(normalize_job_id("-1").is_err());
    }

    #[test]
    fn decodes_exit_statuses() {
        assert_eq!(decode_wait_status(0), (Some(0), None));
        assert_eq!(decode_wait_status(768), (Some(3), None));
        assert_eq!(decode_wait_status(1792), (Some(7), None));
        assert_eq!(decode_wait_status(15), (None, Some(15)));
        assert_eq!(decode_wait_status(9 | 0x80), (None, Some(9)));
        assert_eq!(decode_exit_pair("3:0"), Some((Some(3), None)));
        assert_eq!(decode_exit_pair("0:9"), Some((None, Some(9))));
        assert_eq!(decode_exit_pair("x"), None);
    }
}
