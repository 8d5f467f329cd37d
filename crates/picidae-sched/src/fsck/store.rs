//! The store's records checked against each other: runs against their metrics, decided
//! attempts against their runs, findings against their attempts, the frontier against its
//! attempt, its finding and its history (checks 3 and 4 of [`super`]).

use std::collections::{HashMap, HashSet};

use picidae_core::domain::FindingState;
use picidae_core::{AttemptKind, AttemptStatus, RunStatus};

use super::{mean, same, show, AttemptRow, Check, Checker, FindingRow, RunRow, Subject};

impl Checker<'_> {
    /// States and kinds this version cannot read.
    pub(super) fn states(&mut self) {
        let snap = self.snap;
        for a in &snap.attempts {
            if a.kind.is_none() || a.status.is_none() {
                self.problem(
                    Check::UnknownState,
                    Subject::Attempt { seq: a.seq },
                    "unknown attempt kind or status",
                    "a kind and status Picidae writes",
                    "something else",
                    true,
                );
            }
        }
        for r in snap.runs.iter().filter(|r| r.status.is_none()) {
            let seq = self.seq_of(r.attempt_id).unwrap_or(-1);
            self.problem(
                Check::UnknownState,
                Subject::Run { id: r.id, seq },
                "unknown run status",
                "a status Picidae writes",
                "something else",
                true,
            );
        }
        for f in snap.findings.iter().filter(|f| f.state.is_none()) {
            let seq = self.seq_of(f.attempt_id);
            self.problem(
                Check::UnknownState,
                Subject::Finding { id: f.id, seq },
                "unknown finding state",
                "a state Picidae writes",
                f.raw_state.clone(),
                true,
            );
        }
    }

    /// Each run on its own: its value against its metrics, its finish time.
    pub(super) fn runs(&mut self) {
        let snap = self.snap;
        for r in &snap.runs {
            let Some(a) = self.by_id.get(&r.attempt_id).copied() else {
                continue;
            };
            // Imported runs carry the value of another tool's log, and no metrics.
            if a.kind != Some(AttemptKind::Explore)
                && a.kind != Some(AttemptKind::Baseline)
                && a.kind != Some(AttemptKind::Measure)
            {
                continue;
            }
            let Some(status) = r.status.filter(|s| s.is_terminal()) else {
                continue;
            };
            let subject = Subject::Run {
                id: r.id,
                seq: a.seq,
            };
            if !r.finished {
                self.problem(
                    Check::RunFinishTime,
                    subject.clone(),
                    "a finished run has no finish time",
                    "a finish time",
                    format!("{status}, no finish time"),
                    true,
                );
            }
            let expected = if status == RunStatus::Succeeded {
                match r.metric {
                    Some(m) => Some(m).filter(|m| m.is_finite()),
                    // The metrics lack the contract's primary metric (renamed since): unknown.
                    None => continue,
                }
            } else {
                None
            };
            if !same(expected, r.value) {
                self.problem(
                    Check::RunValue,
                    subject,
                    if status == RunStatus::Succeeded {
                        "the stored primary value is not the primary metric of the stored metrics"
                    } else {
                        "a run that did not succeed has a primary value"
                    },
                    show(expected),
                    show(r.value),
                    true,
                );
            }
        }
    }

    /// Decided attempts against their runs and the frontier's history.
    pub(super) fn decisions(&mut self) {
        let snap = self.snap;
        let mut runs_of: HashMap<i64, Vec<&RunRow>> = HashMap::new();
        for r in &snap.runs {
            runs_of.entry(r.attempt_id).or_default().push(r);
        }
        let in_history: HashSet<i64> = snap.history.iter().map(|h| h.attempt_id).collect();
        for a in &snap.attempts {
            let (Some(kind), Some(status)) = (a.kind, a.status) else {
                continue;
            };
            // Imports carry another tool's verdicts; a measurement records no value; rejected
            // and duplicate attempts were decided without runs (or flagged after them).
            if !matches!(kind, AttemptKind::Explore | AttemptKind::Baseline)
                || !matches!(
                    status,
                    AttemptStatus::Kept
                        | AttemptStatus::Discarded
                        | AttemptStatus::Failed
                        | AttemptStatus::Merged
                )
            {
                continue;
            }
            let runs = runs_of.get(&a.id).map(Vec::as_slice).unwrap_or(&[]);
            let counted: Vec<&RunRow> = runs.iter().copied().filter(|r| r.counts()).collect();
            // An incumbent gets more seeds after its decision, as the pairs of later candidates'
            // seeds (sequential paired verification): its value is the mean of the runs that
            // had finished when it was decided.
            let values: Vec<f64> = counted
                .iter()
                .filter(|r| r.status == Some(RunStatus::Succeeded))
                .filter(|r| match (r.finished_at, a.decided_at) {
                    (Some(f), Some(d)) => f <= d,
                    _ => true,
                })
                .filter_map(|r| r.value)
                .collect();
            let subject = Subject::Attempt { seq: a.seq };
            let expected = mean(&values);
            if !same(expected, a.value) {
                self.problem(
                    Check::AttemptValue,
                    subject.clone(),
                    &format!(
                        "the {status} attempt's value is not the mean of the {} succeeded runs it was decided on",
                        values.len()
                    ),
                    show(expected),
                    show(a.value),
                    true,
                );
            }
            if status != AttemptStatus::Kept {
                continue;
            }
            if counted.is_empty() {
                self.problem(
                    Check::KeptRuns,
                    subject.clone(),
                    "a kept attempt has no finished run",
                    "at least one succeeded run",
                    format!("{} runs, none finished", runs.len()),
                    true,
                );
            }
            if let Some(r) = runs
                .iter()
                .find(|r| !r.status.is_some_and(|s| s.is_terminal()))
            {
                self.problem(
                    Check::KeptRuns,
                    subject.clone(),
                    &format!("a kept attempt has run {} unfinished", r.id),
                    "every run finished",
                    r.status.map(|s| s.to_string()).unwrap_or_default(),
                    true,
                );
            }
            if let Some(r) = counted
                .iter()
                .find(|r| r.status != Some(RunStatus::Succeeded) || r.value.is_none())
            {
                self.problem(
                    Check::KeptRuns,
                    subject.clone(),
                    &format!("a kept attempt's run {} did not succeed with a value", r.id),
                    "succeeded with a primary value",
                    format!(
                        "{}, value {}",
                        r.status.map(|s| s.to_string()).unwrap_or_default(),
                        show(r.value)
                    ),
                    true,
                );
            }
            if !in_history.contains(&a.id) {
                self.problem(
                    Check::KeptNotInHistory,
                    subject,
                    "a kept attempt never moved the frontier (no frontier_history row)",
                    "a frontier_history row for it",
                    "none",
                    true,
                );
            }
        }
    }

    /// A finding stands (validated, or retracted afterwards) exactly when its attempt is kept.
    pub(super) fn findings(&mut self) {
        let snap = self.snap;
        for f in &snap.findings {
            let Some(state) = f.state else { continue };
            let subject = Subject::Finding {
                id: f.id,
                seq: self.seq_of(f.attempt_id),
            };
            let Some(a) = self.by_id.get(&f.attempt_id).copied() else {
                self.problem(
                    Check::FindingState,
                    subject,
                    "the finding names no attempt of this program",
                    "an attempt of the program",
                    format!("attempt id {}", f.attempt_id),
                    true,
                );
                continue;
            };
            let Some(status) = a.status else { continue };
            let stands = matches!(state, FindingState::Validated | FindingState::Retracted);
            let kept = status == AttemptStatus::Kept;
            if stands && !kept {
                self.problem(
                    Check::FindingState,
                    subject,
                    &format!("a {state} finding on an attempt that is not kept"),
                    "the attempt kept",
                    format!("attempt {} {status}", a.seq),
                    true,
                );
            } else if kept && !stands {
                self.problem(
                    Check::FindingState,
                    subject,
                    &format!(
                        "attempt {} is kept but its finding was not validated",
                        a.seq
                    ),
                    "validated (or retracted)",
                    state.to_string(),
                    true,
                );
            }
        }
    }

    /// The frontier against its attempt, its finding and the history.
    pub(super) fn frontier(&mut self) {
        let snap = self.snap;
        let p = &snap.program;
        let latest_finding: HashMap<i64, &FindingRow> =
            snap.findings.iter().map(|f| (f.attempt_id, f)).collect();
        match p.frontier_attempt_id {
            None => {
                if p.frontier_commit.is_some()
                    || p.frontier_value.is_some()
                    || !snap.history.is_empty()
                {
                    self.problem(
                        Check::Frontier,
                        Subject::Frontier,
                        "the program has a frontier commit, value or history but no frontier attempt",
                        "no frontier yet",
                        format!(
                            "commit {}, value {}, {} history rows",
                            p.frontier_commit.as_deref().unwrap_or("none"),
                            show(p.frontier_value),
                            snap.history.len()
                        ),
                        true,
                    );
                }
            }
            Some(fid) => {
                let stored = format!(
                    "attempt {}, commit {}, value {}",
                    self.seq_of(fid)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| format!("id {fid}")),
                    p.frontier_commit.as_deref().unwrap_or("none"),
                    show(p.frontier_value)
                );
                match self.by_id.get(&fid).copied() {
                    None => self.problem(
                        Check::Frontier,
                        Subject::Frontier,
                        "the frontier names no attempt of this program",
                        "an attempt of the program",
                        format!("attempt id {fid}"),
                        true,
                    ),
                    Some(a) => self.frontier_attempt(a, latest_finding.get(&fid).copied()),
                }
                match snap.history.last() {
                    None => self.problem(
                        Check::Frontier,
                        Subject::Frontier,
                        "the frontier has no frontier_history row",
                        stored,
                        "no rows",
                        true,
                    ),
                    Some(h) => {
                        if h.attempt_id != fid
                            || p.frontier_commit.as_deref() != Some(h.commit.as_str())
                            || !same(Some(h.value), p.frontier_value)
                        {
                            self.problem(
                                Check::Frontier,
                                Subject::Frontier,
                                "the frontier is not the latest frontier_history row",
                                format!(
                                    "attempt {}, commit {}, value {}",
                                    self.seq_of(h.attempt_id)
                                        .map(|s| s.to_string())
                                        .unwrap_or_else(|| format!("id {}", h.attempt_id)),
                                    h.commit,
                                    h.value
                                ),
                                stored,
                                true,
                            );
                        }
                    }
                }
            }
        }
        for h in &snap.history {
            let subject = Subject::History {
                row: h.id,
                seq: self.seq_of(h.attempt_id),
            };
            let Some(a) = self.by_id.get(&h.attempt_id).copied() else {
                self.problem(
                    Check::FrontierHistory,
                    subject,
                    "the row names no attempt of this program",
                    "an attempt of the program",
                    format!("attempt id {}", h.attempt_id),
                    true,
                );
                continue;
            };
            let kept = a.status == Some(AttemptStatus::Kept)
                && matches!(a.kind, Some(AttemptKind::Explore | AttemptKind::Baseline));
            if !kept
                || a.commit.as_deref() != Some(h.commit.as_str())
                || !same(a.value, Some(h.value))
            {
                self.problem(
                    Check::FrontierHistory,
                    subject,
                    &format!("the row does not match attempt {}", a.seq),
                    format!(
                        "a kept attempt at commit {} with value {}",
                        h.commit, h.value
                    ),
                    describe(a),
                    true,
                );
            }
        }
    }

    fn frontier_attempt(&mut self, a: &AttemptRow, finding: Option<&FindingRow>) {
        let p = &self.snap.program;
        let kept = a.status == Some(AttemptStatus::Kept)
            && matches!(a.kind, Some(AttemptKind::Explore | AttemptKind::Baseline));
        if !kept {
            self.problem(
                Check::Frontier,
                Subject::Frontier,
                &format!("the frontier names attempt {}, which is not kept", a.seq),
                "a kept explored or baseline attempt",
                describe(a),
                true,
            );
        }
        if a.commit != p.frontier_commit {
            self.problem(
                Check::Frontier,
                Subject::Frontier,
                &format!("the frontier commit is not attempt {}'s", a.seq),
                a.commit.clone().unwrap_or_else(|| "none".into()),
                p.frontier_commit.clone().unwrap_or_else(|| "none".into()),
                true,
            );
        }
        if !same(a.value, p.frontier_value) {
            self.problem(
                Check::Frontier,
                Subject::Frontier,
                &format!("the frontier value is not attempt {}'s", a.seq),
                show(a.value),
                show(p.frontier_value),
                true,
            );
        }
        if let Some(f) = finding.filter(|f| f.state != Some(FindingState::Validated)) {
            self.problem(
                Check::Frontier,
                Subject::Frontier,
                &format!(
                    "the frontier attempt {} has finding {} that is not validated",
                    a.seq, f.id
                ),
                "validated",
                f.raw_state.clone(),
                true,
            );
        }
    }
}

fn describe(a: &AttemptRow) -> String {
    format!(
        "{} {}, commit {}, value {}",
        a.kind.map(|k| k.to_string()).unwrap_or_else(|| "?".into()),
        a.status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "?".into()),
        a.commit.as_deref().unwrap_or("none"),
        show(a.value)
    )
}
