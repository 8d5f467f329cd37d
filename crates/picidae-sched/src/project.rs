//! A Picidae project: a directory holding `.picidae/` with the store and everything runs leave
//! behind.
//!
//! Layout (all under `.picidae/`):
//! - `store.sqlite` — the source of truth;
//! - `runs/<program>/<run id>/` — `stdout.log`, `stderr.log`, `metrics.jsonl`, `artifacts/`;
//! - `attempts/<program>/<seq>/` — the agent's prompt, context and transcript;
//! - `worktrees/<program>/` — checkouts for the agent and for each running run (removed after);
//! - `cache/<program>/<fingerprint>/` — the setup step's `data/` and `hidden/` directories.

use std::path::{Path, PathBuf};

use picidae_store::Store;

use crate::SchedError;

pub const PROJECT_DIR: &str = ".picidae";
pub const STORE_FILE: &str = "store.sqlite";

pub struct Project {
    root: PathBuf,
    pub store: Store,
}

impl Project {
    /// Create `.picidae/` under `root` (idempotent) and open its store.
    pub fn init(root: &Path) -> Result<Project, SchedError> {
        let dir = root.join(PROJECT_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| SchedError::io(&dir, e))?;
        Project::open(root)
    }

    /// Open the project whose `.picidae/` is directly under `root`.
    pub fn open(root: &Path) -> Result<Project, SchedError> {
        let dir = root.join(PROJECT_DIR);
        if !dir.is_dir() {
            return Err(SchedError::NoProject(root.to_path_buf()));
        }
        let root = std::fs::canonicalize(root).map_err(|e| SchedError::io(root, e))?;
        let store = Store::open(&dir.join(STORE_FILE))?;
        Ok(Project { root, store })
    }

    /// Find the nearest directory at or above `start` that holds `.picidae/`.
    pub fn discover(start: &Path) -> Result<Project, SchedError> {
        let start = std::fs::canonicalize(start).map_err(|e| SchedError::io(start, e))?;
        let mut cur = Some(start.as_path());
        while let Some(dir) = cur {
            if dir.join(PROJECT_DIR).is_dir() {
                return Project::open(dir);
            }
            cur = dir.parent();
        }
        Err(SchedError::NoProject(start))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join(PROJECT_DIR)
    }

    pub fn run_dir(&self, program: &str, run_id: i64) -> PathBuf {
        self.dir()
            .join("runs")
            .join(program)
            .join(run_id.to_string())
    }

    pub fn attempt_dir(&self, program: &str, seq: i64) -> PathBuf {
        self.dir()
            .join("attempts")
            .join(program)
            .join(seq.to_string())
    }

    pub fn worktree_dir(&self, program: &str, name: &str) -> PathBuf {
        self.dir().join("worktrees").join(program).join(name)
    }

    pub fn cache_dir(&self, program: &str, fingerprint: &str) -> PathBuf {
        self.dir().join("cache").join(program).join(fingerprint)
    }
}
