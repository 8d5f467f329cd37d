//! Run logs and agent transcripts, by run id or attempt number, never by path; tails only.

use super::*;

/// Query of `GET /api/runs/{id}/log`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// `stdout` (default) or `stderr`.
    pub(crate) stream: Option<String>,
    /// Bytes from the end (default 64 KiB, at most 4 MiB).
    #[param(value_type = Option<u64>, minimum = 1)]
    pub(crate) tail: Option<String>,
}

/// The log file of run `id`'s `stream`, inside `runs_root` (`<project>/.picidae/runs`).
pub(crate) fn log_path(
    runs_root: &FsPath,
    program: &str,
    id: i64,
    stream: &str,
) -> Result<PathBuf, CockpitError> {
    let file = match stream {
        "stdout" => "stdout.log",
        "stderr" => "stderr.log",
        other => {
            return Err(CockpitError::BadRequest(format!(
                "stream: {other:?} is not `stdout` or `stderr`"
            )))
        }
    };
    if !safe_name(program) {
        return Err(CockpitError::NotFound(format!(
            "run {id} has no log this server can show"
        )));
    }
    let path = runs_root.join(program).join(id.to_string()).join(file);
    inside(runs_root, &path)
        .ok_or_else(|| CockpitError::NotFound(format!("run {id} has no {stream} log (yet)")))
}

/// Program names are `[A-Za-z0-9._-]`, not `.` or `..`: nothing that could leave a directory.
pub(crate) fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `path`, canonicalized, when it is a file that lies inside `root` (links resolved).
pub(crate) fn inside(root: &FsPath, path: &FsPath) -> Option<PathBuf> {
    let real = std::fs::canonicalize(path).ok()?;
    let root = std::fs::canonicalize(root).ok()?;
    (real.starts_with(&root) && real.is_file()).then_some(real)
}

/// The transcript of attempt `seq` of `program`, inside `attempts_root`
/// (`<project>/.picidae/attempts`).
pub(crate) fn transcript_path(
    attempts_root: &FsPath,
    program: &str,
    seq: i64,
) -> Result<PathBuf, CockpitError> {
    let not_found =
        || CockpitError::NotFound(format!("attempt #{seq} of {program} has no transcript"));
    if !safe_name(program) || seq < 1 {
        return Err(not_found());
    }
    let path = attempts_root
        .join(program)
        .join(seq.to_string())
        .join("transcript.txt");
    inside(attempts_root, &path).ok_or_else(not_found)
}

/// A `tail` query: default 64 KiB, at most 4 MiB.
pub(crate) fn tail_of(t: Option<&str>) -> Result<u64, CockpitError> {
    match t.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_LOG_TAIL),
        Some(t) => Ok(t
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                CockpitError::BadRequest(format!("tail: {t:?} is not a positive number of bytes"))
            })?
            .min(MAX_LOG_TAIL)),
    }
}

/// Headers of a file download (the report, a run's artifact): its type, saved as `file`
/// rather than shown, and never sniffed into something the browser would render.
pub(crate) fn download_headers(content_type: &'static str, file: &str) -> HeaderMap {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    HeaderMap::from_iter([
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_DISPOSITION, disposition),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ])
}

/// A text response with the log headers (`x-log-size`, `x-log-truncated`).
pub(crate) fn text_reply(text: String, size: u64, cut: bool) -> Response {
    let size = HeaderValue::from_str(&size.to_string()).unwrap_or(HeaderValue::from_static("0"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        [
            ("x-log-size", size),
            (
                "x-log-truncated",
                HeaderValue::from_static(if cut { "true" } else { "false" }),
            ),
        ],
        text,
    )
        .into_response()
}

/// The last `tail` bytes of `path` (cut to start at a line when it was cut at all), and the
/// file's size.
pub(crate) fn read_tail(path: &FsPath, tail: u64) -> Result<(String, u64, bool), CockpitError> {
    let io = |source| CockpitError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let start = size.saturating_sub(tail);
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut buf = Vec::new();
    f.take(tail).read_to_end(&mut buf).map_err(io)?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    let cut = start > 0;
    if cut {
        if let Some(nl) = text.find('\n') {
            text.drain(..=nl);
        }
    }
    Ok((text, size, cut))
}

/// The end of a run's stdout or stderr log, cut to start at a line (`x-log-truncated: true`
/// when cut; `x-log-size` is the whole file's size).
#[utoipa::path(get, path = "/api/runs/{id}/log", tag = "attempts",
    params(("id" = i64, Path, description = "The run's id"), LogQuery),
    security((), ("bearer" = [])),
    responses((status = 200, description = "The log's tail", content_type = "text/plain",
               body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn run_log(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, CockpitError> {
    let Path(id) = id?;
    let Query(q) = query?;
    let id: i64 = id
        .trim()
        .parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| CockpitError::BadRequest(format!("id: {id:?} is not a run id")))?;
    let stream = q
        .stream
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("stdout")
        .to_string();
    let tail = tail_of(q.tail.as_deref())?;
    let (text, size, cut) = read(&state, &headers, move |store, state| {
        let run = store.run(id)?;
        let program = store.program_by_id(run.program_id)?;
        let runs_root = state
            .runs_dir()
            .ok_or_else(|| CockpitError::NotFound(format!("run {id} has no log")))?;
        let path = log_path(&runs_root, &program.name, id, &stream)?;
        read_tail(&path, tail)
    })
    .await?;
    Ok(text_reply(text, size, cut))
}

/// Query of `GET /api/programs/{name}/attempts/{seq}/transcript`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TranscriptQuery {
    /// Bytes from the end (default 64 KiB, at most 4 MiB).
    #[param(value_type = Option<u64>, minimum = 1)]
    pub(crate) tail: Option<String>,
}

/// The end of the agent's transcript of an attempt (what a command agent printed), cut to
/// start at a line (`x-log-truncated: true` when cut; `x-log-size` is the whole file's size).
#[utoipa::path(get, path = "/api/programs/{name}/attempts/{seq}/transcript", tag = "attempts",
    params(("name" = String, Path, description = "The program's name"),
           ("seq" = i64, Path, description = "The attempt's number in its program"),
           TranscriptQuery),
    security((), ("bearer" = [])),
    responses((status = 200, description = "The transcript's tail", content_type = "text/plain",
               body = String),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn transcript(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<TranscriptQuery>, QueryRejection>,
) -> Result<Response, CockpitError> {
    let Path((name, seq)) = path?;
    let Query(q) = query?;
    let seq: i64 = seq.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
        CockpitError::BadRequest(format!("seq: {seq:?} is not an attempt number"))
    })?;
    let tail = tail_of(q.tail.as_deref())?;
    let (text, size, cut) = read(&state, &headers, move |store, state| {
        // The directory comes from the program the store knows, never from the request's text.
        let p = store.program(&name)?;
        store
            .attempt_by_seq(p.id, seq)?
            .ok_or_else(|| CockpitError::NotFound(format!("no attempt #{seq} of {}", p.name)))?;
        let root = state
            .store_path
            .parent()
            .map(|d| d.join("attempts"))
            .ok_or_else(|| CockpitError::NotFound(format!("attempt #{seq} has no transcript")))?;
        let path = transcript_path(&root, &p.name, seq)?;
        read_tail(&path, tail)
    })
    .await?;
    Ok(text_reply(text, size, cut))
}
