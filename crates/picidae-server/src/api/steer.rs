//! The steering handlers: pause, resume, weight, budgets, follow-ups.

use super::*;

/// Pause a program: no new attempt starts (running ones finish).
#[utoipa::path(post, path = "/api/programs/{name}/pause", tag = "steering",
    params(("name" = String, Path, description = "The program's name")),
    security(("bearer" = [])),
    responses((status = 200, body = ProgramSummary), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn pause_program(
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
pub(crate) async fn resume_program(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<ProgramSummary> {
    set_active(ctx, headers, name, true).await
}

pub(crate) async fn set_active(
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
pub(crate) async fn steer<F>(
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
pub(crate) async fn set_weight(
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

/// Set how many attempts of a program are in flight at once (its loop reads it between
/// steps: raising it starts more at once, lowering it starts none until fewer run).
#[utoipa::path(post, path = "/api/programs/{name}/concurrency", tag = "steering",
    params(("name" = String, Path, description = "The program's name")),
    request_body(content = ConcurrencyBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, body = ProgramSummary), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn set_concurrency(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<ConcurrencyBody>, JsonRejection>,
) -> ApiResult<ProgramSummary> {
    steer(ctx, headers, name, move |store, name| {
        let Json(body) = body?;
        let value = match body.concurrency {
            Some(n) => Some(
                picidae_sched::check_concurrency(n)
                    .map_err(|e| ApiError::bad_request(format!("concurrency: {e}")))?
                    .into(),
            ),
            None => None,
        };
        let p = program(store, name)?;
        Ok(store.set_program_policy(&p.name, "concurrency", value)?)
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
pub(crate) async fn set_budget(
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
pub(crate) fn budget_of(body: &serde_json::Value) -> Result<BudgetChange, ApiError> {
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
pub(crate) async fn add_followup(
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
