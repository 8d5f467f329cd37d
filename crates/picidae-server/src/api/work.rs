//! The routes remote workers (`picidae worker`) use, and only they: register, claim a run
//! that fits, renew leases, fetch the run's tree as a git bundle, report the result. Every
//! one needs a worker token (`picidae token create NAME --worker`), and a worker acts only
//! as itself (the worker id in the path must be one its token registered). The store keeps
//! the leases and refuses a report for a lease no longer held (`picidae_store::work`).

use picidae_store::{Renewal, Report, WorkItem, Worker};

use super::*;

/// Body of `POST /api/workers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterBody {
    /// The worker's name, unique per token (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The pool it serves (`""`: the default pool, `--executor workers`).
    #[serde(default)]
    pub pool: String,
    /// GPU indices it offers.
    #[serde(default)]
    pub gpus: Vec<u32>,
    /// CPUs it offers.
    #[serde(default)]
    pub cpus: u32,
    /// Memory it offers, in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Hash of its environment fingerprint, and the fingerprint itself (JSON text).
    pub fingerprint: String,
    pub fingerprint_json: String,
}

/// `POST /api/workers`: the registered worker.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    pub id: i64,
    pub name: String,
    pub pool: String,
    pub fingerprint: String,
    /// What it offers.
    pub capacity: serde_json::Value,
    pub registered_at: i64,
    pub heartbeat_at: i64,
    /// The runs it holds now.
    #[serde(default)]
    pub runs: Vec<i64>,
    /// How long a lease lasts without a heartbeat, in seconds.
    pub lease_secs: f64,
}

/// `POST /api/workers/{id}/claim`: a run to execute.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClaimAnswer {
    pub run_id: i64,
    /// Present with every heartbeat, bundle request and report for this run.
    pub lease: String,
    /// What to run (the coordinator's work spec).
    pub spec: serde_json::Value,
}

/// One lease a worker holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeaseRef {
    pub run_id: i64,
    pub lease: String,
}

/// Body of `POST /api/workers/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatBody {
    #[serde(default)]
    pub leases: Vec<LeaseRef>,
}

/// `POST /api/workers/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatAnswer {
    /// Leases renewed.
    pub held: Vec<i64>,
    /// Runs no longer held: stop them.
    pub lost: Vec<i64>,
    /// Runs held that are to be cancelled.
    pub cancel: Vec<i64>,
}

impl From<Renewal> for HeartbeatAnswer {
    fn from(r: Renewal) -> Self {
        HeartbeatAnswer {
            held: r.held,
            lost: r.lost,
            cancel: r.cancel,
        }
    }
}

/// Query of `GET /api/workers/{id}/runs/{run_id}/bundle`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
pub struct BundleQuery {
    /// The lease the run was claimed with.
    pub lease: String,
    /// Comma-separated exports the worker holds already (carrier commits), to leave out.
    #[serde(default)]
    pub have: Option<String>,
    /// Which of the run's trees: its own (the default) or its setup step's.
    #[serde(default)]
    pub tree: Option<String>,
}

/// Body of `POST /api/workers/{id}/runs/{run_id}/result`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResultBody {
    pub lease: String,
    /// The worker's report (the coordinator's work result).
    pub result: serde_json::Value,
}

/// `POST /api/workers/{id}/runs/{run_id}/result`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResultAnswer {
    /// `accepted`, or `already-reported` (a retried upload: the first report stands).
    pub status: String,
}

fn view(w: Worker, runs: Vec<i64>, lease: Duration) -> WorkerView {
    WorkerView {
        id: w.id,
        name: w.name,
        pool: w.pool,
        fingerprint: w.fingerprint,
        capacity: w.capacity,
        registered_at: w.registered_at,
        heartbeat_at: w.heartbeat_at,
        runs,
        lease_secs: lease.as_secs_f64(),
    }
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The worker `id`, which must be one `token` registered.
pub(crate) fn own_worker(store: &Store, token: &Token, id: i64) -> Result<Worker, ApiError> {
    match store.worker(id) {
        Ok(w) if w.token_id == token.id => Ok(w),
        Ok(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("worker {id} was registered with another token"),
        )),
        Err(_) => Err(ApiError::not_found(format!("no worker {id}"))),
    }
}

/// Run `run_id`'s work item, if worker `id` (one `token` registered) holds it under `lease`.
pub(crate) fn leased_item(
    store: &Store,
    token: &Token,
    (id, run_id): (i64, i64),
    lease: &str,
) -> Result<WorkItem, ApiError> {
    let w = own_worker(store, token, id)?;
    store
        .work_item(run_id)?
        .filter(|i| i.worker_id == Some(w.id) && i.lease.as_deref() == Some(lease))
        .ok_or_else(|| no_lease(id, run_id))
}

/// The answer when worker `id` does not hold run `run_id`.
pub(crate) fn no_lease(id: i64, run_id: i64) -> ApiError {
    ApiError::conflict(format!("worker {id} holds no lease on run {run_id}"))
}

/// Whether a run's spec fits what a worker offers.
fn fits(capacity: &serde_json::Value, spec: &serde_json::Value) -> bool {
    let need = |k: &str| spec[k].as_u64().unwrap_or(0);
    let gpus = capacity["gpus"].as_array().map_or(0, |g| g.len() as u64);
    let cpus = capacity["cpus"].as_u64().unwrap_or(0);
    let memory = capacity["memory_mb"].as_u64();
    need("gpus") <= gpus
        && (cpus == 0 || need("cpus") <= cpus)
        && match (spec["memory_mb"].as_u64(), memory) {
            (Some(m), Some(have)) => m <= have,
            _ => true,
        }
}

/// Register a worker (or refresh its registration: same token, same name).
#[utoipa::path(post, path = "/api/workers", tag = "workers",
    request_body(content = RegisterBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, body = WorkerView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn register_worker(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<RegisterBody>, JsonRejection>,
) -> ApiResult<WorkerView> {
    let lease = ctx.state.worker_lease;
    let w = ctx
        .worker(&headers, move |store, token| {
            let Json(b) = body?;
            if !valid_name(&b.name) {
                return Err(ApiError::bad_request(format!(
                    "name: {:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                    b.name
                )));
            }
            if !b.pool.is_empty() && !valid_name(&b.pool) {
                return Err(ApiError::bad_request(format!(
                    "pool: {:?} must be letters, digits, '-', '_' or '.'",
                    b.pool
                )));
            }
            let capacity = serde_json::json!({
                "gpus": b.gpus, "cpus": b.cpus, "memory_mb": b.memory_mb,
            });
            Ok(store.register_worker(
                token.id,
                &b.name,
                &b.pool,
                (&b.fingerprint, &b.fingerprint_json),
                &capacity,
            )?)
        })
        .await?;
    Ok(Json(view(w, Vec::new(), lease)))
}

/// Workers that registered, with the runs each holds.
#[utoipa::path(get, path = "/api/workers", tag = "workers",
    responses((status = 200, body = Vec<WorkerView>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_workers(
    State(ctx): State<Shared>,
    headers: HeaderMap,
) -> ApiResult<Vec<WorkerView>> {
    let lease = ctx.state.worker_lease;
    let list = ctx
        .read(&headers, move |store| {
            Ok(store
                .workers()?
                .into_iter()
                .map(|(w, runs)| view(w, runs, lease))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Json(list))
}

/// Claim the oldest run of the worker's pool that fits it (204: none now).
#[utoipa::path(post, path = "/api/workers/{id}/claim", tag = "workers",
    params(("id" = i64, Path, description = "The worker's id")),
    security(("bearer" = [])),
    responses((status = 200, body = ClaimAnswer), (status = 204, description = "Nothing to run"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn claim_run(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let lease_ms = ctx.state.worker_lease.as_millis() as i64;
    let item: Option<WorkItem> = ctx
        .worker(&headers, move |store, token| {
            let Path(id) = id?;
            let w = own_worker(store, token, id)?;
            Ok(store.claim_work(w.id, &|spec| fits(&w.capacity, spec), lease_ms)?)
        })
        .await?;
    Ok(match item {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(i) => Json(ClaimAnswer {
            run_id: i.run_id,
            lease: i.lease.unwrap_or_default(),
            spec: i.spec,
        })
        .into_response(),
    })
}

/// Renew the leases a worker holds; learn which it lost and which to cancel.
#[utoipa::path(post, path = "/api/workers/{id}/heartbeat", tag = "workers",
    params(("id" = i64, Path, description = "The worker's id")),
    request_body(content = HeartbeatBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, body = HeartbeatAnswer), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn heartbeat(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<HeartbeatBody>, JsonRejection>,
) -> ApiResult<HeartbeatAnswer> {
    let lease_ms = ctx.state.worker_lease.as_millis() as i64;
    let r = ctx
        .worker(&headers, move |store, token| {
            let Path(id) = id?;
            let Json(b) = body?;
            let w = own_worker(store, token, id)?;
            let leases: Vec<(i64, String)> =
                b.leases.into_iter().map(|l| (l.run_id, l.lease)).collect();
            Ok(store.renew_work(w.id, &leases, lease_ms)?)
        })
        .await?;
    Ok(Json(r.into()))
}

/// The run's tree as a git bundle, leaving out what the worker holds already.
#[utoipa::path(get, path = "/api/workers/{id}/runs/{run_id}/bundle", tag = "workers",
    params(("id" = i64, Path, description = "The worker's id"),
           ("run_id" = i64, Path, description = "The run it claimed"), BundleQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A git bundle", content_type = "application/octet-stream"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn run_bundle(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    ids: Result<Path<(i64, i64)>, PathRejection>,
    q: Result<Query<BundleQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let clones = ctx.state.clones();
    let bytes = ctx
        .worker(&headers, move |store, token| {
            let Path((id, run_id)) = ids?;
            let Query(q) = q?;
            let item = leased_item(store, token, (id, run_id), &q.lease)?;
            let own = item.spec["tree"].as_str().unwrap_or_default();
            let setup = item.spec["setup"]["tree"].as_str();
            let tree = match q.tree.as_deref() {
                None => own.to_string(),
                Some(t) if t == own || Some(t) == setup => t.to_string(),
                Some(t) => {
                    return Err(ApiError::bad_request(format!(
                        "tree: {t:?} is not one of run {run_id}'s trees"
                    )))
                }
            };
            let run = store.run(run_id)?;
            let program = store.program_by_id(run.program_id)?;
            let repo = picidae_git::Repo::open(clones.benchmark_dir(&program))
                .map_err(|e| ApiError::internal(format!("the benchmark's repository: {e}")))?;
            let haves: Vec<String> = q
                .have
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect();
            repo.bundle(&tree, &haves)
                .map_err(|e| ApiError::internal(format!("bundling run {run_id}: {e}")))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// Body of `POST /api/workers/{id}/runs/{run_id}/release`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseBody {
    pub lease: String,
}

/// Give a claimed run back at once (the worker cannot run it): it is offered again without
/// waiting for the lease to lapse.
#[utoipa::path(post, path = "/api/workers/{id}/runs/{run_id}/release", tag = "workers",
    params(("id" = i64, Path, description = "The worker's id"),
           ("run_id" = i64, Path, description = "The run it claimed")),
    request_body(content = ReleaseBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 204, description = "Offered again"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn release_run(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    ids: Result<Path<(i64, i64)>, PathRejection>,
    body: Result<Json<ReleaseBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    ctx.worker(&headers, move |store, token| {
        let Path((id, run_id)) = ids?;
        let Json(b) = body?;
        let w = own_worker(store, token, id)?;
        if store.release_work(run_id, w.id, &b.lease)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::conflict(format!(
                "worker {id} holds no lease on run {run_id}"
            )))
        }
    })
    .await
}

/// Report a run's result under the lease it was claimed with. A report for a lease no longer
/// held is refused (409) and the refusal recorded; the same report again is accepted once.
#[utoipa::path(post, path = "/api/workers/{id}/runs/{run_id}/result", tag = "workers",
    params(("id" = i64, Path, description = "The worker's id"),
           ("run_id" = i64, Path, description = "The run it claimed")),
    request_body(content = ResultBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, body = ResultAnswer), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn report_result(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    ids: Result<Path<(i64, i64)>, PathRejection>,
    body: Result<Json<ResultBody>, JsonRejection>,
) -> ApiResult<ResultAnswer> {
    let report = ctx
        .worker(&headers, move |store, token| {
            let Path((id, run_id)) = ids?;
            let Json(b) = body?;
            let w = own_worker(store, token, id)?;
            Ok(store.report_work(run_id, w.id, &b.lease, &b.result)?)
        })
        .await?;
    match report {
        Report::Accepted => Ok(Json(ResultAnswer {
            status: "accepted".into(),
        })),
        Report::AlreadyReported => Ok(Json(ResultAnswer {
            status: "already-reported".into(),
        })),
        Report::Refused(why) => Err(ApiError::conflict(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_fits_a_worker_by_gpus_cpus_and_memory() {
        let cap = serde_json::json!({"gpus": [0, 1], "cpus": 8, "memory_mb": 16000});
        let spec = |g: u32, c: u32, m: Option<u64>| serde_json::json!({"gpus": g, "cpus": c, "memory_mb": m});
        assert!(fits(&cap, &spec(2, 8, Some(16000))));
        assert!(!fits(&cap, &spec(3, 1, None)));
        assert!(!fits(&cap, &spec(0, 9, None)));
        assert!(!fits(&cap, &spec(0, 1, Some(16001))));
        // A worker that states no CPUs or memory takes any count of them.
        let open = serde_json::json!({"gpus": []});
        assert!(fits(&open, &spec(0, 64, Some(1 << 20))));
        assert!(!fits(&open, &spec(1, 1, None)));
    }
}
