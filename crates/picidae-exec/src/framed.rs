//! A remote run's one log stream, with what Picidae needs framed in it. Ray and SkyPilot give
//! a job one log (stdout and stderr together) and no way to fetch a file, so the job's script
//! ([`script`]) prints:
//!
//! * a **header**, before the command starts: the node's identity
//!   ([`MACHINE_PROBE`](crate::probe::MACHINE_PROBE)) in base64 between
//!   `@@picidae-node NONCE` and `@@picidae-node-end NONCE`;
//! * the command's own output;
//! * a **trailer**, after the command exits: the `$PICIDAE_METRICS` file in base64 between
//!   `@@picidae-out NONCE` and `@@picidae-out-end NONCE STATUS`, then the command's status as
//!   the job's exit status.
//!
//! The engine may print a preamble of its own (dropped) and a known line of its own anywhere
//! in the first output (taken out, once, before reading: `noise`).
//!
//! The run may print anything, markers included. Only the first header counts (the run
//! starts after it) and a trailer only at the log's very end, and each holds one line of
//! strict base64: text a run printed between forged markers (a metric line has blanks and a
//! `:` or `=`) cannot decode, so a forged frame never hides the command's report; it can at
//! most spoil the run's own metrics file and status, which the run controls anyway.

use base64::Engine;

use crate::probe::MACHINE_PROBE;
use crate::shell::quote;

const NODE: &str = "@@picidae-node ";
const NODE_END: &str = "@@picidae-node-end ";
const OUT: &str = "@@picidae-out ";
const OUT_END: &str = "@@picidae-out-end ";

/// A job's id and the nonce of its frames: `NAME-<8 hex>`, with only letters, digits, `-`
/// and `_` (a Ray submission id, a SkyPilot task name).
pub(crate) fn nonce(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let salt =
        <sha2::Sha256 as sha2::Digest>::digest(format!("{now}:{}:{clean}", std::process::id()));
    let base = if clean.is_empty() { "picidae" } else { &clean };
    format!("{base}-{}", &hex::encode(salt)[..8])
}

/// Whether `id` could be a [`nonce`] (a stored handle is checked before it is used).
pub(crate) fn valid_nonce(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The job's script: `prelude`, the header, the command under `/bin/sh -c` with
/// `PICIDAE_METRICS` and `PICIDAE_ARTIFACTS` inside the job's working directory (the real one,
/// `pwd -P`: an engine may hand the job a `PWD` inherited from elsewhere), the trailer, the
/// command's status.
pub(crate) fn script(prelude: &str, command: &str, nonce: &str) -> String {
    format!(
        "{prelude}\
         n={nonce}\n\
         printf '{NODE}%s\\n' \"$n\"\n\
         {{\n{MACHINE_PROBE}}} 2>/dev/null | base64 | tr -d '\\n'\n\
         printf '\\n{NODE_END}%s\\n' \"$n\"\n\
         d=\"$(pwd -P)/.picidae-out\"\n\
         rm -rf \"$d\" && mkdir -p \"$d/artifacts\" || exit 125\n\
         export PICIDAE_METRICS=\"$d/metrics.jsonl\" PICIDAE_ARTIFACTS=\"$d/artifacts\"\n\
         /bin/sh -c {cmd}\n\
         rc=$?\n\
         printf '\\n{OUT}%s\\n' \"$n\"\n\
         [ -f \"$d/metrics.jsonl\" ] && base64 < \"$d/metrics.jsonl\" | tr -d '\\n'\n\
         printf '\\n{OUT_END}%s %s\\n' \"$n\" \"$rc\"\n\
         exit $rc\n",
        nonce = quote(nonce),
        cmd = quote(command),
    )
}

/// A job's log split into its parts.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Framed {
    /// The node's probe output, once the header is complete.
    pub(crate) node: Option<String>,
    /// The metrics file the trailer carried (`Some` empty when the run wrote none).
    pub(crate) metrics: Option<Vec<u8>>,
    /// The command's exit status, from the trailer.
    pub(crate) status: Option<i32>,
    /// The command's output: between the header and the trailer (to the end without one).
    pub(crate) body: String,
}

/// Reads the header and, when `ended`, the trailer (at the very end) of `log`, once `noise`
/// (a line of the engine's own) is taken out.
pub(crate) fn split(log: &str, nonce: &str, noise: Option<&str>, ended: bool) -> Framed {
    let log = match noise {
        Some(line) => log.replacen(line, "", 1),
        None => log.to_string(),
    };
    let mut f = Framed::default();
    let mut body: &str = &log;
    if let Some((node, rest_at)) = header(&log, nonce) {
        f.node = Some(node);
        body = &log[rest_at..];
    }
    if ended {
        if let Some((metrics, status, body_end)) = trailer(body, nonce) {
            f.metrics = Some(metrics);
            f.status = Some(status);
            body = &body[..body_end];
        }
    }
    f.body = body.to_string();
    f
}

/// How much of `log` (past the header) can be written out while the job still runs: whole
/// lines, stopping before anything that could be the start of the trailer.
pub(crate) fn settled_len(body: &str) -> usize {
    let upto = body.rfind('\n').map_or(0, |i| i + 1);
    match body[..upto].find(&format!("\n{OUT}")) {
        Some(i) => i,
        None => upto,
    }
}

fn strict_b64(line: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(line).ok()
}

/// `NODE nonce \n b64 \n NODE_END nonce \n` on the first line that opens it (before it:
/// only Ray's own preamble): (probe text, end offset).
fn header(log: &str, nonce: &str) -> Option<(String, usize)> {
    let open = format!("{NODE}{nonce}\n");
    let at = if log.starts_with(&open) {
        0
    } else {
        log.find(&format!("\n{open}"))? + 1
    };
    let rest = &log[at + open.len()..];
    let (b64, rest) = rest.split_once('\n')?;
    let rest = rest.strip_prefix(&format!("{NODE_END}{nonce}\n"))?;
    let node = String::from_utf8_lossy(&strict_b64(b64)?).into_owned();
    Some((node, log.len() - rest.len()))
}

/// `\n OUT nonce \n b64 \n OUT_END nonce status \n` at the very end: (metrics, status,
/// body end).
fn trailer(body: &str, nonce: &str) -> Option<(Vec<u8>, i32, usize)> {
    let rest = body.strip_suffix('\n')?;
    let (rest, end) = rest.rsplit_once('\n')?;
    let status = end.strip_prefix(&format!("{OUT_END}{nonce} "))?;
    if status.is_empty() || !status.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status: i32 = status.parse().ok()?;
    let (rest, b64) = rest.rsplit_once('\n')?;
    let start = rest.strip_suffix(&format!("\n{OUT}{nonce}"))?;
    let metrics = if b64.is_empty() {
        Vec::new()
    } else {
        strict_b64(b64)?
    };
    Some((metrics, status, start.len()))
}

/// Writes the carried metrics file in place of whatever is at `path` (never through a link).
pub(crate) fn write_metrics(path: &std::path::Path, bytes: &[u8]) -> Result<(), crate::ExecError> {
    let io = |e: std::io::Error| crate::ExecError::LocalIo {
        path: path.to_path_buf(),
        source: e,
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(io(std::io::Error::other("not a file path")));
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    crate::safe_fs::replace_file(dir, name, bytes).map_err(|e| io(std::io::Error::other(e)))
}

/// A cluster job's log as it comes home: the command's output written into the run's stdout
/// log as it settles (nothing before the header, never a frame), the metrics file written at
/// the end.
pub(crate) struct LogStream {
    out: crate::logs::LogSink,
    /// Bytes of the current execution's body already written out.
    written: usize,
    nonce: String,
    noise: Option<String>,
}

impl LogStream {
    pub(crate) fn open(
        req: &crate::RunRequest,
        nonce: &str,
        noise: Option<String>,
    ) -> Result<LogStream, crate::ExecError> {
        let path = &req.stdout_path;
        Ok(LogStream {
            out: crate::logs::LogSink::new(
                crate::logs::append_log(path)?,
                path.clone(),
                req.log_cap_bytes,
                crate::STDOUT_TAIL_BYTES,
            ),
            written: 0,
            nonce: nonce.to_string(),
            noise,
        })
    }

    /// Writes out what settled of `log` since the last call. A body shorter than what was
    /// written means the job's log started over (a new instance): it is followed from its
    /// start.
    pub(crate) fn update(&mut self, log: &str) {
        let parts = split(log, &self.nonce, self.noise.as_deref(), false);
        if parts.node.is_none() {
            return;
        }
        let upto = settled_len(&parts.body);
        if upto < self.written {
            self.written = 0;
        }
        if upto > self.written {
            self.out.push(&parts.body.as_bytes()[self.written..upto]);
            self.written = upto;
        }
    }

    /// A line of Picidae's own in the stdout log.
    pub(crate) fn note(&mut self, text: &str) {
        self.out.push(text.as_bytes());
    }

    /// The ended job's whole `log`: the rest of its body written out, its metrics file
    /// written to `metrics_path`. Returns the stdout report and the status the trailer gave.
    pub(crate) fn finish(
        mut self,
        log: &str,
        metrics_path: Option<&std::path::Path>,
    ) -> Result<(crate::logs::StreamReport, Option<i32>), crate::ExecError> {
        let parts = split(log, &self.nonce, self.noise.as_deref(), true);
        if let Some(rest) = parts.body.get(self.written..) {
            self.out.push(rest.as_bytes());
        }
        if let (Some(metrics), Some(path)) = (&parts.metrics, metrics_path) {
            if !metrics.is_empty() {
                write_metrics(path, metrics)?;
            }
        }
        Ok((self.out.finish(), parts.status))
    }
}

/// A cluster job's span in Unix ms and its wall seconds: from when Picidae saw it run (else
/// the engine's start) to the engine's end (else now).
pub(crate) fn span(seen: Option<i64>, start: Option<i64>, end: Option<i64>) -> (i64, i64, f64) {
    let now = crate::call::now_unix_ms();
    let started = seen.or(start).unwrap_or(now);
    let finished = end.filter(|e| *e >= started).unwrap_or(now);
    (
        started,
        finished,
        (finished - started).max(0) as f64 / 1000.0,
    )
}

/// A job's exit status as the framed script's shell reports it: 129..=192 is the signal
/// `status - 128`, anything else the command's own exit code.
pub(crate) fn shell_status(code: i32) -> (Option<i32>, Option<i32>) {
    if (129..=192).contains(&code) {
        (None, Some(code - 128))
    } else {
        (Some(code), None)
    }
}

/// Where a job stands while Picidae waits for its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Queued, provisioning, setting up.
    Waiting,
    Running,
    Over,
}

/// How long a running job may take to print its header before the wait gives up on it.
const HEADER_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until the job's log holds its header and returns the node's fingerprint; `None` when
/// the job ended first, `cancel` was set, `limit` passed, or it ran for a minute without a
/// readable header. `look` gives the job's phase and its log so far.
pub(crate) fn await_node(
    nonce: &str,
    noise: Option<&str>,
    mut look: impl FnMut() -> Result<(Phase, String), crate::ExecError>,
    (poll, limit): (std::time::Duration, std::time::Duration),
    cancel: &std::sync::atomic::AtomicBool,
    benchmark_commit: Option<&str>,
) -> Result<Option<crate::Fingerprint>, crate::ExecError> {
    use std::time::Instant;
    let t0 = Instant::now();
    let mut running_since: Option<Instant> = None;
    while t0.elapsed() < limit && !cancel.load(std::sync::atomic::Ordering::SeqCst) {
        let (phase, log) = look()?;
        if let Some(node) = split(&log, nonce, noise, false).node {
            let sections = crate::probe::probe_sections(&node);
            return Ok(Some(crate::Fingerprint::from_sections(
                &sections,
                benchmark_commit,
            )));
        }
        match phase {
            Phase::Over => return Ok(None),
            Phase::Running
                if running_since.get_or_insert_with(Instant::now).elapsed() >= HEADER_LIMIT =>
            {
                tracing::warn!(job = nonce, "no node identity in the job's log");
                return Ok(None);
            }
            _ => {}
        }
        std::thread::sleep(poll);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn log(body: &str, metrics: &str) -> String {
        format!(
            "{NODE}N\n{}\n{NODE_END}N\n{body}\n{OUT}N\n{}\n{OUT_END}N 0\n",
            b64("@@@section hostname\nnode-1\n"),
            b64(metrics)
        )
    }

    #[test]
    fn header_body_and_trailer_come_apart() {
        let l = log("step 1\nscore: 0.5\n", "{\"score\": 0.5}\n");
        let f = split(&l, "N", None, true);
        assert!(f.node.unwrap().contains("node-1"));
        assert_eq!(f.body, "step 1\nscore: 0.5\n");
        assert_eq!(f.metrics.unwrap(), b"{\"score\": 0.5}\n");
        assert_eq!(f.status, Some(0));
        // While running, the trailer is not read and not written out.
        let f = split(&l, "N", None, false);
        assert!(f.metrics.is_none());
        assert_eq!(&f.body[..settled_len(&f.body)], "step 1\nscore: 0.5\n");
    }

    #[test]
    fn a_forged_trailer_cannot_swallow_the_report() {
        // The run prints a trailer opening early; the evaluator's line follows; a lingering
        // process closes the forged frame after the real trailer.
        let body = format!("{OUT}N\nscore: 0.9\n");
        let mut l = log(&body, "");
        l.push_str(&format!("{OUT}N\n\n{OUT_END}N 0\n"));
        let f = split(&l, "N", None, true);
        assert!(f.body.contains("score: 0.9"), "{:?}", f.body);
        // Text with blanks or a colon is not base64: no frame at all.
        let l = format!(
            "{NODE}N\n{}\n{NODE_END}N\n{OUT}N\nscore: 0.9\n{OUT_END}N 0\n",
            b64("x")
        );
        let f = split(&l, "N", None, true);
        assert!(f.metrics.is_none());
        assert!(f.body.contains("score: 0.9"));
    }

    #[test]
    fn the_first_header_counts_and_the_preamble_is_dropped() {
        let h = format!("{NODE}N\n{}\n{NODE_END}N\n", b64("x"));
        let ray = "Running entrypoint for job N: /bin/sh\n";
        let (h1, h2) = h.split_at(30);
        let l = format!("ray: setting up\n{h1}{ray}{h2}rest\n{h}");
        let f = split(&l, "N", Some(ray), false);
        assert_eq!(f.node.as_deref(), Some("x"));
        assert_eq!(f.body, format!("rest\n{h}"));
        let f = split(
            "ray: setting up\n@@picidae-node N\nnot base64!\n",
            "N",
            None,
            false,
        );
        assert!(f.node.is_none());
    }
}
