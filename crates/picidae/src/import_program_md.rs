//! `picidae import program-md`: an autoresearch-style program.md rewritten so its instructions
//! match what Picidae does (the rewrite itself is `picidae_core::program_md`).
//!
//! This module owns the file side: reading the input, saying each rewrite on stderr with its
//! file and line, and writing the result (stdout, or a file replaced atomically, which may be
//! the input itself).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use picidae_core::program_md::rewrite;
use picidae_exec::safe_fs;

/// Rewrite `file`; write the result to `output` (stdout when `None`). Returns how many
/// instructions were rewritten.
pub fn import_program_md(file: &Path, output: Option<&Path>) -> Result<usize> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        anyhow::anyhow!("{}:{line}: not valid UTF-8 text", file.display())
    })?;
    let got = rewrite(&text);
    for c in &got.changes {
        eprintln!("{}:{c}", file.display());
    }
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(got.text.as_bytes())?;
            out.flush()?;
        }
        Some(path) if got.text == text && same_file(path, file) => {}
        Some(path) => replace(path, &got.text)?,
    }
    Ok(got.changes.len())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Write `text` to `path` with `safe_fs::replace_file` (a new file beside it, renamed into
/// place, so an interrupted write never leaves half a program.md), keeping an existing file's
/// permissions.
fn replace(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let before = std::fs::metadata(path).ok().map(|m| m.permissions());
    safe_fs::replace_file(dir, name, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    if let Some(mode) = before {
        std::fs::set_permissions(path, mode)
            .with_context(|| format!("keeping the permissions of {}", path.display()))?;
    }
    Ok(())
}
