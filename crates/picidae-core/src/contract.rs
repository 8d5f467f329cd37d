//! The benchmark contract: `picidae.toml` in a benchmark directory.
//!
//! This module owns parsing and validating the contract. Every error names the file, the line and
//! column, and the dotted field it concerns (`metrics.val_loss.goal`), so a user can fix the file
//! without guessing. Parsing never panics; all problems found in one pass are reported together.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::metrics::{Goal, MetricSource, MetricSpec};
use crate::params::{ParamDomain, ParamSpec};

mod schema;

/// The file name of a contract inside a benchmark directory.
pub const CONTRACT_FILE: &str = "picidae.toml";

/// One problem in a contract, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractIssue {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the field, e.g. `run.timeout` or `param[2].pattern`.
    pub field: String,
    pub message: String,
    /// The offending source line, for display.
    pub snippet: String,
}

impl fmt::Display for ContractIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: field `{}`: {}",
            self.file.display(),
            self.line,
            self.column,
            self.field,
            self.message
        )?;
        if !self.snippet.is_empty() {
            write!(
                f,
                "\n    | {}\n    | {}^",
                self.snippet,
                " ".repeat(self.column.saturating_sub(1))
            )?;
        }
        Ok(())
    }
}

/// Why a contract could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_issues(.0))]
    Invalid(Vec<ContractIssue>),
}

impl ContractError {
    /// The located issues (empty for I/O errors).
    pub fn issues(&self) -> &[ContractIssue] {
        match self {
            ContractError::Invalid(v) => v,
            ContractError::Io { .. } => &[],
        }
    }
}

fn render_issues(issues: &[ContractIssue]) -> String {
    let mut out = String::new();
    for (i, issue) in issues.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&issue.to_string());
    }
    out
}

/// A validated benchmark contract.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Contract {
    pub name: String,
    pub description: String,
    pub setup: Option<SetupSpec>,
    pub boundary: BoundarySpec,
    pub run: RunSpec,
    /// Metrics by name; exactly one is primary.
    pub metrics: BTreeMap<String, MetricSpec>,
    pub primary_metric: String,
    pub params: Vec<ParamSpec>,
    pub policy: PolicySpec,
    pub hidden: Option<HiddenSpec>,
    pub gold: Vec<GoldCase>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SetupSpec {
    pub command: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BoundarySpec {
    /// Globs (relative to the benchmark directory) the agent may change.
    pub editable: Vec<String>,
    /// Run command-style agents under bubblewrap: their checkout and scratch directory
    /// writable, their own CLI's configuration under `$HOME` writable, the network kept,
    /// nothing else of the machine (the benchmark's repository, hidden files, the store).
    #[serde(default)]
    pub sandbox_agents: bool,
    /// The contract does not say `sandbox_agents`: the harness picks (on, with a `[hidden]`
    /// evaluator, where bubblewrap works).
    #[serde(default)]
    pub sandbox_agents_unset: bool,
}

impl BoundarySpec {
    /// Compile the globs. They were validated on load, so this only fails for hand-built specs.
    pub fn globset(&self) -> Result<GlobSet, globset::Error> {
        let mut b = GlobSetBuilder::new();
        for g in &self.editable {
            b.add(Glob::new(g)?);
        }
        b.build()
    }

    /// The editable globs that match none of `files` (paths relative to the benchmark
    /// directory, `/`-separated): most likely a typo, since an agent could change nothing
    /// through them but files it creates.
    pub fn unmatched_globs<S: AsRef<str>>(&self, files: &[S]) -> Vec<&str> {
        self.editable
            .iter()
            .filter(|g| match Glob::new(g) {
                Ok(glob) => {
                    let m = glob.compile_matcher();
                    !files.iter().any(|f| m.is_match(f.as_ref()))
                }
                Err(_) => false,
            })
            .map(String::as_str)
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSpec {
    pub command: String,
    /// The intended wall clock of one run; told to the run as `PICIDAE_TIME_BUDGET`.
    #[serde(with = "secs")]
    pub time_budget: Duration,
    /// Hard limit: SIGTERM to the run's process group when reached.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL.
    #[serde(with = "secs")]
    pub grace: Duration,
    /// Environment variable carrying the seed.
    pub seed_env: String,
    /// Files (relative to `$PICIDAE_ARTIFACTS`) the run is expected to produce.
    pub artifacts: Vec<String>,
    /// Per-stream cap on stored log bytes.
    pub log_cap_bytes: u64,
    pub resources: Resources,
    /// Keep a run's checkout for the next run of the same commit instead of making a fresh one
    /// per run. Faster for many short runs; files a run leaves in its checkout are then seen by
    /// the next run of that commit.
    #[serde(default)]
    pub reuse_checkout: bool,
    /// Run inside a bubblewrap sandbox: the run's checkout and run directory writable, the
    /// prepared data read-only, everything else of the machine (the benchmark's repository and
    /// hidden files, the store, other programs) absent.
    #[serde(default)]
    pub sandbox: bool,
    /// The contract does not say `sandbox`: the harness picks (on, with a `[hidden]`
    /// evaluator, where bubblewrap works).
    #[serde(default)]
    pub sandbox_unset: bool,
    /// Whether a run may use the network: a sandboxed run keeps it unless this is false, a
    /// container run gets it only when this is true; a plain local run always has it.
    #[serde(default)]
    pub network: Option<bool>,
    /// A declared metric in which the run reports the seconds its budget covers (its training
    /// time, start-up excluded). When set, a run is over budget when that value exceeds
    /// `time_budget`; a run that does not report it is judged on its wall time. The hard
    /// `timeout` is always on the wall clock.
    #[serde(default)]
    pub budget_metric: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub cpus: u32,
    pub gpus: u32,
    /// Memory limit of one run in MiB: places runs under `picidae serve`, and the local
    /// executor enforces it on every process of the run (`RLIMIT_AS`, virtual memory).
    pub memory_mb: Option<u64>,
    /// Most processes (and threads) a local run may have at once; a fork bomb hits it. Enforced
    /// with a pids cgroup when running as root (root ignores `RLIMIT_NPROC`), otherwise with
    /// `RLIMIT_NPROC`, which counts every process of the user.
    #[serde(default)]
    pub max_processes: Option<u64>,
}

/// How a program decides; the contract gives defaults a program may override.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicySpec {
    /// Seeds per attempt (1 = plain autoresearch keep/revert).
    pub seeds: u32,
    /// Seeds for the baseline measurement.
    pub baseline_seeds: u32,
    /// Minimum absolute improvement of the primary metric to count as better.
    pub min_improvement: f64,
    /// False-discovery rate: a finding needs a Benjamini–Hochberg q-value at or below this.
    pub alpha: f64,
    /// Confidence level of the effect's interval; its lower bound must be above zero.
    pub confidence: f64,
    /// The effect must exceed this many standard errors of the baseline's seed noise.
    pub noise_factor: f64,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            seeds: 1,
            baseline_seeds: 1,
            min_improvement: 0.0,
            alpha: 0.05,
            confidence: 0.95,
            noise_factor: 1.0,
        }
    }
}

impl PolicySpec {
    /// More than one seed per attempt: candidates are verified statistically and become
    /// findings; with one seed the loop is plain keep/revert.
    pub fn verifies(&self) -> bool {
        self.seeds > 1
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HiddenSpec {
    pub command: String,
    /// Paths relative to the benchmark directory (files or directories, e.g. gold models)
    /// deleted from every agent and run checkout.
    pub files: Vec<String>,
    pub metrics: Vec<String>,
    /// How far the hidden relative gain may fall short of the visible relative gain
    /// (`None`: the direction alone is checked). Never loosens the direction: the hidden
    /// metric must improve.
    pub tolerance: Option<f64>,
    /// Goal of the hidden metrics (default: the primary metric's goal).
    pub goal: Goal,
    /// Gold cases must rank like their known scores at least this well (Spearman).
    pub min_rank_correlation: f64,
    /// Largest allowed absolute error of the evaluator on a gold case.
    pub max_error: Option<f64>,
}

impl HiddenSpec {
    /// The hidden metric a finding is judged on.
    pub fn primary(&self) -> Option<&str> {
        self.metrics.first().map(String::as_str)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoldCase {
    pub name: String,
    /// An artifact (file or directory of artifacts) relative to the benchmark directory, scored
    /// by the hidden evaluator as if a run had produced it.
    pub path: String,
    pub score: f64,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (as written) form.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    benchmark: Option<RawBenchmark>,
    setup: Option<RawSetup>,
    boundary: Option<Spanned<RawBoundary>>,
    run: Option<Spanned<RawRun>>,
    metrics: Option<Spanned<BTreeMap<String, Spanned<RawMetric>>>>,
    #[serde(default)]
    param: Vec<Spanned<RawParam>>,
    policy: Option<RawPolicy>,
    hidden: Option<Spanned<RawHidden>>,
    #[serde(default)]
    gold: Vec<Spanned<RawGold>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBenchmark {
    name: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetup {
    command: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoundary {
    editable: Spanned<Vec<Spanned<String>>>,
    sandbox_agents: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    command: Spanned<String>,
    time_budget: Spanned<RawDuration>,
    timeout: Option<Spanned<RawDuration>>,
    grace: Option<Spanned<RawDuration>>,
    seed_env: Option<Spanned<String>>,
    #[serde(default)]
    artifacts: Vec<String>,
    log_cap_bytes: Option<Spanned<i64>>,
    resources: Option<RawResources>,
    #[serde(default)]
    reuse_checkout: bool,
    sandbox: Option<bool>,
    network: Option<Spanned<bool>>,
    budget_metric: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Secs(f64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    cpus: Option<Spanned<i64>>,
    gpus: Option<Spanned<i64>>,
    memory_mb: Option<Spanned<i64>>,
    max_processes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    goal: Goal,
    #[serde(default)]
    source: MetricSource,
    #[serde(default)]
    primary: bool,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    name: Spanned<String>,
    file: Option<Spanned<String>>,
    pattern: Option<Spanned<String>>,
    env: Option<Spanned<String>>,
    default: Option<Spanned<toml::Value>>,
    min: Option<Spanned<f64>>,
    max: Option<Spanned<f64>>,
    #[serde(default)]
    log: bool,
    #[serde(default)]
    integer: bool,
    choices: Option<Spanned<Vec<toml::Value>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    seeds: Option<Spanned<i64>>,
    baseline_seeds: Option<Spanned<i64>>,
    min_improvement: Option<Spanned<f64>>,
    alpha: Option<Spanned<f64>>,
    confidence: Option<Spanned<f64>>,
    noise_factor: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHidden {
    command: Spanned<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    metrics: Vec<Spanned<String>>,
    tolerance: Option<Spanned<f64>>,
    goal: Option<Goal>,
    min_rank_correlation: Option<Spanned<f64>>,
    max_error: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGold {
    name: String,
    path: Spanned<String>,
    score: f64,
}

// ---------------------------------------------------------------------------------------------

/// Source text plus the means to turn byte offsets into located issues.
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    fn snippet(&self, line: usize) -> String {
        self.text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .to_string()
    }

    fn issue(&self, offset: usize, field: &str, message: impl Into<String>) -> ContractIssue {
        let (line, column) = self.line_col(offset);
        ContractIssue {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
            snippet: self.snippet(line),
        }
    }

    /// The dotted field at a byte offset, derived from the nearest table header and the key on
    /// the offset's line. Used for errors the TOML deserializer reports with only a span.
    fn field_at(&self, offset: usize) -> String {
        let (line, _) = self.line_col(offset);
        let mut table = String::new();
        let mut key = String::new();
        for (i, l) in self.text.lines().enumerate() {
            if i + 1 > line {
                break;
            }
            let t = l.trim();
            if let Some(h) = t.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
                table = h.trim().to_string();
                key.clear();
            } else if let Some(h) = t.strip_prefix('[').and_then(|h| h.split(']').next()) {
                table = h.trim().to_string();
                key.clear();
            }
            if i + 1 == line {
                if let Some((k, _)) = t.split_once('=') {
                    if !t.starts_with('[') {
                        key = k.trim().trim_matches('"').to_string();
                    }
                }
            }
        }
        match (table.is_empty(), key.is_empty()) {
            (true, true) => "(top level)".into(),
            (true, false) => key,
            (false, true) => table,
            (false, false) => format!("{table}.{key}"),
        }
    }
}

impl Contract {
    /// Load `picidae.toml` from a benchmark directory (or a direct path to the file). Without a
    /// `[benchmark] name`, the benchmark is named after its directory (resolved, so `.` names
    /// the current directory).
    pub fn load(path: &Path) -> Result<Contract, ContractError> {
        let file = if path.is_dir() {
            path.join(CONTRACT_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ContractError::Io {
            path: file.clone(),
            source,
        })?;
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir_name = std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
        parse_named(&text, &file, dir_name)
    }

    /// Parse and validate contract text; `file` is only used in error messages (and, without a
    /// `[benchmark] name`, for the name).
    pub fn parse(text: &str, file: &Path) -> Result<Contract, ContractError> {
        let dir_name = file
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        parse_named(text, file, dir_name)
    }

    pub fn primary(&self) -> &MetricSpec {
        &self.metrics[&self.primary_metric]
    }
}

/// Parse in one pass: the document's shape first (unknown fields, wrong types: every one of
/// them), then the semantic checks on what remains, leaving out what they would say again
/// about a field already reported.
fn parse_named(
    text: &str,
    file: &Path,
    dir_name: Option<String>,
) -> Result<Contract, ContractError> {
    let loc = Locator { file, text };
    let located = |e: &toml::de::Error| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let field = if e.span().is_some() {
            loc.field_at(offset)
        } else {
            "(top level)".into()
        };
        loc.issue(offset, &field, e.message().trim())
    };
    // Syntax errors: the first of each line, as far as the parser recovers; the shape and the
    // meaning of a document that is not TOML are not checked.
    let (mut root, errors) = toml::de::DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut issues: Vec<ContractIssue> = errors.iter().map(located).collect();
        issues.sort_by_key(|i| (i.line, i.column));
        issues.dedup_by_key(|i| i.line);
        return Err(ContractError::Invalid(issues));
    }
    let mut shape = Vec::new();
    schema::check(&mut root, &loc, &mut shape);
    let raw = match Raw::deserialize(toml::de::Deserializer::from(root)) {
        Ok(raw) => raw,
        Err(e) => {
            shape.push(located(&e));
            shape.sort_by_key(|i| (i.line, i.column));
            return Err(ContractError::Invalid(shape));
        }
    };
    match validate(raw, &loc, dir_name) {
        Ok(contract) if shape.is_empty() => Ok(contract),
        Ok(_) => {
            shape.sort_by_key(|i| (i.line, i.column));
            Err(ContractError::Invalid(shape))
        }
        Err(ContractError::Invalid(semantic)) => {
            let mut all = Vec::with_capacity(shape.len() + semantic.len());
            all.extend(
                semantic
                    .into_iter()
                    .filter(|i| !shape.iter().any(|s| schema::related(&s.field, &i.field))),
            );
            all.append(&mut shape);
            all.sort_by_key(|i| (i.line, i.column));
            Err(ContractError::Invalid(all))
        }
        Err(e) => Err(e),
    }
}

fn duration(
    raw: &Spanned<RawDuration>,
    field: &str,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) -> Option<Duration> {
    let at = raw.span().start;
    let d = match raw.get_ref() {
        RawDuration::Secs(s) if s.is_finite() && *s > 0.0 => Duration::try_from_secs_f64(*s).ok(),
        RawDuration::Secs(_) => None,
        RawDuration::Text(t) => humantime::parse_duration(t.trim()).ok(),
    };
    match d {
        Some(d) if !d.is_zero() => Some(d),
        _ => {
            issues.push(loc.issue(
                at,
                field,
                "expected a positive number of seconds or a duration like \"30s\" or \"5m\"",
            ));
            None
        }
    }
}

/// A parameter's pattern: a valid regular expression with a capture group around the value.
fn check_pattern(
    pat: &Spanned<String>,
    field: &str,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) -> String {
    match regex::RegexBuilder::new(pat.get_ref())
        .multi_line(true)
        .build()
    {
        Ok(re) if re.captures_len() < 2 => issues.push(loc.issue(
            pat.span().start,
            field,
            "pattern needs one capture group around the value, e.g. '^LR = (\\S+)$'",
        )),
        Ok(_) => {}
        Err(e) => issues.push(loc.issue(
            pat.span().start,
            field,
            format!("invalid regular expression: {e}"),
        )),
    }
    pat.get_ref().clone()
}

fn non_negative(
    v: &Option<Spanned<i64>>,
    default: i64,
    field: &str,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) -> i64 {
    match v {
        Some(s) if *s.get_ref() < 0 => {
            issues.push(loc.issue(s.span().start, field, "must not be negative"));
            default
        }
        Some(s) => *s.get_ref(),
        None => default,
    }
}

fn validate(raw: Raw, loc: &Locator, dir_name: Option<String>) -> Result<Contract, ContractError> {
    let mut issues = Vec::new();
    let name = raw
        .benchmark
        .as_ref()
        .and_then(|b| b.name.clone())
        .or(dir_name)
        .unwrap_or_else(|| "benchmark".into());
    let description = raw
        .benchmark
        .as_ref()
        .and_then(|b| b.description.clone())
        .unwrap_or_default();

    let setup = raw.setup.map(|s| {
        if s.command.get_ref().trim().is_empty() {
            issues.push(loc.issue(s.command.span().start, "setup.command", "must not be empty"));
        }
        SetupSpec {
            command: s.command.into_inner(),
        }
    });

    // boundary
    let boundary = match raw.boundary {
        None => {
            issues.push(loc.issue(
                0,
                "boundary",
                "missing table [boundary] with `editable = [...]`: the harness needs to know which files an agent may change",
            ));
            BoundarySpec {
                editable: vec![],
                sandbox_agents: false,
                sandbox_agents_unset: true,
            }
        }
        Some(b) => {
            let b = b.into_inner();
            let sandbox_agents = b.sandbox_agents;
            let sandbox_agents_unset = sandbox_agents.is_none();
            let sandbox_agents = sandbox_agents.unwrap_or(false);
            let span = b.editable.span();
            let globs = b.editable.into_inner();
            if globs.is_empty() {
                issues.push(loc.issue(
                    span.start,
                    "boundary.editable",
                    "must list at least one glob",
                ));
            }
            let mut editable = Vec::new();
            for g in globs {
                if let Err(e) = Glob::new(g.get_ref()) {
                    issues.push(loc.issue(
                        g.span().start,
                        "boundary.editable",
                        format!("invalid glob {:?}: {}", g.get_ref(), e.kind()),
                    ));
                }
                if g.get_ref().starts_with('/') || g.get_ref().split('/').any(|c| c == "..") {
                    issues.push(loc.issue(
                        g.span().start,
                        "boundary.editable",
                        "globs are relative to the benchmark directory and may not leave it",
                    ));
                }
                if g.get_ref() == CONTRACT_FILE {
                    issues.push(loc.issue(
                        g.span().start,
                        "boundary.editable",
                        "the contract itself cannot be editable",
                    ));
                }
                editable.push(g.into_inner());
            }
            BoundarySpec {
                editable,
                sandbox_agents,
                sandbox_agents_unset,
            }
        }
    };

    // run
    let mut budget_metric_at = None;
    let run = match raw.run {
        None => {
            issues.push(loc.issue(
                0,
                "run",
                "missing table [run] with `command` and `time_budget`",
            ));
            None
        }
        Some(r) => {
            let r = r.into_inner();
            if r.command.get_ref().trim().is_empty() {
                issues.push(loc.issue(r.command.span().start, "run.command", "must not be empty"));
            }
            let budget = duration(&r.time_budget, "run.time_budget", loc, &mut issues);
            let timeout = match &r.timeout {
                Some(t) => duration(t, "run.timeout", loc, &mut issues),
                None => budget.map(|b| b * 2 + Duration::from_secs(10)),
            };
            let grace = match &r.grace {
                Some(g) => duration(g, "run.grace", loc, &mut issues),
                None => Some(Duration::from_secs(5)),
            };
            if let (Some(b), Some(t), Some(span)) = (budget, timeout, r.timeout.as_ref()) {
                if t < b {
                    issues.push(loc.issue(
                        span.span().start,
                        "run.timeout",
                        format!(
                            "hard timeout ({:.3}s) is shorter than the time budget ({:.3}s)",
                            t.as_secs_f64(),
                            b.as_secs_f64()
                        ),
                    ));
                }
            }
            let seed_env = match r.seed_env {
                Some(s) => {
                    let v = s.get_ref();
                    let ok = !v.is_empty()
                        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !v.starts_with(|c: char| c.is_ascii_digit());
                    if !ok {
                        issues.push(loc.issue(
                            s.span().start,
                            "run.seed_env",
                            "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                        ));
                    }
                    s.into_inner()
                }
                None => "PICIDAE_SEED".into(),
            };
            let log_cap = non_negative(
                &r.log_cap_bytes,
                16 * 1024 * 1024,
                "run.log_cap_bytes",
                loc,
                &mut issues,
            );
            let resources = match r.resources {
                Some(res) => Resources {
                    cpus: non_negative(&res.cpus, 1, "run.resources.cpus", loc, &mut issues) as u32,
                    gpus: non_negative(&res.gpus, 0, "run.resources.gpus", loc, &mut issues) as u32,
                    memory_mb: res.memory_mb.as_ref().map(|_| {
                        non_negative(
                            &res.memory_mb,
                            0,
                            "run.resources.memory_mb",
                            loc,
                            &mut issues,
                        ) as u64
                    }),
                    max_processes: res.max_processes.as_ref().map(|_| {
                        non_negative(
                            &res.max_processes,
                            0,
                            "run.resources.max_processes",
                            loc,
                            &mut issues,
                        ) as u64
                    }),
                },
                None => Resources {
                    cpus: 1,
                    gpus: 0,
                    memory_mb: None,
                    max_processes: None,
                },
            };
            match (budget, timeout, grace) {
                (Some(time_budget), Some(timeout), Some(grace)) => Some(RunSpec {
                    command: r.command.into_inner(),
                    time_budget,
                    timeout,
                    grace,
                    seed_env,
                    artifacts: r.artifacts,
                    log_cap_bytes: log_cap as u64,
                    resources,
                    reuse_checkout: r.reuse_checkout,
                    sandbox: r.sandbox.unwrap_or(false),
                    sandbox_unset: r.sandbox.is_none(),
                    network: r.network.as_ref().map(|n| *n.get_ref()),
                    budget_metric: r.budget_metric.map(|m| {
                        budget_metric_at = Some((m.get_ref().clone(), m.span().start));
                        m.into_inner()
                    }),
                }),
                _ => None,
            }
        }
    };

    // metrics
    let mut metrics = BTreeMap::new();
    let mut primaries = Vec::new();
    // Where the metrics are declared: the first `[metrics...]` line.
    let metrics_at = raw.metrics.as_ref().map(|m| {
        m.get_ref()
            .values()
            .map(|v| v.span().start)
            .min()
            .unwrap_or(m.span().start)
    });
    for (name, m) in raw.metrics.map(Spanned::into_inner).unwrap_or_default() {
        let at = m.span().start;
        let m = m.into_inner();
        let field = format!("metrics.{name}");
        if !valid_metric_name(&name) {
            issues.push(loc.issue(
                at,
                &field,
                "metric names may contain letters, digits, '_', '-', '.' and '/' only",
            ));
        }
        if let (Some(lo), Some(hi)) = (m.min, m.max) {
            if lo > hi {
                issues.push(loc.issue(
                    at,
                    &field,
                    format!("min ({lo}) is greater than max ({hi})"),
                ));
            }
        }
        if m.primary {
            primaries.push((name.clone(), at));
        }
        metrics.insert(
            name.clone(),
            MetricSpec {
                name,
                goal: m.goal,
                source: m.source,
                min: m.min,
                max: m.max,
            },
        );
    }
    let primary_metric = if metrics.is_empty() {
        issues.push(loc.issue(
            metrics_at.unwrap_or(0),
            "metrics",
            "no metrics declared: add a table like [metrics.val_loss] with goal = \"minimize\"",
        ));
        String::new()
    } else if primaries.len() > 1 {
        let (n, at) = &primaries[1];
        issues.push(loc.issue(
            *at,
            &format!("metrics.{n}.primary"),
            format!(
                "only one metric may be primary, but {} are",
                primaries.len()
            ),
        ));
        primaries[0].0.clone()
    } else if let Some((n, _)) = primaries.first() {
        n.clone()
    } else if metrics.len() == 1 {
        metrics.keys().next().cloned().unwrap_or_default()
    } else {
        issues.push(loc.issue(
            metrics_at.unwrap_or(0),
            "metrics",
            "several metrics but none is marked `primary = true`",
        ));
        String::new()
    };

    if let Some((name, at)) = &budget_metric_at {
        if !metrics.contains_key(name) {
            issues.push(loc.issue(
                *at,
                "run.budget_metric",
                format!(
                    "{name:?} is not a declared metric: declare it (e.g. [metrics.{name}] with goal = \"minimize\") so runs can report it"
                ),
            ));
        } else if *name == primary_metric {
            issues.push(loc.issue(
                *at,
                "run.budget_metric",
                "the budget metric must not be the primary metric",
            ));
        }
    }

    // params
    let boundary_set = boundary.globset().ok();
    let mut params: Vec<ParamSpec> = Vec::new();
    for (i, p) in raw.param.into_iter().enumerate() {
        let at = p.span().start;
        let p = p.into_inner();
        let field = |k: &str| format!("param[{i}].{k}");
        if params.iter().any(|q| q.name == *p.name.get_ref()) {
            issues.push(loc.issue(
                p.name.span().start,
                &field("name"),
                format!("duplicate parameter name {:?}", p.name.get_ref()),
            ));
        }
        // Where the value lives: a file (with a pattern) or an environment variable.
        let (file, pattern) = match (&p.env, &p.file, &p.pattern) {
            (Some(env), None, None) => {
                let ok = !env.get_ref().is_empty()
                    && env
                        .get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !env.get_ref().starts_with(|c: char| c.is_ascii_digit());
                if !ok {
                    issues.push(loc.issue(
                        env.span().start,
                        &field("env"),
                        format!("{:?} is not an environment variable name", env.get_ref()),
                    ));
                }
                if p.default.is_none() {
                    issues.push(loc.issue(
                        env.span().start,
                        &field("default"),
                        "an environment parameter needs a `default` value (what runs get before any attempt sets it)",
                    ));
                }
                (String::new(), String::new())
            }
            (Some(env), _, _) => {
                issues.push(loc.issue(
                    env.span().start,
                    &field("env"),
                    "give either `env` or `file` and `pattern`, not both",
                ));
                (String::new(), String::new())
            }
            (None, Some(file), Some(pat)) => {
                if p.default.is_some() {
                    issues.push(loc.issue(
                        at,
                        &field("default"),
                        "`default` is for environment parameters; a file parameter's value is read from its file",
                    ));
                }
                if let Some(set) = &boundary_set {
                    if !set.is_match(file.get_ref()) {
                        issues.push(loc.issue(
                            file.span().start,
                            &field("file"),
                            format!(
                                "{:?} is not inside the boundary's editable globs, so the sweep agent could never change it",
                                file.get_ref()
                            ),
                        ));
                    }
                }
                (
                    file.get_ref().clone(),
                    check_pattern(pat, &field("pattern"), loc, &mut issues),
                )
            }
            (None, file, _) => {
                let missing = if file.is_none() { "file" } else { "pattern" };
                issues.push(loc.issue(
                    at,
                    &field(missing),
                    "needs `file` and `pattern` (a value written in a file) or `env` and `default` (a value passed as an environment variable)",
                ));
                (String::new(), String::new())
            }
        };
        let domain = match (&p.choices, &p.min, &p.max) {
            (Some(c), None, None) => {
                let mut values = Vec::new();
                for v in c.get_ref() {
                    match v {
                        toml::Value::String(s) => values.push(s.clone()),
                        toml::Value::Integer(n) => values.push(n.to_string()),
                        toml::Value::Float(f) => values.push(format!("{f:?}")),
                        toml::Value::Boolean(b) => {
                            values.push(if *b { "True".into() } else { "False".into() })
                        }
                        _ => issues.push(loc.issue(
                            c.span().start,
                            &field("choices"),
                            "choices must be strings, numbers or booleans",
                        )),
                    }
                }
                if values.len() < 2 {
                    issues.push(loc.issue(
                        c.span().start,
                        &field("choices"),
                        "need at least two choices",
                    ));
                }
                Some(ParamDomain::Choice { values })
            }
            (None, Some(lo), Some(hi)) => {
                let (l, h) = (*lo.get_ref(), *hi.get_ref());
                if !(l.is_finite() && h.is_finite()) || l >= h {
                    issues.push(loc.issue(
                        lo.span().start,
                        &field("min"),
                        format!("need finite min < max, got min = {l}, max = {h}"),
                    ));
                } else if p.log && l <= 0.0 {
                    issues.push(loc.issue(
                        lo.span().start,
                        &field("min"),
                        "a log-scale range needs min > 0",
                    ));
                }
                Some(ParamDomain::Range {
                    min: l,
                    max: h,
                    log: p.log,
                    integer: p.integer,
                })
            }
            (Some(c), _, _) => {
                issues.push(loc.issue(
                    c.span().start,
                    &field("choices"),
                    "give either `choices` or `min`/`max`, not both",
                ));
                None
            }
            _ => {
                issues.push(loc.issue(
                    at,
                    &format!("param[{i}]"),
                    "needs either `choices = [...]` or both `min` and `max`",
                ));
                None
            }
        };
        if let Some(domain) = domain {
            let default = p.default.as_ref().map(|d| match d.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Float(f) => format!("{f:?}"),
                other => other.to_string(),
            });
            if let (Some(d), Some(v)) = (&p.default, &default) {
                if matches!(domain, ParamDomain::Choice { ref values } if !values.contains(v)) {
                    issues.push(loc.issue(
                        d.span().start,
                        &field("default"),
                        format!("default {v:?} is not one of the choices"),
                    ));
                }
            }
            params.push(ParamSpec {
                name: p.name.into_inner(),
                file,
                pattern,
                domain,
                env: p.env.map(|e| e.into_inner()),
                default,
            });
        }
    }

    // policy
    let policy = match raw.policy {
        None => PolicySpec::default(),
        Some(p) => {
            let mut pol = PolicySpec::default();
            for (v, f, dst) in [
                (&p.seeds, "policy.seeds", &mut pol.seeds),
                (
                    &p.baseline_seeds,
                    "policy.baseline_seeds",
                    &mut pol.baseline_seeds,
                ),
            ] {
                if let Some(s) = v {
                    if *s.get_ref() < 1 || *s.get_ref() > 1000 {
                        issues.push(loc.issue(s.span().start, f, "must be between 1 and 1000"));
                    } else {
                        *dst = *s.get_ref() as u32;
                    }
                }
            }
            for (v, f, lo, hi, dst) in [
                (
                    &p.min_improvement,
                    "policy.min_improvement",
                    0.0,
                    f64::MAX,
                    &mut pol.min_improvement,
                ),
                (&p.alpha, "policy.alpha", 1e-9, 0.5, &mut pol.alpha),
                (
                    &p.confidence,
                    "policy.confidence",
                    0.5,
                    0.999_999,
                    &mut pol.confidence,
                ),
                (
                    &p.noise_factor,
                    "policy.noise_factor",
                    0.0,
                    100.0,
                    &mut pol.noise_factor,
                ),
            ] {
                if let Some(m) = v {
                    let x = *m.get_ref();
                    if !x.is_finite() || x < lo || x > hi {
                        issues.push(loc.issue(
                            m.span().start,
                            f,
                            if hi == f64::MAX {
                                format!("must be a finite number >= {lo}")
                            } else {
                                format!("must be between {lo} and {hi}")
                            },
                        ));
                    } else {
                        *dst = x;
                    }
                }
            }
            if pol.seeds > 1 && pol.baseline_seeds < 2 {
                let at = p
                    .baseline_seeds
                    .as_ref()
                    .or(p.seeds.as_ref())
                    .map(|s| s.span().start)
                    .unwrap_or(0);
                issues.push(loc.issue(
                    at,
                    "policy.baseline_seeds",
                    "verifying candidates over several seeds needs a baseline of at least 2 seeds to compare against",
                ));
            }
            pol
        }
    };

    let hidden = raw.hidden.map(|h| {
        let h = h.into_inner();
        if h.command.get_ref().trim().is_empty() {
            issues.push(loc.issue(
                h.command.span().start,
                "hidden.command",
                "must not be empty",
            ));
        }
        let tolerance = match h.tolerance {
            Some(t) if !t.get_ref().is_finite() || *t.get_ref() < 0.0 => {
                issues.push(loc.issue(
                    t.span().start,
                    "hidden.tolerance",
                    "must be a finite number >= 0",
                ));
                None
            }
            Some(t) => Some(*t.get_ref()),
            None => None,
        };
        for m in &h.metrics {
            if metrics.contains_key(m.get_ref()) {
                issues.push(loc.issue(
                    m.span().start,
                    "hidden.metrics",
                    format!(
                        "{:?} is also a visible metric; hidden metrics must have their own names",
                        m.get_ref()
                    ),
                ));
            }
        }
        if h.metrics.is_empty() {
            issues.push(loc.issue(
                h.command.span().start,
                "hidden.metrics",
                "name at least one metric the evaluator prints, e.g. metrics = [\"test_loss\"]",
            ));
        }
        let min_rank_correlation = match h.min_rank_correlation {
            Some(r) if !(-1.0..=1.0).contains(r.get_ref()) => {
                issues.push(loc.issue(
                    r.span().start,
                    "hidden.min_rank_correlation",
                    "must be between -1 and 1",
                ));
                0.9
            }
            Some(r) => *r.get_ref(),
            None => 0.9,
        };
        let max_error = match h.max_error {
            Some(e) if !e.get_ref().is_finite() || *e.get_ref() < 0.0 => {
                issues.push(loc.issue(
                    e.span().start,
                    "hidden.max_error",
                    "must be a finite number >= 0",
                ));
                None
            }
            e => e.map(|e| *e.get_ref()),
        };
        let goal = h
            .goal
            .or_else(|| metrics.get(&primary_metric).map(|m| m.goal))
            .unwrap_or(Goal::Minimize);
        HiddenSpec {
            command: h.command.into_inner(),
            files: h.files,
            metrics: h.metrics.into_iter().map(|m| m.into_inner()).collect(),
            tolerance,
            goal,
            min_rank_correlation,
            max_error,
        }
    });

    let gold = raw
        .gold
        .into_iter()
        .map(|g| {
            let g = g.into_inner();
            if hidden.is_none() {
                issues.push(loc.issue(
                    g.path.span().start,
                    "gold.path",
                    "gold cases need a [hidden] evaluator to score them",
                ));
            }
            GoldCase {
                name: g.name,
                path: g.path.into_inner(),
                score: g.score,
            }
        })
        .collect();

    if !issues.is_empty() {
        issues.sort_by_key(|i| (i.line, i.column));
        return Err(ContractError::Invalid(issues));
    }
    let run = run.expect("run is Some when no issues were found");
    Ok(Contract {
        name,
        description,
        setup,
        boundary,
        run,
        metrics,
        primary_metric,
        params,
        policy,
        hidden,
        gold,
    })
}

fn valid_metric_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}
