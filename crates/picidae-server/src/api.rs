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

mod retry;

/// Connections kept open between requests.
pub const POOL_SIZE: usize = 4;
/// Default and largest page of `/api/programs/{name}/attempts`.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 1000;
/// How often `/api/events` looks for changes.
pub const EVENT_POLL: Duration = Duration::from_millis(500);
/// Event streams served at once; more are answered 503.
pub const MAX_EVENT_STREAMS: usize = 32;
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
        }
    }
}

impl ApiState {
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

struct Ctx {
    state: ApiState,
    pool: Mutex<Vec<Store>>,
    streams: Arc<Semaphore>,
    /// Set to `true` when the server shuts down, so event streams end and let it.
    shutdown: watch::Sender<bool>,
}

type Shared = Arc<Ctx>;

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
                authenticate(store, secret.as_deref())?;
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

/// The bearer secret of the `Authorization` header: `Ok(None)` when there is no header.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
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

fn authenticate(store: &Store, secret: Option<&str>) -> Result<Token, ApiError> {
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
struct ApiError {
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

type ApiResult<T> = Result<Json<T>, ApiError>;

/// An optional integer query parameter in `min..=max` (`None` when absent or empty).
fn int_param(field: &str, raw: Option<&str>, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
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

// ------------------------------------------------------------------ views

/// A program in a list: its steering settings, counts and frontier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgramSummary {
    pub name: String,
    /// `active` or `paused`.
    pub status: String,
    /// Why the harness paused the program (repeated agent failures); `null` when a person
    /// paused it or it is active.
    #[serde(default)]
    pub paused_reason: Option<String>,
    /// Fair-share weight among programs competing for slots.
    pub weight: f64,
    /// Run budget (`null`: none).
    pub max_runs: Option<i64>,
    /// GPU-hour budget (`null`: none).
    pub max_gpu_hours: Option<f64>,
    /// Money budget in USD (`null`: none).
    pub max_usd: Option<f64>,
    /// Price of a GPU-hour in USD.
    pub gpu_hour_usd: f64,
    /// Runs used so far.
    pub runs: i64,
    /// GPU-hours used so far.
    pub gpu_hours: f64,
    /// Money spent so far: GPU-hours at the price, plus what agents reported.
    pub usd: f64,
    /// Tokens agents reported.
    pub agent_tokens: i64,
    /// Attempts so far, whatever their status.
    pub attempts: i64,
    /// Best visible value so far.
    pub frontier_value: Option<f64>,
    pub frontier_commit: Option<String>,
    pub benchmark_dir: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// `GET /api/programs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgramList {
    pub programs: Vec<ProgramSummary>,
}

/// A point of the frontier's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FrontierPoint {
    /// The attempt that moved the frontier.
    pub seq: i64,
    pub commit: String,
    pub value: f64,
    /// When (ms since the Unix epoch).
    pub at: i64,
}

/// A program's frontier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FrontierInfo {
    pub value: Option<f64>,
    pub seq: Option<i64>,
    pub commit: Option<String>,
    /// The first frontier: the baseline's measurement.
    pub baseline: Option<FrontierPoint>,
    /// Every move of the frontier, oldest first.
    pub history: Vec<FrontierPoint>,
}

/// An idea queued for a program's next agent turn.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FollowupView {
    pub id: i64,
    pub program: String,
    pub text: String,
    /// The name of the token that queued it.
    pub author: String,
    pub created_at: i64,
}

impl FollowupView {
    fn of(program: String, f: picidae_store::Followup) -> FollowupView {
        FollowupView {
            id: f.id,
            program,
            text: f.text,
            author: f.author,
            created_at: f.created_at,
        }
    }
}

/// `GET /api/programs/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProgramDetail {
    pub program: ProgramSummary,
    /// The commit the program started from.
    pub base_commit: String,
    /// The program's instructions to its agent.
    pub program_md: String,
    /// Policy overrides.
    pub policy: serde_json::Value,
    pub frontier: FrontierInfo,
    /// Attempts by status (`kept`, `discarded`, `failed`, `rejected`, ...).
    pub attempts_by_status: BTreeMap<String, i64>,
    /// Follow-ups not yet given to an agent, oldest first.
    pub followups: Vec<FollowupView>,
}

/// An attempt in a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptSummary {
    pub seq: i64,
    /// `baseline`, `explore`, `imported` or `measure`.
    pub kind: String,
    /// `proposed`, `rejected`, `duplicate`, `running`, `kept`, `discarded` or `failed`.
    pub status: String,
    pub hypothesis: String,
    pub proposer: String,
    pub parent_commit: String,
    pub commit: Option<String>,
    /// Mean of its runs' visible primary metric.
    pub primary_value: Option<f64>,
    /// The decision's note (numbers about the hidden metric withheld).
    pub note: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

/// `GET /api/programs/{name}/attempts`: one page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptPage {
    pub program: String,
    /// The status filter, if any.
    pub status: Option<String>,
    /// Attempts matching the filter, on all pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    /// `asc` (oldest first) or `desc` (newest first).
    pub order: String,
    pub attempts: Vec<AttemptSummary>,
}

/// A run's visible numbers, as part of an attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunSummary {
    pub id: i64,
    pub seed: i64,
    /// `queued`, `running`, `succeeded`, `failed`, `crashed`, `timed-out`, `invalid` or
    /// `cancelled`.
    pub status: String,
    pub primary_value: Option<f64>,
    /// Every visible metric the run reported.
    pub metrics: BTreeMap<String, f64>,
    pub wall_secs: Option<f64>,
    pub peak_rss_kb: Option<i64>,
    /// Peak GPU memory in MiB, where the executor measured it.
    #[serde(default)]
    pub peak_gpu_mb: Option<i64>,
    /// Hash of the environment fingerprint it ran on.
    pub fingerprint: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Whether a person asked for it to be cancelled (`POST /api/runs/{id}/cancel`).
    #[serde(default)]
    pub cancel_requested: bool,
}

/// A finding with its visible evidence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FindingSummary {
    pub id: i64,
    pub program: String,
    /// The attempt the finding is about.
    pub attempt_seq: i64,
    /// The attempt it was compared against.
    pub incumbent_seq: i64,
    pub hypothesis: String,
    /// `candidate`, `verifying`, `validated`, `refuted` or `retracted`.
    pub state: String,
    pub metric: String,
    pub evidence: VisibleEvidence,
    /// The last state change's reason (numbers about the hidden metric withheld).
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// People's sign-offs on the finding (`POST /api/findings/{id}/approve`), oldest first.
    #[serde(default)]
    pub approvals: Vec<ApprovalView>,
}

/// A person's approval of a validated finding.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    /// `approved by <token name>`, then the note if one was given.
    pub reason: String,
    /// When (ms since the Unix epoch).
    pub at: i64,
}

impl From<FindingView> for FindingSummary {
    fn from(f: FindingView) -> Self {
        FindingSummary {
            id: f.id,
            program: f.program,
            attempt_seq: f.attempt_seq,
            incumbent_seq: f.incumbent_seq,
            hypothesis: f.hypothesis,
            state: f.state.to_string(),
            metric: f.metric,
            evidence: f.evidence,
            note: f.note,
            created_at: f.created_at,
            updated_at: f.updated_at,
            approvals: Vec::new(),
        }
    }
}

/// A finding's approvals, from its events.
fn approvals(store: &Store, finding_id: i64) -> Result<Vec<ApprovalView>, ApiError> {
    Ok(store
        .finding_events(finding_id)?
        .into_iter()
        .filter(|e| e.to == Store::APPROVED)
        .map(|e| ApprovalView {
            reason: mcp::redact_hidden(&e.reason),
            at: e.at,
        })
        .collect())
}

/// A finding as the API shows it, with its approvals.
fn finding_summary(store: &Store, view: FindingView) -> Result<FindingSummary, ApiError> {
    let mut f = FindingSummary::from(view);
    f.approvals = approvals(store, f.id)?;
    Ok(f)
}

/// `GET /api/programs/{name}/attempts/{seq}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptDetail {
    pub program: String,
    #[serde(flatten)]
    pub attempt: AttemptSummary,
    /// The parameter assignment, for parameter sweeps.
    pub params: Option<serde_json::Value>,
    /// Files the change touched.
    pub touched: Vec<String>,
    /// Why it was rejected before running (boundary violations, agent failure).
    pub rejection: Option<serde_json::Value>,
    pub runs: Vec<RunSummary>,
    pub finding: Option<FindingSummary>,
    /// The patch the attempt's commit introduces, without the hidden evaluator's files
    /// (`null` when it has no commit or the patch could not be read).
    pub diff: Option<String>,
    pub diff_truncated: bool,
    pub diff_error: Option<String>,
}

/// `GET /api/runs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    pub id: i64,
    pub program: String,
    pub attempt_seq: i64,
    pub seed: i64,
    pub status: String,
    pub executor: String,
    pub host: Option<String>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub wall_secs: Option<f64>,
    pub peak_rss_kb: Option<i64>,
    pub over_budget: bool,
    pub primary_value: Option<f64>,
    pub metrics: BTreeMap<String, f64>,
    /// Contract violations the run was marked invalid for.
    pub violations: Vec<String>,
    /// Hash of the environment fingerprint it ran on.
    pub fingerprint: Option<String>,
    pub error: Option<String>,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Whether a person asked for it to be cancelled (`POST /api/runs/{id}/cancel`).
    #[serde(default)]
    pub cancel_requested: bool,
}

/// `GET /api/findings`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FindingList {
    pub count: usize,
    pub findings: Vec<FindingSummary>,
}

/// `GET /api/memory/search`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResult {
    /// A few lines: how often ideas like the query were tried and how they went.
    pub summary: String,
    /// Matching attempts, best first: attempt_id, program, seq, hypothesis, status, value,
    /// finding (visible evidence only), duplicate_of, files, rank.
    #[schema(value_type = Vec<Object>)]
    pub hits: Vec<picidae_memory::Hit>,
}

/// `GET /api/health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Picidae's version.
    pub version: String,
    pub uptime_seconds: f64,
    /// The store's schema version.
    pub schema_version: i64,
}

/// Body of `POST /api/programs/{name}/weight`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightBody {
    /// Fair-share weight, a finite number > 0.
    pub weight: f64,
}

/// Body of `POST /api/programs/{name}/budget`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BudgetBody {
    /// Most runs the program may use (an integer >= 0), or `null` for no budget. A key that is
    /// absent leaves that budget as it is; a body with none of the keys is refused.
    #[schema(minimum = 0)]
    pub max_runs: Option<i64>,
    /// Most GPU-hours the program's runs may hold (>= 0), or `null` for no budget.
    #[schema(minimum = 0)]
    pub max_gpu_hours: Option<f64>,
    /// Most USD the program may spend (GPU-hours at `gpu_hour_usd` plus agent cost), or `null`.
    #[schema(minimum = 0)]
    pub max_usd: Option<f64>,
    /// Price of one GPU-hour in USD (>= 0).
    #[schema(minimum = 0)]
    pub gpu_hour_usd: Option<f64>,
}

/// A budget change: `None` leaves a value as it is, `Some(None)` clears a budget.
#[derive(Debug, Default, PartialEq)]
struct BudgetChange {
    max_runs: Option<Option<i64>>,
    max_gpu_hours: Option<Option<f64>>,
    max_usd: Option<Option<f64>>,
    gpu_hour_usd: Option<f64>,
}

/// Body of `POST /api/programs/{name}/followups`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowupBody {
    /// The idea, in words for the agent (non-empty, at most 10000 characters).
    pub text: String,
}

fn summary(store: &Store, p: &picidae_store::Program) -> Result<ProgramSummary, ApiError> {
    let attempts = store.attempt_counts(p.id)?.iter().map(|(_, n)| n).sum();
    let spent = store.program_spend(p.id)?;
    Ok(ProgramSummary {
        name: p.name.clone(),
        status: p.status.to_string(),
        paused_reason: p.paused_reason.clone(),
        weight: p.weight,
        max_runs: p.max_runs,
        max_gpu_hours: p.max_gpu_hours,
        max_usd: p.max_usd,
        gpu_hour_usd: p.gpu_hour_usd,
        runs: spent.runs,
        gpu_hours: spent.gpu_hours,
        usd: spent.usd,
        agent_tokens: spent.agent_tokens,
        attempts,
        frontier_value: p.frontier_value,
        frontier_commit: p.frontier_commit.clone(),
        benchmark_dir: p.benchmark_dir.clone(),
        created_at: p.created_at,
    })
}

fn attempt_summary(a: &picidae_store::Attempt) -> AttemptSummary {
    AttemptSummary {
        seq: a.seq,
        kind: a.kind.to_string(),
        status: a.status.to_string(),
        hypothesis: a.hypothesis.clone(),
        proposer: a.proposer.clone(),
        parent_commit: a.parent_commit.clone(),
        commit: a.commit.clone(),
        primary_value: a.primary_value,
        note: a.note.as_deref().map(mcp::redact_hidden),
        created_at: a.created_at,
        decided_at: a.decided_at,
    }
}

fn program(store: &Store, name: &str) -> Result<picidae_store::Program, ApiError> {
    Ok(mcp::program(store, name)?)
}

// ------------------------------------------------------------------ read handlers

/// Liveness: the store answers, with the server's version and uptime.
#[utoipa::path(get, path = "/api/health", tag = "meta",
    responses((status = 200, body = Health), (status = 500, body = ErrorBody)))]
async fn health(State(ctx): State<Shared>) -> ApiResult<Health> {
    let uptime = ctx.state.started.elapsed().as_secs_f64();
    let schema_version = ctx.with_store(|s| Ok(s.schema_version()?)).await?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: uptime,
        schema_version,
    }))
}

/// Every program with its steering settings, counts and frontier.
#[utoipa::path(get, path = "/api/programs", tag = "programs",
    security((), ("bearer" = [])),
    responses((status = 200, body = ProgramList), (status = 401, body = ErrorBody)))]
async fn list_programs(State(ctx): State<Shared>, headers: HeaderMap) -> ApiResult<ProgramList> {
    let programs = ctx
        .read(&headers, |store| {
            store
                .programs()?
                .iter()
                .map(|p| summary(store, p))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    Ok(Json(ProgramList { programs }))
}

/// One program: its frontier and history, attempt counts and open follow-ups.
#[utoipa::path(get, path = "/api/programs/{name}", tag = "programs",
    params(("name" = String, Path, description = "The program's name")),
    security((), ("bearer" = [])),
    responses((status = 200, body = ProgramDetail), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn get_program(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<ProgramDetail> {
    let Path(name) = name?;
    let detail = ctx
        .read(&headers, move |store| {
            let p = program(store, &name)?;
            let mut seqs = HashMap::new();
            let mut seq_of = |id: i64| -> Result<i64, ApiError> {
                if let Some(s) = seqs.get(&id) {
                    return Ok(*s);
                }
                let s = store.attempt(id)?.seq;
                seqs.insert(id, s);
                Ok(s)
            };
            let history = store
                .frontier_history(p.id)?
                .into_iter()
                .map(|(attempt_id, commit, value, at)| {
                    Ok(FrontierPoint {
                        seq: seq_of(attempt_id)?,
                        commit,
                        value,
                        at,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let frontier = FrontierInfo {
                value: p.frontier_value,
                seq: p.frontier_attempt_id.map(&mut seq_of).transpose()?,
                commit: p.frontier_commit.clone(),
                baseline: history.first().cloned(),
                history,
            };
            let attempts_by_status = store
                .attempt_counts(p.id)?
                .into_iter()
                .map(|(s, n)| (s.to_string(), n))
                .collect();
            let followups = store
                .open_followups(p.id)?
                .into_iter()
                .map(|f| FollowupView {
                    id: f.id,
                    program: p.name.clone(),
                    text: f.text,
                    author: f.author,
                    created_at: f.created_at,
                })
                .collect();
            Ok(ProgramDetail {
                program: summary(store, &p)?,
                base_commit: p.base_commit.clone(),
                program_md: p.program_md.clone(),
                policy: p.policy.clone(),
                frontier,
                attempts_by_status,
                followups,
            })
        })
        .await?;
    Ok(Json(detail))
}

/// Query of `GET /api/programs/{name}/attempts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AttemptsQuery {
    /// Only attempts in this status (proposed, rejected, duplicate, running, kept, discarded,
    /// failed).
    status: Option<String>,
    /// Page size (default 50, at most 1000; larger values are cut to 1000).
    #[param(value_type = Option<i64>, minimum = 1)]
    limit: Option<String>,
    /// Attempts to skip (default 0).
    #[param(value_type = Option<i64>, minimum = 0)]
    offset: Option<String>,
    /// `asc` (oldest first, the default) or `desc` (newest first).
    order: Option<String>,
    /// Only attempts whose hypothesis contains this text (case-insensitive).
    q: Option<String>,
}

/// A page of a program's attempts, with the total matching the filter.
#[utoipa::path(get, path = "/api/programs/{name}/attempts", tag = "attempts",
    params(("name" = String, Path, description = "The program's name"), AttemptsQuery),
    security((), ("bearer" = [])),
    responses((status = 200, body = AttemptPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_attempts(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<AttemptsQuery>, QueryRejection>,
) -> ApiResult<AttemptPage> {
    let Path(name) = name?;
    let Query(q) = query?;
    let status = q
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.to_ascii_lowercase()
                .parse::<AttemptStatus>()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "status: unknown attempt status {s:?} (expected one of {})",
                        AttemptStatus::ALL
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
        })
        .transpose()?;
    let limit = int_param("limit", q.limit.as_deref(), 1, i64::MAX)?
        .unwrap_or(DEFAULT_PAGE)
        .min(MAX_PAGE);
    let offset = int_param("offset", q.offset.as_deref(), 0, i64::MAX)?.unwrap_or(0);
    let desc = match q.order.as_deref().map(str::trim) {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "order: {other:?} is not `asc` or `desc`"
            )))
        }
    };
    let text =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
    let page = ctx
        .read(&headers, move |store| {
            let p = program(store, &name)?;
            if let Some(text) = text {
                // A text filter reads the program's attempts and pages through the matches.
                let mut hits: Vec<AttemptSummary> = store
                    .attempts(&picidae_store::AttemptFilter {
                        program_id: Some(p.id),
                        status,
                        limit: None,
                        offset: None,
                    })?
                    .iter()
                    .filter(|a| a.hypothesis.to_lowercase().contains(&text))
                    .map(attempt_summary)
                    .collect();
                if desc {
                    hits.reverse();
                }
                let total = hits.len() as i64;
                let attempts = hits
                    .into_iter()
                    .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                    .take(usize::try_from(limit).unwrap_or(0))
                    .collect();
                return Ok(AttemptPage {
                    program: p.name,
                    status: status.map(|s| s.to_string()),
                    total,
                    limit,
                    offset,
                    order: if desc { "desc" } else { "asc" }.into(),
                    attempts,
                });
            }
            let total: i64 = store
                .attempt_counts(p.id)?
                .into_iter()
                .filter(|(s, _)| status.is_none_or(|f| f == *s))
                .map(|(_, n)| n)
                .sum();
            // Newest first: read the mirrored window of the ascending order, then reverse it.
            let (lim, off) = if desc {
                let end = (total - offset).max(0);
                (limit.min(end), (end - limit).max(0))
            } else {
                (limit, offset)
            };
            let mut attempts: Vec<AttemptSummary> = if lim == 0 {
                Vec::new()
            } else {
                store
                    .attempts(&picidae_store::AttemptFilter {
                        program_id: Some(p.id),
                        status,
                        limit: Some(lim),
                        offset: Some(off),
                    })?
                    .iter()
                    .map(attempt_summary)
                    .collect()
            };
            if desc {
                attempts.reverse();
            }
            Ok(AttemptPage {
                program: p.name,
                status: status.map(|s| s.to_string()),
                total,
                limit,
                offset,
                order: if desc { "desc" } else { "asc" }.into(),
                attempts,
            })
        })
        .await?;
    Ok(Json(page))
}

/// One attempt: its runs' visible numbers, its finding's visible evidence and its diff.
#[utoipa::path(get, path = "/api/programs/{name}/attempts/{seq}", tag = "attempts",
    params(("name" = String, Path, description = "The program's name"),
           ("seq" = i64, Path, description = "The attempt's number within the program (#1 is the baseline)")),
    security((), ("bearer" = [])),
    responses((status = 200, body = AttemptDetail), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_attempt(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<AttemptDetail> {
    let Path((name, seq)) = path?;
    let seq = int_param("seq", Some(&seq), 1, i64::MAX)?
        .ok_or_else(|| ApiError::bad_request("seq: missing".into()))?;
    let detail = ctx
        .read(&headers, move |store| {
            let v = mcp::get_attempt(
                store,
                &mcp::AttemptParams {
                    program: name.clone(),
                    seq,
                },
            )?;
            let p = program(store, &name)?;
            let a = store
                .attempt_by_seq(p.id, seq)?
                .ok_or_else(|| ApiError::not_found(format!("no attempt #{seq}")))?;
            let runs = store.runs_of_attempt(a.id)?;
            let asked =
                store.cancel_requested_runs(&runs.iter().map(|r| r.id).collect::<Vec<_>>())?;
            let runs = runs
                .into_iter()
                .map(|r| RunSummary {
                    cancel_requested: asked.contains(&r.id),
                    id: r.id,
                    seed: r.seed,
                    status: r.status.to_string(),
                    primary_value: r.primary_value,
                    metrics: r.metrics,
                    wall_secs: r.wall_secs,
                    peak_rss_kb: r.peak_rss_kb,
                    peak_gpu_mb: r.peak_gpu_mb,
                    fingerprint: r.fingerprint,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                })
                .collect();
            Ok(AttemptDetail {
                program: v.program,
                attempt: attempt_summary(&a),
                params: v.params,
                touched: v.touched,
                rejection: v.rejection,
                runs,
                finding: v.finding.map(|f| finding_summary(store, f)).transpose()?,
                diff: v.diff,
                diff_truncated: v.diff_truncated,
                diff_error: v.diff_error,
            })
        })
        .await?;
    Ok(Json(detail))
}

/// One run: its status, resources and visible metrics.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "attempts",
    params(("id" = i64, Path, description = "The run's id")),
    security((), ("bearer" = [])),
    responses((status = 200, body = RunDetail), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<RunDetail> {
    let Path(id) = id?;
    let id = int_param("id", Some(&id), 1, i64::MAX)?
        .ok_or_else(|| ApiError::bad_request("id: missing".into()))?;
    let run = ctx
        .read(&headers, move |store| {
            let r = store.run(id)?;
            let a = store.attempt(r.attempt_id)?;
            let p = store.program_by_id(r.program_id)?;
            let cancel_requested = !store.cancel_requested_runs(&[r.id])?.is_empty();
            Ok(RunDetail {
                cancel_requested,
                id: r.id,
                program: p.name,
                attempt_seq: a.seq,
                seed: r.seed,
                status: r.status.to_string(),
                executor: r.executor,
                host: r.host,
                exit_code: r.exit_code,
                signal: r.signal,
                wall_secs: r.wall_secs,
                peak_rss_kb: r.peak_rss_kb,
                over_budget: r.over_budget,
                primary_value: r.primary_value,
                metrics: r.metrics,
                violations: r.violations,
                fingerprint: r.fingerprint,
                error: r.error,
                queued_at: r.queued_at,
                started_at: r.started_at,
                finished_at: r.finished_at,
            })
        })
        .await?;
    Ok(Json(run))
}

/// Query of `GET /api/findings`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FindingsQuery {
    /// Only findings of this program.
    program: Option<String>,
    /// Only findings in this state (candidate, verifying, validated, refuted, retracted).
    state: Option<String>,
}

/// Findings with their visible evidence (hidden-evaluator results are never shown).
#[utoipa::path(get, path = "/api/findings", tag = "findings", params(FindingsQuery),
    security((), ("bearer" = [])),
    responses((status = 200, body = FindingList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_findings(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<FindingsQuery>, QueryRejection>,
) -> ApiResult<FindingList> {
    let Query(q) = query?;
    let params = mcp::FindingsParams {
        program: q.program.filter(|s| !s.trim().is_empty()),
        state: q.state.filter(|s| !s.trim().is_empty()),
    };
    let list = ctx
        .read(&headers, move |store| {
            let answer = mcp::list_findings(store, &params)?;
            Ok(FindingList {
                count: answer.count,
                findings: answer
                    .findings
                    .into_iter()
                    .map(|f| finding_summary(store, f))
                    .collect::<Result<_, _>>()?,
            })
        })
        .await?;
    Ok(Json(list))
}

/// Query of `GET /api/memory/search`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// What to look for: words of a hypothesis, file or function names, parameter names.
    #[param(required = true)]
    q: Option<String>,
    /// Only attempts of this program.
    program: Option<String>,
    /// Most hits (default 10, at most 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// Attempts like the query, best first, with a short summary of how such ideas went.
#[utoipa::path(get, path = "/api/memory/search", tag = "memory", params(SearchQuery),
    security((), ("bearer" = [])),
    responses((status = 200, body = SearchResult), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn search_memory(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult<SearchResult> {
    let Query(q) = query?;
    let text =
        q.q.filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::bad_request("q: give some words to search for".into()))?;
    let limit = int_param("limit", q.limit.as_deref(), 1, mcp::MAX_LIMIT as i64)?;
    let params = mcp::SearchParams {
        query: text,
        program: q.program.filter(|s| !s.trim().is_empty()),
        limit: limit.map(|l| l as u32),
    };
    let answer = ctx
        .read(&headers, move |store| {
            Ok(mcp::search_memory(store, &params)?)
        })
        .await?;
    Ok(Json(SearchResult {
        summary: answer.summary,
        hits: answer.hits,
    }))
}

// ------------------------------------------------------------------ mutations

/// Pause a program: no new attempt starts (running ones finish).
#[utoipa::path(post, path = "/api/programs/{name}/pause", tag = "steering",
    params(("name" = String, Path, description = "The program's name")),
    security(("bearer" = [])),
    responses((status = 200, body = ProgramSummary), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn pause_program(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<ProgramSummary> {
    set_active(ctx, headers, name, false).await
}

/// Resume a paused program.
#[utoipa::path(post, path = "/api/programs/{name}/resume", tag = "steering",
    params(("name" = String, Path, description = "The program's name")),
    security(("bearer" = [])),
    responses((status = 200, body = ProgramSummary), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn resume_program(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<ProgramSummary> {
    set_active(ctx, headers, name, true).await
}

async fn set_active(
    ctx: Shared,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    active: bool,
) -> ApiResult<ProgramSummary> {
    steer(ctx, headers, name, move |store, name| {
        let p = program(store, name)?;
        Ok(store.set_program_active(&p.name, active)?)
    })
    .await
}

/// A steering call: with a write token, `change` checks its body and changes the program named
/// in the path; the answer is the program as it is then.
async fn steer<F>(
    ctx: Shared,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    change: F,
) -> ApiResult<ProgramSummary>
where
    F: FnOnce(&mut Store, &str) -> Result<(), ApiError> + Send + 'static,
{
    let Path(name) = name?;
    let p = ctx
        .write(&headers, move |store, _| {
            change(store, &name)?;
            summary(store, &store.program(&name)?)
        })
        .await?;
    Ok(Json(p))
}

/// Set a program's fair-share weight among programs competing for slots.
#[utoipa::path(post, path = "/api/programs/{name}/weight", tag = "steering",
    params(("name" = String, Path, description = "The program's name")),
    request_body(content = WeightBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, body = ProgramSummary), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn set_weight(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<WeightBody>, JsonRejection>,
) -> ApiResult<ProgramSummary> {
    steer(ctx, headers, name, move |store, name| {
        let Json(body) = body?;
        if !(body.weight.is_finite() && body.weight > 0.0) {
            return Err(ApiError::bad_request(format!(
                "weight: must be a finite number > 0 (got {})",
                body.weight
            )));
        }
        let p = program(store, name)?;
        Ok(store.set_program_weight(&p.name, body.weight)?)
    })
    .await
}

/// Set (or, with `null`, clear) a program's run, GPU-hour and money budgets.
#[utoipa::path(post, path = "/api/programs/{name}/budget", tag = "steering",
    params(("name" = String, Path, description = "The program's name")),
    request_body(content = BudgetBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, body = ProgramSummary), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn set_budget(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<ProgramSummary> {
    steer(ctx, headers, name, move |store, name| {
        let Json(body) = body?;
        let change = budget_of(&body)?;
        let p = program(store, name)?;
        if let Some(max_runs) = change.max_runs {
            store.set_program_max_runs(&p.name, max_runs)?;
        }
        Ok(store.set_program_cost_budget(
            &p.name,
            change.max_gpu_hours,
            change.max_usd,
            change.gpu_hour_usd,
        )?)
    })
    .await
}

/// Budget keys from a JSON object: at least one of them, nothing else; each a number >= 0
/// (`max_runs` an integer) or `null` to clear it (`gpu_hour_usd` cannot be cleared).
fn budget_of(body: &serde_json::Value) -> Result<BudgetChange, ApiError> {
    const KEYS: [&str; 4] = ["max_runs", "max_gpu_hours", "max_usd", "gpu_hour_usd"];
    let obj = body.as_object().ok_or_else(|| {
        ApiError::bad_request("the body must be a JSON object, e.g. {\"max_runs\": 100}".into())
    })?;
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "{k}: unknown field (expected {})",
            KEYS.join(", ")
        )));
    }
    if obj.is_empty() {
        return Err(ApiError::bad_request(format!(
            "no budget given: set at least one of {} (null clears a budget)",
            KEYS.join(", ")
        )));
    }
    let number = |k: &str| -> Result<Option<Option<f64>>, ApiError> {
        match obj.get(k) {
            None => Ok(None),
            Some(serde_json::Value::Null) => Ok(Some(None)),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(Some(x))),
                _ => Err(ApiError::bad_request(format!(
                    "{k}: must be a number >= 0 or null (got {v})"
                ))),
            },
        }
    };
    let max_runs = match obj.get("max_runs") {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Some(Some(n)),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "max_runs: must be an integer >= 0 or null (got {v})"
                )))
            }
        },
    };
    let gpu_hour_usd = match number("gpu_hour_usd")? {
        Some(None) => {
            return Err(ApiError::bad_request(
                "gpu_hour_usd: must be a number >= 0 (a price cannot be cleared)".into(),
            ))
        }
        other => other.flatten(),
    };
    Ok(BudgetChange {
        max_runs,
        max_gpu_hours: number("max_gpu_hours")?,
        max_usd: number("max_usd")?,
        gpu_hour_usd,
    })
}

/// Queue an idea for the program's next agent turn; its author is the token's name.
#[utoipa::path(post, path = "/api/programs/{name}/followups", tag = "steering",
    params(("name" = String, Path, description = "The program's name")),
    request_body(content = FollowupBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 201, body = FollowupView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn add_followup(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<FollowupBody>, JsonRejection>,
) -> Result<(StatusCode, Json<FollowupView>), ApiError> {
    let Path(name) = name?;
    let f = ctx
        .write(&headers, move |store, token| {
            let Json(body) = body?;
            let text = body.text.trim();
            if text.is_empty() {
                return Err(ApiError::bad_request("text: must not be empty".into()));
            }
            let chars = text.chars().count();
            if chars > MAX_FOLLOWUP_CHARS {
                return Err(ApiError::bad_request(format!(
                    "text: {chars} characters is too long (at most {MAX_FOLLOWUP_CHARS})"
                )));
            }
            let p = program(store, &name)?;
            let f = store.add_followup(&p.name, text, &token.name)?;
            Ok(FollowupView::of(p.name, f))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(f)))
}

// ------------------------------------------------------------------ findings and runs

/// The program's Markdown research report: summary, validated findings with their evidence
/// and approvals, suspicions, refuted ideas (what `picidae report` prints, with the hidden
/// evaluator's numbers withheld).
#[utoipa::path(get, path = "/api/programs/{name}/report", tag = "findings",
    params(("name" = String, Path, description = "The program's name")),
    security((), ("bearer" = [])),
    responses((status = 200, description = "The report, as a Markdown file",
               content_type = "text/markdown", body = String),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn program_report(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name?;
    let (file, text) = ctx
        .read(&headers, move |store| {
            let text = crate::report::markdown(store, &name, crate::report::Hidden::Withhold)?;
            let safe: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            Ok((format!("{safe}-report.md"), text))
        })
        .await?;
    Ok((
        crate::cockpit::download_headers("text/markdown; charset=utf-8", &file),
        text,
    )
        .into_response())
}

/// Body of `POST /api/findings/{id}/approve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// Why the finding is approved, or what to do with it (optional, at most 10000
    /// characters).
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `POST /api/findings/{id}/retract`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetractBody {
    /// Why the finding no longer stands (non-empty, at most 10000 characters).
    pub reason: String,
}

/// Body of `POST /api/findings/{id}/followup`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingFollowupBody {
    /// The idea for the agent (optional: without it the follow-up asks the agent to build on
    /// the finding); the finding it follows is named either way.
    #[serde(default)]
    pub text: Option<String>,
}

/// `POST /api/findings/{id}/retract`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetractAnswer {
    pub finding: FindingSummary,
    /// The commit the program's frontier moved back to, when the finding held the frontier.
    pub frontier_moved_to: Option<String>,
    /// Set when the frontier moved in the store but its git ref could not be moved (the
    /// program's loop sets the ref from the store when it next starts).
    pub warning: Option<String>,
}

/// `POST /api/runs/{id}/cancel`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancelAnswer {
    pub run_id: i64,
    pub program: String,
    pub attempt_seq: i64,
    /// The run's status when the request was recorded (`queued` or `running`); it becomes
    /// `cancelled` once its coordinator has stopped it.
    pub status: String,
    /// When the cancel was first asked for (ms since the Unix epoch).
    pub cancel_requested_at: i64,
}

/// A finding id from the path.
fn finding_id(id: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = id?;
    int_param("id", Some(&id), 1, i64::MAX)?
        .ok_or_else(|| ApiError::bad_request("id: missing".into()))
}

/// Optional text of a body: trimmed, `None` when empty, at most [`MAX_FOLLOWUP_CHARS`].
fn text_field(field: &str, text: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let chars = text.chars().count();
    if chars > MAX_FOLLOWUP_CHARS {
        return Err(ApiError::bad_request(format!(
            "{field}: {chars} characters is too long (at most {MAX_FOLLOWUP_CHARS})"
        )));
    }
    Ok(Some(text.to_string()))
}

/// The finding `id` as the API shows it.
fn finding_by_id(store: &Store, id: i64) -> Result<FindingSummary, ApiError> {
    let f = store.finding(id)?;
    let program = store.program_by_id(f.program_id)?.name;
    let view = mcp::list_findings(
        store,
        &mcp::FindingsParams {
            program: Some(program),
            state: None,
        },
    )?
    .findings
    .into_iter()
    .find(|v| v.id == id)
    .ok_or(StoreError::NoSuchFinding(id))?;
    finding_summary(store, view)
}

/// 409 unless the finding is validated: approving and retracting need a validated finding.
fn must_be_validated(store: &Store, id: i64, action: &str) -> Result<(), ApiError> {
    let f = store.finding(id)?;
    if f.state != picidae_core::domain::FindingState::Validated {
        return Err(ApiError::conflict(format!(
            "finding {id} is {}: only a validated finding can be {action}",
            f.state
        )));
    }
    Ok(())
}

/// A person's sign-off on a validated finding, recorded as a finding event (`approved`, with
/// the token's name and the note); the finding stays validated. 409 for any other state.
#[utoipa::path(post, path = "/api/findings/{id}/approve", tag = "steering",
    params(("id" = i64, Path, description = "The finding's id")),
    request_body(content = ApproveBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, body = FindingSummary), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 415, body = ErrorBody)))]
async fn approve_finding(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<ApproveBody>, JsonRejection>,
) -> ApiResult<FindingSummary> {
    let f = ctx
        .write(&headers, move |store, token| {
            let id = finding_id(id)?;
            let Json(body) = body?;
            let note = text_field("note", body.note.as_deref())?;
            must_be_validated(store, id, "approved")?;
            store.approve_finding(id, &token.name, note.as_deref())?;
            finding_by_id(store, id)
        })
        .await?;
    Ok(Json(f))
}

/// Retract a validated finding, as `picidae findings retract` does: the finding moves to
/// `retracted`, and if its attempt holds the frontier, the frontier (store and git ref) moves
/// back to the latest earlier entry that still stands. 409 unless the finding is validated.
#[utoipa::path(post, path = "/api/findings/{id}/retract", tag = "steering",
    params(("id" = i64, Path, description = "The finding's id")),
    request_body(content = RetractBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, body = RetractAnswer), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 415, body = ErrorBody)))]
async fn retract_finding(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<RetractBody>, JsonRejection>,
) -> ApiResult<RetractAnswer> {
    let answer = ctx
        .write(&headers, move |store, token| {
            let id = finding_id(id)?;
            let Json(body) = body?;
            let reason = text_field("reason", Some(&body.reason))?.ok_or_else(|| {
                ApiError::bad_request("reason: say why the finding no longer stands".into())
            })?;
            must_be_validated(store, id, "retracted")?;
            let why = format!("retracted by {}: {reason}", token.name);
            let done = picidae_sched::retract_finding(store, id, &why).map_err(|e| match e {
                picidae_sched::SchedError::Store(s) => ApiError::from(s),
                other => ApiError::internal(other.to_string()),
            })?;
            Ok(RetractAnswer {
                finding: finding_by_id(store, id)?,
                frontier_moved_to: done.frontier_moved_to,
                warning: done.ref_not_moved,
            })
        })
        .await?;
    Ok(Json(answer))
}

/// Queue a follow-up idea in the finding's program that names the finding (its attempt, state
/// and hypothesis), for the next agent turn; its author is the token's name.
#[utoipa::path(post, path = "/api/findings/{id}/followup", tag = "steering",
    params(("id" = i64, Path, description = "The finding's id")),
    request_body(content = FindingFollowupBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 201, body = FollowupView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn finding_followup(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<FindingFollowupBody>, JsonRejection>,
) -> Result<(StatusCode, Json<FollowupView>), ApiError> {
    let f = ctx
        .write(&headers, move |store, token| {
            let id = finding_id(id)?;
            let Json(body) = body?;
            let idea = text_field("text", body.text.as_deref())?;
            let finding = store.finding(id)?;
            let p = store.program_by_id(finding.program_id)?;
            let a = store.attempt(finding.attempt_id)?;
            let mut hypothesis: String = a.hypothesis.trim().chars().take(300).collect();
            if hypothesis.len() < a.hypothesis.trim().len() {
                hypothesis.push('…');
            }
            let about = format!(
                "finding {id} (attempt #{}, {}: \"{hypothesis}\")",
                a.seq, finding.state
            );
            let text = match idea {
                Some(idea) => format!("{idea}\n\n(A follow-up of {about}.)"),
                None => format!("Follow up on {about}: build on it, or test what it leaves open."),
            };
            let f = store.add_followup(&p.name, &text, &token.name)?;
            Ok(FollowupView::of(p.name, f))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(f)))
}

/// Ask for a queued or running run to be stopped. The request is recorded in the store; the
/// coordinator running the run (perhaps another process) notices it within about a second and
/// stops the run through its executor. The run is then recorded `cancelled` ("cancelled by
/// user"), its attempt is decided without it (failed; a finding under verification is
/// refuted), and its seed is never run again. 409 when the run has already finished.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "steering",
    params(("id" = i64, Path, description = "The run's id")),
    security(("bearer" = [])),
    responses((status = 202, body = CancelAnswer), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_run(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<CancelAnswer>), ApiError> {
    let answer = ctx
        .write(&headers, move |store, _| {
            let Path(id) = id?;
            let id = int_param("id", Some(&id), 1, i64::MAX)?
                .ok_or_else(|| ApiError::bad_request("id: missing".into()))?;
            let Some(at) = store.request_run_cancel(id)? else {
                let r = store.run(id)?;
                return Err(ApiError::conflict(format!(
                    "run {id} has already finished ({}); there is nothing to cancel",
                    r.status
                )));
            };
            let r = store.run(id)?;
            let a = store.attempt(r.attempt_id)?;
            let p = store.program_by_id(r.program_id)?;
            Ok(CancelAnswer {
                run_id: id,
                program: p.name,
                attempt_seq: a.seq,
                status: r.status.to_string(),
                cancel_requested_at: at,
            })
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

// ------------------------------------------------------------------ metrics

/// Prometheus metrics: programs by status, attempts and runs by program and status, uptime,
/// and the coordinator's own lines (slots and the like).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text exposition format",
               content_type = "text/plain; version=0.0.4", body = String),
              (status = 500, body = ErrorBody)))]
async fn metrics(State(ctx): State<Shared>) -> Result<Response, ApiError> {
    let mut text = ctx.with_store(|store| Ok(store_metrics(store)?)).await?;
    let uptime = ctx.state.started.elapsed().as_secs_f64();
    text.push_str(
        "# HELP picidae_uptime_seconds Seconds since the server started.\n\
         # TYPE picidae_uptime_seconds gauge\n",
    );
    text.push_str(&format!("picidae_uptime_seconds {uptime:.3}\n"));
    let extra = (ctx.state.metrics)();
    if !extra.trim().is_empty() {
        text.push_str(&extra);
        if !extra.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// Escape a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn store_metrics(store: &Store) -> Result<String, StoreError> {
    let counts = store.status_counts()?;
    let mut out = String::new();
    out.push_str("# HELP picidae_programs Programs by status.\n# TYPE picidae_programs gauge\n");
    for (status, n) in &counts.programs {
        out.push_str(&format!(
            "picidae_programs{{status=\"{}\"}} {n}\n",
            label(status)
        ));
    }
    for (table, what, rows) in [
        ("attempts", "Attempts", &counts.attempts),
        ("runs", "Runs", &counts.runs),
    ] {
        out.push_str(&format!(
            "# HELP picidae_{table} {what} by program and status.\n\
             # TYPE picidae_{table} gauge\n"
        ));
        for c in rows {
            out.push_str(&format!(
                "picidae_{table}{{program=\"{}\",status=\"{}\"}} {}\n",
                label(&c.program),
                label(&c.status),
                c.n
            ));
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ events

/// An SSE event for one change in the store.
fn change_event(change: Change) -> Event {
    let (kind, data) = match change {
        Change::Run(r) => ("run", serde_json::to_string(&r)),
        Change::Attempt(a) => ("attempt", serde_json::to_string(&a)),
    };
    Event::default()
        .event(kind)
        .data(data.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

struct EventStream {
    store: Option<Store>,
    watcher: Option<ChangeWatcher>,
    queue: VecDeque<Event>,
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

/// Live changes as Server-Sent Events: `run` for every new run and run status change, `attempt`
/// when an attempt is decided. Polls the store every 500 ms; keep-alive comments every 10 s.
#[utoipa::path(get, path = "/api/events", tag = "events",
    security((), ("bearer" = [])),
    responses((status = 200, description = "An event stream: `event: run` with data \
               {id, program, seq, seed, status, value}; `event: attempt` with data \
               {id, program, seq, status, value, decided_at}; `event: error` with data {error}",
               content_type = "text/event-stream", body = String),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn events(State(ctx): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let permit = ctx.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams open (at most {MAX_EVENT_STREAMS}); try again later"),
        )
    })?;
    // Authorise on a pooled connection, then give the stream a connection of its own.
    ctx.read(&headers, |_| Ok(())).await?;
    let state = ctx.state.clone();
    let (store, watcher) = tokio::task::spawn_blocking(move || {
        let store = state.open_store()?;
        let watcher = ChangeWatcher::start(&store)?;
        Ok::<_, StoreError>((store, watcher))
    })
    .await
    .map_err(|e| ApiError::internal(format!("event stream failed to start: {e}")))??;
    let state = EventStream {
        store: Some(store),
        watcher: Some(watcher),
        queue: VecDeque::new(),
        shutdown: ctx.shutdown.subscribe(),
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(ev) = st.queue.pop_front() {
                return Some((Ok::<Event, Infallible>(ev), st));
            }
            tokio::select! {
                _ = tokio::time::sleep(EVENT_POLL) => {}
                _ = st.shutdown.wait_for(|down| *down) => return None,
            }
            let (store, mut watcher) = (st.store.take()?, st.watcher.take()?);
            let (store, watcher, polled) = tokio::task::spawn_blocking(move || {
                let r = watcher.poll(&store);
                (store, watcher, r)
            })
            .await
            .ok()?;
            st.store = Some(store);
            st.watcher = Some(watcher);
            match polled {
                Ok(changes) => st.queue.extend(changes.into_iter().map(change_event)),
                Err(e) => {
                    let data = serde_json::json!({ "error": e.to_string() });
                    st.queue
                        .push_back(Event::default().event("error").data(data.to_string()));
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response())
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
    )
)]
struct ApiDoc;

struct BearerScheme;

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
async fn openapi_json(State(doc): State<Arc<serde_json::Value>>) -> Json<serde_json::Value> {
    Json((*doc).clone())
}

fn build(state: ApiState) -> (Router, Shared) {
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
        .routes(routes!(set_budget))
        .routes(routes!(add_followup))
        .routes(routes!(program_report))
        .routes(routes!(approve_finding))
        .routes(routes!(retract_finding))
        .routes(routes!(finding_followup))
        .routes(routes!(cancel_run))
        .routes(routes!(retry::retry_attempt))
        .routes(routes!(metrics))
        .with_state(ctx.clone())
        .split_for_parts();
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
