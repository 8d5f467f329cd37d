//! Read-side commands: results table, program list, one attempt, results.tsv export/import.

use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_core::results_tsv::{self, TsvRow, TsvStatus};
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Repo;
use picidae_sched::Project;
use picidae_store::ImportedAttempt;

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
    for p in programs {
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
            p.status.clone(),
            format!("{}", p.weight),
            p.max_runs
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn print_results(
    project: &Project,
    program: Option<&str>,
    json: bool,
    last: Option<usize>,
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
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "program",
        "#",
        "kind",
        "status",
        "value",
        "runs",
        "wall s",
        "commit",
        "hypothesis",
    ]);
    for r in &rows {
        let a = &r.attempt;
        let mut hyp: String = a.hypothesis.chars().take(60).collect();
        if let Some(note) = &a.note {
            if a.status != AttemptStatus::Kept && a.status != AttemptStatus::Discarded {
                hyp = format!("{hyp} [{}]", note.chars().take(60).collect::<String>());
            }
        }
        t.add_row([
            r.program.clone(),
            a.seq.to_string(),
            a.kind.to_string(),
            a.status.to_string(),
            fmt_opt(a.primary_value),
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
    println!("commit:     {}", a.commit.as_deref().unwrap_or("-"));
    println!("value:      {}", fmt_opt(a.primary_value));
    if let Some(n) = &a.note {
        println!("note:       {n}");
    }
    if let Some(r) = &a.rejection {
        println!("rejection:  {r}");
    }
    for r in project.store.runs_of_attempt(a.id)? {
        println!(
            "run {} seed {} {} exit {} wall {} rss {} KiB value {} {}{}",
            r.id,
            r.seed,
            r.status,
            r.exit_code.map(|c| c.to_string()).unwrap_or("-".into()),
            r.wall_secs
                .map(|w| format!("{w:.2}s"))
                .unwrap_or("-".into()),
            r.peak_rss_kb.map(|k| k.to_string()).unwrap_or("-".into()),
            fmt_opt(r.primary_value),
            r.log_dir.as_deref().unwrap_or(""),
            r.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    if let (Some(c), AttemptKind::Explore) = (&a.commit, a.kind) {
        let repo = Repo::open(&p.benchmark_dir)?;
        if c != &a.parent_commit {
            println!();
            print!("{}", repo.show_patch(c)?);
        }
    }
    Ok(())
}

pub fn export_tsv(project: &Project, program: &str) -> Result<String> {
    let p = project.store.program(program)?;
    let mut rows = Vec::new();
    for r in project.store.results(Some(p.id))? {
        let a = r.attempt;
        let status = match a.status {
            AttemptStatus::Kept => TsvStatus::Keep,
            AttemptStatus::Discarded => TsvStatus::Discard,
            AttemptStatus::Failed if r.runs > 0 => TsvStatus::Crash,
            _ => continue,
        };
        rows.push(TsvRow {
            commit: a
                .commit
                .as_deref()
                .map(short)
                .unwrap_or("0000000")
                .to_string(),
            value: if status == TsvStatus::Crash {
                0.0
            } else {
                a.primary_value.unwrap_or(0.0)
            },
            memory_gb: r
                .peak_rss_kb
                .map(|k| k as f64 / 1024.0 / 1024.0)
                .unwrap_or(0.0),
            status,
            description: a.hypothesis,
        });
    }
    Ok(results_tsv::format(&rows))
}

pub fn import_tsv(project: &mut Project, program: &str, file: &Path) -> Result<usize> {
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
            peak_rss_kb: Some((r.memory_gb * 1024.0 * 1024.0).round() as i64),
            hypothesis: r.description,
            source: format!("import:{source}"),
        })
        .collect();
    let last = project
        .store
        .attempt_counts(p.id)?
        .iter()
        .map(|(_, n)| n)
        .sum::<i64>();
    let n = project.store.insert_imported(p.id, &imported)?;
    crate::memory::reindex_program(project, p.id, Some(last))?;
    Ok(n)
}
