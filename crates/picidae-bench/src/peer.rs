//! The Python peers a bench runs beside Picidae (Optuna, MLflow's loader and writer) and the
//! directory a bench works in. The peers' scripts are files under `peers/`, compiled in so the
//! bench runs from any directory.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// The Optuna study `bench dispatch` runs beside Picidae.
pub const OPTUNA_DISPATCH: &str = include_str!("../peers/optuna_dispatch.py");
/// Loads `bench cockpit`'s attempts into an MLflow tracking store.
pub const MLFLOW_LOAD: &str = include_str!("../peers/mlflow_load.py");
/// Writes `bench store`'s attempts and metric points through MLflow's client.
pub const MLFLOW_WRITE: &str = include_str!("../peers/mlflow_write.py");

/// Run a peer's Python `script` (written to `dir/name`) with `args`, and return its answer: the
/// last line of its standard output that is a JSON object (libraries such as MLflow's client
/// print their own lines before it). On failure the error starts with `failed` and holds the
/// script's standard error.
pub(crate) fn python_peer(
    python: &str,
    dir: &std::path::Path,
    name: &str,
    script: &str,
    args: &[&std::ffi::OsStr],
    failed: &str,
) -> Result<serde_json::Value> {
    let path = dir.join(name);
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    let out = std::process::Command::new(python)
        .arg(&path)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {python}"))?;
    if !out.status.success() {
        anyhow::bail!("{failed}:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answer = stdout.lines().rfind(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(answer).with_context(|| format!("reading {name}'s answer: {stdout}"))
}

/// Where a bench keeps its projects: `dir` (created), or a temporary directory removed when
/// the returned guard drops.
pub(crate) fn work_dir(dir: &Option<PathBuf>) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    Ok(match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (None, d.clone())
        }
        None => {
            let tmp = tempfile::tempdir()?;
            let root = tmp.path().to_path_buf();
            (Some(tmp), root)
        }
    })
}

/// The `picidae` binary built beside this one.
pub(crate) fn picidae_beside() -> Result<PathBuf> {
    std::env::current_exe()?
        .parent()
        .map(|d| d.join("picidae"))
        .filter(|p| p.is_file())
        .context(
            "the `picidae` binary is not beside picidae-bench: build both with `cargo build \
             --release -p picidae -p picidae-bench`",
        )
}
