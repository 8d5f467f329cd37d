//! The wrapper script each remote run is started through (`run.sh`: it
//! records the run's process group, start and end clock and exit status in
//! the run directory) and reading the clock values it writes.

use crate::shell::quote;
use crate::RunRequest;

/// The remote wrapper script, `<run dir>/run.sh`, started as
/// `setsid nohup /bin/sh <run dir>/run.sh`.
pub(crate) fn wrapper_script(req: &RunRequest) -> String {
    let mut exports = String::new();
    for (k, v) in &req.env {
        exports.push_str(&format!("export {}={}\n", quote(k), quote(v)));
    }
    format!(
        "# picidae remote run wrapper\n\
         D=$(cd \"$(dirname \"$0\")\" && pwd -P) || exit 1\n\
         cd \"$D\" || exit 1\n\
         date +%s%N > started\n\
         echo $$ > pgid.tmp && mv -f pgid.tmp pgid\n\
         trap 'picidae_sig=1' TERM INT HUP\n\
         {exports}\
         if cd \"$D/checkout\"; then\n  \
         /bin/sh -c {cmd} </dev/null >\"$D/stdout\" 2>\"$D/stderr\"\n  \
         c=$?\nelse\n  c=126\nfi\n\
         date +%s%N > \"$D/finished\"\n\
         echo $c > \"$D/exit.tmp\" && mv -f \"$D/exit.tmp\" \"$D/exit\"\n\
         trap - TERM INT HUP\n\
         kill -KILL 0\n",
        cmd = quote(&req.command)
    )
}

/// Parses a `date +%s%N` value: nanoseconds, or seconds where `%N` is not
/// supported.
pub(crate) fn parse_clock_ns(text: &str) -> Option<u64> {
    let digits: String = text
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let v: u64 = digits.parse().ok()?;
    if digits.len() >= 16 {
        Some(v)
    } else {
        v.checked_mul(1_000_000_000)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    #[test]
    fn clock_values_parse_as_ns_or_seconds() {
        assert_eq!(
            parse_clock_ns("1700000000123456789\n"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_clock_ns("1700000000"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_clock_ns("1700000000%N"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_clock_ns("-"), None);
    }

    #[test]
    fn wrapper_quotes_env_and_command() {
        let req = RunRequest {
            command: "echo 'a b' $X".into(),
            cwd: PathBuf::from("/"),
            env: vec![("X".into(), "it's".into())],
            time_budget: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            grace: Duration::from_secs(1),
            stdout_path: PathBuf::from("o"),
            stderr_path: PathBuf::from("e"),
            log_cap_bytes: 1,
        };
        let body = wrapper_script(&req);
        assert!(body.contains("export X='it'\\''s'\n"), "{body}");
        assert!(
            body.contains("/bin/sh -c 'echo '\\''a b'\\'' $X'"),
            "{body}"
        );
    }
}
