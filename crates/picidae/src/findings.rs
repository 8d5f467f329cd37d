//! Findings commands: list, show, retract; the morning report; evaluator calibration.

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_core::domain::FindingState;
use picidae_sched::{retract_finding, Project, Runner};
use picidae_server::report::{ci, opt, plain};

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
    if let Some(rule) = &e.rule {
        println!("rule:       {rule}");
    }
    // How many of the candidate's and the incumbent's runs the hidden evaluator scored.
    let evaluated = |attempt: i64| -> Result<(usize, usize)> {
        let runs = project.store.runs_of_attempt(attempt)?;
        let mut n = 0;
        for r in &runs {
            if project.store.hidden_result(r.id)?.is_some() {
                n += 1;
            }
        }
        Ok((n, runs.len()))
    };
    let ((cn, ct), (inn, it)) = (evaluated(a.id)?, evaluated(inc.id)?);
    let scored = format!("{cn} of {ct} candidate runs, {inn} of {it} incumbent runs scored");
    println!(
        "hidden:     {}",
        match e.hidden_agrees {
            Some(a) => format!(
                "effect {} ({}; {scored})",
                opt(e.hidden_effect, 6),
                if a { "agrees" } else { "disagrees" }
            ),
            None if f.state == FindingState::Verifying => format!("pending ({scored})"),
            None => format!("not consulted: the visible evidence decided ({scored})"),
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
    let clones = project.clones().clone();
    let done = retract_finding(&mut project.store, &clones, id, reason)?;
    println!("finding {id} retracted");
    if let Some(c) = &done.frontier_moved_to {
        println!("frontier moved back to {}", &c[..12.min(c.len())]);
    }
    if let Some(warning) = &done.ref_not_moved {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// Who a person's action from the CLI is recorded as: the user running it (`cli` when the
/// environment does not say).
pub fn cli_author() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "cli".into())
}

/// Record a person's approval of a validated finding; the author is the user running the CLI.
pub fn approve(project: &mut Project, id: i64, note: Option<&str>) -> Result<()> {
    let author = cli_author();
    match project.store.approve_finding(id, &author, note) {
        Ok(_) => {
            println!("finding {id} approved by {author}");
            Ok(())
        }
        Err(picidae_store::StoreError::BadTransition { from, .. }) => {
            anyhow::bail!("finding {id} is {from}: only a validated finding can be approved")
        }
        Err(e) => Err(e.into()),
    }
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

/// A Markdown report a human reads in the morning, hidden-evaluator numbers included (the
/// same builder serves `GET /api/programs/{name}/report`, which withholds them).
pub fn report(project: &Project, program: &str) -> Result<String> {
    Ok(picidae_server::report::markdown(
        &project.store,
        program,
        picidae_server::report::Hidden::Show,
    )?)
}
