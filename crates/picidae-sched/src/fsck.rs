//! `fsck`: one program's records checked against each other and against its git refs.
//!
//! The store is the source of truth, but an agent that runs as the user can delete the refs that
//! keep its commits reachable (so `git gc` may lose them) or edit the store. This module owns the
//! rules every state the loop, the imports, `measure`, retraction, crash recovery and cancellation
//! leave behind satisfies, and reports each breach as a [`Problem`]:
//!
//! 1. **Refs.** Every explored attempt with a commit of its own (a code change; not a baseline,
//!    a measurement, an import, a parameter-only or a no-change attempt) has
//!    `refs/picidae/<program>/attempts/<seq:06>` at that commit; `frontier` and `base` equal the
//!    store's. A ref under `attempts/` that the store does not account for is reported, never
//!    deleted. (A ref of an attempt with no recorded commit is what a crash between committing
//!    and recording leaves; it is kept silently.)
//! 2. **Objects.** The commits the store names exist in the repository. A ref at a commit proves
//!    the object exists, so git is asked about objects only where a ref is missing or differs,
//!    and for commits no ref holds. Before a ref is restored to the store's commit, that commit
//!    must carry the attempt's own `Picidae-Program`/`Picidae-Attempt` trailers: a store edited
//!    to name another commit is reported, and the ref (the evidence) left alone.
//! 3. **Decisions and runs.** A run's stored primary value is the primary metric of its stored
//!    metrics (none unless it succeeded); a finished run has a finish time. A decided baseline
//!    or explored attempt's value is the mean of the primary values of its succeeded runs among
//!    those that count (finished, and not cancelled by a stopping harness: those seeds run
//!    again); a kept one has runs, all finished, and every one that counts succeeded, and it
//!    moved the frontier (a `frontier_history` row). A finding is `validated` or `retracted`
//!    exactly when its attempt is kept.
//! 4. **Frontier.** `programs.frontier_attempt_id` names a kept explored or baseline attempt of
//!    the program whose commit and value are the frontier's, whose finding (if any) is
//!    `validated`, and which the latest `frontier_history` row names with the same commit and
//!    value; every history row matches its (kept) attempt.
//!
//! Repair restores refs from the store and nothing else: the store is never written. A ref is
//! restored only when its commit exists and nothing in the store about its attempt (or the
//! frontier) is in doubt. Problems of kinds 3 and 4, a commit of the wrong attempt, and a
//! missing frontier or base commit block a loop from starting ([`Problem::blocks_start`]);
//! ref problems and lost commits of other attempts are reported only.
//!
//! Cost: one read snapshot (four queries: attempts, runs, findings, frontier history) and one
//! `git for-each-ref`; other git calls only for the refs and commits named above.

mod git;
mod store;

use std::collections::HashMap;
use std::fmt;

use picidae_core::domain::FindingState;
use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_git::Repo;
use picidae_store::{Program, Store, StoreError};
use serde::Serialize;

use crate::{Project, SchedError};

/// What a [`Problem`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// A ref the store implies is absent (and was not restored).
    RefMissing,
    /// A ref points at another commit than the store's (and was not restored).
    RefMoved,
    /// A ref under `attempts/` that no attempt in the store accounts for.
    RefUnknown,
    /// A commit the store names is not in the repository.
    CommitMissing,
    /// The store names, for an attempt, something that is not that attempt's commit: not a
    /// full hash, or a commit whose trailers name another program or attempt.
    WrongCommit,
    /// A stored state or kind this version does not know.
    UnknownState,
    /// A run's stored primary value differs from the primary metric in its stored metrics.
    RunValue,
    /// A finished run has no finish time.
    RunFinishTime,
    /// A kept attempt without runs, with an unfinished run, or with a run that counts and did
    /// not succeed.
    KeptRuns,
    /// A decided attempt's value is not the mean of the runs that had finished when it was
    /// decided.
    AttemptValue,
    /// A kept attempt that never moved the frontier.
    KeptNotInHistory,
    /// A finding's state contradicts its attempt's decision.
    FindingState,
    /// The program's frontier contradicts its attempt, its finding or its history.
    Frontier,
    /// A `frontier_history` row contradicts its attempt.
    FrontierHistory,
    /// The benchmark's repository cannot be opened (git is not checked).
    Repository,
}

/// Where a [`Problem`] is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Subject {
    /// The program's frontier (`programs.frontier_*`).
    Frontier,
    /// The program's repository.
    Repository,
    Attempt {
        seq: i64,
    },
    Run {
        id: i64,
        seq: i64,
    },
    Finding {
        id: i64,
        seq: Option<i64>,
    },
    /// A `frontier_history` row, by the attempt it names.
    History {
        row: i64,
        seq: Option<i64>,
    },
    Ref {
        name: String,
        seq: Option<i64>,
    },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = |s: &Option<i64>| s.map(|s| format!(" (attempt {s})")).unwrap_or_default();
        match self {
            Subject::Frontier => f.write_str("frontier"),
            Subject::Repository => f.write_str("repository"),
            Subject::Attempt { seq } => write!(f, "attempt {seq}"),
            Subject::Run { id, seq } => write!(f, "run {id} (attempt {seq})"),
            Subject::Finding { id, seq: s } => write!(f, "finding {id}{}", seq(s)),
            Subject::History { row, seq: s } => write!(f, "frontier_history row {row}{}", seq(s)),
            Subject::Ref { name, .. } => write!(f, "ref {name}"),
        }
    }
}

/// One inconsistency: what, where, what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub check: Check,
    pub subject: Subject,
    /// What is wrong, in words.
    pub detail: String,
    pub expected: String,
    pub found: String,
    /// Whether it keeps a loop from starting (the store is in doubt, or the loop cannot work).
    pub blocks_start: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: expected {}, found {}",
            self.subject, self.detail, self.expected, self.found
        )
    }
}

/// A ref set back to the store's commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    pub reference: String,
    pub seq: Option<i64>,
    /// Where the ref pointed before (`None`: it was missing).
    pub from: Option<String>,
    pub to: String,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let was = match &self.from {
            Some(sha) => format!("was {sha}"),
            None => "was missing".into(),
        };
        write!(f, "restored {} to {} ({was})", self.reference, self.to)
    }
}

/// What [`fsck`] found in one program, and what it repaired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub program: String,
    pub attempts: usize,
    pub runs: usize,
    pub refs: usize,
    pub problems: Vec<Problem>,
    pub repaired: Vec<Repair>,
}

impl Report {
    /// No problem remains (repairs made do not count).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems that keep a loop from starting.
    pub fn blocking(&self) -> Vec<Problem> {
        self.problems
            .iter()
            .filter(|p| p.blocks_start)
            .cloned()
            .collect()
    }
}

/// Check program `program` of `store` against its repository `repo`; with `repair`, restore the
/// refs that can be restored. The store is only read.
pub fn fsck(store: &Store, repo: &Repo, program: &str, repair: bool) -> Result<Report, SchedError> {
    check(store, Ok(repo), program, repair)
}

/// [`fsck`] for a program of `project`, opening its repository. With `repair` the program's
/// lock is taken first, so refs are never moved under a running loop
/// ([`SchedError::Busy`] when one runs it). A repository that cannot be opened is a problem of
/// the report, and the store is still checked.
pub fn fsck_project(project: &Project, program: &str, repair: bool) -> Result<Report, SchedError> {
    let p = project.store.program(program)?;
    let _lock = if repair {
        Some(crate::runner::lock_program(project, &p.name)?)
    } else {
        None
    };
    let repo = Repo::open(project.benchmark_dir(&p));
    check(&project.store, repo.as_ref(), program, repair)
}

/// Run at a loop's start: restore refs, log what was repaired and what is reported only, and
/// refuse the start ([`SchedError::Inconsistent`]) while problems that block it remain.
pub(crate) fn before_start(store: &Store, repo: &Repo, program: &str) -> Result<(), SchedError> {
    let report = fsck(store, repo, program, true)?;
    for r in &report.repaired {
        tracing::warn!("{program}: {r}");
    }
    for p in report.problems.iter().filter(|p| !p.blocks_start) {
        tracing::warn!("{program}: {p}");
    }
    let problems = report.blocking();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SchedError::Inconsistent {
            program: program.to_string(),
            problems,
        })
    }
}

/// The message of [`SchedError::Inconsistent`].
pub fn refusal(program: &str, problems: &[Problem]) -> String {
    let mut s = format!(
        "program {program}: the store is inconsistent, so its loop does not start \
         (nothing was changed; see `picidae fsck {program}`):"
    );
    for p in problems {
        s.push_str(&format!("\n  {program}: {p}"));
    }
    s
}

// ---------------------------------------------------------------------- the snapshot

struct AttemptRow {
    id: i64,
    seq: i64,
    /// `None`: a kind or status this version does not know (reported once).
    kind: Option<AttemptKind>,
    status: Option<AttemptStatus>,
    /// The commit is the attempt's own (not its parent's: a change, not parameters or nothing).
    own_commit: bool,
    commit: Option<String>,
    value: Option<f64>,
    decided_at: Option<i64>,
}

struct RunRow {
    id: i64,
    attempt_id: i64,
    /// A screen run (a negative seed) is not one of its attempt's seeds.
    screen: bool,
    status: Option<RunStatus>,
    value: Option<f64>,
    /// The primary metric in the stored metrics: `None` when absent, `Some(NaN)` for a
    /// non-finite value.
    metric: Option<f64>,
    finished: bool,
    finished_at: Option<i64>,
    cancel_requested: bool,
}

impl RunRow {
    /// Whether the run is one of its attempt's seeds: not a screen run, finished, and not
    /// cancelled by a harness that stopped (that seed runs again); a run a person cancelled
    /// counts.
    fn counts(&self) -> bool {
        if self.screen {
            return false;
        }
        match self.status {
            Some(RunStatus::Cancelled) => self.cancel_requested,
            Some(s) => s.is_terminal(),
            None => false,
        }
    }
}

struct FindingRow {
    id: i64,
    attempt_id: i64,
    state: Option<FindingState>,
    raw_state: String,
}

struct HistoryRow {
    id: i64,
    attempt_id: i64,
    commit: String,
    value: f64,
}

struct Snapshot {
    program: Program,
    attempts: Vec<AttemptRow>,
    runs: Vec<RunRow>,
    findings: Vec<FindingRow>,
    history: Vec<HistoryRow>,
}

/// Everything the checks read, from one snapshot of the store.
fn load(store: &Store, name: &str, primary: Option<&str>) -> Result<Snapshot, StoreError> {
    let records = store.program_records(name)?;
    let attempts = records
        .attempts
        .into_iter()
        .map(|a| AttemptRow {
            id: a.id,
            seq: a.seq,
            kind: a.kind.parse().ok(),
            status: a.status.parse().ok(),
            own_commit: a.commit.as_ref().is_some_and(|c| *c != a.parent_commit),
            commit: a.commit,
            value: a.primary_value,
            decided_at: a.decided_at,
        })
        .collect();
    let runs = records
        .runs
        .into_iter()
        .map(|r| RunRow {
            id: r.id,
            attempt_id: r.attempt_id,
            screen: r.seed < 0,
            status: r.status.parse().ok(),
            value: r.primary_value,
            metric: primary.and_then(|p| metric_of(r.metrics_json.as_deref()?, p)),
            finished: r.finished_at.is_some(),
            finished_at: r.finished_at,
            cancel_requested: r.cancel_requested_at.is_some(),
        })
        .collect();
    let findings = records
        .findings
        .into_iter()
        .map(|f| FindingRow {
            id: f.id,
            attempt_id: f.attempt_id,
            state: f.state.parse().ok(),
            raw_state: f.state,
        })
        .collect();
    let history = records
        .history
        .into_iter()
        .map(|h| HistoryRow {
            id: h.id,
            attempt_id: h.attempt_id,
            commit: h.commit,
            value: h.value,
        })
        .collect();
    Ok(Snapshot {
        program: records.program,
        attempts,
        runs,
        findings,
        history,
    })
}

/// The value of metric `name` in a stored metrics object (numbers, or the strings non-finite
/// values are stored as).
fn metric_of(json: &str, name: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    match v.get(name)? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => Some(s.parse().unwrap_or(f64::NAN)),
        _ => Some(f64::NAN),
    }
}

/// Two stored values agree: both absent, or equal up to a small relative tolerance (the mean
/// may be summed in another order).
fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => false,
    }
}

fn show(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn full_hash(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

// ---------------------------------------------------------------------- the checks

struct Checker<'s> {
    snap: &'s Snapshot,
    by_id: HashMap<i64, &'s AttemptRow>,
    problems: Vec<Problem>,
    repaired: Vec<Repair>,
}

fn check(
    store: &Store,
    repo: Result<&Repo, &picidae_git::GitError>,
    name: &str,
    repair: bool,
) -> Result<Report, SchedError> {
    let program = store.program(name)?;
    // The program's own contract (its base commit's), as the loop reads it.
    let primary = repo
        .ok()
        .and_then(|r| crate::contract_source::program_contract(r, &program).ok())
        .map(|(c, _)| c.primary_metric);
    let snap = load(store, name, primary.as_deref())?;
    let mut c = Checker {
        snap: &snap,
        by_id: snap.attempts.iter().map(|a| (a.id, a)).collect(),
        problems: Vec::new(),
        repaired: Vec::new(),
    };
    c.states();
    c.runs();
    c.decisions();
    c.findings();
    c.frontier();
    let mut refs = 0;
    match repo {
        Ok(repo) => refs = c.git(repo, repair)?,
        Err(e) => c.problem(
            Check::Repository,
            Subject::Repository,
            "the benchmark's repository cannot be opened, so no ref or commit was checked",
            format!("a git work tree at {}", snap.program.benchmark_dir),
            e.to_string(),
            false,
        ),
    }
    Ok(Report {
        program: name.to_string(),
        attempts: snap.attempts.len(),
        runs: snap.runs.len(),
        refs,
        problems: c.problems,
        repaired: c.repaired,
    })
}

impl<'s> Checker<'s> {
    fn problem(
        &mut self,
        check: Check,
        subject: Subject,
        detail: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
        blocks_start: bool,
    ) {
        self.problems.push(Problem {
            check,
            subject,
            detail: detail.to_string(),
            expected: expected.into(),
            found: found.into(),
            blocks_start,
        });
    }

    fn seq_of(&self, attempt_id: i64) -> Option<i64> {
        self.by_id.get(&attempt_id).map(|a| a.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_agree_within_a_relative_tolerance() {
        assert!(same(None, None));
        assert!(same(Some(0.1 + 0.2), Some(0.3)));
        assert!(!same(Some(1.0), Some(1.001)));
        assert!(!same(Some(1.0), None));
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1.0, 2.0]), Some(1.5));
    }

    #[test]
    fn metrics_are_read_as_stored() {
        assert_eq!(metric_of(r#"{"score": 7.5, "x": 1}"#, "score"), Some(7.5));
        assert!(metric_of(r#"{"score": "NaN"}"#, "score").unwrap().is_nan());
        assert_eq!(
            metric_of(r#"{"score": "inf"}"#, "score"),
            Some(f64::INFINITY)
        );
        assert_eq!(metric_of(r#"{"x": 1}"#, "score"), None);
        assert_eq!(metric_of("not json", "score"), None);
    }

    #[test]
    fn only_full_hashes_name_commits() {
        assert!(full_hash(&"a".repeat(40)));
        assert!(!full_hash("HEAD"));
        assert!(!full_hash(&"a".repeat(12)));
    }
}
