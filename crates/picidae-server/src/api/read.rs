//! The read handlers: programs, attempts, runs, findings, memory search.

use super::*;

/// Liveness: the store answers, with the server's version and uptime.
#[utoipa::path(get, path = "/api/health", tag = "meta",
    responses((status = 200, body = Health), (status = 500, body = ErrorBody)))]
pub(crate) async fn health(State(ctx): State<Shared>) -> ApiResult<Health> {
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
pub(crate) async fn list_programs(
    State(ctx): State<Shared>,
    headers: HeaderMap,
) -> ApiResult<ProgramList> {
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
pub(crate) async fn get_program(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<ProgramDetail> {
    let Path(name) = name?;
    let clones = ctx.state.clones();
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
                .map(|m| {
                    Ok(FrontierPoint {
                        seq: seq_of(m.attempt_id)?,
                        commit: m.commit,
                        value: m.value,
                        at: m.at,
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
                // A benchmark that moved or a contract that no longer reads leaves the rest
                // of the view intact.
                power: picidae_sched::program_power(store, &p, &clones.benchmark_dir(&p))
                    .ok()
                    .flatten()
                    .map(PowerView::from),
            })
        })
        .await?;
    Ok(Json(detail))
}

/// Query of `GET /api/programs/{name}/attempts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AttemptsQuery {
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
pub(crate) async fn list_attempts(
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
pub(crate) async fn get_attempt(
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
            // Every run, the screen stage's (seed -1) included.
            let runs = store.all_runs_of_attempt(a.id)?;
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
pub(crate) async fn get_run(
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
pub(crate) struct FindingsQuery {
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
pub(crate) async fn list_findings(
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
pub(crate) struct SearchQuery {
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
pub(crate) async fn search_memory(
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
