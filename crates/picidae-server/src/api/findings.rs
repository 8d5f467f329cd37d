//! The findings and runs handlers: the report, approve, retract, follow up, cancel a run.

use super::*;

/// The program's Markdown research report: summary, validated findings with their evidence
/// and approvals, suspicions, refuted ideas (what `picidae report` prints, with the hidden
/// evaluator's numbers withheld).
#[utoipa::path(get, path = "/api/programs/{name}/report", tag = "findings",
    params(("name" = String, Path, description = "The program's name")),
    security((), ("bearer" = [])),
    responses((status = 200, description = "The report, as a Markdown file",
               content_type = "text/markdown", body = String),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn program_report(
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
pub(crate) fn finding_id(id: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = id?;
    int_param("id", Some(&id), 1, i64::MAX)?
        .ok_or_else(|| ApiError::bad_request("id: missing".into()))
}

/// Optional text of a body: trimmed, `None` when empty, at most [`MAX_FOLLOWUP_CHARS`].
pub(crate) fn text_field(field: &str, text: Option<&str>) -> Result<Option<String>, ApiError> {
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
pub(crate) fn finding_by_id(store: &Store, id: i64) -> Result<FindingSummary, ApiError> {
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
pub(crate) fn must_be_validated(store: &Store, id: i64, action: &str) -> Result<(), ApiError> {
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
pub(crate) async fn approve_finding(
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
pub(crate) async fn retract_finding(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<RetractBody>, JsonRejection>,
) -> ApiResult<RetractAnswer> {
    let clones = ctx.state.clones();
    let answer = ctx
        .write(&headers, move |store, token| {
            let id = finding_id(id)?;
            let Json(body) = body?;
            let reason = text_field("reason", Some(&body.reason))?.ok_or_else(|| {
                ApiError::bad_request("reason: say why the finding no longer stands".into())
            })?;
            must_be_validated(store, id, "retracted")?;
            let why = format!("retracted by {}: {reason}", token.name);
            let done =
                picidae_sched::retract_finding(store, &clones, id, &why).map_err(|e| match e {
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
pub(crate) async fn finding_followup(
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
pub(crate) async fn cancel_run(
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
