//! The Markdown research report of a program: what `picidae findings report` prints and
//! `GET /api/programs/{name}/report` serves, built by one function, [`markdown`].
//!
//! The report is for people. The CLI shows the hidden evaluator's numbers in it
//! ([`Hidden::Show`]); the HTTP API, whose answers never carry them, asks for
//! [`Hidden::Withhold`]: no hidden effect or agreement, numbers after "hidden" in notes
//! withheld ([`crate::mcp::redact_hidden`]), and diffs without the hidden evaluator's files
//! (withheld whole when the contract cannot be read), as the MCP server does.

use std::fmt::Write as _;

use picidae_core::domain::{FindingState, FLAG_OVERFIT};
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Repo;
use picidae_store::{AttemptFilter, Finding, Program, Store};

use crate::mcp;

/// Whether the report shows the hidden evaluator's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// Show them (the CLI, run by the project's owner).
    Show,
    /// Withhold them (the HTTP API).
    Withhold,
}

/// Lines of a validated finding's diff shown in the report.
pub const DIFF_LINES: usize = 40;

/// A signed number with `digits` decimals, or `-`.
pub fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:+.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// A number with `digits` decimals, or `-`.
pub fn plain(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// A finding's confidence interval, or `-`.
pub fn ci(f: &Finding) -> String {
    match (f.evidence.ci_low, f.evidence.ci_high) {
        (Some(l), Some(h)) => format!("[{l:+.5}, {h:+.5}]"),
        _ => "-".into(),
    }
}

/// The Markdown report of `program`: a summary, the validated findings (largest effect first,
/// with their evidence, a person's approvals and the start of their diff), flagged suspicions,
/// refuted ideas and retractions.
pub fn markdown(store: &Store, program: &str, hidden: Hidden) -> crate::Result<String> {
    let p = mcp::program(store, program)?;
    let mut out = String::new();
    write_report(store, &p, hidden, &mut out)?;
    Ok(out)
}

/// `writeln!` into a `String`, which cannot fail.
macro_rules! w {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

fn write_report(store: &Store, p: &Program, hidden: Hidden, out: &mut String) -> crate::Result<()> {
    let show = hidden == Hidden::Show;
    let note = |n: &str| -> String {
        if show {
            n.to_string()
        } else {
            mcp::redact_hidden(n)
        }
    };
    let attempts = store.attempts(&AttemptFilter {
        program_id: Some(p.id),
        ..Default::default()
    })?;
    let count = |s: AttemptStatus| attempts.iter().filter(|a| a.status == s).count();
    let findings = store.findings(Some(p.id), None)?;
    let metric = findings
        .first()
        .map(|f| f.metric.clone())
        .unwrap_or_else(|| "primary metric".into());
    w!(out, "# Research report: {}", p.name);
    w!(out);
    w!(
        out,
        "Benchmark `{}` from commit `{}`.",
        p.benchmark_dir,
        &p.base_commit[..12.min(p.base_commit.len())]
    );
    w!(out);
    w!(out, "## Summary");
    w!(out);
    w!(
        out,
        "- {} attempts: {} kept, {} merged, {} discarded, {} rejected, {} failed; {} runs",
        attempts.len(),
        count(AttemptStatus::Kept),
        count(AttemptStatus::Merged),
        count(AttemptStatus::Discarded),
        count(AttemptStatus::Rejected),
        count(AttemptStatus::Failed),
        store.run_count(Some(p.id))?
    );
    let history = store.frontier_history(p.id)?;
    if let (Some(first), Some(v)) = (history.first(), p.frontier_value) {
        let rel = if first.value != 0.0 {
            format!(" ({:+.2}%)", (v - first.value) / first.value.abs() * 100.0)
        } else {
            String::new()
        };
        w!(out, "- baseline {:.6} → frontier {v:.6}{rel}", first.value);
    }
    if let Some(c) = store.latest_calibration(p.id)? {
        w!(
            out,
            "- evaluator calibration: {} (rank correlation {}, max error {})",
            if c.passed {
                "passed"
            } else {
                "**failed**: no finding can be validated"
            },
            plain(c.rank_correlation, 3),
            plain(c.max_error, 6)
        );
    }
    let by_state = |s: FindingState| findings.iter().filter(move |f| f.state == s);
    w!(
        out,
        "- findings: {} validated, {} refuted, {} verifying, {} retracted",
        by_state(FindingState::Validated).count(),
        by_state(FindingState::Refuted).count(),
        by_state(FindingState::Verifying).count() + by_state(FindingState::Candidate).count(),
        by_state(FindingState::Retracted).count()
    );
    w!(out);

    let mut validated: Vec<&Finding> = by_state(FindingState::Validated).collect();
    validated.sort_by(|a, b| {
        b.evidence
            .effect
            .unwrap_or(0.0)
            .total_cmp(&a.evidence.effect.unwrap_or(0.0))
    });
    w!(out, "## Validated findings (largest effect first)");
    w!(out);
    if validated.is_empty() {
        w!(out, "None yet.");
        w!(out);
    }
    let repo = Repo::open(&p.benchmark_dir).ok();
    for (i, f) in validated.iter().enumerate() {
        let a = store.attempt(f.attempt_id)?;
        let e = &f.evidence;
        w!(out, "### {}. #{}: {}", i + 1, a.seq, a.hypothesis);
        w!(out);
        w!(
            out,
            "- {metric} improves by {} {} ({}% CI), p = {}{}",
            opt(e.effect, 6),
            ci(f),
            e.confidence
                .map(|c| (c * 100.0).round().to_string())
                .unwrap_or("-".into()),
            plain(e.p_value, 5),
            e.q_value
                .map(|q| format!(", q = {}", plain(Some(q), 5)))
                .unwrap_or_default()
        );
        if let Some(rule) = &e.rule {
            w!(out, "- rule: {rule}");
        }
        w!(
            out,
            "- seeds: {} candidate vs {} incumbent (attempt #{}); noise floor {}",
            e.n_candidate.unwrap_or(0),
            e.n_incumbent.unwrap_or(0),
            store.attempt(f.incumbent_attempt_id)?.seq,
            plain(e.noise_floor, 6)
        );
        if let (true, Some(h)) = (show, e.hidden_effect) {
            w!(out, "- hidden evaluator agrees: effect {h:+.6}");
        }
        for ev in store.finding_events(f.id)? {
            if ev.to == Store::APPROVED {
                w!(out, "- {}", note(&ev.reason));
            }
        }
        w!(
            out,
            "- environment `{}`, commit `{}`",
            f.fingerprint.as_deref().unwrap_or("-"),
            a.commit.as_deref().unwrap_or("-")
        );
        let patch = match (&repo, &a.commit) {
            (Some(repo), Some(c)) if show => repo.show_patch(c).ok(),
            (Some(_), Some(c)) => mcp::attempt_patch(&p.benchmark_dir, c).ok(),
            _ => None,
        };
        if let Some(patch) = patch {
            let lines: Vec<&str> = patch.lines().collect();
            w!(out);
            w!(out, "```diff");
            for l in lines.iter().take(DIFF_LINES) {
                w!(out, "{l}");
            }
            if lines.len() > DIFF_LINES {
                w!(out, "… {} more lines", lines.len() - DIFF_LINES);
            }
            w!(out, "```");
        }
        w!(out);
    }

    w!(out, "## Flagged suspicions");
    w!(out);
    let flagged: Vec<&Finding> = findings
        .iter()
        .filter(|f| !f.evidence.flags.is_empty())
        .collect();
    if flagged.is_empty() {
        w!(out, "None.");
    }
    for f in flagged {
        let a = store.attempt(f.attempt_id)?;
        let what = if f.evidence.flags.iter().any(|x| x == FLAG_OVERFIT) {
            if show {
                format!(
                    "visible {metric} improved by {} but the hidden metric moved by {}",
                    opt(f.evidence.effect, 6),
                    opt(f.evidence.hidden_effect, 6)
                )
            } else {
                format!(
                    "visible {metric} improved by {} but the hidden metric did not agree",
                    opt(f.evidence.effect, 6)
                )
            }
        } else {
            note(f.note.as_deref().unwrap_or_default())
        };
        w!(
            out,
            "- #{} {} [{}]: {what}",
            a.seq,
            a.hypothesis,
            f.evidence.flags.join(", ")
        );
    }
    w!(out);

    w!(out, "## Refuted ideas");
    w!(out);
    let refuted: Vec<&Finding> = by_state(FindingState::Refuted).collect();
    if refuted.is_empty() {
        w!(out, "None.");
    } else {
        w!(out, "| # | hypothesis | effect | why |");
        w!(out, "|---|---|---|---|");
        for f in refuted {
            let a = store.attempt(f.attempt_id)?;
            w!(
                out,
                "| {} | {} | {} | {} |",
                a.seq,
                a.hypothesis.replace('|', "\\|"),
                opt(f.evidence.effect, 6),
                note(f.note.as_deref().unwrap_or("")).replace('|', "\\|")
            );
        }
    }
    w!(out);
    let retracted: Vec<&Finding> = by_state(FindingState::Retracted).collect();
    if !retracted.is_empty() {
        w!(out, "## Retracted");
        w!(out);
        for f in retracted {
            let a = store.attempt(f.attempt_id)?;
            w!(
                out,
                "- #{} {}: {}",
                a.seq,
                a.hypothesis,
                note(f.note.as_deref().unwrap_or(""))
            );
        }
        w!(out);
    }
    let screened = attempts
        .iter()
        .filter(|a| a.kind == AttemptKind::Explore && a.status == AttemptStatus::Discarded)
        .count()
        .saturating_sub(
            findings
                .iter()
                .filter(|f| f.state == FindingState::Refuted)
                .count(),
        );
    w!(
        out,
        "{screened} further attempts were screened out on their first seed; `picidae results -p {}` lists them.",
        p.name
    );
    Ok(())
}
