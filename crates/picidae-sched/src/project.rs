//! A Picidae project: a directory holding `.picidae/` with the store and everything runs leave
//! behind.
//!
//! Layout (all under `.picidae/`):
//! - `store.sqlite` — the source of truth, or `store.url` (mode 0600) naming the PostgreSQL
//!   database that holds it instead (team mode: several coordinators share one database);
//! - `runs/<program>/<run id>/` — `stdout.log`, `stderr.log`, `metrics.jsonl`, `artifacts/`;
//! - `attempts/<program>/<seq>/` — the agent's prompt, context and transcript;
//! - `worktrees/<program>/` — checkouts for the agent and for each running run (removed after);
//! - `cache/<program>/<fingerprint>/` — the setup step's `data/` and `hidden/` directories;
//! - `benchmarks.toml` — where this project's clone of a benchmark is, when it is not where
//!   the program recorded it (`clones.rs`).

use std::path::{Path, PathBuf};

use picidae_store::{Program, Store};

use crate::clones::Clones;
use crate::SchedError;

pub const PROJECT_DIR: &str = ".picidae";
pub const STORE_FILE: &str = "store.sqlite";
pub const STORE_URL_FILE: &str = "store.url";

pub struct Project {
    root: PathBuf,
    pub store: Store,
    clones: Clones,
}

impl Project {
    /// Create `.picidae/` under `root` (idempotent) and open its store.
    pub fn init(root: &Path) -> Result<Project, SchedError> {
        Project::init_with_store(root, None)
    }

    /// Create `.picidae/` under `root` with its store in the PostgreSQL database at `url`
    /// (when given; else the embedded SQLite file), and open it. A project already bound to
    /// another store is refused rather than silently switched.
    pub fn init_with_store(root: &Path, url: Option<&str>) -> Result<Project, SchedError> {
        let dir = root.join(PROJECT_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| SchedError::io(&dir, e))?;
        if let Some(url) = url {
            if !picidae_store::is_postgres_url(url) {
                return Err(SchedError::Store(picidae_store::StoreError::BadLocation(
                    url.to_string(),
                )));
            }
            let file = dir.join(STORE_URL_FILE);
            let existing = std::fs::read_to_string(&file).ok();
            match existing.as_deref().map(str::trim) {
                Some(e) if e == url => {}
                Some(e) => {
                    return Err(SchedError::ProjectStore(format!(
                        "{} already names the store {}; remove it first to move the project",
                        file.display(),
                        picidae_store::redact_url(e)
                    )))
                }
                None if dir.join(STORE_FILE).exists() => {
                    return Err(SchedError::ProjectStore(format!(
                        "{} already holds this project's store; use `picidae migrate \
                         sqlite-to-postgres` to move it",
                        dir.join(STORE_FILE).display()
                    )))
                }
                None => write_private(&file, &format!("{url}\n"))?,
            }
        }
        Project::open(root)
    }

    /// Point the project under `root` at the PostgreSQL database `url`, which already holds a
    /// verified copy of its SQLite store (see `picidae migrate sqlite-to-postgres`).
    pub fn init_with_store_after_migration(root: &Path, url: &str) -> Result<(), SchedError> {
        let file = root.join(PROJECT_DIR).join(STORE_URL_FILE);
        write_private(&file, &format!("{url}\n"))
    }

    /// Open the project whose `.picidae/` is directly under `root`.
    pub fn open(root: &Path) -> Result<Project, SchedError> {
        let dir = root.join(PROJECT_DIR);
        if !dir.is_dir() {
            return Err(SchedError::NoProject(root.to_path_buf()));
        }
        let root = std::fs::canonicalize(root).map_err(|e| SchedError::io(root, e))?;
        let store = Store::open_location(&store_location(&dir)?)?;
        let clones = Clones::load(&dir)?;
        Ok(Project {
            root,
            store,
            clones,
        })
    }

    /// Where this project's store is: the PostgreSQL URL, or the SQLite file's path.
    pub fn store_location(&self) -> String {
        store_location(&self.dir())
            .unwrap_or_else(|_| self.dir().join(STORE_FILE).display().to_string())
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

    /// Where this project reads `program`'s benchmark: its own clone where
    /// `.picidae/benchmarks.toml` names one, else the directory the program recorded.
    pub fn benchmark_dir(&self, program: &Program) -> PathBuf {
        self.clones.benchmark_dir(program)
    }

    /// Where this project's clones of benchmarks are (see [`Project::benchmark_dir`]).
    pub fn clones(&self) -> &Clones {
        &self.clones
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

/// The store location of the project directory `dir` (its `.picidae/`).
pub fn store_location(dir: &Path) -> Result<String, SchedError> {
    let url_file = dir.join(STORE_URL_FILE);
    match std::fs::read_to_string(&url_file) {
        Ok(url) => Ok(url.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(dir.join(STORE_FILE).display().to_string())
        }
        Err(e) => Err(SchedError::io(&url_file, e)),
    }
}

/// Write `text` to `path`, readable by its owner only (it may hold a password).
fn write_private(path: &Path, text: &str) -> Result<(), SchedError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SchedError::io(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| SchedError::io(path, e))
}
