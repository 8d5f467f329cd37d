//! What of a run's checkout is sent to a remote engine (a Ray package, a SkyPilot workdir):
//! every regular file and empty directory whose path has no component starting with `.`,
//! in name order. Links are never followed nor sent (an agent could point one at the
//! coordinator's secrets); each one left out is counted so the run's log can say so.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::ExecError;

/// One thing to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Path below the checkout, `/`-separated; directories end with `/`.
    pub(crate) rel: String,
    pub(crate) path: PathBuf,
    /// Permission bits of a file; `None` for an (empty) directory.
    pub(crate) mode: Option<u32>,
}

/// The checkout's visible entries and the number of links left out.
pub(crate) fn visible_entries(dir: &Path) -> Result<(Vec<Entry>, usize), ExecError> {
    let mut out = Vec::new();
    let mut links = 0;
    walk(dir, "", &mut out, &mut links)?;
    Ok((out, links))
}

fn io_err(path: &Path, source: std::io::Error) -> ExecError {
    ExecError::LocalIo {
        path: path.to_path_buf(),
        source,
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<Entry>,
    links: &mut usize,
) -> Result<(), ExecError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    if entries.is_empty() && !prefix.is_empty() {
        out.push(Entry {
            rel: prefix.to_string(),
            path: dir.to_path_buf(),
            mode: None,
        });
    }
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(ExecError::InvalidRequest(format!(
                "{}: a file name that is not UTF-8",
                path.display()
            )));
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = fs::symlink_metadata(&path).map_err(|e| io_err(&path, e))?;
        let rel = format!("{prefix}{name}");
        if meta.file_type().is_symlink() {
            *links += 1;
            tracing::warn!(path = %path.display(), "a link in a run's checkout is not sent");
        } else if meta.is_dir() {
            walk(&path, &format!("{rel}/"), out, links)?;
        } else if meta.is_file() {
            out.push(Entry {
                rel,
                path,
                mode: Some(meta.permissions().mode() & 0o777),
            });
        }
    }
    Ok(())
}

/// Copies the visible entries of `src` into the new directory `dst` (a SkyPilot workdir).
/// Returns the number of links left out.
pub(crate) fn copy_visible(src: &Path, dst: &Path) -> Result<usize, ExecError> {
    let (entries, links) = visible_entries(src)?;
    if dst.exists() {
        fs::remove_dir_all(dst).map_err(|e| io_err(dst, e))?;
    }
    fs::create_dir_all(dst).map_err(|e| io_err(dst, e))?;
    for e in entries {
        let to = dst.join(e.rel.trim_end_matches('/'));
        match e.mode {
            None => fs::create_dir_all(&to).map_err(|err| io_err(&to, err))?,
            Some(mode) => {
                if let Some(parent) = to.parent() {
                    fs::create_dir_all(parent).map_err(|err| io_err(parent, err))?;
                }
                fs::copy(&e.path, &to).map_err(|err| io_err(&to, err))?;
                fs::set_permissions(&to, fs::Permissions::from_mode(mode))
                    .map_err(|err| io_err(&to, err))?;
            }
        }
    }
    Ok(links)
}
