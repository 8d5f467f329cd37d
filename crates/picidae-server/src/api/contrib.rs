//! Contributors: untrusted people who run their own loop and submit what they kept. With a
//! contributor token (`picidae token create NAME --contributor`) they may read an open
//! program's public frontier and leaderboard, submit contributions and follow their own; every
//! other route refuses the token. A submission is checked before any compute (the program is
//! open, the patch's size, the contributor's quota, the boundary, a repeat of a tried idea)
//! and refused with the reason, recorded; one that passes waits for the program's loop, which
//! verifies it like any attempt (`picidae_sched::contribute`).

use super::*;
use picidae_store::{Contribution, ContributionState, NewContribution, Standing};

/// A contribution as its contributor sees it: no hidden number, no other contributor's patch.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContributionView {
    pub id: i64,
    pub program: String,
    pub contributor: String,
    /// `refused`, `queued`, `verifying`, `verified` or `refuted`.
    pub state: String,
    /// Why it was refused or refuted.
    pub reason: Option<String>,
    pub hypothesis: String,
    pub claimed_value: f64,
    /// The claim against the frontier when submitted, positive when better.
    pub claimed_gain: f64,
    /// The visible value its verification measured.
    pub measured_value: Option<f64>,
    /// The verified gain over the frontier it replaced.
    pub measured_gain: Option<f64>,
    /// The attempt that verified it.
    pub attempt_seq: Option<i64>,
}

/// A submission.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContributionBody {
    /// The commit the patch was made against (the program's public frontier).
    pub parent_commit: String,
    /// The change: a git patch relative to the repository's root.
    pub patch: String,
    /// What the change does and why it should help.
    pub hypothesis: String,
    /// The primary metric's value the contributor measured.
    pub claimed_value: f64,
    /// The seeds the contributor ran it on.
    #[serde(default)]
    pub seeds: Vec<i64>,
    /// The contributor's log, as evidence (kept, never trusted).
    #[serde(default)]
    pub log: Option<String>,
}

/// What a contributor may know of an open program.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicProgram {
    pub program: String,
    /// The frontier's commit: contributions are made against it.
    pub frontier_commit: String,
    /// The frontier's visible primary value.
    pub frontier_value: Option<f64>,
    pub metric: String,
    /// `maximize` or `minimize`.
    pub goal: String,
    /// The largest patch accepted, in KiB.
    pub max_patch_kb: i64,
    /// Runs each contributor's verifications may spend.
    pub quota_runs: Option<i64>,
    /// GPU-hours each contributor's verifications may spend.
    pub quota_gpu_hours: Option<f64>,
    /// Dollars each contributor's verifications may spend (GPU-hours at the program's price).
    pub quota_usd: Option<f64>,
}

/// One contributor's standing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StandingView {
    pub contributor: String,
    pub claims: i64,
    pub verified: i64,
    pub refuted: i64,
    pub refused: i64,
    /// Verified claims over claims decided.
    pub verified_ratio: Option<f64>,
    /// The sum of verified gains.
    pub verified_gain: f64,
    /// Runs the hub spent verifying this contributor's claims.
    pub runs: i64,
}

impl From<Standing> for StandingView {
    fn from(s: Standing) -> Self {
        let decided = s.verified + s.refuted;
        StandingView {
            verified_ratio: (decided > 0).then(|| s.verified as f64 / decided as f64),
            contributor: s.contributor,
            claims: s.claims,
            verified: s.verified,
            refuted: s.refuted,
            refused: s.refused,
            verified_gain: s.verified_gain,
            runs: s.runs,
        }
    }
}

fn view(store: &Store, program: &str, c: Contribution) -> Result<ContributionView, ApiError> {
    let attempt_seq = match c.attempt_id {
        Some(id) => Some(store.attempt(id)?.seq),
        None => None,
    };
    Ok(ContributionView {
        id: c.id,
        program: program.to_string(),
        contributor: c.contributor,
        state: c.state.to_string(),
        reason: c.reason,
        hypothesis: c.hypothesis,
        claimed_value: c.claimed_value,
        claimed_gain: c.claimed_gain,
        measured_value: c.measured_value,
        measured_gain: c.measured_gain,
        attempt_seq,
    })
}

/// A program open to contributors, as a submission is checked against it.
struct OpenProgram {
    program: picidae_store::Program,
    open: picidae_store::Openness,
    contract: picidae_core::Contract,
    /// This hub's clone of its benchmark.
    repo: picidae_git::Repo,
}

impl OpenProgram {
    /// The commit contributions are made against: the frontier, or the base before one.
    fn frontier(&self) -> String {
        let p = &self.program;
        p.frontier_commit
            .clone()
            .unwrap_or_else(|| p.base_commit.clone())
    }
}

/// An open program with its contract and repository, or 403 when it is not open.
fn open_program(
    store: &Store,
    clones: &picidae_sched::clones::Clones,
    name: &str,
) -> Result<OpenProgram, ApiError> {
    let p = program(store, name)?;
    let Some(open) = store.openness(p.id)? else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("program {name} is not open to contributors"),
        ));
    };
    let repo = picidae_git::Repo::open(clones.benchmark_dir(&p))
        .map_err(|e| ApiError::internal(format!("the benchmark's repository: {e}")))?;
    let (contract, _) = picidae_sched::contract_source::program_contract(&repo, &p)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(OpenProgram {
        program: p,
        open,
        contract,
        repo,
    })
}

/// The files a git patch touches (both sides of a rename), repository-relative.
fn patched_paths(patch: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in patch.lines() {
        let path = line
            .strip_prefix("--- a/")
            .or_else(|| line.strip_prefix("+++ b/"))
            .or_else(|| line.strip_prefix("rename from "))
            .or_else(|| line.strip_prefix("rename to "));
        if let Some(p) = path {
            let p = p.trim_end_matches('\t').to_string();
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    paths
}

/// Why a submission is refused before compute, if it is.
fn refusal(
    store: &Store,
    target: &OpenProgram,
    token: &Token,
    body: &ContributionBody,
) -> Result<Option<String>, ApiError> {
    let (p, open, contract) = (&target.program, &target.open, &target.contract);
    let kb = body.patch.len().div_ceil(1024) as i64;
    if kb > open.max_patch_kb {
        return Ok(Some(format!(
            "the patch is {kb} KiB; this program accepts at most {} KiB",
            open.max_patch_kb
        )));
    }
    if open.quota != picidae_store::Quota::default() {
        let spent = store.contributor_spend(p.id, token.id)?;
        if let Some(why) = open.quota.exceeded(&spent) {
            return Ok(Some(why));
        }
    }
    let paths = patched_paths(&body.patch);
    if paths.is_empty() {
        return Ok(Some("the patch changes no file".into()));
    }
    let boundary = picidae_core::Boundary::new(&contract.boundary)
        .map_err(|e| ApiError::internal(format!("boundary.editable: {e}")))?;
    let prefix = target.repo.prefix().to_string_lossy().replace('\\', "/");
    for path in &paths {
        let (rel, outside) = if prefix.is_empty() {
            (path.as_str(), false)
        } else {
            match path.strip_prefix(&format!("{prefix}/")) {
                Some(r) => (r, false),
                None => (path.as_str(), true),
            }
        };
        if let Some(v) = boundary.check_one(rel, outside) {
            return Ok(Some(format!("{}: {}", v.path, v.reason)));
        }
    }
    // A change tried on the commit it is made against is a repeat, whatever came of it.
    let dup = picidae_memory::find_duplicate(
        store,
        &p.benchmark_dir,
        0,
        &body.parent_commit,
        &body.patch,
        None,
        None,
    )
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(d) = dup {
        let value = d.of.value.map(|v| format!(", {v:.6}")).unwrap_or_default();
        return Ok(Some(format!(
            "this change was tried already: #{} of {} ({}{value}: {})",
            d.of.seq, d.of.program, d.of.status, d.of.hypothesis
        )));
    }
    // One change submitted twice (it may not have reached the memory yet). Who sent it first
    // is not said: an unverified claim is its contributor's own.
    if let Some(c) = store.same_contribution(p.id, &body.parent_commit, &body.patch)? {
        return Ok(Some(format!(
            "this change was submitted already and is {}",
            c.state
        )));
    }
    Ok(None)
}

/// Submit a contribution to an open program: checked before any compute and refused (422,
/// recorded, with the reason) or queued for verification (202).
#[utoipa::path(post, path = "/api/programs/{name}/contributions", tag = "contributors",
    params(("name" = String, Path, description = "The program's name")),
    request_body = ContributionBody,
    security(("bearer" = [])),
    responses((status = 202, body = ContributionView), (status = 422, body = ContributionView),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn submit_contribution(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<ContributionBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ContributionView>), ApiError> {
    let clones = ctx.state.clones();
    let view = ctx
        .contributor(&headers, move |store, token| {
            let Path(name) = name?;
            let Json(body) = body?;
            if !body.claimed_value.is_finite() {
                return Err(ApiError::bad_request(
                    "claimed_value: must be a finite number".into(),
                ));
            }
            let hypothesis =
                text_field("hypothesis", Some(&body.hypothesis))?.ok_or_else(|| {
                    ApiError::bad_request("hypothesis: say what the change does".into())
                })?;
            let target = open_program(store, &clones, &name)?;
            let why = refusal(store, &target, token, &body)?;
            let OpenProgram {
                program: p,
                contract,
                ..
            } = target;
            let goal = contract.primary().goal;
            let sign = goal.gain(1.0, 0.0).signum();
            let claimed_gain = p
                .frontier_value
                .map(|f| goal.gain(body.claimed_value, f))
                .unwrap_or(0.0);
            let new = NewContribution {
                program_id: p.id,
                token_id: token.id,
                contributor: token.name.clone(),
                parent_commit: body.parent_commit.clone(),
                patch: body.patch.clone(),
                hypothesis,
                claimed_value: body.claimed_value,
                claimed_gain,
                claimed: serde_json::json!({ "seeds": body.seeds, "log": body.log }),
                sign,
            };
            let state = if why.is_some() {
                ContributionState::Refused
            } else {
                ContributionState::Queued
            };
            let c = store.add_contribution(&new, state, why.as_deref())?;
            view(store, &p.name, c)
        })
        .await?;
    let status = if view.state == ContributionState::Refused.as_str() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view)))
}

/// The contributor's own contributions to a program, newest first, with their verdicts.
#[utoipa::path(get, path = "/api/programs/{name}/contributions", tag = "contributors",
    params(("name" = String, Path, description = "The program's name")),
    security(("bearer" = [])),
    responses((status = 200, body = [ContributionView]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn my_contributions(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Vec<ContributionView>> {
    let list = ctx
        .contributor(&headers, move |store, token| {
            let Path(name) = name?;
            let p = program(store, &name)?;
            store
                .contributions(p.id, Some(token.id))?
                .into_iter()
                .map(|c| view(store, &p.name, c))
                .collect()
        })
        .await?;
    Ok(Json(list))
}

/// An open program's public face: the frontier to build on and the terms.
#[utoipa::path(get, path = "/api/programs/{name}/public", tag = "contributors",
    params(("name" = String, Path, description = "The program's name")),
    security(("bearer" = [])),
    responses((status = 200, body = PublicProgram), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn public_program(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<PublicProgram> {
    let clones = ctx.state.clones();
    let public = ctx
        .contributor(&headers, move |store, _| {
            let Path(name) = name?;
            let target = open_program(store, &clones, &name)?;
            let frontier_commit = target.frontier();
            let OpenProgram {
                program: p,
                open,
                contract,
                ..
            } = target;
            let goal = contract.primary().goal;
            Ok(PublicProgram {
                frontier_commit,
                frontier_value: p.frontier_value,
                metric: contract.primary_metric.clone(),
                goal: if goal.gain(1.0, 0.0) > 0.0 {
                    "maximize".into()
                } else {
                    "minimize".into()
                },
                max_patch_kb: open.max_patch_kb,
                quota_runs: open.quota.runs,
                quota_gpu_hours: open.quota.gpu_hours,
                quota_usd: open.quota.usd,
                program: p.name,
            })
        })
        .await?;
    Ok(Json(public))
}

/// The header naming the frontier commit a public bundle exports.
pub const FRONTIER_HEADER: &str = "x-picidae-frontier";

/// The open program's frontier as a git bundle: one commit holding the frontier's files
/// without the hidden evaluator's, under `refs/picidae/export/`. The frontier commit it
/// stands for is in the `X-Picidae-Frontier` header: contributions made on the export name it
/// as their parent.
#[utoipa::path(get, path = "/api/programs/{name}/public/bundle", tag = "contributors",
    params(("name" = String, Path, description = "The program's name")),
    security(("bearer" = [])),
    responses((status = 200, description = "A git bundle", content_type = "application/octet-stream"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn public_bundle(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let clones = ctx.state.clones();
    let (frontier, bytes) = ctx
        .contributor(&headers, move |store, _| {
            let Path(name) = name?;
            let target = open_program(store, &clones, &name)?;
            let (repo, frontier) = (&target.repo, target.frontier());
            let drop = picidae_sched::workers::staying_home(repo, &target.contract);
            let bundle = repo
                .export_tree(&frontier, &drop)
                .and_then(|tree| repo.bundle(&tree, &[]))
                .map_err(|e| ApiError::internal(format!("exporting the frontier: {e}")))?;
            Ok((frontier, bundle))
        })
        .await?;
    let frontier = HeaderValue::from_str(&frontier)
        .map_err(|e| ApiError::internal(format!("frontier header: {e}")))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::HeaderName::from_static(FRONTIER_HEADER), frontier),
        ],
        bytes,
    )
        .into_response())
}

/// A program's leaderboard: contributors by verified gain, with their verified/claimed record
/// and the compute their claims cost. Open to contributor and read tokens alike.
#[utoipa::path(get, path = "/api/programs/{name}/leaderboard", tag = "contributors",
    params(("name" = String, Path, description = "The program's name")),
    security((), ("bearer" = [])),
    responses((status = 200, body = [StandingView]), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn leaderboard(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Vec<StandingView>> {
    let board = ctx
        .board(&headers, move |store| {
            let Path(name) = name?;
            let p = program(store, &name)?;
            Ok(store
                .leaderboard(p.id)?
                .into_iter()
                .map(StandingView::from)
                .collect())
        })
        .await?;
    Ok(Json(board))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_names_every_file_it_touches() {
        let patch = "diff --git a/x.txt b/x.txt\n--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-1\n+2\n\
                     diff --git a/old b/new\nsimilarity index 90%\nrename from old\nrename to new\n\
                     diff --git a/n.txt b/n.txt\nnew file mode 100644\n--- /dev/null\n+++ b/n.txt\n";
        assert_eq!(patched_paths(patch), ["x.txt", "old", "new", "n.txt"]);
    }
}
