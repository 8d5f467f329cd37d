//! The documentation's shell blocks, for the tests that keep the docs true.
//!
//! A fenced block whose info string is `sh` is a walkthrough: the docs test runs a page's `sh`
//! blocks in order, as one bash script, in a fresh directory with `picidae` on `PATH`. A block
//! marked `sh no-run` needs what a test cannot have (an LLM CLI, a cluster, a database
//! server, minutes of compute): each command in it is still checked against the binary's
//! argument parser. `text` blocks (output, synopses with placeholders) are not checked.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One fenced `sh` block of a Markdown file.
#[derive(Debug, Clone)]
pub struct ShellBlock {
    pub file: PathBuf,
    /// 1-based line of the opening fence.
    pub line: usize,
    /// Whether the block is run (`sh`) or only checked (`sh no-run`).
    pub runs: bool,
    pub text: String,
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// README.md and every page under docs/, in a stable order.
pub fn pages() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root.join("README.md"));
    pages
}

/// The `sh` blocks of `file`.
pub fn shell_blocks(file: &Path) -> Vec<ShellBlock> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, Vec<String>, usize, char)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = fence_char.map_or(0, |c| trimmed.chars().take_while(|x| *x == c).count());
        match &mut open {
            None if run >= 3 => {
                let info = trimmed[run..].trim().to_string();
                open = Some((i + 1, info, Vec::new(), run, fence_char.unwrap()));
            }
            Some((_, _, _, len, c))
                if fence_char == Some(*c) && run >= *len && trimmed[run..].trim().is_empty() =>
            {
                let (start, info, body, _, _) = open.take().unwrap();
                let mut words = info.split_whitespace();
                if words.next() == Some("sh") {
                    let runs = !words.any(|w| w == "no-run");
                    blocks.push(ShellBlock {
                        file: file.to_path_buf(),
                        line: start,
                        runs,
                        text: body.join("\n") + "\n",
                    });
                }
            }
            Some((_, _, body, _, _)) => body.push(line.to_string()),
            None => {}
        }
    }
    assert!(open.is_none(), "{}: an unclosed fence", file.display());
    blocks
}

/// Every command of `block` that starts with `program` (or a path ending in `/program`), as its arguments (continuation lines
/// joined, comments dropped, cut at the first pipe, list or redirection operator).
pub fn commands(block: &ShellBlock, program: &str) -> Vec<Vec<String>> {
    let joined = block.text.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let words = shlex::split(line).unwrap_or_else(|| {
            panic!(
                "{}:{}: a line the shell cannot split: {line}",
                block.file.display(),
                block.line
            )
        });
        let words: Vec<String> = words
            .into_iter()
            .take_while(|w| !w.starts_with('#'))
            .collect();
        let named = words
            .first()
            .is_some_and(|w| w == program || w.ends_with(&format!("/{program}")));
        if !named {
            continue;
        }
        let args = words[1..]
            .iter()
            .take_while(|w| {
                !matches!(w.as_str(), "|" | "||" | "&&" | ";" | "&")
                    && !w.starts_with('>')
                    && !w.starts_with('<')
                    && !w.starts_with("2>")
            })
            .cloned()
            .collect();
        out.push(args);
    }
    out
}

/// Check every documented command of `program` (see [`commands`]) against the binary at `bin`
/// with `PICIDAE_CHECK_ARGS=1`: the binary parses its arguments and exits. Returns how many
/// were checked and a message for each that did not parse.
pub fn check_documented_commands(bin: &Path, program: &str) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut bad = Vec::new();
    for page in pages() {
        for block in shell_blocks(&page) {
            for args in commands(&block, program) {
                let out = std::process::Command::new(bin)
                    .args(&args)
                    .env("PICIDAE_CHECK_ARGS", "1")
                    .env_remove("PICIDAE_PROJECT")
                    .output()
                    .unwrap();
                checked += 1;
                if !out.status.success() {
                    bad.push(format!(
                        "{}:{}: {program} {}\n{}",
                        block.file.display(),
                        block.line,
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        }
    }
    (checked, bad)
}
