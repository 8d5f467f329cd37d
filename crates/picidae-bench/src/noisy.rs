//! The second benchmark of `picidae-bench integrity`, `examples/noisy-switches`, compiled into
//! the binary like the bundled example ([`crate::example`]): ten on/off switches whose true
//! effects are small against seed noise, with a noise-free ground truth (see its README).

use std::path::{Path, PathBuf};

use anyhow::Result;

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
    crate::example::write_bundle(dir, NAME, FILES)
}
