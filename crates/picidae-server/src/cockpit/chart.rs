//! The progress chart's data: a program's attempts and runs as points, thinned for the page.

use super::*;

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
pub(crate) struct ChartQuery {
    /// Most attempts to return (default 2000, at most 20000). Past it the chart is thinned:
    /// the most recent attempts, the kept ones and, per stretch of the rest, its best, its
    /// worst and a failure are kept, so the picture (frontier, spread, failures) survives.
    #[param(value_type = Option<u64>, minimum = 10)]
    pub(crate) max_points: Option<String>,
}

/// Default and largest `max_points` of a chart.
pub(crate) const CHART_POINTS: usize = 2000;
pub(crate) const CHART_POINTS_MAX: usize = 20_000;

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
pub(crate) fn metric_of(benchmark_dir: &str) -> (String, Option<String>) {
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
pub(crate) async fn chart(
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
