//! The JSON views the API answers with, and how they are built from the store.

use super::*;

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
    /// Attempts in flight at once, as set for this program (`null`: the contract's
    /// `[policy] concurrency`, 1 by default).
    #[serde(default)]
    pub concurrency: Option<u32>,
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
    pub(crate) fn of(program: String, f: picidae_store::Followup) -> FollowupView {
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
    /// What verification can detect at the noise the program's runs have shown; absent
    /// before the frontier has two seeds on one machine.
    #[serde(default)]
    pub power: Option<PowerView>,
}

/// The power of a program's verification (`docs/findings.md`, "Power, said out loud").
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PowerView {
    /// The smallest true effect found with probability 0.8 at `seeds` seeds.
    pub min_effect: f64,
    pub seeds: u32,
    /// The spread of one run, with its degrees of freedom.
    pub run_sd: f64,
    pub df: f64,
    /// The gains worth having, and what they are.
    pub worth: Option<f64>,
    pub worth_what: Option<String>,
    /// Set when `min_effect` is larger than `worth` ("low power: ...").
    pub warning: Option<String>,
}

impl From<picidae_sched::Power> for PowerView {
    fn from(p: picidae_sched::Power) -> Self {
        let (worth, worth_what) = match p.worth {
            Some((w, what)) => (Some(w), Some(what)),
            None => (None, None),
        };
        PowerView {
            min_effect: p.min_effect,
            seeds: p.seeds,
            run_sd: p.run_sd,
            df: p.df,
            worth,
            worth_what,
            warning: p.warning,
        }
    }
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
pub(crate) fn approvals(store: &Store, finding_id: i64) -> Result<Vec<ApprovalView>, ApiError> {
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
pub(crate) fn finding_summary(
    store: &Store,
    view: FindingView,
) -> Result<FindingSummary, ApiError> {
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

/// Body of `POST /api/programs/{name}/concurrency`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyBody {
    /// Attempts of the program in flight at once (1 to 1000); `null` goes back to the
    /// contract's policy.
    pub concurrency: Option<u32>,
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
pub(crate) struct BudgetChange {
    pub(crate) max_runs: Option<Option<i64>>,
    pub(crate) max_gpu_hours: Option<Option<f64>>,
    pub(crate) max_usd: Option<Option<f64>>,
    pub(crate) gpu_hour_usd: Option<f64>,
}

/// Body of `POST /api/programs/{name}/followups`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowupBody {
    /// The idea, in words for the agent (non-empty, at most 10000 characters).
    pub text: String,
}

pub(crate) fn summary(
    store: &Store,
    p: &picidae_store::Program,
) -> Result<ProgramSummary, ApiError> {
    let attempts = store.attempt_counts(p.id)?.iter().map(|(_, n)| n).sum();
    let spent = store.program_spend(p.id)?;
    Ok(ProgramSummary {
        name: p.name.clone(),
        status: p.status.to_string(),
        paused_reason: p.paused_reason.clone(),
        weight: p.weight,
        concurrency: p
            .policy
            .get("concurrency")
            .and_then(|v| v.as_u64())
            .map(|n| n as u32),
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

pub(crate) fn attempt_summary(a: &picidae_store::Attempt) -> AttemptSummary {
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

pub(crate) fn program(store: &Store, name: &str) -> Result<picidae_store::Program, ApiError> {
    Ok(mcp::program(store, name)?)
}
