//! What a worker sends into a run's directory on this machine: the tails of its logs while it
//! runs (so the cockpit and `picidae show` follow a remote run as a local one), and its
//! artifacts (a tar archive), where the hidden evaluator reads them. Only regular files and directories with
//! plain relative names are taken (a link, a device, an absolute or `..` path refuses the
//! whole upload), the total is capped, and the archive is unpacked into a fresh directory
//! that then replaces the run's `artifacts/` at once, so a half-finished upload or one from a
//! worker that lost its lease never mixes with the holder's.

use std::io::Read;
use std::path::{Component, Path as FsPath, PathBuf};

use axum::body::Bytes;

use super::*;

/// Query of `PUT /api/workers/{id}/runs/{run_id}/artifacts`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
pub struct UploadQuery {
    /// The lease the run was claimed with.
    pub lease: String,
}

/// The most an artifacts upload may weigh.
pub const MAX_ARTIFACTS_BYTES: usize = 1024 * 1024 * 1024;

/// `PUT /api/workers/{id}/runs/{run_id}/artifacts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadAnswer {
    /// Files taken.
    pub files: usize,
    pub bytes: u64,
}

/// The most of each log a worker sends while its run executes.
pub const MAX_LOG_TAIL: usize = 256 * 1024;

/// Body of `POST /api/workers/{id}/runs/{run_id}/log`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogBody {
    pub lease: String,
    /// The end of the run's stdout so far.
    #[serde(default)]
    pub stdout: String,
    /// The end of the run's stderr so far.
    #[serde(default)]
    pub stderr: String,
}

/// The run's directory here, if `id`'s token holds the lease `lease` on `run_id`.
fn held_run_dir(
    store: &Store,
    token: &Token,
    (id, run_id): (i64, i64),
    lease: &str,
    runs_root: &FsPath,
) -> Result<PathBuf, ApiError> {
    let item = super::work::leased_item(store, token, (id, run_id), lease)?;
    if item.state != picidae_core::WorkState::Claimed {
        return Err(super::work::no_lease(id, run_id));
    }
    let run = store.run(run_id)?;
    let program = store.program_by_id(run.program_id)?;
    if !super::work::valid_name(&program.name) {
        return Err(ApiError::internal(format!(
            "program {:?} has no runs directory this server writes",
            program.name
        )));
    }
    Ok(runs_root.join(&program.name).join(run_id.to_string()))
}

/// The runs directory of the project whose store the server reads.
fn runs_root(ctx: &Shared) -> Result<PathBuf, ApiError> {
    ctx.state
        .runs_dir()
        .ok_or_else(|| ApiError::internal("this server has no runs directory".into()))
}

/// Replace the run's logs with the tails a worker sent while the run executes.
#[utoipa::path(post, path = "/api/workers/{id}/runs/{run_id}/log", tag = "workers",
    params(("id" = i64, Path, description = "The worker's id"),
           ("run_id" = i64, Path, description = "The run it claimed")),
    request_body(content = LogBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 204, description = "Taken"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn post_log(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    ids: Result<Path<(i64, i64)>, PathRejection>,
    body: Result<Json<LogBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let root = runs_root(&ctx)?;
    ctx.worker(&headers, move |store, token| {
        let Path(ids) = ids?;
        let Json(b) = body?;
        let dir = held_run_dir(store, token, ids, &b.lease, &root)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
        for (name, text) in [("stdout.log", &b.stdout), ("stderr.log", &b.stderr)] {
            let tail = &text.as_bytes()[text.len().saturating_sub(MAX_LOG_TAIL)..];
            replace(&dir, name, tail).map_err(|e| ApiError::internal(format!("{name}: {e}")))?;
        }
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Write `name` in `dir` as a new file renamed over the old one (a link there is replaced,
/// never followed).
fn replace(dir: &FsPath, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Upload a run's artifacts (a tar archive of regular files) under the lease held.
#[utoipa::path(put, path = "/api/workers/{id}/runs/{run_id}/artifacts", tag = "workers",
    params(("id" = i64, Path, description = "The worker's id"),
           ("run_id" = i64, Path, description = "The run it claimed"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "A tar archive of the run's artifacts"),
    security(("bearer" = [])),
    responses((status = 200, body = UploadAnswer), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn upload_artifacts(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    ids: Result<Path<(i64, i64)>, PathRejection>,
    q: Result<Query<UploadQuery>, QueryRejection>,
    body: Bytes,
) -> ApiResult<UploadAnswer> {
    let runs_root = runs_root(&ctx)?;
    let answer = ctx
        .worker(&headers, move |store, token| {
            let Path(ids) = ids?;
            let Query(q) = q?;
            let run_dir = held_run_dir(store, token, ids, &q.lease, &runs_root)?;
            unpack(&body, &run_dir).map_err(ApiError::bad_request)
        })
        .await?;
    Ok(Json(answer))
}

/// Unpack `tar` as `run_dir/artifacts` (see the module docs).
fn unpack(tar: &[u8], run_dir: &FsPath) -> Result<UploadAnswer, String> {
    std::fs::create_dir_all(run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let fresh = tempfile::tempdir_in(run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let mut files = 0;
    let mut bytes = 0u64;
    let mut archive = tar::Archive::new(tar);
    for entry in archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| format!("an entry's name: {e}"))?
            .into_owned();
        let rel = plain(&name).ok_or_else(|| format!("refused entry {:?}", name.display()))?;
        let dest = fresh.path().join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", rel.display()))?;
            }
            tar::EntryType::Regular => {
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("{}: {e}", rel.display()))?;
                }
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&dest)
                    .map_err(|e| format!("{}: {e}", rel.display()))?;
                bytes +=
                    std::io::copy(&mut (&mut entry).take(MAX_ARTIFACTS_BYTES as u64), &mut out)
                        .map_err(|e| format!("{}: {e}", rel.display()))?;
                files += 1;
            }
            other => {
                return Err(format!(
                    "refused entry {:?}: only regular files and directories ({other:?})",
                    rel.display()
                ))
            }
        }
    }
    let target = run_dir.join("artifacts");
    let old = run_dir.join(format!(".artifacts-old-{}", std::process::id()));
    if target.exists() {
        std::fs::rename(&target, &old).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    let fresh = fresh.keep();
    std::fs::rename(&fresh, &target).map_err(|e| format!("{}: {e}", target.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(UploadAnswer { files, bytes })
}

/// `name` as a plain relative path (no root, no `..`, no `.`), if it is one.
fn plain(name: &FsPath) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => out.push(p),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
            }
            // Written raw, so names the builder would refuse reach the unpacker too.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn only_plain_files_and_directories_are_taken_and_they_replace_the_old_set() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join("artifacts")).unwrap();
        std::fs::write(run.join("artifacts/stale.txt"), "old").unwrap();
        let ok = archive(&[
            ("preds", tar::EntryType::Directory, b""),
            ("preds/a.csv", tar::EntryType::Regular, b"1,2\n"),
            ("model.txt", tar::EntryType::Regular, b"weights"),
        ]);
        let a = unpack(&ok, &run).unwrap();
        assert_eq!((a.files, a.bytes), (2, 11));
        assert_eq!(
            std::fs::read_to_string(run.join("artifacts/preds/a.csv")).unwrap(),
            "1,2\n"
        );
        assert!(
            !run.join("artifacts/stale.txt").exists(),
            "the upload replaces the old set"
        );
        for bad in [
            archive(&[("../escape.txt", tar::EntryType::Regular, b"x")]),
            archive(&[("/etc/evil", tar::EntryType::Regular, b"x")]),
            archive(&[("link", tar::EntryType::Symlink, b"")]),
            archive(&[("fifo", tar::EntryType::Fifo, b"")]),
        ] {
            assert!(unpack(&bad, &run).is_err());
        }
        assert!(!dir.path().join("escape.txt").exists());
        // A refused upload leaves the accepted set as it was.
        assert_eq!(
            std::fs::read_to_string(run.join("artifacts/model.txt")).unwrap(),
            "weights"
        );
    }
}
