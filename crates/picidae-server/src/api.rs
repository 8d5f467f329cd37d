//! The HTTP API behind `picidae serve`: JSON views of programs, attempts, runs, findings and the
//! memory, a few steering mutations, Prometheus metrics, a live event stream and an OpenAPI
//! document.
//!
//! | method | path | auth | what |
//! | --- | --- | --- | --- |
//! | GET | `/api/health` | none | liveness, version, uptime, schema version |
//! | GET | `/api/programs` | read | every program with its counts and frontier |
//! | GET | `/api/programs/{name}` | read | one program: frontier and its history, attempt counts, open follow-ups |
//! | GET | `/api/programs/{name}/attempts?status=&limit=&offset=&order=&q=` | read | a page of attempts (default 50, at most 1000) with the total; `q` filters on the hypothesis |
//! | GET | `/api/programs/{name}/attempts/{seq}` | read | one attempt: runs with visible metrics, finding with visible evidence, diff |
//! | GET | `/api/runs/{id}` | read | one run |
//! | GET | `/api/findings?program=&state=` | read | findings with visible evidence |
//! | GET | `/api/memory/search?q=&program=&limit=` | read | attempts like `q`, best first |
//! | GET | `/api/events` | read | Server-Sent Events: `run` and `attempt` |
//! | POST | `/api/programs/{name}/pause` | write | stop starting attempts |
//! | POST | `/api/programs/{name}/resume` | write | start attempts again |
//! | POST | `/api/programs/{name}/weight` | write | `{"weight": 2.0}`: fair-share weight (> 0) |
//! | POST | `/api/programs/{name}/budget` | write | any of `{"max_runs": 500, "max_gpu_hours": 2.5, "max_usd": 40, "gpu_hour_usd": 2.1}`; `null` clears a budget |
//! | POST | `/api/programs/{name}/followups` | write | `{"text": "..."}`: an idea for the next agent turn |
//! | GET | `/api/programs/{name}/report` | read | the program's Markdown research report (hidden-evaluator numbers withheld) |
//! | POST | `/api/findings/{id}/approve` | write | `{"note": "..."}` (optional): a person's sign-off on a validated finding (409 otherwise) |
//! | POST | `/api/findings/{id}/retract` | write | `{"reason": "..."}`: retract a validated finding (409 otherwise); the frontier moves back if it held it |
//! | POST | `/api/findings/{id}/followup` | write | `{"text": "..."}` (optional): a follow-up idea for the finding's program that names the finding |
//! | POST | `/api/programs/{name}/attempts/{seq}/retry` | write | verify an attempt decided on too little evidence again (201; 200 when already asked; 409 when it may not be) |
//! | POST | `/api/runs/{id}/cancel` | write | ask for a queued or running run to be stopped (202; 409 when it has finished) |
//! | GET | `/metrics` | none | Prometheus text |
//! | GET | `/openapi.json` | none | OpenAPI 3.1 document of all of the above |
//!
//! The cockpit's pages and helper endpoints ([`crate::cockpit`]) are merged into the same
//! router.
//!
//! This module holds the shared state, authentication, errors and the router; the handlers
//! live beside it in `api/`: `read`, `steer` (pause, weight, budgets, follow-ups), `findings`
//! (report, approve, retract, follow up, cancel a run), `retry`, and `live` (metrics and the
//! event stream); `views` holds the JSON answers.
//!
//! **Auth.** A request authenticates with `Authorization: Bearer <token>`, a token made with the
//! store's [`Store::create_token`] and checked with [`Store::check_token`] (only its hash is
//! stored). Mutations ("write") need a token that is not read-only: without a valid one the
//! answer is 401, with a read-only one 403. Reads ("read") need no token unless the server is
//! started with [`ApiState::read_requires_token`], and then any valid token.
//!
//! **CSRF.** Mutations are safe from cross-site request forgery by construction: they are
//! authorised only by the `Authorization` header, never by a cookie (the API sets and reads
//! none), and a browser attaches that header to a cross-origin request only after a CORS
//! preflight, which this server never grants (it sends no CORS headers). Mutations with a body
//! also demand `Content-Type: application/json` (415 otherwise), which an HTML form cannot send.
//!
//! **Errors** are `{"error": "..."}` with a status that says what kind: 400 bad input (the
//! message names the field), 401 missing or invalid token, 403 read-only token on a mutation,
//! 404 unknown program, attempt, run or finding, 409 an action the target's state does not allow
//! (approving or retracting a finding that is not validated, cancelling a finished run), 415 a
//! body that is not JSON, 503 too many event streams.
//!
//! **Cancelling a run** records the request in the store (`runs.cancel_requested_at`), because
//! the coordinator running it may be another process: it reads requests with its lease
//! heartbeat (every 300 ms under `picidae serve`) and stops the run through its executor. The
//! run is recorded `cancelled` ("cancelled by user") once, its attempt is decided (failed, or its
//! finding refuted), and its seed is never run again, by the loop or by crash recovery.
//!
//! **Hidden-evaluator numbers never leave this module**, as in [`crate::mcp`]: evidence is copied
//! field by field through [`crate::mcp::VisibleEvidence`] (no `hidden_effect`, no
//! `hidden_agrees`), notes go through [`crate::mcp::redact_hidden`], and the `hidden_results`
//! table is never read.
//!
//! **Store access.** Store connections are not `Sync`, so every handler runs its queries in
//! `spawn_blocking` on a connection taken from a small pool (opened on demand, at most
//! [`POOL_SIZE`] kept). In WAL mode each query sees what the scheduler has committed.
//!
//! **Events.** `/api/events` polls the store every [`EVENT_POLL`] on a connection of its own. It
//! tracks the largest run and attempt ids it has seen and the runs and attempts that may still
//! change (unfinished runs, undecided attempts, attempts whose finding is still open), so a poll
//! reads only new and open rows, inside one read transaction (a consistent snapshot). It sends
//! `event: run` `{id, program, seq, seed, status, value}` for every new run and every run status
//! change, and `event: attempt` `{id, program, seq, status, value, decided_at}` whenever an
//! attempt is decided (or decided again). Keep-alive comments go out every 10 s; the stream ends
//! when the client goes away or the server shuts down. At most [`MAX_EVENT_STREAMS`] at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use picidae_core::AttemptStatus;
use picidae_store::changes::{Change, ChangeWatcher};
use picidae_store::{Store, StoreError, Token};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::mcp::{self, FindingView, VisibleEvidence};
use crate::ServerError;

mod contrib;
mod findings;
mod live;
mod read;
mod retry;
mod steer;
mod upload;
mod views;
mod work;

pub use findings::*;
pub use live::*;
pub use read::*;
pub use steer::*;
pub use upload::*;
pub use views::*;
pub use work::*;

/// Connections kept open between requests.
pub const POOL_SIZE: usize = 4;
/// Default and largest page of `/api/programs/{name}/attempts`.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 1000;
/// How often `/api/events` looks for changes.
pub const EVENT_POLL: Duration = Duration::from_millis(500);
/// Event streams served at once; more are answered 503.
pub const MAX_EVENT_STREAMS: usize = 32;
/// How long a worker's lease lasts without a heartbeat, unless the server says otherwise.
pub const DEFAULT_WORKER_LEASE: Duration = Duration::from_secs(30);
/// Longest follow-up text accepted, in characters.
pub const MAX_FOLLOWUP_CHARS: usize = 10_000;

// ------------------------------------------------------------------ state

/// What the API needs from `picidae serve`.
#[derive(Clone)]
pub struct ApiState {
    /// The store's SQLite file, or where it would be: the project's files (run logs, attempt
    /// transcripts) are found beside it.
    pub store_path: PathBuf,
    /// The PostgreSQL URL holding the store instead of `store_path`, in team mode.
    pub store_url: Option<String>,
    /// When the server started (for `/api/health` and `picidae_uptime_seconds`).
    pub started: Instant,
    /// Extra Prometheus lines from the coordinator (slot utilisation and the like), appended to
    /// `/metrics`; may return an empty string.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Whether reads need a (read-only or write) token too.
    pub read_requires_token: bool,
    /// How long a remote worker's lease on a run lasts without a heartbeat.
    pub worker_lease: Duration,
}

impl ApiState {
    /// A state for the store at `store_path`: started now, no extra metrics, open reads.
    pub fn new(store_path: impl Into<PathBuf>) -> ApiState {
        ApiState {
            store_path: store_path.into(),
            store_url: None,
            started: Instant::now(),
            metrics: Arc::new(String::new),
            read_requires_token: false,
            worker_lease: DEFAULT_WORKER_LEASE,
        }
    }
}

impl ApiState {
    /// The project's runs directory (`.picidae/runs`, beside the store's file), where each
    /// run's logs and artifacts are.
    pub fn runs_dir(&self) -> Option<PathBuf> {
        self.store_path.parent().map(|d| d.join("runs"))
    }

    /// Where this project reads each benchmark (`.picidae/benchmarks.toml` beside the store's
    /// file, see `picidae_sched::clones`); where it was recorded when that cannot be read.
    pub fn clones(&self) -> picidae_sched::clones::Clones {
        self.store_path
            .parent()
            .and_then(|d| picidae_sched::clones::Clones::load(d).ok())
            .unwrap_or_default()
    }

    /// Open a connection to the store.
    pub fn open_store(&self) -> Result<Store, StoreError> {
        match &self.store_url {
            Some(url) => Store::connect(url),
            None => Store::open(&self.store_path),
        }
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("store_path", &self.store_path)
            .field("started", &self.started)
            .field("read_requires_token", &self.read_requires_token)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Ctx {
    state: ApiState,
    pool: Mutex<Vec<Store>>,
    streams: Arc<Semaphore>,
    /// Set to `true` when the server shuts down, so event streams end and let it.
    shutdown: watch::Sender<bool>,
}

pub(crate) type Shared = Arc<Ctx>;

impl Ctx {
    /// Run `f` on a pooled store connection in the blocking pool.
    async fn with_store<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    {
        let ctx = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = ctx.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut store = match pooled {
                Some(s) => s,
                None => ctx.state.open_store().map_err(ApiError::from)?,
            };
            let r = f(&mut store);
            let mut pool = ctx.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_SIZE {
                pool.push(store);
            }
            r
        })
        .await
        .map_err(|e| ApiError::internal(format!("request handler failed: {e}")))?
    }

    /// A read: checks the token when reads need one, then runs `f`.
    async fn read<T, F>(self: &Arc<Self>, headers: &HeaderMap, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    {
        let bearer = if self.state.read_requires_token {
            Some(bearer(headers)?)
        } else {
            None
        };
        self.with_store(move |store| {
            if let Some(secret) = bearer {
                let token = authenticate(store, secret.as_deref())?;
                refuse_worker(&token)?;
                refuse_contributor(&token)?;
            }
            f(store)
        })
        .await
    }

    /// A worker's call: checks for a worker token, then runs `f` with it.
    async fn worker<T, F>(self: &Arc<Self>, headers: &HeaderMap, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, &Token) -> Result<T, ApiError> + Send + 'static,
    {
        self.with_role(headers, Role::Worker, f).await
    }

    /// A contributor's call: checks for a contributor token, then runs `f` with it.
    async fn contributor<T, F>(self: &Arc<Self>, headers: &HeaderMap, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, &Token) -> Result<T, ApiError> + Send + 'static,
    {
        self.with_role(headers, Role::Contributor, f).await
    }

    /// A call only a token of `role` may make: checks for one, then runs `f` with it.
    async fn with_role<T, F>(
        self: &Arc<Self>,
        headers: &HeaderMap,
        role: Role,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, &Token) -> Result<T, ApiError> + Send + 'static,
    {
        let secret = bearer(headers)?;
        self.with_store(move |store| {
            let token = authenticate(store, secret.as_deref())?;
            let (holds, name) = match role {
                Role::Worker => (token.worker, "worker"),
                Role::Contributor => (token.contributor, "contributor"),
            };
            if !holds {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "token {:?} is not a {name}'s (make one with `picidae token create \
                         NAME --{name}`)",
                        token.name
                    ),
                ));
            }
            f(store, &token)
        })
        .await
    }

    /// A read of what contributors may see too (the leaderboard): a read, or a contributor's
    /// call.
    async fn board<T, F>(self: &Arc<Self>, headers: &HeaderMap, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    {
        let bearer = bearer(headers)?;
        let required = self.state.read_requires_token;
        self.with_store(move |store| {
            if bearer.is_some() || required {
                let token = authenticate(store, bearer.as_deref())?;
                refuse_worker(&token)?;
            }
            f(store)
        })
        .await
    }

    /// A mutation: checks for a write token, then runs `f` with it.
    async fn write<T, F>(self: &Arc<Self>, headers: &HeaderMap, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, &Token) -> Result<T, ApiError> + Send + 'static,
    {
        let secret = bearer(headers)?;
        self.with_store(move |store| {
            let token = authenticate(store, secret.as_deref())?;
            refuse_worker(&token)?;
            refuse_contributor(&token)?;
            if token.read_only {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "token {:?} is read-only; changing a program needs a write token",
                        token.name
                    ),
                ));
            }
            f(store, &token)
        })
        .await
    }
}

/// The roles whose tokens may make only their own calls.
#[derive(Debug, Clone, Copy)]
enum Role {
    Worker,
    Contributor,
}

/// A worker's token may take and report runs, nothing else: refused on reads and mutations.
fn refuse_worker(token: &Token) -> Result<(), ApiError> {
    if !token.worker {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "token {:?} is a worker's: it takes and reports runs only",
            token.name
        ),
    ))
}

/// A contributor's token may submit and follow contributions and read open programs' public
/// faces, nothing else: refused on every other read and mutation.
fn refuse_contributor(token: &Token) -> Result<(), ApiError> {
    if !token.contributor {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "token {:?} is a contributor's: it submits and follows contributions only",
            token.name
        ),
    ))
}

/// The bearer secret of the `Authorization` header: `Ok(None)` when there is no header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        ApiError::unauthorized("the Authorization header is not valid text".to_string())
    })?;
    let (scheme, secret) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || secret.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`".to_string(),
        ));
    }
    Ok(Some(secret.trim().to_string()))
}

pub(crate) fn authenticate(store: &Store, secret: Option<&str>) -> Result<Token, ApiError> {
    let Some(secret) = secret else {
        return Err(ApiError::unauthorized(
            "missing token: send `Authorization: Bearer <token>` (make one with `picidae token \
             create`)"
                .to_string(),
        ));
    };
    store
        .check_token(secret)?
        .ok_or_else(|| ApiError::unauthorized("invalid or revoked token".to_string()))
}

// ------------------------------------------------------------------ errors

/// An error answer: `{"error": message}` with `status`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: String) -> ApiError {
        ApiError { status, message }
    }
    fn bad_request(message: String) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn unauthorized(message: String) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
    fn not_found(message: String) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    fn conflict(message: String) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    fn internal(message: String) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read (a bad field is named).
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"picidae\""),
            );
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchProgram(_)
            | StoreError::NoSuchAttempt(_)
            | StoreError::NoSuchRun(_)
            | StoreError::NoSuchFinding(_) => ApiError::not_found(e.to_string()),
            StoreError::BadTransition { .. } => ApiError::conflict(e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::UnknownProgram { .. } | ServerError::NoSuchAttempt { .. } => {
                ApiError::not_found(e.to_string())
            }
            ServerError::BadState(_) => ApiError::bad_request(format!("state: {e}")),
            ServerError::EmptyQuery => ApiError::bad_request(format!("q: {e}")),
            ServerError::Store(s) => s.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON, sent with `Content-Type: application/json`".to_string(),
            ),
            other => ApiError::bad_request(format!("bad JSON body: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(format!("bad query string: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(format!("bad path: {}", r.body_text()))
    }
}

pub(crate) type ApiResult<T> = Result<Json<T>, ApiError>;

/// An optional integer query parameter in `min..=max` (`None` when absent or empty).
pub(crate) fn int_param(
    field: &str,
    raw: Option<&str>,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let n: i64 = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{field}: {raw:?} is not an integer")))?;
    if n < min || n > max {
        return Err(ApiError::bad_request(format!(
            "{field}: {n} is out of range (expected {min} to {max})"
        )));
    }
    Ok(Some(n))
}

// ------------------------------------------------------------------ the router

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Picidae API",
        description = "Read what Picidae knows (programs, attempts, runs, findings, memory) and \
                       steer its programs. Reads need no token unless the server requires one; \
                       mutations need `Authorization: Bearer <token>` of a write token. Errors \
                       are `{\"error\": \"...\"}`. Hidden-evaluator results are never returned."
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "meta", description = "Health, metrics and this document"),
        (name = "programs", description = "Programs and their frontiers"),
        (name = "attempts", description = "Attempts and their runs"),
        (name = "findings", description = "Findings with visible evidence"),
        (name = "memory", description = "Search what was tried"),
        (name = "steering", description = "Change a program, a finding or a run (write token)"),
        (name = "events", description = "Live changes"),
        (name = "cockpit", description = "What the web UI needs besides the above"),
        (name = "workers", description = "Remote workers take runs and report them (worker token)"),
        (name = "contributors", description = "Untrusted contributors submit claims, verified before they count (contributor token)"),
    )
)]
pub(crate) struct ApiDoc;

pub(crate) struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document of the API.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "This OpenAPI document", body = serde_json::Value)))]
pub(crate) async fn openapi_json(
    State(doc): State<Arc<serde_json::Value>>,
) -> Json<serde_json::Value> {
    Json((*doc).clone())
}

pub(crate) fn build(state: ApiState) -> (Router, Shared) {
    let (cockpit, cockpit_doc) = crate::cockpit::routes(state.clone());
    let (shutdown, _) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        state,
        pool: Mutex::new(Vec::new()),
        streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
        shutdown,
    });
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(list_programs))
        .routes(routes!(get_program))
        .routes(routes!(list_attempts))
        .routes(routes!(get_attempt))
        .routes(routes!(get_run))
        .routes(routes!(list_findings))
        .routes(routes!(search_memory))
        .routes(routes!(events))
        .routes(routes!(pause_program))
        .routes(routes!(resume_program))
        .routes(routes!(set_weight))
        .routes(routes!(set_concurrency))
        .routes(routes!(set_budget))
        .routes(routes!(add_followup))
        .routes(routes!(program_report))
        .routes(routes!(approve_finding))
        .routes(routes!(retract_finding))
        .routes(routes!(finding_followup))
        .routes(routes!(cancel_run))
        .routes(routes!(retry::retry_attempt))
        .routes(routes!(register_worker, list_workers))
        .routes(routes!(claim_run))
        .routes(routes!(heartbeat))
        .routes(routes!(run_bundle))
        .routes(routes!(report_result))
        .routes(routes!(post_log))
        .routes(routes!(release_run))
        .routes(routes!(metrics))
        .routes(routes!(
            contrib::submit_contribution,
            contrib::my_contributions
        ))
        .routes(routes!(contrib::public_program))
        .routes(routes!(contrib::public_bundle))
        .routes(routes!(contrib::leaderboard))
        .with_state(ctx.clone())
        .split_for_parts();
    // Artifacts uploads are the one body allowed to be large.
    let (upload, upload_doc) = OpenApiRouter::new()
        .routes(routes!(upload_artifacts))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ARTIFACTS_BYTES))
        .with_state(ctx.clone())
        .split_for_parts();
    let api = api.merge(upload);
    doc.merge(upload_doc);
    // `/openapi.json` documents itself too, then serves the finished document.
    let (_, self_doc) = OpenApiRouter::<Arc<serde_json::Value>>::new()
        .routes(routes!(openapi_json))
        .split_for_parts();
    doc.merge(self_doc);
    doc.merge(cockpit_doc);
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    let doc = Arc::new(serde_json::to_value(&doc).unwrap_or_default());
    let router = api
        .merge(
            Router::new()
                .route("/openapi.json", axum::routing::get(openapi_json))
                .with_state(doc),
        )
        .merge(cockpit);
    (router, ctx)
}

/// The API's routes, ready to mount (see the module documentation for the table). Event streams
/// opened through a router made here end only when their client goes away; [`serve`] also ends
/// them at shutdown.
pub fn router(state: ApiState) -> Router {
    build(state).0
}

/// Serve the API on `listener` until `shutdown` completes, then stop accepting connections, end
/// the event streams and wait for requests in flight to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (router, ctx) = build(state);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            ctx.shutdown.send_replace(true);
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_needs_its_key() {
        assert_eq!(
            budget_of(&serde_json::json!({"max_runs": 5})).unwrap(),
            BudgetChange {
                max_runs: Some(Some(5)),
                ..Default::default()
            }
        );
        assert_eq!(
            budget_of(&serde_json::json!({"max_runs": null})).unwrap(),
            BudgetChange {
                max_runs: Some(None),
                ..Default::default()
            }
        );
        assert_eq!(
            budget_of(
                &serde_json::json!({"max_gpu_hours": 2.5, "max_usd": null, "gpu_hour_usd": 2})
            )
            .unwrap(),
            BudgetChange {
                max_gpu_hours: Some(Some(2.5)),
                max_usd: Some(None),
                gpu_hour_usd: Some(2.0),
                ..Default::default()
            }
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"max_usd": -1}),
            serde_json::json!({"gpu_hour_usd": null}),
            serde_json::json!({"max_runs": -1}),
            serde_json::json!({"max_runs": 1.5}),
            serde_json::json!({"max_runs": "3"}),
            serde_json::json!({"max_runs": 3, "extra": 1}),
            serde_json::json!([3]),
        ] {
            let e = budget_of(&bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn bearer_header_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap(), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h).unwrap().as_deref(), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  xyz "),
        );
        assert_eq!(bearer(&h).unwrap().as_deref(), Some("xyz"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(bearer(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn int_params_name_the_field() {
        assert_eq!(int_param("limit", None, 1, 10).unwrap(), None);
        assert_eq!(int_param("limit", Some(" 7 "), 1, 10).unwrap(), Some(7));
        let e = int_param("limit", Some("x"), 1, 10).unwrap_err();
        assert!(e.message.starts_with("limit:"), "{}", e.message);
        let e = int_param("offset", Some("-1"), 0, 10).unwrap_err();
        assert!(e.message.starts_with("offset:"), "{}", e.message);
    }
}
