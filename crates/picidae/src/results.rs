//! Read-side commands: results table, program list, one attempt, results.tsv export/import.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_core::results_tsv::{self, TsvRow, TsvStatus};
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Repo;
use picidae_sched::Project;
use picidae_store::{ImportedAttempt, Program, Run};

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into())
}

fn short(s: &str) -> &str {
    &s[..7.min(s.len())]
}

pub fn list_programs(project: &Project, json: bool) -> Result<()> {
    let programs = project.store.programs()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&programs)?);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "program",
        "benchmark",
        "agent",
        "attempts",
        "runs",
        "frontier",
        "status",
        "weight",
        "run budget",
    ]);
    let mut reasons = Vec::new();
    for p in programs {
        if let Some(r) = &p.paused_reason {
            reasons.push(format!("{}: {r}", p.name));
        }
        let n: i64 = project
            .store
            .attempt_counts(p.id)?
            .iter()
            .map(|(_, n)| n)
            .sum();
        let agent = p
            .agent
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("?")
            .to_string();
        t.add_row([
            p.name.clone(),
            p.benchmark_dir.clone(),
            agent,
            n.to_string(),
            project.store.run_count(Some(p.id))?.to_string(),
            fmt_opt(p.frontier_value),
            p.status.to_string(),
            format!("{}", p.weight),
            p.max_runs
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{t}");
    for r in reasons {
        println!("{r}");
    }
    Ok(())
}

/// Word-wrap `text` at `width` characters (a word longer than that is split), so a long
/// hypothesis stays whole in a table cell.
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        loop {
            let used = line.chars().count();
            let len = word.chars().count();
            if used > 0 && used + 1 + len <= width {
                line.push(' ');
                line.push_str(&word);
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
            }
            if len <= width {
                line = word;
                break;
            }
            let head: String = word.chars().take(width).collect();
            lines.push(head);
            word = word.chars().skip(width).collect();
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}

/// The mean of each metric over the runs that reported it, and whether any run went over its
/// time budget.
fn run_metrics(runs: &[Run]) -> (BTreeMap<String, f64>, bool) {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in runs {
        for (k, v) in &r.metrics {
            let e = sums.entry(k.clone()).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }
    let means = sums
        .into_iter()
        .map(|(k, (sum, n))| (k, sum / n as f64))
        .collect();
    (means, runs.iter().any(|r| r.over_budget))
}

fn fmt_metrics(m: &BTreeMap<String, f64>, skip: Option<&str>) -> String {
    m.iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .map(|(k, v)| format!("{k}={v:.6}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The primary metric's name from the program's contract (as committed in its base commit).
fn primary_metric(project: &Project, p: &Program) -> Result<String> {
    let bench = project.benchmark_dir(p);
    let repo = Repo::open(&bench)
        .with_context(|| format!("program {}: opening {}", p.name, bench.display()))?;
    let (contract, _) = picidae_sched::contract_source::program_contract(&repo, p)?;
    Ok(contract.primary_metric)
}

pub fn print_results(
    project: &Project,
    program: Option<&str>,
    json: bool,
    last: Option<usize>,
    full: bool,
) -> Result<()> {
    let pid = program
        .map(|p| project.store.program(p))
        .transpose()?
        .map(|p| p.id);
    let mut rows = project.store.results(pid)?;
    if let Some(n) = last {
        let skip = rows.len().saturating_sub(n);
        rows.drain(..skip);
    }
    let mut measured = Vec::with_capacity(rows.len());
    for r in &rows {
        measured.push(run_metrics(&project.store.runs_of_attempt(r.attempt.id)?));
    }
    if json {
        let mut out = Vec::with_capacity(rows.len());
        for (r, (metrics, over)) in rows.iter().zip(&measured) {
            let mut v = serde_json::to_value(r)?;
            v["metrics"] = serde_json::to_value(metrics)?;
            v["over_budget"] = serde_json::Value::Bool(*over);
            out.push(v);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    // The primary metric of each program, to list the others beside it.
    let mut primaries: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in &rows {
        if !primaries.contains_key(&r.program) {
            let name = project
                .store
                .program(&r.program)
                .ok()
                .and_then(|p| primary_metric(project, &p).ok());
            primaries.insert(r.program.clone(), name);
        }
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "program",
        "#",
        "kind",
        "status",
        "value",
        "other metrics",
        "runs",
        "wall s",
        "commit",
        "hypothesis",
    ]);
    for (r, (metrics, over)) in rows.iter().zip(&measured) {
        let a = &r.attempt;
        let mut hyp = a.hypothesis.clone();
        if let Some(note) = &a.note {
            if a.status != AttemptStatus::Kept && a.status != AttemptStatus::Discarded {
                hyp = format!("{hyp} [{note}]");
            }
        }
        if !full {
            hyp = wrap(&hyp, 60);
        }
        let primary = primaries.get(&r.program).cloned().flatten();
        let status = if *over {
            format!("{}\nover budget", a.status)
        } else {
            a.status.to_string()
        };
        t.add_row([
            r.program.clone(),
            a.seq.to_string(),
            a.kind.to_string(),
            status,
            fmt_opt(a.primary_value),
            fmt_metrics(metrics, primary.as_deref()),
            r.runs.to_string(),
            r.wall_secs
                .map(|w| format!("{w:.1}"))
                .unwrap_or_else(|| "-".into()),
            a.commit.as_deref().map(short).unwrap_or("-").to_string(),
            hyp,
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `picidae show --json`: the attempt as agents may see it (the MCP server's `get_attempt`:
/// no hidden-evaluator numbers, hidden files left out of the diff), with each run's status,
/// metrics, over-budget flag, violations and error.
pub fn show_attempt_json(project: &Project, program: &str, seq: i64) -> Result<()> {
    let view = picidae_server::mcp::get_attempt(
        &project.store,
        &picidae_server::mcp::AttemptParams {
            program: program.to_string(),
            seq,
        },
    )?;
    let p = project.store.program(program)?;
    let a = project
        .store
        .attempt_by_seq(p.id, seq)?
        .with_context(|| format!("program {program} has no attempt #{seq}"))?;
    let runs: Vec<serde_json::Value> = project
        .store
        .runs_of_attempt(a.id)?
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "seed": r.seed,
                "status": r.status,
                "exit_code": r.exit_code,
                "signal": r.signal,
                "wall_secs": r.wall_secs,
                "peak_rss_kb": r.peak_rss_kb,
                "peak_gpu_mb": r.peak_gpu_mb,
                "over_budget": r.over_budget,
                "breach": r.breach,
                "restarts": r.restarts,
                "primary_value": r.primary_value,
                "metrics": r.metrics,
                "violations": r.violations,
                "error": r.error.as_deref().map(picidae_server::mcp::redact_hidden),
            })
        })
        .collect();
    let mut v = serde_json::to_value(&view)?;
    v["runs"] = serde_json::Value::Array(runs);
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub fn show_attempt(project: &Project, program: &str, seq: i64) -> Result<()> {
    let p = project.store.program(program)?;
    let a = project
        .store
        .attempt_by_seq(p.id, seq)?
        .with_context(|| format!("program {program} has no attempt #{seq}"))?;
    println!(
        "attempt #{} of {} ({}, {})",
        a.seq, p.name, a.kind, a.status
    );
    println!("hypothesis: {}", a.hypothesis);
    println!("proposer:   {}", a.proposer);
    println!("parent:     {}", a.parent_commit);
    if let Some(of) = a.replay_of {
        let of = project.store.attempt(of)?;
        println!(
            "carries #{}'s change onto the frontier ({})",
            of.seq, a.proposer
        );
    }
    for r in project.store.replays_of(a.id)? {
        println!("carried onto a newer frontier by #{} ({})", r.seq, r.status);
    }
    println!("commit:     {}", a.commit.as_deref().unwrap_or("-"));
    println!("value:      {}", fmt_opt(a.primary_value));
    let runs = project.store.runs_of_attempt(a.id)?;
    let (metrics, over) = run_metrics(&runs);
    if !metrics.is_empty() {
        println!(
            "metrics:    {}",
            fmt_metrics(&metrics, None).replace('\n', ", ")
        );
    }
    if over {
        println!("budget:     over its time budget");
    }
    if let Some(n) = &a.note {
        println!("note:       {n}");
    }
    if let Some(r) = &a.rejection {
        println!("rejection:  {r}");
    }
    // Every run, the screen stage's (seed -1) included; the metrics above are the seeds'.
    for r in &project.store.all_runs_of_attempt(a.id)? {
        println!(
            "run {} seed {}{} {} exit {} wall {} rss {} KiB{} value {} {}{}",
            r.id,
            r.seed,
            if r.seed == picidae_core::SCREEN_SEED {
                " (screen)"
            } else {
                ""
            },
            r.status,
            r.exit_code.map(|c| c.to_string()).unwrap_or("-".into()),
            r.wall_secs
                .map(|w| format!("{w:.2}s"))
                .unwrap_or("-".into()),
            r.peak_rss_kb.map(|k| k.to_string()).unwrap_or("-".into()),
            r.peak_gpu_mb
                .map(|m| format!(" gpu {m} MiB"))
                .unwrap_or_default(),
            fmt_opt(r.primary_value),
            r.log_dir.as_deref().unwrap_or(""),
            r.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
        if !r.metrics.is_empty() {
            println!(
                "    metrics: {}",
                fmt_metrics(&r.metrics, None).replace('\n', ", ")
            );
        }
        if r.over_budget {
            println!("    over budget");
        }
        for v in &r.violations {
            println!("    violation: {v}");
        }
    }
    // A baseline or re-measurement runs its parent unchanged; an imported attempt records only
    // its commit, whose diff git still has (or not, when the commit was reset away).
    if let Some(c) = &a.commit {
        if c != &a.parent_commit && matches!(a.kind, AttemptKind::Explore | AttemptKind::Imported) {
            let repo = Repo::open(project.benchmark_dir(&p))?;
            match repo.show_patch(c) {
                Ok(patch) => {
                    println!();
                    print!("{patch}");
                }
                Err(e) => println!("diff:       not readable from git ({e})"),
            }
        }
    }
    Ok(())
}

/// A results.tsv export: its text, and the attempts left out because they have no value.
pub struct TsvExport {
    pub text: String,
    /// Kept or discarded attempts without a measured value (e.g. an imported commit without a
    /// row): autoresearch's format has no way to say "not measured", and `0.000000 keep` would
    /// read as the best result, so they are not written.
    pub unmeasured: Vec<i64>,
}

/// `picidae export results-tsv`. The metric column is named after the program's primary
/// metric, or `val_bpb` with `autoresearch_header`.
pub fn export_tsv(
    project: &Project,
    program: &str,
    autoresearch_header: bool,
) -> Result<TsvExport> {
    let p = project.store.program(program)?;
    let metric = if autoresearch_header {
        "val_bpb".to_string()
    } else {
        primary_metric(project, &p)?
    };
    let mut rows = Vec::new();
    let mut unmeasured = Vec::new();
    for r in project.store.results(Some(p.id))? {
        let a = r.attempt;
        let status = match a.status {
            AttemptStatus::Kept => TsvStatus::Keep,
            // Merged: the branch did not move to it; its merge candidate has its own row.
            AttemptStatus::Discarded | AttemptStatus::Merged => TsvStatus::Discard,
            AttemptStatus::Failed if r.runs > 0 => TsvStatus::Crash,
            _ => continue,
        };
        let value = match (status, a.primary_value) {
            (TsvStatus::Crash, _) => 0.0,
            (_, Some(v)) => v,
            (_, None) => {
                unmeasured.push(a.seq);
                continue;
            }
        };
        rows.push(TsvRow {
            commit: a
                .commit
                .as_deref()
                .map(short)
                .unwrap_or("0000000")
                .to_string(),
            value,
            memory_gb: memory_gb(r.peak_gpu_mb, r.peak_rss_kb),
            status,
            description: a.hypothesis,
        });
    }
    Ok(TsvExport {
        text: results_tsv::format_with_metric(&rows, &metric),
        unmeasured,
    })
}

/// results.tsv's `memory_gb`: the peak GPU memory where it was measured (what autoresearch
/// logs), else the host's peak resident memory, else 0.
fn memory_gb(peak_gpu_mb: Option<i64>, peak_rss_kb: Option<i64>) -> f64 {
    match (peak_gpu_mb, peak_rss_kb) {
        (Some(mb), _) => mb as f64 / 1024.0,
        (None, Some(kb)) => kb as f64 / 1024.0 / 1024.0,
        (None, None) => 0.0,
    }
}

/// `picidae import results-tsv`: returns (imported, skipped as already imported). A row
/// already imported into the program (same commit, description, status and value) is skipped,
/// so importing a file twice adds nothing.
pub fn import_tsv(project: &mut Project, program: &str, file: &Path) -> Result<(usize, usize)> {
    let p = project.store.program(program)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let rows = results_tsv::parse(&text, &file.display().to_string())?;
    let source = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results.tsv".into());
    let imported: Vec<ImportedAttempt> = rows
        .into_iter()
        .map(|r| ImportedAttempt {
            commit: r.commit,
            status: match r.status {
                TsvStatus::Keep => AttemptStatus::Kept,
                TsvStatus::Discard => AttemptStatus::Discarded,
                TsvStatus::Crash => AttemptStatus::Failed,
            },
            primary_value: (r.status != TsvStatus::Crash).then_some(r.value),
            peak_gpu_mb: (r.memory_gb > 0.0).then(|| (r.memory_gb * 1024.0).round() as i64),
            hypothesis: r.description,
            source: format!("import:{source}"),
        })
        .collect();
    crate::import::insert_new(project, p.id, imported)
}
