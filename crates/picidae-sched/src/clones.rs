//! Where this project's clone of each benchmark is. A program records the benchmark directory
//! it was created from; coordinators that share a store but no directory (team mode on
//! several machines) each keep a clone of their own, named in `.picidae/benchmarks.toml`:
//!
//! ```toml
//! [benchmarks]
//! "/srv/lab/bench" = "/home/me/bench"   # as recorded by the program = this project's clone
//! ```
//!
//! The recorded directory stays the benchmark's identity (the memory's duplicate check spans
//! the programs of one benchmark); the clone is only where this project reads its files and
//! makes its commits. A benchmark with no entry is read where it was recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use picidae_store::Program;
use serde::{Deserialize, Serialize};

use crate::SchedError;

/// The file, in `.picidae/`.
pub const CLONES_FILE: &str = "benchmarks.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clones {
    /// Recorded benchmark directory to this project's clone of it.
    #[serde(default)]
    benchmarks: BTreeMap<String, PathBuf>,
}

impl Clones {
    /// The map of the project whose `.picidae/` is `dir` (empty when it has none).
    pub fn load(dir: &Path) -> Result<Clones, SchedError> {
        let file = dir.join(CLONES_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| SchedError::ProjectStore(format!("{}: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Clones::default()),
            Err(e) => Err(SchedError::io(&file, e)),
        }
    }

    /// Where this project reads `program`'s benchmark.
    pub fn benchmark_dir(&self, program: &Program) -> PathBuf {
        self.benchmarks
            .get(&program.benchmark_dir)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(&program.benchmark_dir))
    }

    /// Name `local` as this project's clone of the benchmark recorded as `recorded`, in the
    /// map of the project whose `.picidae/` is `dir`. `local` must hold a contract inside a
    /// git work tree; it is stored resolved.
    pub fn link(dir: &Path, recorded: &str, local: &Path) -> Result<PathBuf, SchedError> {
        let local = std::fs::canonicalize(local).map_err(|e| SchedError::io(local, e))?;
        let contract = local.join(picidae_core::CONTRACT_FILE);
        if !contract.is_file() {
            return Err(SchedError::ProjectStore(format!(
                "{} holds no {}: not a clone of a benchmark",
                local.display(),
                picidae_core::CONTRACT_FILE
            )));
        }
        picidae_git::Repo::open(&local)?;
        let mut clones = Clones::load(dir)?;
        clones
            .benchmarks
            .insert(recorded.trim_end_matches('/').to_string(), local.clone());
        let text = toml::to_string(&clones).map_err(|e| SchedError::ProjectStore(e.to_string()))?;
        let file = dir.join(CLONES_FILE);
        std::fs::write(&file, text).map_err(|e| SchedError::io(&file, e))?;
        Ok(local)
    }
}
