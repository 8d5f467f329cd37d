//! The docs cannot rot: every `picidae` command in a fenced `sh` block of README.md and
//! docs/*.md parses, and every page's runnable `sh` blocks run, in order, in a fresh
//! directory with the built `picidae` on `PATH` (see `common/docs.rs` for the convention).
//! Pages that need the example benchmark start from `picidae demo`, as the README does.

mod common;

use std::path::Path;
use std::process::Command;

use common::docs::{pages, shell_blocks, workspace_root};

fn bin_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_picidae"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn every_documented_picidae_command_parses() {
    let (checked, bad) = common::docs::check_documented_commands(
        Path::new(env!("CARGO_BIN_EXE_picidae")),
        "picidae",
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(
        checked >= 40,
        "only {checked} commands found: is the extraction broken?"
    );
}

/// The parse check itself refuses what the binary refuses.
#[test]
fn the_parse_check_can_fail() {
    for args in [
        &["no-such-command"][..],
        &["run", "--no-such-flag"],
        &["show", "p", "x"],
    ] {
        let out = common::bin()
            .args(args)
            .env("PICIDAE_CHECK_ARGS", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// Run `page`'s runnable blocks as one script; fail with the output, naming the block.
fn run_page(page: &str) {
    let file = workspace_root().join(page);
    let blocks: Vec<_> = shell_blocks(&file).into_iter().filter(|b| b.runs).collect();
    assert!(!blocks.is_empty(), "{page} has no runnable sh block");
    let mut script = String::from("set -euo pipefail\n");
    for b in &blocks {
        script.push_str(&format!("echo '>>> {page}:{}' >&2\n{}", b.line, b.text));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("PICIDAE_PROJECT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = stderr
        .lines()
        .rfind(|l| l.starts_with(">>> "))
        .unwrap_or("(before the first block)");
    assert!(
        out.status.success(),
        "{page}: the block at {at} failed ({:?})\n--- stdout\n{}\n--- stderr\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
    );
}

/// Pages with runnable blocks; a page that gains one must be listed here.
const RUNNABLE: &[&str] = &[
    "README.md",
    "docs/agents.md",
    "docs/contract.md",
    "docs/findings.md",
    "docs/memory.md",
    "docs/serve.md",
];

#[test]
fn every_page_with_runnable_blocks_is_run() {
    let root = workspace_root();
    let with_runnable: Vec<String> = pages()
        .iter()
        .filter(|p| shell_blocks(p).iter().any(|b| b.runs))
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(with_runnable, RUNNABLE);
}

macro_rules! page_tests {
    ($($name:ident => $page:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_page($page);
            }
        )*
    };
}

page_tests! {
    readme_runs => "README.md",
    agents_page_runs => "docs/agents.md",
    contract_page_runs => "docs/contract.md",
    findings_page_runs => "docs/findings.md",
    memory_page_runs => "docs/memory.md",
    serve_page_runs => "docs/serve.md",
}
