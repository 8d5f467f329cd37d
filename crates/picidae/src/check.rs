//! `picidae check`: a benchmark's contract validated and summarised, every problem at once.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use picidae_core::Contract;

pub(crate) fn check(benchmark: &Path) -> Result<ExitCode> {
    match Contract::load(benchmark) {
        Ok(mut c) => {
            picidae_sched::contract_source::apply_sandbox_defaults(&mut c);
            println!("{}: ok", c.name);
            let measured = c
                .run
                .budget_metric
                .as_ref()
                .map(|m| format!(" of {m} as the run reports it"))
                .unwrap_or_default();
            println!(
                "  run:      {} (budget {:.1}s{measured}, timeout {:.1}s, grace {:.1}s)",
                c.run.command,
                c.run.time_budget.as_secs_f64(),
                c.run.timeout.as_secs_f64(),
                c.run.grace.as_secs_f64()
            );
            println!("  editable: {}", c.boundary.editable.join(", "));
            let p = c.primary();
            println!("  primary:  {} ({})", p.name, p.goal);
            println!(
                "  metrics:  {}",
                c.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            if !c.params.is_empty() {
                println!(
                    "  params:   {}",
                    c.params
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            println!(
                "  policy:   seeds {}, baseline seeds {}",
                c.policy.seeds, c.policy.baseline_seeds
            );
            if let Some(h) = &c.hidden {
                println!("  hidden:   {} → {}", h.command, h.metrics.join(", "));
                println!(
                    "  guards:   {}",
                    if c.policy.verifies() {
                        format!(
                            "every kept attempt: a candidate the visible evidence validates over {} seeds is kept only if the hidden evaluator agrees",
                            c.policy.seeds
                        )
                    } else {
                        "every kept attempt: at one seed, a run that beats the frontier is kept only if the hidden evaluator agrees on it against the frontier's runs".to_string()
                    }
                );
            }
            let on = |b: bool| if b { "sandboxed" } else { "not sandboxed" };
            println!(
                "  sandbox:  runs {}, command agents {}",
                on(c.run.sandbox),
                on(c.boundary.sandbox_agents)
            );
            if let Some(exposed) = picidae_sched::contract_source::exposure(&c) {
                println!("  warning:  {exposed}");
            }
            let dir = match benchmark.parent() {
                _ if benchmark.is_dir() => benchmark,
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let files = benchmark_files(dir);
            for glob in c.boundary.unmatched_globs(&files) {
                println!(
                    "  warning:  boundary.editable glob {glob:?} matches no file of the benchmark"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            let n = e.issues().len();
            if n > 0 {
                eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The files under a benchmark directory, relative to it and `/`-separated; git's and
/// Picidae's own directories left out, links not followed.
pub(crate) fn benchmark_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            match entry.file_type() {
                Ok(t) if t.is_dir() => {
                    if name != ".git" && name != picidae_sched::project::PROJECT_DIR {
                        pending.push((entry.path(), rel));
                    }
                }
                Ok(_) => files.push(rel),
                Err(_) => {}
            }
        }
    }
    files
}
