//! A run's artifacts: listed and served from its own `artifacts/` directory only, as attachments.

use super::*;

/// Most files an artifacts listing shows, and how deep it looks.
pub const MAX_ARTIFACTS: usize = 1000;
pub(crate) const MAX_ARTIFACT_DEPTH: usize = 8;

/// A file a run wrote under its artifacts directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ArtifactView {
    /// Its path inside the artifacts directory, `/`-separated.
    pub name: String,
    /// Bytes.
    pub size: u64,
}

/// `GET /api/runs/{id}/artifacts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactList {
    pub run_id: i64,
    pub program: String,
    /// The contract's `[run] artifacts` (what the run is expected to write; empty when the
    /// contract says nothing or cannot be read).
    pub declared: Vec<String>,
    /// Regular files, by name (links are not listed); at most 1000.
    pub artifacts: Vec<ArtifactView>,
    /// Whether there were more files than listed.
    pub truncated: bool,
}

/// The artifacts directory of run `id` of `program`, inside `runs_root`.
pub(crate) fn artifacts_dir(
    runs_root: &FsPath,
    program: &str,
    id: i64,
) -> Result<PathBuf, CockpitError> {
    if !safe_name(program) {
        return Err(CockpitError::NotFound(format!(
            "run {id} has no artifacts this server can show"
        )));
    }
    Ok(runs_root
        .join(program)
        .join(id.to_string())
        .join("artifacts"))
}

/// The regular files under `dir` (not following links), by name, at most `max` (and whether
/// there were more).
pub fn list_artifacts(dir: &FsPath, max: usize) -> (Vec<ArtifactView>, bool) {
    fn walk(
        dir: &FsPath,
        prefix: &str,
        depth: usize,
        out: &mut Vec<ArtifactView>,
        max: usize,
    ) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let full = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if meta.is_file() {
                if out.len() >= max {
                    return true;
                }
                out.push(ArtifactView {
                    name: full,
                    size: meta.len(),
                });
            } else if meta.is_dir()
                && depth < MAX_ARTIFACT_DEPTH
                && walk(&e.path(), &full, depth + 1, out, max)
            {
                return true;
            }
        }
        false
    }
    let mut out = Vec::new();
    let more = walk(dir, "", 0, &mut out, max);
    (out, more)
}

/// The file `name` (as listed) inside the artifacts directory `dir`: no empty, `.` or `..`
/// component, no backslash or NUL (400), and it must resolve to a file inside `dir` (404).
pub fn artifact_path(dir: &FsPath, name: &str) -> Result<PathBuf, CockpitError> {
    let bad = || {
        CockpitError::BadRequest(format!(
            "name: {name:?} is not the name of a file in the run's artifacts"
        ))
    };
    if name.is_empty() || name.len() > 4096 || name.contains(['\\', '\0']) {
        return Err(bad());
    }
    let mut path = dir.to_path_buf();
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(bad());
        }
        path.push(part);
    }
    inside(dir, &path)
        .ok_or_else(|| CockpitError::NotFound(format!("the run has no artifact {name:?}")))
}

/// The runs directory of the project whose store the server reads.
pub(crate) fn runs_root(state: &ApiState) -> Result<PathBuf, CockpitError> {
    state
        .runs_dir()
        .ok_or_else(|| CockpitError::NotFound("this server has no runs directory".into()))
}

/// The run id of a path.
pub(crate) fn run_id_of(id: &str) -> Result<i64, CockpitError> {
    id.trim()
        .parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| CockpitError::BadRequest(format!("id: {id:?} is not a run id")))
}

/// The files a run wrote under its artifacts directory (`$PICIDAE_ARTIFACTS`), with their
/// sizes, and what the contract's `[run] artifacts` declares.
#[utoipa::path(get, path = "/api/runs/{id}/artifacts", tag = "attempts",
    params(("id" = i64, Path, description = "The run's id")),
    security((), ("bearer" = [])),
    responses((status = 200, body = ArtifactList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn run_artifacts(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ArtifactList>, CockpitError> {
    let Path(id) = id?;
    let id = run_id_of(&id)?;
    let list = read(&state, &headers, move |store, state| {
        let run = store.run(id)?;
        let program = store.program_by_id(run.program_id)?;
        let dir = artifacts_dir(&runs_root(state)?, &program.name, id)?;
        let (artifacts, truncated) = list_artifacts(&dir, MAX_ARTIFACTS);
        let declared = picidae_core::contract::Contract::load(FsPath::new(&program.benchmark_dir))
            .map(|c| c.run.artifacts)
            .unwrap_or_default();
        Ok(ArtifactList {
            run_id: id,
            program: program.name,
            declared,
            artifacts,
            truncated,
        })
    })
    .await?;
    Ok(Json(list))
}

/// One file of a run's artifacts, as a download (`application/octet-stream`, an attachment).
/// `name` is as listed, with `/` sent as `%2F`; anything that would leave the run's artifacts
/// directory is refused.
#[utoipa::path(get, path = "/api/runs/{id}/artifacts/{name}", tag = "attempts",
    params(("id" = i64, Path, description = "The run's id"),
           ("name" = String, Path, description = "The artifact's name as listed (`/` as `%2F`)")),
    security((), ("bearer" = [])),
    responses((status = 200, description = "The file", content_type = "application/octet-stream",
               body = Vec<u8>),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn run_artifact(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, CockpitError> {
    let Path((id, name)) = path?;
    let id = run_id_of(&id)?;
    let file = read(&state, &headers, move |store, state| {
        let run = store.run(id)?;
        let program = store.program_by_id(run.program_id)?;
        let dir = artifacts_dir(&runs_root(state)?, &program.name, id)?;
        artifact_path(&dir, &name)
    })
    .await?;
    let io = |source| CockpitError::Io {
        path: file.clone(),
        source,
    };
    let f = tokio::fs::File::open(&file).await.map_err(io)?;
    let size = f.metadata().await.map_err(io)?.len();
    let base: String = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("artifact")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stream = futures_util::stream::unfold(Some(f), |f| async move {
        use tokio::io::AsyncReadExt;
        let mut f = f?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)),
                    Some(f),
                ))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut headers = download_headers("application/octet-stream", &base);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok((headers, axum::body::Body::from_stream(stream)).into_response())
}
