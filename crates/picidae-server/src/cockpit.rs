//! The cockpit: a web UI served by `picidae serve` from the same binary, for a person who steers
//! research programs. The pages are plain HTML, CSS and JavaScript compiled in with
//! `include_str!` (no build step, nothing fetched from elsewhere, so it works offline) and talk
//! to the same JSON API as the CLI.
//!
//! | method | path | auth | what |
//! | --- | --- | --- | --- |
//! | GET | `/`, `/cockpit/app.js`, `/cockpit/app.css` | none | the single-page app (hash routes) |
//! | GET | `/api/cockpit/status` | read | slot and GPU utilisation (parsed from the coordinator's metrics) |
//! | GET | `/api/cockpit/programs/{name}/chart` | read | every attempt and run with its visible primary value, the metric's name and goal |
//! | GET | `/api/runs/{id}/log?stream=stdout\|stderr&tail=BYTES` | read | the end of a run's own log |
//! | GET | `/api/programs/{name}/attempts/{seq}/transcript?tail=BYTES` | read | the end of the agent's transcript of an attempt |
//! | GET | `/api/runs/{id}/artifacts` | read | the files a run wrote under its artifacts directory (name, size), and the contract's `[run] artifacts` |
//! | GET | `/api/runs/{id}/artifacts/{name}` | read | one of them, as a download (`name` as listed, `/` sent as `%2F`) |
//!
//! **Auth and CSRF.** The pages ask for a token (made with `picidae token create`) and keep it
//! in `sessionStorage`; every mutation sends it as `Authorization: Bearer ...`. The server sets
//! and reads no cookie, so a page on another origin cannot make the browser act with the
//! person's authority (no ambient credentials: CSRF-safe by construction). The reads here follow
//! the API's rule: open, unless the server requires a token for reads.
//!
//! **Logs** are read only from the run's own directory, `<project>/.picidae/runs/<program>/<run
//! id>/{stdout,stderr}.log`, derived from the run id in the store: the request names a run and
//! a stream, never a path, and the resolved file must lie inside the runs directory.
//! **Transcripts** likewise: `<project>/.picidae/attempts/<program>/<seq>/transcript.txt`,
//! from a program the store knows and an attempt number, canonicalized to stay inside the
//! attempts directory. **Artifacts** are listed from and served out of the run's own
//! `<project>/.picidae/runs/<program>/<run id>/artifacts/` only: a name with an empty, `.` or
//! `..` component is refused (400), and the resolved file must lie inside that directory (links
//! out of it are not followed). Artifacts are always sent as `application/octet-stream`
//! attachments, so a run cannot make the browser render a page on the cockpit's origin.
//!
//! **Hidden-evaluator numbers** are never read: only the `runs` and `attempts` tables' visible
//! values are, as in [`crate::api`].

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path as FsPath, PathBuf};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use picidae_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{ApiState, ErrorBody};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Default and largest tail of a log, in bytes.
pub const DEFAULT_LOG_TAIL: u64 = 64 * 1024;
pub const MAX_LOG_TAIL: u64 = 4 * 1024 * 1024;

/// Errors of the cockpit's endpoints, answered as `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum CockpitError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("request handler failed: {0}")]
    Join(String),
}

impl IntoResponse for CockpitError {
    fn into_response(self) -> Response {
        let status = match &self {
            CockpitError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CockpitError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            CockpitError::NotFound(_) => StatusCode::NOT_FOUND,
            CockpitError::Store(
                StoreError::NoSuchProgram(_)
                | StoreError::NoSuchRun(_)
                | StoreError::NoSuchAttempt(_),
            ) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut res = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"picidae\""),
            );
        }
        res
    }
}

impl From<PathRejection> for CockpitError {
    fn from(r: PathRejection) -> Self {
        CockpitError::BadRequest(format!("bad path: {}", r.body_text()))
    }
}

impl From<QueryRejection> for CockpitError {
    fn from(r: QueryRejection) -> Self {
        CockpitError::BadRequest(format!("bad query string: {}", r.body_text()))
    }
}

// ------------------------------------------------------------------ static files

/// Headers of every page and asset: no caching (the binary is the version), nothing loaded
/// from elsewhere, no framing.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                     script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                ),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

// ------------------------------------------------------------------ store access

/// Check the read rule (a valid token when the server requires one), then run `f` on a store
/// connection in the blocking pool.
async fn read<T, F>(state: &ApiState, headers: &HeaderMap, f: F) -> Result<T, CockpitError>
where
    T: Send + 'static,
    F: FnOnce(&Store, &ApiState) -> Result<T, CockpitError> + Send + 'static,
{
    let secret = if state.read_requires_token {
        Some(bearer(headers)?)
    } else {
        None
    };
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let store = state.open_store()?;
        if let Some(secret) = secret {
            store
                .check_token(&secret)?
                .ok_or_else(|| CockpitError::Unauthorized("invalid or revoked token".into()))?;
        }
        f(&store, &state)
    })
    .await
    .map_err(|e| CockpitError::Join(e.to_string()))?
}

/// The bearer secret of the `Authorization` header.
fn bearer(headers: &HeaderMap) -> Result<String, CockpitError> {
    let missing = || {
        CockpitError::Unauthorized(
            "missing token: send `Authorization: Bearer <token>` (make one with `picidae token \
             create`)"
                .into(),
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| CockpitError::Unauthorized("the Authorization header is not text".into()))?
        .trim();
    match value.split_once(' ') {
        Some((scheme, secret))
            if scheme.eq_ignore_ascii_case("bearer") && !secret.trim().is_empty() =>
        {
            Ok(secret.trim().to_string())
        }
        _ => Err(missing()),
    }
}

// ------------------------------------------------------------------ status

/// `GET /api/cockpit/status`: what the coordinator's slots and GPUs are doing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct CockpitStatus {
    /// Picidae's version.
    pub version: String,
    /// Run slots, and how many are taken (`null` when the coordinator reports none).
    pub slots_capacity: Option<f64>,
    pub slots_in_use: Option<f64>,
    /// Taken slots / slots, 0 to 1.
    pub slot_utilisation: Option<f64>,
    pub gpus_capacity: Option<f64>,
    pub gpus_in_use: Option<f64>,
    /// Slots each program holds now.
    pub program_slots: BTreeMap<String, f64>,
}

/// Read the coordinator's Prometheus lines into a [`CockpitStatus`].
pub fn parse_status(metrics: &str) -> CockpitStatus {
    let mut s = CockpitStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    for line in metrics.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        match key {
            "picidae_slots_capacity" => s.slots_capacity = Some(v),
            "picidae_slots_in_use" => s.slots_in_use = Some(v),
            "picidae_slot_utilisation" => s.slot_utilisation = Some(v),
            "picidae_gpus_capacity" => s.gpus_capacity = Some(v),
            "picidae_gpus_in_use" => s.gpus_in_use = Some(v),
            _ => {
                if let Some(rest) = key.strip_prefix("picidae_program_slots_in_use{program=\"") {
                    if let Some(name) = rest.strip_suffix("\"}") {
                        s.program_slots.insert(name.replace("\\\"", "\""), v);
                    }
                }
            }
        }
    }
    if s.slot_utilisation.is_none() {
        if let (Some(c), Some(u)) = (s.slots_capacity, s.slots_in_use) {
            if c > 0.0 {
                s.slot_utilisation = Some(u / c);
            }
        }
    }
    s
}

/// Slot and GPU utilisation, from the coordinator's metrics.
#[utoipa::path(get, path = "/api/cockpit/status", tag = "cockpit",
    security((), ("bearer" = [])),
    responses((status = 200, body = CockpitStatus), (status = 401, body = ErrorBody)))]
async fn status(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<CockpitStatus>, CockpitError> {
    read(&state, &headers, |_, _| Ok(())).await?;
    Ok(Json(parse_status(&(state.metrics)())))
}

// ------------------------------------------------------------------ chart data

/// A run as a point of the progress chart.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChartRun {
    pub id: i64,
    pub seed: i64,
    pub status: String,
    /// Visible primary value (`null` when the run produced none).
    pub value: Option<f64>,
    /// When it started and finished (ms since the Unix epoch; `null` until then).
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// An attempt as a point of the progress chart.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChartAttempt {
    pub seq: i64,
    pub kind: String,
    pub status: String,
    pub hypothesis: String,
    /// Mean of its runs' visible primary metric.
    pub value: Option<f64>,
    /// When it was proposed and decided (ms since the Unix epoch): the chart's time axis.
    pub created_at: i64,
    pub decided_at: Option<i64>,
    /// The parameter assignment, for parameter sweeps (`null` otherwise).
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    pub runs: Vec<ChartRun>,
}

/// `GET /api/cockpit/programs/{name}/chart`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChartData {
    pub program: String,
    /// The primary metric's name (`value` when the contract cannot be read).
    pub metric: String,
    /// `minimize`, `maximize` or `null` when unknown.
    pub goal: Option<String>,
    /// Oldest first; at most `max_points` of them (see `total_attempts`).
    pub attempts: Vec<ChartAttempt>,
    /// How many attempts the program has; more than `attempts.len()` when the chart was thinned.
    pub total_attempts: usize,
}

/// Query of `GET /api/cockpit/programs/{name}/chart`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ChartQuery {
    /// Most attempts to return (default 2000, at most 20000). Past it the chart is thinned:
    /// the most recent attempts, the kept ones and, per stretch of the rest, its best, its
    /// worst and a failure are kept, so the picture (frontier, spread, failures) survives.
    #[param(value_type = Option<u64>, minimum = 10)]
    max_points: Option<String>,
}

/// Default and largest `max_points` of a chart.
const CHART_POINTS: usize = 2000;
const CHART_POINTS_MAX: usize = 20_000;

/// At most `max` of `attempts` (oldest first), chosen so that a plot of them looks like a plot
/// of all: the last quarter of `max` attempts, the kept attempts (evenly thinned to a quarter
/// if there are more), and from equal stretches of the rest each stretch's lowest and highest
/// value and its first attempt without a value (a failure).
pub fn thin_chart(attempts: Vec<ChartAttempt>, max: usize) -> Vec<ChartAttempt> {
    let n = attempts.len();
    if n <= max {
        return attempts;
    }
    let quarter = (max / 4).max(1);
    let mut keep = vec![false; n];
    for k in keep.iter_mut().skip(n.saturating_sub(quarter)) {
        *k = true;
    }
    let kept: Vec<usize> = (0..n).filter(|&i| attempts[i].status == "kept").collect();
    let step = kept.len().div_ceil(quarter).max(1);
    for &i in kept.iter().step_by(step) {
        keep[i] = true;
    }
    // The last kept attempt is the frontier: always shown.
    if let Some(&i) = kept.last() {
        keep[i] = true;
    }
    let rest = n.saturating_sub(quarter);
    let stretches = (max.saturating_sub(keep.iter().filter(|k| **k).count()) / 3).max(1);
    let width = rest.div_ceil(stretches).max(1);
    let mut start = 0;
    while start < rest {
        let end = (start + width).min(rest);
        let mut lo: Option<usize> = None;
        let mut hi: Option<usize> = None;
        let mut failed: Option<usize> = None;
        for i in start..end {
            match attempts[i].value {
                Some(v) => {
                    if lo.is_none_or(|j| attempts[j].value.is_some_and(|w| v < w)) {
                        lo = Some(i);
                    }
                    if hi.is_none_or(|j| attempts[j].value.is_some_and(|w| v > w)) {
                        hi = Some(i);
                    }
                }
                None => {
                    failed.get_or_insert(i);
                }
            }
        }
        for i in [lo, hi, failed].into_iter().flatten() {
            keep[i] = true;
        }
        start = end;
    }
    attempts
        .into_iter()
        .zip(keep)
        .filter_map(|(a, k)| k.then_some(a))
        .collect()
}

/// The primary metric's name and goal, from the benchmark's contract.
fn metric_of(benchmark_dir: &str) -> (String, Option<String>) {
    match picidae_core::contract::Contract::load(FsPath::new(benchmark_dir)) {
        Ok(c) => {
            let goal = match c.primary().goal {
                picidae_core::metrics::Goal::Minimize => "minimize",
                picidae_core::metrics::Goal::Maximize => "maximize",
            };
            (c.primary_metric.clone(), Some(goal.to_string()))
        }
        Err(_) => ("value".into(), None),
    }
}

/// Every attempt of a program and every run with its visible primary value, oldest first, with
/// the metric's name and goal: the data of the progress chart.
#[utoipa::path(get, path = "/api/cockpit/programs/{name}/chart", tag = "cockpit",
    params(("name" = String, Path, description = "The program's name"), ChartQuery),
    security((), ("bearer" = [])),
    responses((status = 200, body = ChartData), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn chart(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<ChartQuery>, QueryRejection>,
) -> Result<Json<ChartData>, CockpitError> {
    let Path(name) = name?;
    let Query(q) = query?;
    let max_points = match q.max_points.as_deref() {
        None => CHART_POINTS,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (10..=CHART_POINTS_MAX).contains(&n) => n,
            _ => {
                return Err(CockpitError::BadRequest(format!(
                    "max_points: must be an integer from 10 to {CHART_POINTS_MAX} (got {t:?})"
                )))
            }
        },
    };
    let data = read(&state, &headers, move |store, _| {
        let p = store.program(&name)?;
        let mut runs: BTreeMap<i64, Vec<ChartRun>> = BTreeMap::new();
        for r in store.run_points(p.id)? {
            runs.entry(r.attempt_id).or_default().push(ChartRun {
                id: r.id,
                seed: r.seed,
                status: r.status,
                value: r.value,
                started_at: r.started_at,
                finished_at: r.finished_at,
            });
        }
        let attempts = store
            .attempts(&picidae_store::AttemptFilter {
                program_id: Some(p.id),
                ..Default::default()
            })?
            .into_iter()
            .map(|a| ChartAttempt {
                seq: a.seq,
                kind: a.kind.to_string(),
                status: a.status.to_string(),
                hypothesis: a.hypothesis,
                value: a.primary_value,
                created_at: a.created_at,
                decided_at: a.decided_at,
                params: a.params,
                runs: runs.remove(&a.id).unwrap_or_default(),
            })
            .collect();
        let (metric, goal) = metric_of(&p.benchmark_dir);
        let attempts: Vec<ChartAttempt> = attempts;
        let total_attempts = attempts.len();
        Ok(ChartData {
            program: p.name,
            metric,
            goal,
            attempts: thin_chart(attempts, max_points),
            total_attempts,
        })
    })
    .await?;
    Ok(Json(data))
}

// ------------------------------------------------------------------ logs

/// Query of `GET /api/runs/{id}/log`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogQuery {
    /// `stdout` (default) or `stderr`.
    stream: Option<String>,
    /// Bytes from the end (default 64 KiB, at most 4 MiB).
    #[param(value_type = Option<u64>, minimum = 1)]
    tail: Option<String>,
}

/// The log file of run `id`'s `stream`, inside `runs_root` (`<project>/.picidae/runs`).
fn log_path(
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
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `path`, canonicalized, when it is a file that lies inside `root` (links resolved).
fn inside(root: &FsPath, path: &FsPath) -> Option<PathBuf> {
    let real = std::fs::canonicalize(path).ok()?;
    let root = std::fs::canonicalize(root).ok()?;
    (real.starts_with(&root) && real.is_file()).then_some(real)
}

/// The transcript of attempt `seq` of `program`, inside `attempts_root`
/// (`<project>/.picidae/attempts`).
fn transcript_path(
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
fn tail_of(t: Option<&str>) -> Result<u64, CockpitError> {
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
fn text_reply(text: String, size: u64, cut: bool) -> Response {
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
fn read_tail(path: &FsPath, tail: u64) -> Result<(String, u64, bool), CockpitError> {
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
async fn run_log(
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
            .store_path
            .parent()
            .map(|d| d.join("runs"))
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
struct TranscriptQuery {
    /// Bytes from the end (default 64 KiB, at most 4 MiB).
    #[param(value_type = Option<u64>, minimum = 1)]
    tail: Option<String>,
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
async fn transcript(
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

// ------------------------------------------------------------------ artifacts

/// Most files an artifacts listing shows, and how deep it looks.
pub const MAX_ARTIFACTS: usize = 1000;
const MAX_ARTIFACT_DEPTH: usize = 8;

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
fn artifacts_dir(runs_root: &FsPath, program: &str, id: i64) -> Result<PathBuf, CockpitError> {
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
fn runs_root(state: &ApiState) -> Result<PathBuf, CockpitError> {
    state
        .store_path
        .parent()
        .map(|d| d.join("runs"))
        .ok_or_else(|| CockpitError::NotFound("this server has no runs directory".into()))
}

/// The run id of a path.
fn run_id_of(id: &str) -> Result<i64, CockpitError> {
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
async fn run_artifacts(
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
async fn run_artifact(
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

// ------------------------------------------------------------------ the router

/// The cockpit's pages and endpoints, to merge into the API's router, and the OpenAPI
/// description of its JSON and text endpoints.
pub fn routes(state: ApiState) -> (Router, utoipa::openapi::OpenApi) {
    let (api, doc) = OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(chart))
        .routes(routes!(run_log))
        .routes(routes!(transcript))
        .routes(routes!(run_artifacts))
        .routes(routes!(run_artifact))
        .with_state(state)
        .split_for_parts();
    let pages = Router::new()
        .route("/", get(index))
        .route("/cockpit/app.js", get(app_js))
        .route("/cockpit/app.css", get(app_css));
    (pages.merge(api), doc)
}

/// The cockpit's pages and endpoints alone.
pub fn router(state: ApiState) -> Router {
    routes(state).0
}

#[cfg(test)]
mod tests {

    fn point(seq: i64, status: &str, value: Option<f64>) -> ChartAttempt {
        ChartAttempt {
            seq,
            kind: "explore".into(),
            status: status.into(),
            hypothesis: String::new(),
            value,
            created_at: 0,
            decided_at: None,
            params: None,
            runs: Vec::new(),
        }
    }

    #[test]
    fn a_thinned_chart_keeps_the_frontier_the_extremes_and_the_failures() {
        let attempts: Vec<ChartAttempt> = (0..100_000)
            .map(|i| match i {
                12_345 => point(i, "kept", Some(0.5)),
                54_321 => point(i, "failed", None),
                77_777 => point(i, "discarded", Some(99.0)),
                _ => point(i, "discarded", Some(1.0 + (i % 10) as f64)),
            })
            .collect();
        let thin = thin_chart(attempts, 2000);
        assert!(thin.len() <= 2000, "{}", thin.len());
        let seqs: Vec<i64> = thin.iter().map(|a| a.seq).collect();
        for must in [12_345, 54_321, 77_777, 99_999] {
            assert!(seqs.contains(&must), "lost {must}");
        }
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order kept");
        let small: Vec<ChartAttempt> = (0..50).map(|i| point(i, "kept", Some(1.0))).collect();
        assert_eq!(thin_chart(small, 2000).len(), 50);
    }

    use super::*;

    #[test]
    fn status_reads_the_coordinators_lines() {
        let s = parse_status(
            "# TYPE picidae_slots_capacity gauge\npicidae_slots_capacity 4\n\
             picidae_slots_in_use 3\npicidae_slot_utilisation 0.75\npicidae_gpus_capacity 2\n\
             picidae_gpus_in_use 1\npicidae_program_slots_in_use{program=\"a\"} 2\n\
             picidae_program_slots_in_use{program=\"b.c\"} 1\n",
        );
        assert_eq!(s.slots_capacity, Some(4.0));
        assert_eq!(s.slots_in_use, Some(3.0));
        assert_eq!(s.slot_utilisation, Some(0.75));
        assert_eq!(s.gpus_capacity, Some(2.0));
        assert_eq!(s.gpus_in_use, Some(1.0));
        assert_eq!(s.program_slots["a"], 2.0);
        assert_eq!(s.program_slots["b.c"], 1.0);
        let empty = parse_status("");
        assert_eq!(empty.slots_capacity, None);
        assert!(empty.program_slots.is_empty());
    }

    #[test]
    fn logs_stay_inside_the_runs_directory() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(runs.join("p").join("7")).unwrap();
        std::fs::write(runs.join("p/7/stdout.log"), "one\ntwo\nthree\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        assert!(log_path(&runs, "p", 7, "stdout").is_ok());
        assert!(matches!(
            log_path(&runs, "p", 7, "../../secret.txt"),
            Err(CockpitError::BadRequest(_))
        ));
        for bad in ["..", ".", "", "p/../..", "a/b"] {
            assert!(
                matches!(
                    log_path(&runs, bad, 7, "stdout"),
                    Err(CockpitError::NotFound(_))
                ),
                "{bad}"
            );
        }
        // A link out of the directory is refused too.
        std::fs::create_dir_all(runs.join("p").join("8")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), runs.join("p/8/stdout.log"))
            .unwrap();
        assert!(matches!(
            log_path(&runs, "p", 8, "stdout"),
            Err(CockpitError::NotFound(_))
        ));
        assert!(matches!(
            log_path(&runs, "p", 9, "stderr"),
            Err(CockpitError::NotFound(_))
        ));
    }

    #[test]
    fn transcripts_stay_inside_the_attempts_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("attempts");
        std::fs::create_dir_all(root.join("p").join("3")).unwrap();
        std::fs::write(root.join("p/3/transcript.txt"), "said\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        assert!(transcript_path(&root, "p", 3).is_ok());
        for (name, seq) in [("p", 4), ("p", 0), ("..", 3), ("p/../..", 3), ("", 3)] {
            assert!(
                matches!(
                    transcript_path(&root, name, seq),
                    Err(CockpitError::NotFound(_))
                ),
                "{name} {seq}"
            );
        }
        std::fs::create_dir_all(root.join("p").join("5")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("secret.txt"),
            root.join("p/5/transcript.txt"),
        )
        .unwrap();
        assert!(matches!(
            transcript_path(&root, "p", 5),
            Err(CockpitError::NotFound(_))
        ));
    }

    #[test]
    fn artifacts_stay_inside_the_runs_artifacts_directory() {
        let dir = tempfile::tempdir().unwrap();
        let arts = dir.path().join("artifacts");
        std::fs::create_dir_all(arts.join("sub/deeper")).unwrap();
        std::fs::write(arts.join("model.json"), "{}").unwrap();
        std::fs::write(arts.join("sub/deeper/w.bin"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("stdout.log"), "not an artifact").unwrap();
        std::os::unix::fs::symlink(dir.path().join("stdout.log"), arts.join("link.txt")).unwrap();
        let (list, more) = list_artifacts(&arts, 100);
        assert!(!more);
        assert_eq!(
            list,
            vec![
                ArtifactView {
                    name: "model.json".into(),
                    size: 2
                },
                ArtifactView {
                    name: "sub/deeper/w.bin".into(),
                    size: 10
                },
            ]
        );
        assert_eq!(list_artifacts(&arts, 1), (list[..1].to_vec(), true));
        assert!(artifact_path(&arts, "model.json").is_ok());
        assert!(artifact_path(&arts, "sub/deeper/w.bin").is_ok());
        for bad in [
            "../stdout.log",
            "sub/../../stdout.log",
            "./model.json",
            "",
            "sub//w.bin",
            "/etc/passwd",
            "..",
            "a\\b",
        ] {
            assert!(
                matches!(artifact_path(&arts, bad), Err(CockpitError::BadRequest(_))),
                "{bad}"
            );
        }
        // A link out of the directory, a directory, a missing file: not served.
        for missing in ["link.txt", "sub", "nope.bin"] {
            assert!(
                matches!(
                    artifact_path(&arts, missing),
                    Err(CockpitError::NotFound(_))
                ),
                "{missing}"
            );
        }
        assert_eq!(
            list_artifacts(&dir.path().join("none"), 10),
            (vec![], false)
        );
    }

    #[test]
    fn a_tail_starts_at_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("log");
        std::fs::write(&f, "first line\nsecond\nthird\n").unwrap();
        let (text, size, cut) = read_tail(&f, 1000).unwrap();
        assert_eq!(
            (text.as_str(), size, cut),
            ("first line\nsecond\nthird\n", 24, false)
        );
        let (text, _, cut) = read_tail(&f, 10).unwrap();
        assert_eq!((text.as_str(), cut), ("third\n", true));
    }

    #[test]
    fn assets_are_compiled_in_and_local() {
        // Nothing is loaded from another host: the machine may be offline.
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            for remote in [
                "src=\"http",
                "href=\"http",
                "url(http",
                "src=\"//",
                "href=\"//",
            ] {
                assert!(!text.contains(remote), "{remote}");
            }
        }
        assert!(INDEX_HTML.contains("/cockpit/app.js"));
    }
}
