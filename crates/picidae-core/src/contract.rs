//! The benchmark contract: `picidae.toml` in a benchmark directory.
//!
//! This module owns parsing and validating the contract. Every error names the file, the line and
//! column, and the dotted field it concerns (`metrics.val_loss.goal`), so a user can fix the file
//! without guessing. Parsing never panics; all problems found in one pass are reported together.
//!
//! This file holds the validated contract's types and the entry points; the document as written
//! is `raw`, its shape is checked by `schema`, its meaning by `validate`, and `locate` turns
//! byte offsets into file:line:column.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::metrics::{Goal, MetricSource, MetricSpec};
use crate::params::{ParamDomain, ParamSpec};

mod locate;
mod raw;
mod schema;
mod screen;
mod validate;

use locate::Locator;
use raw::Raw;
pub use screen::{ScreenSpec, SCREEN_SEED};
use validate::validate;

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
    /// `[screen]`: the cheap first stage of a candidate's verification, if declared.
    #[serde(default)]
    pub screen: Option<ScreenSpec>,
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
    /// Attempts of the program in flight at once (each run still holds its own slot).
    pub concurrency: u32,
    /// Sequential verification: a candidate's seeds are added one at a time and it is decided
    /// as soon as the evidence is decisive (a test valid under optional stopping), from
    /// `seeds` (the fewest a keep needs) up to `max_seeds`. Off: every candidate gets exactly
    /// `seeds` seeds and Welch's test.
    pub sequential: bool,
    /// The most seeds sequential verification may spend on one candidate.
    pub max_seeds: u32,
    /// Compare a candidate with its incumbent seed by seed (common random numbers): the
    /// incumbent's missing seeds are run too, and the test is on the paired differences.
    pub paired: bool,
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
            concurrency: 1,
            sequential: true,
            max_seeds: 8,
            paired: true,
        }
    }
}

impl PolicySpec {
    /// More than one seed per attempt: candidates are verified statistically and become
    /// findings; with one seed the loop is plain keep/revert.
    pub fn verifies(&self) -> bool {
        self.seeds > 1
    }

    /// The most seeds a candidate may get: `max_seeds` under sequential verification (never
    /// fewer than `seeds`), otherwise `seeds`.
    pub fn seed_cap(&self) -> u32 {
        if self.sequential {
            self.max_seeds.max(self.seeds)
        } else {
            self.seeds
        }
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

impl Contract {
    /// The time budget and hard timeout of a run on `seed`: the `[screen]` stage's for
    /// [`SCREEN_SEED`], the `[run]` ones otherwise.
    pub fn stage_budget(&self, seed: i64) -> (Duration, Duration) {
        match &self.screen {
            Some(s) if seed == SCREEN_SEED => (s.time_budget, s.timeout),
            _ => (self.run.time_budget, self.run.timeout),
        }
    }

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
