//! `picidae fsck [PROGRAM] [--repair] [--json]`: the consistency check of programs' store
//! records and git refs (`picidae_sched::fsck`), printed one problem a line.
//!
//! Exit status 0 when no problem remains (repairs made count as fixed), 1 otherwise. Only refs
//! are repaired; the store is never written, so what it holds stays for a person to inspect.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use picidae_sched::{fsck_project, Project, Report, SchedError};

#[derive(Args)]
pub struct FsckArgs {
    /// The program to check (default: every program of the project).
    pub program: Option<String>,
    /// Restore missing or moved refs from the store (the program must not be running).
    #[arg(long)]
    pub repair: bool,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(project: &Project, args: &FsckArgs) -> Result<ExitCode> {
    let names = match &args.program {
        Some(p) => vec![p.clone()],
        None => project
            .store
            .programs()?
            .into_iter()
            .map(|p| p.name)
            .collect(),
    };
    let mut reports: Vec<Report> = Vec::new();
    // Programs that could not be checked, with why (a loop holds one being repaired).
    let mut unchecked: Vec<(String, String)> = Vec::new();
    for name in &names {
        match fsck_project(project, name, args.repair) {
            Ok(r) => reports.push(r),
            Err(SchedError::Busy(_)) => unchecked.push((
                name.clone(),
                "a loop is running it; stop it to repair, or check without --repair".into(),
            )),
            Err(e) => return Err(e.into()),
        }
    }
    let clean = unchecked.is_empty() && reports.iter().all(Report::is_clean);
    if args.json {
        let unchecked: Vec<serde_json::Value> = unchecked
            .iter()
            .map(|(p, why)| serde_json::json!({ "program": p, "error": why }))
            .collect();
        let out = serde_json::json!({
            "clean": clean,
            "programs": reports,
            "unchecked": unchecked,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for r in &reports {
            print_report(r);
        }
        for (p, why) in &unchecked {
            println!("{p}: not checked: {why}");
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(r: &Report) {
    let p = &r.program;
    for fix in &r.repaired {
        println!("{p}: {fix}");
    }
    for problem in &r.problems {
        let tag = if problem.blocks_start {
            "blocks run"
        } else {
            "reported"
        };
        println!("{p}: {problem} [{tag}]");
    }
    let counts = format!("{} attempts, {} runs, {} refs", r.attempts, r.runs, r.refs);
    if r.is_clean() {
        let repaired = match r.repaired.len() {
            0 => String::new(),
            n => format!("; {n} ref{} restored", if n == 1 { "" } else { "s" }),
        };
        println!("{p}: clean ({counts}{repaired})");
    } else {
        let blocking = r.problems.iter().filter(|x| x.blocks_start).count();
        println!(
            "{p}: {} problem{} ({blocking} keep `picidae run` from starting; {counts})",
            r.problems.len(),
            if r.problems.len() == 1 { "" } else { "s" },
        );
    }
}
