//! The second benchmark of `picidae-bench integrity`, `examples/noisy-switches`, compiled into
//! the binary like the bundled example ([`crate::example`]): ten on/off switches whose true
//! effects are small against seed noise, with a noise-free ground truth (see its README).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use picidae_git::{Identity, Repo};

/// The benchmark's name and the directory [`write`] creates.
pub const NAME: &str = "noisy-switches";

const FILES: &[(&str, &str)] = &[
    (
        "picidae.toml",
        include_str!("../../../examples/noisy-switches/picidae.toml"),
    ),
    (
        "train.py",
        include_str!("../../../examples/noisy-switches/train.py"),
    ),
    (
        "simulator.py",
        include_str!("../../../examples/noisy-switches/simulator.py"),
    ),
    (
        "evaluate.py",
        include_str!("../../../examples/noisy-switches/evaluate.py"),
    ),
    (
        "program.md",
        include_str!("../../../examples/noisy-switches/program.md"),
    ),
    (
        "README.md",
        include_str!("../../../examples/noisy-switches/README.md"),
    ),
    (
        "gold/best/result.json",
        include_str!("../../../examples/noisy-switches/gold/best/result.json"),
    ),
    (
        "gold/default/result.json",
        include_str!("../../../examples/noisy-switches/gold/default/result.json"),
    ),
    (
        "gold/worst/result.json",
        include_str!("../../../examples/noisy-switches/gold/worst/result.json"),
    ),
    (
        ".gitignore",
        include_str!("../../../examples/noisy-switches/.gitignore"),
    ),
];

/// Write the benchmark into `<dir>/noisy-switches` as a fresh git repository; returns its path.
pub fn write(dir: &Path) -> Result<PathBuf> {
    let bench = dir.join(NAME);
    std::fs::create_dir_all(&bench).with_context(|| format!("creating {}", bench.display()))?;
    for (name, text) in FILES {
        let path = bench.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Repo::init(&bench, "noisy-switches benchmark", Identity::default())?;
    Ok(bench)
}
