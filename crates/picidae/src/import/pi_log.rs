//! pi-autoresearch's log, imported.
//!
//! `picidae import pi-log FILE --program P [--segment N] [--repo DIR]`
//!
//! pi-autoresearch (the pi extension running the same loop) appends one JSON object per line to
//! `.auto/log.jsonl` (`autoresearch.jsonl` before its 1.6):
//!
//! - a **config header** `{"type":"config","name","metricName","metricUnit","bestDirection",
//!   "repo"?}` written by `init_experiment`; each header after the first result starts a new
//!   *segment* (a new target or baseline), counted from 0 as pi does;
//! - a **result** (no `type`) written by `log_experiment`: `run` (1-based), `commit` (7-digit
//!   sha), `metric` (primary metric, 0 for crashes), `metrics` (`{name: number}` secondary
//!   metrics), `status` (`keep`, `discard`, `crash`, `checks_failed`), `description`,
//!   `timestamp` (ms since the epoch), `segment`, `confidence`, `iterationTokens` (older logs)
//!   and an optional free-form `asi` object;
//! - other `type`s (e.g. `hook` entries of its iteration hooks) are skipped.
//!
//! Each result line becomes an attempt: `keep` → kept with its value; `discard` → discarded with
//! its value; `crash` → failed, no value; `checks_failed` (the benchmark ran, correctness checks
//! did not pass) → failed, no value. Hypothesis = `description`; memory = the secondary metric
//! `memory_gb` when logged and positive. pi commits only kept experiments: on other lines
//! `commit` names the code the change was tried on, and the change itself was reverted, so their
//! source says `(tried on this commit, diff lost)`. With `--repo`, abbreviated commits are
//! resolved to full shas there when they can be. `--segment N` imports one segment only.
//! Strict: a line that is not JSON, or a result missing a field or with one of the wrong type,
//! is reported as ``FILE:LINE: field `NAME`: problem`` (every bad line, not just the first) and
//! nothing is imported.
//!

use super::*;

/// A pi-autoresearch result status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiStatus {
    Keep,
    Discard,
    Crash,
    ChecksFailed,
}

impl PiStatus {
    fn parse(s: &str) -> Option<PiStatus> {
        Some(match s {
            "keep" => PiStatus::Keep,
            "discard" => PiStatus::Discard,
            "crash" => PiStatus::Crash,
            "checks_failed" => PiStatus::ChecksFailed,
            _ => return None,
        })
    }

    /// keep → kept, discard → discarded, crash and checks_failed → failed.
    pub fn attempt_status(self) -> AttemptStatus {
        match self {
            PiStatus::Keep => AttemptStatus::Kept,
            PiStatus::Discard => AttemptStatus::Discarded,
            PiStatus::Crash | PiStatus::ChecksFailed => AttemptStatus::Failed,
        }
    }
}

/// One config header: the start of a segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PiSegment {
    pub name: Option<String>,
    pub metric_name: Option<String>,
}

/// One result line.
#[derive(Debug, Clone, PartialEq)]
pub struct PiResult {
    /// The segment it belongs to (0-based, counted from the config headers).
    pub segment: usize,
    pub commit: String,
    pub metric: f64,
    pub metrics: BTreeMap<String, f64>,
    pub status: PiStatus,
    pub description: String,
}

/// A parsed log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PiLog {
    /// One per segment (a default one when results come before any header).
    pub segments: Vec<PiSegment>,
    pub results: Vec<PiResult>,
    /// Lines with another `type` (hook entries ...), skipped.
    pub skipped: usize,
}

/// A bad line of a log.
#[derive(Debug, Clone, PartialEq)]
pub struct PiLogError {
    pub file: String,
    pub line: usize,
    /// The offending field, when one is to blame (`None`: the line is not a JSON object).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for PiLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "{}:{}: field `{field}`: {}",
                self.file, self.line, self.message
            ),
            None => write!(f, "{}:{}: {}", self.file, self.line, self.message),
        }
    }
}

/// Every bad line of a log.
#[derive(Debug, Clone, PartialEq)]
pub struct PiLogErrors(pub Vec<PiLogError>);

impl fmt::Display for PiLogErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} bad line{} (nothing imported):",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PiLogErrors {}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The problems found on one line: `(field, message)`.
#[derive(Default)]
pub(crate) struct LineErrors(Vec<(Option<String>, String)>);

impl LineErrors {
    fn add(&mut self, field: Option<&str>, message: String) {
        self.0.push((field.map(str::to_string), message));
    }

    fn wrong_type(&mut self, field: &str, expected: &str, found: &Value) {
        self.add(
            Some(field),
            format!("expected {expected}, found {}", type_name(found)),
        );
    }

    /// A required string field.
    fn string(&mut self, obj: &serde_json::Map<String, Value>, field: &str) -> Option<String> {
        match obj.get(field) {
            Some(Value::String(s)) => Some(s.clone()),
            None => {
                self.add(Some(field), "missing".into());
                None
            }
            Some(v) => {
                self.wrong_type(field, "a string", v);
                None
            }
        }
    }

    /// An optional string field.
    fn opt_string(&mut self, obj: &serde_json::Map<String, Value>, field: &str) -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                self.wrong_type(field, "a string", v);
                None
            }
        }
    }
}

/// A result line's fields, or the problems with them.
pub(crate) fn parse_result(
    obj: &serde_json::Map<String, Value>,
    errs: &mut LineErrors,
) -> Option<PiResult> {
    let commit = errs.string(obj, "commit");
    let description = errs.string(obj, "description");
    let metric = match obj.get("metric") {
        Some(Value::Number(n)) => n.as_f64(),
        None => {
            errs.add(Some("metric"), "missing".into());
            None
        }
        Some(v) => {
            errs.wrong_type("metric", "a number", v);
            None
        }
    };
    let status = match errs.string(obj, "status") {
        Some(s) => {
            let st = PiStatus::parse(&s);
            if st.is_none() {
                errs.add(
                    Some("status"),
                    format!("{s:?} is not one of keep, discard, crash, checks_failed"),
                );
            }
            st
        }
        None => None,
    };
    let mut metrics = BTreeMap::new();
    match obj.get("metrics") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, v) in m {
                match v.as_f64() {
                    Some(x) => {
                        metrics.insert(name.clone(), x);
                    }
                    None => errs.wrong_type(&format!("metrics.{name}"), "a number", v),
                }
            }
        }
        Some(v) => errs.wrong_type("metrics", "an object", v),
    }
    match obj.get("timestamp") {
        None | Some(Value::Null) | Some(Value::Number(_)) => {}
        Some(v) => errs.wrong_type("timestamp", "a number", v),
    }
    Some(PiResult {
        segment: 0,
        commit: commit?.trim().to_string(),
        metric: metric?,
        metrics,
        status: status?,
        description: description?,
    })
}

/// Parse a pi-autoresearch log (`file` names it in errors). Strict: every bad line is reported.
pub fn parse_pi_log(text: &str, file: &str) -> Result<PiLog, PiLogErrors> {
    let mut log = PiLog::default();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let mut errs = LineErrors::default();
        match serde_json::from_str::<Value>(raw) {
            Err(e) => errs.add(None, format!("not JSON: {e}")),
            Ok(Value::Object(obj)) => match obj.get("type") {
                None | Some(Value::Null) => {
                    if let Some(mut r) = parse_result(&obj, &mut errs) {
                        if errs.0.is_empty() {
                            if log.segments.is_empty() {
                                log.segments.push(PiSegment::default());
                            }
                            r.segment = log.segments.len() - 1;
                            log.results.push(r);
                        }
                    }
                }
                Some(Value::String(t)) if t == "config" => {
                    let seg = PiSegment {
                        name: errs.opt_string(&obj, "name"),
                        metric_name: errs.opt_string(&obj, "metricName"),
                    };
                    if let Some(d) = errs.opt_string(&obj, "bestDirection") {
                        if d != "lower" && d != "higher" {
                            errs.add(
                                Some("bestDirection"),
                                format!("{d:?} is not \"lower\" or \"higher\""),
                            );
                        }
                    }
                    // Like pi: a header before any result configures segment 0; a header
                    // after results opens a new segment.
                    if log.results.is_empty() {
                        log.segments = vec![seg];
                    } else {
                        log.segments.push(seg);
                    }
                }
                Some(Value::String(_)) => log.skipped += 1,
                Some(v) => errs.wrong_type("type", "a string", v),
            },
            Ok(v) => errs.add(
                None,
                format!("expected a JSON object, found {}", type_name(&v)),
            ),
        }
        errors.extend(errs.0.into_iter().map(|(field, message)| PiLogError {
            file: file.to_string(),
            line: i + 1,
            field,
            message,
        }));
    }
    if errors.is_empty() {
        Ok(log)
    } else {
        Err(PiLogErrors(errors))
    }
}

/// The attempts a parsed log becomes (rules in the module documentation). `source` names the
/// file; `resolve` turns an abbreviated commit into a full sha when it can.
pub fn plan_pi_log(
    log: &PiLog,
    segment: Option<usize>,
    source: &str,
    resolve: impl Fn(&str) -> Option<String>,
) -> Vec<ImportedAttempt> {
    log.results
        .iter()
        .filter(|r| segment.is_none_or(|s| r.segment == s))
        .map(|r| {
            let hex =
                r.commit.len() >= MIN_ABBREV && r.commit.chars().all(|c| c.is_ascii_hexdigit());
            let commit = hex
                .then(|| resolve(&r.commit))
                .flatten()
                .unwrap_or_else(|| r.commit.clone());
            let valued = matches!(r.status, PiStatus::Keep | PiStatus::Discard);
            ImportedAttempt {
                commit,
                status: r.status.attempt_status(),
                primary_value: valued.then_some(r.metric),
                peak_gpu_mb: r
                    .metrics
                    .get("memory_gb")
                    .filter(|gb| **gb > 0.0)
                    .map(|gb| (gb * 1024.0).round() as i64),
                hypothesis: r.description.clone(),
                source: if r.status == PiStatus::Keep {
                    format!("pi-autoresearch:{source}")
                } else {
                    format!("pi-autoresearch:{source} (tried on this commit, diff lost)")
                },
            }
        })
        .collect()
}

/// What `picidae import pi-log` reads.
#[derive(Debug, Clone)]
pub struct PiLogImport {
    pub program: String,
    pub file: PathBuf,
    /// Import only this segment (0-based).
    pub segment: Option<usize>,
    /// Resolve abbreviated commits to full shas in this repository.
    pub repo: Option<PathBuf>,
}

/// What a pi-log import did.
#[derive(Debug, Clone, PartialEq)]
pub struct PiLogSummary {
    pub imported: usize,
    pub skipped: usize,
    /// Result lines in the log (all segments).
    pub results: usize,
    /// The segments' primary metric names.
    pub metrics: Vec<String>,
}

/// `picidae import pi-log`: pi-autoresearch's log.jsonl.
pub fn import_pi_log(project: &mut Project, opts: &PiLogImport) -> Result<PiLogSummary> {
    let program = project.store.program(&opts.program)?;
    let text = std::fs::read_to_string(&opts.file)
        .with_context(|| format!("reading {}", opts.file.display()))?;
    let log = parse_pi_log(&text, &opts.file.display().to_string())?;
    if let Some(s) = opts.segment {
        if s >= log.segments.len() {
            bail!(
                "{}: no segment {s} (the log has {} segment{}, numbered from 0)",
                opts.file.display(),
                log.segments.len(),
                if log.segments.len() == 1 { "" } else { "s" }
            );
        }
    }
    let repo = opts
        .repo
        .as_deref()
        .map(|dir| Repo::open(dir).with_context(|| format!("opening {}", dir.display())))
        .transpose()?;
    let name = file_name(&opts.file, "log.jsonl");
    let planned = plan_pi_log(&log, opts.segment, &name, |id| {
        repo.as_ref().and_then(|r| r.resolve(id).ok().flatten())
    });
    let (imported, skipped) = insert_new(project, program.id, planned)?;
    Ok(PiLogSummary {
        imported,
        skipped,
        results: log.results.len(),
        metrics: log
            .segments
            .iter()
            .map(|s| s.metric_name.clone().unwrap_or_else(|| "metric".into()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pi_log_segments_statuses_and_errors() {
        let text = r#"{"type":"config","name":"a","metricName":"val_bpb","metricUnit":"","bestDirection":"lower"}
{"run":1,"commit":"abc1234","metric":1.5,"metrics":{"memory_gb":2},"status":"keep","description":"baseline","timestamp":1,"segment":0,"confidence":null}
{"type":"hook","stage":"after","exit_code":0}

{"run":2,"commit":"abc1234","metric":0,"metrics":{},"status":"crash","description":"oom","timestamp":2,"segment":0,"confidence":null}
{"type":"config","name":"b","metricName":"ms","bestDirection":"lower"}
{"run":3,"commit":"def5678","metric":9,"status":"checks_failed","description":"fast but wrong"}
"#;
        let log = parse_pi_log(text, "log.jsonl").unwrap();
        assert_eq!(log.segments.len(), 2);
        assert_eq!(log.skipped, 1);
        assert_eq!(
            log.results.iter().map(|r| r.segment).collect::<Vec<_>>(),
            [0, 0, 1]
        );
        let plan = plan_pi_log(&log, None, "log.jsonl", |_| None);
        assert_eq!(plan[0].primary_value, Some(1.5));
        assert_eq!(plan[0].peak_gpu_mb, Some(2 * 1024));
        assert_eq!(plan[1].status, AttemptStatus::Failed);
        assert_eq!(plan[1].primary_value, None);
        assert!(plan[1]
            .source
            .ends_with("(tried on this commit, diff lost)"));
        assert_eq!(plan[2].status, AttemptStatus::Failed);
        assert_eq!(plan_pi_log(&log, Some(1), "l", |_| None).len(), 1);

        let bad = "{\"type\":\"config\"}\n{\"commit\":\"a\",\"metric\":\"x\",\"status\":\"kept\",\"description\":\"d\"}\nnot json\n{\"commit\":1,\"metric\":1,\"status\":\"keep\",\"description\":\"d\",\"metrics\":{\"m\":\"z\"}}\n";
        let errs = parse_pi_log(bad, "l.jsonl").unwrap_err().0;
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 5, "{shown:?}");
        assert!(
            shown[0].starts_with("l.jsonl:2: field `metric`"),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("l.jsonl:2: field `status`"),
            "{shown:?}"
        );
        assert!(shown[2].starts_with("l.jsonl:3: not JSON"), "{shown:?}");
        assert!(
            shown[3].starts_with("l.jsonl:4: field `commit`"),
            "{shown:?}"
        );
        assert!(
            shown[4].starts_with("l.jsonl:4: field `metrics.m`"),
            "{shown:?}"
        );
    }
}
