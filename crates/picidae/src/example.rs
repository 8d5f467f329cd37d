//! The bundled example benchmark (`examples/tiny-mlp`), compiled into the binary so `demo` (and
//! `picidae-bench`, which compiles this file too) work from any directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use picidae_git::{Identity, Repo};

const FILES: &[(&str, &str)] = &[
    (
        "picidae.toml",
        include_str!("../../../examples/tiny-mlp/picidae.toml"),
    ),
    (
        "prepare.py",
        include_str!("../../../examples/tiny-mlp/prepare.py"),
    ),
    (
        "train.py",
        include_str!("../../../examples/tiny-mlp/train.py"),
    ),
    (
        "evaluate.py",
        include_str!("../../../examples/tiny-mlp/evaluate.py"),
    ),
    (
        "program.md",
        include_str!("../../../examples/tiny-mlp/program.md"),
    ),
    (
        "README.md",
        include_str!("../../../examples/tiny-mlp/README.md"),
    ),
    (
        "gold/good/model.json",
        include_str!("../../../examples/tiny-mlp/gold/good/model.json"),
    ),
    (
        "gold/default/model.json",
        include_str!("../../../examples/tiny-mlp/gold/default/model.json"),
    ),
    (
        "gold/poor/model.json",
        include_str!("../../../examples/tiny-mlp/gold/poor/model.json"),
    ),
    (".gitignore", "__pycache__/\ndata/\nhidden/\nartifacts/\n"),
];

/// Write the example into `<dir>/tiny-mlp` as a fresh git repository; returns its path.
pub fn write(dir: &Path) -> Result<PathBuf> {
    write_bundle(dir, "tiny-mlp", FILES)
}

/// Write a benchmark compiled into the binary (`files`: path and text) into `<dir>/<name>` as
/// a fresh git repository; returns its path.
pub fn write_bundle(dir: &Path, name: &str, files: &[(&str, &str)]) -> Result<PathBuf> {
    let bench = dir.join(name);
    std::fs::create_dir_all(&bench).with_context(|| format!("creating {}", bench.display()))?;
    for (file, text) in files {
        let path = bench.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Repo::init(&bench, &format!("{name} benchmark"), Identity::default())?;
    Ok(bench)
}
