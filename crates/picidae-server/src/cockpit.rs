//! The cockpit: a web UI served by `picidae serve` from the same binary, for a person who steers
//! research programs. The pages are plain HTML, CSS and JavaScript compiled in with
//! `include_str!` (no build step, nothing fetched from elsewhere, so it works offline) and talk
//! to the same JSON API as the CLI.
//!
//! | method | path | auth | what |
//! | --- | --- | --- | --- |
//! | GET | `/`, `/cockpit/app.js`, `/cockpit/arena.js`, `/cockpit/app.css` | none | the single-page app (hash routes) |
//! | GET | `/api/cockpit/status` | read | slot and GPU utilisation (parsed from the coordinator's metrics) |
//! | GET | `/api/cockpit/programs/{name}/chart` | read | every attempt and run with its visible primary value, the metric's name and goal |
//! | GET | `/api/runs/{id}/log?stream=stdout\|stderr&tail=BYTES` | read | the end of a run's own log |
//! | GET | `/api/programs/{name}/attempts/{seq}/transcript?tail=BYTES` | read | the end of the agent's transcript of an attempt |
//! | GET | `/api/runs/{id}/artifacts` | read | the files a run wrote under its artifacts directory (name, size), and the contract's `[run] artifacts` |
//! | GET | `/api/runs/{id}/artifacts/{name}` | read | one of them, as a download (`name` as listed, `/` sent as `%2F`) |
//! | GET | `/api/cockpit/arenas` | read | the project's arenas: benchmark, budget, trials, entries |
//! | GET | `/api/cockpit/arenas/{name}` | read | an arena's progress over spend per entry and trial, its texts, and (with a write token) its stored ranking |
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
//! values are, as in [`crate::api`]. The one exception is an arena's stored ranking (each
//! entry's true gain per unit of budget, aggregated over its trials), sent only with a token
//! that may steer (see [`arena`]).

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

mod arena;
mod artifacts;
mod chart;
mod logs;

pub use arena::*;
pub use artifacts::*;
pub use chart::*;
pub use logs::*;

pub(crate) const INDEX_HTML: &str = include_str!("../assets/index.html");
pub(crate) const APP_JS: &str = include_str!("../assets/app.js");
pub(crate) const APP_CSS: &str = include_str!("../assets/app.css");
pub(crate) const ARENA_JS: &str = include_str!("../assets/arena.js");

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
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
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

pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(crate) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(crate) async fn arena_js() -> Response {
    asset("text/javascript; charset=utf-8", ARENA_JS)
}

pub(crate) async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

// ------------------------------------------------------------------ store access

/// Check the read rule (a valid token when the server requires one), then run `f` on a store
/// connection in the blocking pool.
pub(crate) async fn read<T, F>(
    state: &ApiState,
    headers: &HeaderMap,
    f: F,
) -> Result<T, CockpitError>
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
            let token = store
                .check_token(&secret)?
                .ok_or_else(|| CockpitError::Unauthorized("invalid or revoked token".into()))?;
            // A worker's or a contributor's token reads nothing here.
            if token.worker || token.contributor {
                return Err(CockpitError::Unauthorized(format!(
                    "token {:?} may not read the cockpit",
                    token.name
                )));
            }
        }
        f(&store, &state)
    })
    .await
    .map_err(|e| CockpitError::Join(e.to_string()))?
}

/// The bearer secret of the `Authorization` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<String, CockpitError> {
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
pub(crate) async fn status(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<CockpitStatus>, CockpitError> {
    read(&state, &headers, |_, _| Ok(())).await?;
    Ok(Json(parse_status(&(state.metrics)())))
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
        .routes(routes!(arenas))
        .routes(routes!(arena))
        .with_state(state)
        .split_for_parts();
    let pages = Router::new()
        .route("/", get(index))
        .route("/cockpit/app.js", get(app_js))
        .route("/cockpit/arena.js", get(arena_js))
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
        for text in [INDEX_HTML, APP_JS, ARENA_JS, APP_CSS] {
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
        assert!(INDEX_HTML.contains("/cockpit/arena.js"));
    }
}
