//! The arena page's data: the project's arenas, and one arena's progress over spend (each
//! entry's programs, overlaid) with its last stored ranking.
//!
//! Progress is visible numbers only (the frontier's visible value against runs and GPU-hours
//! used) and follows the read rule. The ranking is the arena's truth (the hidden evaluator's
//! gain on fresh seeds, aggregated per entry over its trials): it is sent only to a request
//! that carries a full token (one that may steer), so an open read never learns a hidden
//! number; without one the page says how to see it.

use picidae_sched::arena::{arena_progress, TrialProgress};
use picidae_store::{Arena, ArenaEntry, ArenaResult};

use super::*;

/// An arena in the list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArenaSummary {
    pub name: String,
    pub benchmark_dir: String,
    /// `runs` or `gpu_hours`, and how many of them each program may use.
    pub budget_kind: String,
    pub budget: f64,
    pub trials: i64,
    /// Entry labels, in the order they were entered.
    pub entries: Vec<String>,
    /// When its ranking was last stored (ms since the Unix epoch; `null` until scored).
    pub scored_at: Option<i64>,
}

/// One point of a progress line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArenaPoint {
    pub runs: i64,
    pub gpu_hours: f64,
    /// The frontier's visible primary value from then on.
    pub value: f64,
}

/// One entry's program in one trial.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArenaLine {
    pub label: String,
    pub trial: i64,
    pub program: String,
    pub runs: i64,
    pub gpu_hours: f64,
    pub points: Vec<ArenaPoint>,
}

/// An entry's stored place in the ranking (aggregates over its trials).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArenaRank {
    pub label: String,
    pub rank: i64,
    pub entries: i64,
    /// What a rate is per: `run` or `GPU-hour`.
    pub per: String,
    pub truth_metric: String,
    pub hidden: bool,
    pub trials: i64,
    pub rate: Option<f64>,
    pub rate_low: Option<f64>,
    pub rate_high: Option<f64>,
    pub keeps: i64,
    pub false_keeps: i64,
    pub runs: i64,
    pub gpu_hours: f64,
    pub scored_at: i64,
}

/// An entry's program.md.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArenaText {
    pub label: String,
    pub program_md: String,
}

/// `GET /api/cockpit/arenas/{name}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArenaView {
    pub arena: ArenaSummary,
    /// The benchmark's visible primary metric and its goal (`minimize`, `maximize`).
    pub metric: String,
    pub goal: Option<String>,
    pub lines: Vec<ArenaLine>,
    pub texts: Vec<ArenaText>,
    /// The stored ranking, best first: `null` without a full token, empty until scored.
    pub ranking: Option<Vec<ArenaRank>>,
    /// Why `ranking` is `null`, or how to make one.
    pub ranking_note: Option<String>,
}

/// The arena with its `entries` (`Store::arena_entries`) and stored `results`.
fn summary(a: &Arena, entries: &[ArenaEntry], results: &[ArenaResult]) -> ArenaSummary {
    let mut rows: Vec<&ArenaEntry> = entries.iter().collect();
    rows.sort_by_key(|e| e.program_id);
    let mut labels: Vec<String> = Vec::new();
    for e in rows {
        if !labels.contains(&e.label) {
            labels.push(e.label.clone());
        }
    }
    ArenaSummary {
        name: a.name.clone(),
        benchmark_dir: a.benchmark_dir.clone(),
        budget_kind: a.budget_kind.as_str().into(),
        budget: a.budget,
        trials: a.trials,
        entries: labels,
        scored_at: results.first().map(|r| r.scored_at),
    }
}

fn rank(r: ArenaResult) -> ArenaRank {
    ArenaRank {
        label: r.label,
        rank: r.rank,
        entries: r.entries,
        per: r.per,
        truth_metric: r.truth_metric,
        hidden: r.hidden,
        trials: r.trials,
        rate: r.rate,
        rate_low: r.rate_low,
        rate_high: r.rate_high,
        keeps: r.keeps,
        false_keeps: r.false_keeps,
        runs: r.runs,
        gpu_hours: r.gpu_hours,
        scored_at: r.scored_at,
    }
}

fn line(t: TrialProgress) -> ArenaLine {
    ArenaLine {
        label: t.label,
        trial: t.trial,
        program: t.program,
        runs: t.runs,
        gpu_hours: t.gpu_hours,
        points: t
            .points
            .into_iter()
            .map(|p| ArenaPoint {
                runs: p.runs,
                gpu_hours: p.gpu_hours,
                value: p.value,
            })
            .collect(),
    }
}

/// The project's arenas, oldest first.
#[utoipa::path(get, path = "/api/cockpit/arenas", tag = "cockpit",
    security((), ("bearer" = [])),
    responses((status = 200, body = Vec<ArenaSummary>), (status = 401, body = ErrorBody)))]
pub(crate) async fn arenas(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Vec<ArenaSummary>>, CockpitError> {
    let list = read(&state, &headers, |store, _| {
        let mut list = Vec::new();
        for a in store.arenas()? {
            let (entries, results) = (store.arena_entries(a.id)?, store.arena_results(a.id)?);
            list.push(summary(&a, &entries, &results));
        }
        Ok(list)
    })
    .await?;
    Ok(Json(list))
}

/// Whether the request carries a token that may steer (not read-only, not a worker's or a
/// contributor's): the one that may see an arena's ranking.
fn may_steer(store: &Store, headers: &HeaderMap) -> Result<bool, CockpitError> {
    let Ok(secret) = bearer(headers) else {
        return Ok(false);
    };
    Ok(store
        .check_token(&secret)?
        .is_some_and(|t| !t.read_only && !t.worker && !t.contributor))
}

/// One arena: each entry's programs' progress over spend, their texts, and (with a full
/// token) the stored ranking.
#[utoipa::path(get, path = "/api/cockpit/arenas/{name}", tag = "cockpit",
    params(("name" = String, Path, description = "The arena's name")),
    security((), ("bearer" = [])),
    responses((status = 200, body = ArenaView), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn arena(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ArenaView>, CockpitError> {
    let Path(name) = name?;
    let request = headers.clone();
    let view = read(&state, &headers, move |store, _| {
        let a = store
            .arena(&name)?
            .ok_or_else(|| CockpitError::NotFound(format!("no arena {name:?}")))?;
        let entries = store.arena_entries(a.id)?;
        let results = store.arena_results(a.id)?;
        let lines = arena_progress(store, &entries)?
            .into_iter()
            .map(line)
            .collect();
        let mut texts: Vec<ArenaText> = Vec::new();
        for e in &entries {
            if !texts.iter().any(|t| t.label == e.label) {
                texts.push(ArenaText {
                    label: e.label.clone(),
                    program_md: e.program_md.clone(),
                });
            }
        }
        let (metric, goal) = match entries.first() {
            Some(e) => metric_of(&store.program_by_id(e.program_id)?.benchmark_dir),
            None => ("value".into(), None),
        };
        let arena = summary(&a, &entries, &results);
        let (ranking, ranking_note) = if !may_steer(store, &request)? {
            (
                None,
                Some(
                    "the ranking is scored on the arena's truth (the hidden evaluator where the \
                     benchmark has one): use a write token to see it"
                        .to_string(),
                ),
            )
        } else if results.is_empty() {
            (
                Some(Vec::new()),
                Some(format!(
                    "not scored yet: `picidae arena show {}` measures and ranks the entries",
                    a.name
                )),
            )
        } else {
            (Some(results.into_iter().map(rank).collect()), None)
        };
        Ok(ArenaView {
            arena,
            metric,
            goal,
            lines,
            texts,
            ranking,
            ranking_note,
        })
    })
    .await?;
    Ok(Json(view))
}
