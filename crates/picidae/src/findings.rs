//! Findings commands: list, show, retract; the morning report; evaluator calibration.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_core::domain::FindingState;
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Repo;
use picidae_sched::verify::FLAG_OVERFIT;
use picidae_sched::{retract_finding, Project, Runner};
use picidae_store::{AttemptFilter, Finding, Program};

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:+.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn plain(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn ci(f: &Finding) -> String {
    match (f.evidence.ci_low, f.evidence.ci_high) {
        (Some(l), Some(h)) => format!("[{l:+.5}, {h:+.5}]"),
        _ => "-".into(),
    }
}

pub fn list(
    project: &Project,
    program: Option<&str>,
    state: Option<FindingState>,
    json: bool,
) -> Result<()> {
    let pid = program
        .map(|p| project.store.program(p))
        .transpose()?
        .map(|p| p.id);
    let findings = project.store.findings(pid, state)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "id",
        "program",
        "#",
        "state",
        "effect",
        "CI",
        "p",
        "q",
        "seeds",
        "hidden",
        "flags",
        "hypothesis",
    ]);
    for f in &findings {
        let p = project.store.program_by_id(f.program_id)?;
        let a = project.store.attempt(f.attempt_id)?;
        let e = &f.evidence;
        t.add_row([
            f.id.to_string(),
            p.name,
            a.seq.to_string(),
            f.state.to_string(),
            opt(e.effect, 5),
            ci(f),
            plain(e.p_value, 4),
            plain(e.q_value, 4),
            format!(
                "{}v{}",
                e.n_candidate.unwrap_or(0),
                e.n_incumbent.unwrap_or(0)
            ),
            match e.hidden_agrees {
                Some(true) => format!("agrees {}", opt(e.hidden_effect, 5)),
                Some(false) => format!("DISAGREES {}", opt(e.hidden_effect, 5)),
                None => "-".into(),
            },
            e.flags.join(","),
            a.hypothesis.chars().take(50).collect(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn show(project: &Project, id: i64) -> Result<()> {
    let f = project.store.finding(id)?;
    let p = project.store.program_by_id(f.program_id)?;
    let a = project.store.attempt(f.attempt_id)?;
    let inc = project.store.attempt(f.incumbent_attempt_id)?;
    println!("finding {} of {}: {}", f.id, p.name, f.state);
    println!("attempt:    #{} {}", a.seq, a.hypothesis);
    println!("against:    #{} {}", inc.seq, inc.hypothesis);
    println!("metric:     {}", f.metric);
    let e = &f.evidence;
    println!(
        "effect:     {} {} ({}% CI), p = {}, q = {}, noise floor {}",
        opt(e.effect, 6),
        ci(&f),
        e.confidence
            .map(|c| (c * 100.0).round().to_string())
            .unwrap_or("-".into()),
        plain(e.p_value, 5),
        plain(e.q_value, 5),
        plain(e.noise_floor, 6)
    );
    println!(
        "seeds:      {} candidate, {} incumbent",
        e.n_candidate.unwrap_or(0),
        e.n_incumbent.unwrap_or(0)
    );
    println!(
        "hidden:     {}",
        match e.hidden_agrees {
            Some(a) => format!(
                "effect {} ({})",
                opt(e.hidden_effect, 6),
                if a { "agrees" } else { "disagrees" }
            ),
            None => "not evaluated".into(),
        }
    );
    if !e.flags.is_empty() {
        println!("flags:      {}", e.flags.join(", "));
    }
    println!("env:        {}", f.fingerprint.as_deref().unwrap_or("-"));
    println!("commit:     {}", a.commit.as_deref().unwrap_or("-"));
    println!("history:");
    for ev in project.store.finding_events(f.id)? {
        println!(
            "  {} → {}: {}",
            ev.from.as_deref().unwrap_or("(new)"),
            ev.to,
            ev.reason
        );
    }
    Ok(())
}

pub fn retract(project: &mut Project, id: i64, reason: &str) -> Result<()> {
    let moved = retract_finding(project, id, reason)?;
    println!("finding {id} retracted");
    if let Some(c) = moved {
        println!("frontier moved back to {}", &c[..12.min(c.len())]);
    }
    Ok(())
}

pub fn calibrate(project: &mut Project, program: &str, json: bool) -> Result<bool> {
    let mut runner = Runner::new(project, program)?;
    runner.prepare(&mut |_| {})?;
    let c = runner.calibrate()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        println!(
            "evaluator calibration {}: rank correlation {}, max error {}",
            if c.passed { "passed" } else { "FAILED" },
            plain(c.rank_correlation, 4),
            plain(c.max_error, 6)
        );
        if let Some(cases) = c.details.get("cases").and_then(|v| v.as_array()) {
            for case in cases {
                println!("  {case}");
            }
        }
        if let Some(rs) = c.details.get("reasons").and_then(|v| v.as_array()) {
            for r in rs {
                println!("  reason: {}", r.as_str().unwrap_or_default());
            }
        }
    }
    Ok(c.passed)
}

/// A Markdown report a human reads in the morning.
pub fn report(project: &Project, program: &str) -> Result<String> {
    let p = project.store.program(program)?;
    let mut out = String::new();
    write_report(project, &p, &mut out).context("formatting the report")?;
    Ok(out)
}

fn write_report(project: &Project, p: &Program, out: &mut String) -> Result<()> {
    let store = &project.store;
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
    writeln!(out, "# Research report: {}", p.name)?;
    writeln!(out)?;
    writeln!(
        out,
        "Benchmark `{}` from commit `{}`.",
        p.benchmark_dir,
        &p.base_commit[..12.min(p.base_commit.len())]
    )?;
    writeln!(out)?;
    writeln!(out, "## Summary")?;
    writeln!(out)?;
    writeln!(
        out,
        "- {} attempts: {} kept, {} discarded, {} rejected, {} failed; {} runs",
        attempts.len(),
        count(AttemptStatus::Kept),
        count(AttemptStatus::Discarded),
        count(AttemptStatus::Rejected),
        count(AttemptStatus::Failed),
        store.run_count(Some(p.id))?
    )?;
    let history = store.frontier_history(p.id)?;
    if let (Some(first), Some(v)) = (history.first(), p.frontier_value) {
        let rel = if first.2 != 0.0 {
            format!(" ({:+.2}%)", (v - first.2) / first.2.abs() * 100.0)
        } else {
            String::new()
        };
        writeln!(out, "- baseline {:.6} → frontier {v:.6}{rel}", first.2)?;
    }
    if let Some(c) = store.latest_calibration(p.id)? {
        writeln!(
            out,
            "- evaluator calibration: {} (rank correlation {}, max error {})",
            if c.passed {
                "passed"
            } else {
                "**failed**: no finding can be validated"
            },
            plain(c.rank_correlation, 3),
            plain(c.max_error, 6)
        )?;
    }
    let by_state = |s: FindingState| findings.iter().filter(move |f| f.state == s);
    writeln!(
        out,
        "- findings: {} validated, {} refuted, {} verifying, {} retracted",
        by_state(FindingState::Validated).count(),
        by_state(FindingState::Refuted).count(),
        by_state(FindingState::Verifying).count() + by_state(FindingState::Candidate).count(),
        by_state(FindingState::Retracted).count()
    )?;
    writeln!(out)?;

    let mut validated: Vec<&Finding> = by_state(FindingState::Validated).collect();
    validated.sort_by(|a, b| {
        b.evidence
            .effect
            .unwrap_or(0.0)
            .total_cmp(&a.evidence.effect.unwrap_or(0.0))
    });
    writeln!(out, "## Validated findings (largest effect first)")?;
    writeln!(out)?;
    if validated.is_empty() {
        writeln!(out, "None yet.")?;
        writeln!(out)?;
    }
    let repo = Repo::open(&p.benchmark_dir).ok();
    for (i, f) in validated.iter().enumerate() {
        let a = store.attempt(f.attempt_id)?;
        let e = &f.evidence;
        writeln!(out, "### {}. #{}: {}", i + 1, a.seq, a.hypothesis)?;
        writeln!(out)?;
        writeln!(
            out,
            "- {metric} improves by {} {} ({}% CI), p = {}, q = {}",
            opt(e.effect, 6),
            ci(f),
            e.confidence
                .map(|c| (c * 100.0).round().to_string())
                .unwrap_or("-".into()),
            plain(e.p_value, 5),
            plain(e.q_value, 5)
        )?;
        writeln!(
            out,
            "- seeds: {} candidate vs {} incumbent (attempt #{}); noise floor {}",
            e.n_candidate.unwrap_or(0),
            e.n_incumbent.unwrap_or(0),
            store.attempt(f.incumbent_attempt_id)?.seq,
            plain(e.noise_floor, 6)
        )?;
        if let Some(h) = e.hidden_effect {
            writeln!(out, "- hidden evaluator agrees: effect {h:+.6}")?;
        }
        writeln!(
            out,
            "- environment `{}`, commit `{}`",
            f.fingerprint.as_deref().unwrap_or("-"),
            a.commit.as_deref().unwrap_or("-")
        )?;
        if let (Some(repo), Some(c)) = (&repo, &a.commit) {
            if let Ok(patch) = repo.show_patch(c) {
                let lines: Vec<&str> = patch.lines().collect();
                writeln!(out)?;
                writeln!(out, "```diff")?;
                for l in lines.iter().take(40) {
                    writeln!(out, "{l}")?;
                }
                if lines.len() > 40 {
                    writeln!(out, "… {} more lines", lines.len() - 40)?;
                }
                writeln!(out, "```")?;
            }
        }
        writeln!(out)?;
    }

    writeln!(out, "## Flagged suspicions")?;
    writeln!(out)?;
    let flagged: Vec<&Finding> = findings
        .iter()
        .filter(|f| !f.evidence.flags.is_empty())
        .collect();
    if flagged.is_empty() {
        writeln!(out, "None.")?;
    }
    for f in flagged {
        let a = store.attempt(f.attempt_id)?;
        let what = if f.evidence.flags.iter().any(|x| x == FLAG_OVERFIT) {
            format!(
                "visible {metric} improved by {} but the hidden metric moved by {}",
                opt(f.evidence.effect, 6),
                opt(f.evidence.hidden_effect, 6)
            )
        } else {
            f.note.clone().unwrap_or_default()
        };
        writeln!(
            out,
            "- #{} {} [{}]: {what}",
            a.seq,
            a.hypothesis,
            f.evidence.flags.join(", ")
        )?;
    }
    writeln!(out)?;

    writeln!(out, "## Refuted ideas")?;
    writeln!(out)?;
    let refuted: Vec<&Finding> = by_state(FindingState::Refuted).collect();
    if refuted.is_empty() {
        writeln!(out, "None.")?;
    } else {
        writeln!(out, "| # | hypothesis | effect | why |")?;
        writeln!(out, "|---|---|---|---|")?;
        for f in refuted {
            let a = store.attempt(f.attempt_id)?;
            writeln!(
                out,
                "| {} | {} | {} | {} |",
                a.seq,
                a.hypothesis.replace('|', "\\|"),
                opt(f.evidence.effect, 6),
                f.note.as_deref().unwrap_or("").replace('|', "\\|")
            )?;
        }
    }
    writeln!(out)?;
    let retracted: Vec<&Finding> = by_state(FindingState::Retracted).collect();
    if !retracted.is_empty() {
        writeln!(out, "## Retracted")?;
        writeln!(out)?;
        for f in retracted {
            let a = store.attempt(f.attempt_id)?;
            writeln!(
                out,
                "- #{} {}: {}",
                a.seq,
                a.hypothesis,
                f.note.as_deref().unwrap_or("")
            )?;
        }
        writeln!(out)?;
    }
    let screened = attempts
        .iter()
        .filter(|a| a.kind == AttemptKind::Explore && a.status == AttemptStatus::Discarded)
        .count()
        - findings
            .iter()
            .filter(|f| f.state == FindingState::Refuted)
            .count();
    writeln!(
        out,
        "{screened} further attempts were screened out on their first seed; `picidae results -p {}` lists them.",
        p.name
    )?;
    Ok(())
}
