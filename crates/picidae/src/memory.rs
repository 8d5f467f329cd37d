//! `picidae memory …`: search what was tried, find similar attempts, summarise for a prompt,
//! and rebuild the index from git.

use anyhow::{Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_git::Repo;
use picidae_sched::Project;
use picidae_store::AttemptFilter;

fn print_hits(hits: &[picidae_memory::Hit], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(hits)?);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "program",
        "#",
        "outcome",
        "value",
        "effect (CI)",
        "hypothesis",
    ]);
    for h in hits {
        let (outcome, effect) = match &h.finding {
            Some(f) => (
                f.state.to_string(),
                match (f.effect, f.ci_low, f.ci_high) {
                    (Some(e), Some(l), Some(hi)) => format!("{e:+.5} [{l:+.5}, {hi:+.5}]"),
                    _ => "-".into(),
                },
            ),
            None => (h.status.to_string(), "-".into()),
        };
        t.add_row([
            h.program.clone(),
            h.seq.to_string(),
            outcome,
            h.value
                .map(|v| format!("{v:.6}"))
                .unwrap_or_else(|| "-".into()),
            effect,
            h.hypothesis.chars().take(70).collect(),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub fn search(
    project: &Project,
    query: &str,
    program: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<()> {
    let hits = picidae_memory::search(&project.store, query, program, limit)?;
    print_hits(&hits, json)
}

pub fn similar(project: &Project, program: &str, seq: i64, limit: usize, json: bool) -> Result<()> {
    let p = project.store.program(program)?;
    let a = project
        .store
        .attempt_by_seq(p.id, seq)?
        .with_context(|| format!("program {program} has no attempt #{seq}"))?;
    let hits = picidae_memory::similar(&project.store, a.id, limit)?;
    print_hits(&hits, json)
}

pub fn summary(project: &Project, query: &str, program: Option<&str>, limit: usize) -> Result<()> {
    println!(
        "{}",
        picidae_memory::summary(&project.store, query, program, limit)?
    );
    Ok(())
}

/// Rebuild the index (and dedup keys) of every attempt from its commit in git.
/// `picidae memory programs`: arena entries' program.md files with their results.
pub fn programs(
    project: &Project,
    query: &str,
    benchmark: Option<&std::path::Path>,
    limit: usize,
    json: bool,
) -> Result<()> {
    let bench = match benchmark {
        Some(dir) => Some(Repo::open(dir)?.bench_dir().display().to_string()),
        None => None,
    };
    let hits =
        picidae_memory::search_program_mds(&project.store, query, bench.as_deref(), None, limit)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
        return Ok(());
    }
    if hits.is_empty() {
        println!("no program.md in any arena matches");
    }
    for h in &hits {
        println!("{}\n", h.line());
        for line in h.program_md.trim_end().lines() {
            println!("    {line}");
        }
        println!();
    }
    Ok(())
}

pub fn reindex(project: &Project) -> Result<usize> {
    let mut n = 0;
    for p in project.store.programs()? {
        n += reindex_program(project, p.id, None)?;
    }
    Ok(n)
}

/// Index one program's attempts (those with `seq > after_seq`, when given) from git.
pub fn reindex_program(
    project: &Project,
    program_id: i64,
    after_seq: Option<i64>,
) -> Result<usize> {
    let p = project.store.program_by_id(program_id)?;
    let repo = Repo::open(project.benchmark_dir(&p)).ok();
    let mut n = 0;
    for a in project.store.attempts(&AttemptFilter {
        program_id: Some(p.id),
        ..Default::default()
    })? {
        if after_seq.is_some_and(|s| a.seq <= s) {
            continue;
        }
        // Imported attempts may name commits of another repository: then only their text is
        // indexed.
        let patch = match (&repo, &a.commit) {
            (Some(repo), Some(c)) if c != &a.parent_commit => {
                repo.show_patch(c).unwrap_or_default()
            }
            _ => String::new(),
        };
        let params: Option<picidae_core::Assignment> = a
            .params
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        if !patch.is_empty() {
            picidae_memory::set_keys(&project.store, a.id, &patch, params.as_ref())?;
        }
        picidae_memory::index_attempt(&project.store, &a, &patch)?;
        n += 1;
    }
    Ok(n)
}
