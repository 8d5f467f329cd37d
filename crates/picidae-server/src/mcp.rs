//! `picidae mcp`: a Model Context Protocol server over stdio that lets coding agents query
//! Picidae's memory before they spend compute on an idea.
//!
//! Tools (all read-only):
//! - `search_memory` {query, program?, limit? = 10} — attempts like the query, best first, with
//!   their outcomes: a short text summary ([`picidae_memory::summary`]) plus the ranked hits
//!   ([`picidae_memory::search`]) as JSON;
//! - `get_attempt` {program, seq} — one attempt: hypothesis, status, its runs' visible numbers,
//!   its finding's visible evidence, and its diff (without the contract's hidden files,
//!   truncated to [`MAX_DIFF_CHARS`]);
//! - `list_findings` {program?, state?} — findings with their visible evidence;
//! - `frontier` {program} — the frontier (value, attempt, commit), the baseline, and how many
//!   attempts ended in each status.
//!
//! Every answer is a JSON document (also sent as MCP structured content); a failed lookup
//! (unknown program, no such attempt, bad state name, empty query) is a tool error
//! (`isError: true`) whose text says what was wrong, so the agent can correct itself.
//!
//! **Hidden-evaluator numbers never leave this module.** It never reads the `hidden_results`
//! table; findings are copied field by field into [`VisibleEvidence`], which has no place for
//! `hidden_effect` or `hidden_agrees` (the flags, e.g. a suspected overfit, are kept); and
//! notes, which the verifier may write with the hidden metric's change in them, have every
//! number after the word "hidden" withheld ([`redact_hidden`]).
//!
//! The store is one SQLite connection (not `Sync`), held in a `Mutex`; calls are short, so they
//! are served one at a time. In WAL mode each query sees what the scheduler has committed, so
//! a long-lived server answers with current data.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use picidae_core::domain::FindingState;
use picidae_memory::Hit;
use picidae_store::{Evidence, Finding, Program, Store, StoreError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Result, ServerError};

/// Diffs longer than this (in characters) are cut, with a note saying how much was left out.
pub const MAX_DIFF_CHARS: usize = 20_000;
/// `search_memory`'s default and largest `limit`.
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;

// ------------------------------------------------------------------ tool parameters

/// Parameters of `search_memory`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SearchParams {
    /// What to look for: words of a hypothesis, file or function names, parameter names.
    pub query: String,
    /// Only attempts of this program (by name); all programs when absent.
    #[serde(default)]
    pub program: Option<String>,
    /// Most hits to return (default 10, at most 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Parameters of `get_attempt`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct AttemptParams {
    /// The program's name.
    pub program: String,
    /// The attempt's sequence number within the program (#1 is the baseline).
    pub seq: i64,
}

/// Parameters of `list_findings`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct FindingsParams {
    /// Only findings of this program (by name).
    #[serde(default)]
    pub program: Option<String>,
    /// Only findings in this state: candidate, verifying, validated, refuted or retracted.
    #[serde(default)]
    pub state: Option<String>,
}

/// Parameters of `frontier`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct FrontierParams {
    /// The program's name.
    pub program: String,
}

// ------------------------------------------------------------------ answers

/// `search_memory`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct SearchAnswer {
    /// A few lines: how often ideas like the query were tried and how they went.
    pub summary: String,
    /// The matching attempts, best first (visible outcomes only).
    pub hits: Vec<Hit>,
}

/// A finding's statistical evidence as agents may see it: the visible metric only. Built field
/// by field from [`Evidence`], so a field added there is not shown until it is added here.
/// The HTTP API serves the same type (as the OpenAPI schema `EvidenceView`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = EvidenceView)]
pub struct VisibleEvidence {
    /// Signed gain on the primary metric (positive = better), candidate vs incumbent.
    pub effect: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Confidence level of the interval.
    pub confidence: Option<f64>,
    pub p_value: Option<f64>,
    pub q_value: Option<f64>,
    /// Seeds the candidate ran.
    pub n_seeds: Option<i64>,
    /// Seeds of the incumbent it was compared with.
    pub n_incumbent: Option<i64>,
    /// Minimum effect the noise floor demands.
    pub noise_floor: Option<f64>,
    pub flags: Vec<String>,
}

impl From<&Evidence> for VisibleEvidence {
    fn from(e: &Evidence) -> Self {
        VisibleEvidence {
            effect: e.effect,
            ci_low: e.ci_low,
            ci_high: e.ci_high,
            confidence: e.confidence,
            p_value: e.p_value,
            q_value: e.q_value,
            n_seeds: e.n_candidate,
            n_incumbent: e.n_incumbent,
            noise_floor: e.noise_floor,
            flags: e.flags.clone(),
        }
    }
}

/// A finding with its visible evidence.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    pub id: i64,
    pub program: String,
    /// The attempt the finding is about.
    pub attempt_seq: i64,
    /// The attempt it was compared against (the frontier at the time).
    pub incumbent_seq: i64,
    pub hypothesis: String,
    pub state: FindingState,
    pub metric: String,
    pub evidence: VisibleEvidence,
    /// The last state change's reason (numbers about the hidden metric withheld).
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One run of an attempt: its visible numbers.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub seed: i64,
    pub status: picidae_core::RunStatus,
    pub primary_value: Option<f64>,
    pub metrics: picidae_core::MetricValues,
    pub wall_secs: Option<f64>,
}

/// `get_attempt`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub program: String,
    pub seq: i64,
    pub kind: picidae_core::AttemptKind,
    pub status: picidae_core::AttemptStatus,
    pub hypothesis: String,
    pub proposer: String,
    pub parent_commit: String,
    pub commit: Option<String>,
    pub params: Option<serde_json::Value>,
    pub touched: Vec<String>,
    /// Why it was rejected before running (boundary violations, agent failure).
    pub rejection: Option<serde_json::Value>,
    /// Mean of its runs' primary metric.
    pub primary_value: Option<f64>,
    /// The decision's note (numbers about the hidden metric withheld).
    pub note: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub runs: Vec<RunView>,
    pub finding: Option<FindingView>,
    /// The patch the attempt's commit introduces (`None` when it has no commit).
    pub diff: Option<String>,
    /// Whether `diff` was cut to [`MAX_DIFF_CHARS`].
    pub diff_truncated: bool,
    /// Why the diff could not be read, when it could not.
    pub diff_error: Option<String>,
}

/// A point of a program's history: an attempt, its commit and its value.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub seq: i64,
    pub commit: String,
    pub value: f64,
}

/// `frontier`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct FrontierView {
    pub program: String,
    pub benchmark_dir: String,
    pub status: String,
    /// Best value so far (the frontier's), if any attempt has been kept.
    pub frontier_value: Option<f64>,
    pub frontier_seq: Option<i64>,
    pub frontier_commit: Option<String>,
    /// The first frontier: the baseline's measurement.
    pub baseline: Option<Point>,
    /// How many times the frontier has moved (the baseline included).
    pub frontier_moves: usize,
    /// Attempts by status (`kept`, `discarded`, `failed`, `rejected`, ...).
    pub attempts: BTreeMap<String, i64>,
    pub total_attempts: i64,
}

// ------------------------------------------------------------------ queries

pub(crate) fn program(store: &Store, name: &str) -> Result<Program> {
    match store.program(name) {
        Ok(p) => Ok(p),
        Err(StoreError::NoSuchProgram(_)) => Err(ServerError::UnknownProgram {
            name: name.to_string(),
            known: store.programs()?.into_iter().map(|p| p.name).collect(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// `search_memory`: hits and a summary for `query`.
pub fn search_memory(store: &Store, p: &SearchParams) -> Result<SearchAnswer> {
    if let Some(name) = &p.program {
        program(store, name)?;
    }
    let limit = p
        .limit
        .map(|l| (l as usize).clamp(1, MAX_LIMIT))
        .unwrap_or(DEFAULT_LIMIT);
    let hits = picidae_memory::search(store, &p.query, p.program.as_deref(), limit)?;
    let summary = picidae_memory::summary(store, &p.query, p.program.as_deref(), limit)?;
    Ok(SearchAnswer { summary, hits })
}

fn finding_view(
    store: &Store,
    f: &Finding,
    names: &mut HashMap<i64, String>,
) -> Result<FindingView> {
    let name = match names.get(&f.program_id) {
        Some(n) => n.clone(),
        None => {
            let n = store.program_by_id(f.program_id)?.name;
            names.insert(f.program_id, n.clone());
            n
        }
    };
    let attempt = store.attempt(f.attempt_id)?;
    let incumbent_seq = store.attempt(f.incumbent_attempt_id)?.seq;
    Ok(FindingView {
        id: f.id,
        program: name,
        attempt_seq: attempt.seq,
        incumbent_seq,
        hypothesis: attempt.hypothesis,
        state: f.state,
        metric: f.metric.clone(),
        evidence: VisibleEvidence::from(&f.evidence),
        note: f.note.as_deref().map(redact_hidden),
        created_at: f.created_at,
        updated_at: f.updated_at,
    })
}

/// `get_attempt`: one attempt with its runs, finding and diff.
pub fn get_attempt(store: &Store, p: &AttemptParams) -> Result<AttemptView> {
    let prog = program(store, &p.program)?;
    let Some(a) = store.attempt_by_seq(prog.id, p.seq)? else {
        let count = store
            .attempt_counts(prog.id)?
            .iter()
            .map(|(_, n)| n)
            .sum::<i64>();
        return Err(ServerError::NoSuchAttempt {
            program: prog.name,
            seq: p.seq,
            count,
        });
    };
    let runs = store
        .runs_of_attempt(a.id)?
        .into_iter()
        .map(|r| RunView {
            seed: r.seed,
            status: r.status,
            primary_value: r.primary_value,
            metrics: r.metrics,
            wall_secs: r.wall_secs,
        })
        .collect();
    let mut names = HashMap::from([(prog.id, prog.name.clone())]);
    let finding = store
        .finding_for_attempt(a.id)?
        .map(|f| finding_view(store, &f, &mut names))
        .transpose()?;
    let (diff, diff_truncated, diff_error) = match &a.commit {
        None => (None, false, None),
        // A baseline or re-measurement runs its parent unchanged: it has no diff of its own
        // (and `show_patch` would show the whole benchmark's first commit).
        Some(commit) if *commit == a.parent_commit => (Some(String::new()), false, None),
        Some(commit) => match attempt_patch(&prog.benchmark_dir, commit) {
            Ok(patch) => {
                let (text, cut) = truncate_diff(patch);
                (Some(text), cut, None)
            }
            Err(e) => (None, false, Some(e)),
        },
    };
    Ok(AttemptView {
        program: prog.name,
        seq: a.seq,
        kind: a.kind,
        status: a.status,
        hypothesis: a.hypothesis,
        proposer: a.proposer,
        parent_commit: a.parent_commit,
        commit: a.commit,
        params: a.params,
        touched: a.touched,
        rejection: a.rejection,
        primary_value: a.primary_value,
        note: a.note.as_deref().map(redact_hidden),
        created_at: a.created_at,
        decided_at: a.decided_at,
        runs,
        finding,
        diff,
        diff_truncated,
        diff_error,
    })
}

/// `list_findings`' answer (structured content must be a JSON object).
#[derive(Debug, Clone, Serialize)]
pub struct FindingsAnswer {
    pub count: usize,
    pub findings: Vec<FindingView>,
}

/// `list_findings`: findings (of one program, in one state) with visible evidence.
pub fn list_findings(store: &Store, p: &FindingsParams) -> Result<FindingsAnswer> {
    let program_id = p
        .program
        .as_deref()
        .map(|n| program(store, n))
        .transpose()?
        .map(|p| p.id);
    let state = p
        .state
        .as_deref()
        .map(|s| {
            s.trim()
                .to_ascii_lowercase()
                .parse::<FindingState>()
                .map_err(|_| ServerError::BadState(s.to_string()))
        })
        .transpose()?;
    let mut names = HashMap::new();
    let findings = store
        .findings(program_id, state)?
        .iter()
        .map(|f| finding_view(store, f, &mut names))
        .collect::<Result<Vec<_>>>()?;
    Ok(FindingsAnswer {
        count: findings.len(),
        findings,
    })
}

/// `frontier`: the program's frontier, baseline and attempt counts.
pub fn frontier(store: &Store, p: &FrontierParams) -> Result<FrontierView> {
    let prog = program(store, &p.program)?;
    let history = store.frontier_history(prog.id)?;
    let baseline = history
        .first()
        .map(|m| -> Result<Point> {
            Ok(Point {
                seq: store.attempt(m.attempt_id)?.seq,
                commit: m.commit.clone(),
                value: m.value,
            })
        })
        .transpose()?;
    let frontier_seq = prog
        .frontier_attempt_id
        .map(|id| store.attempt(id).map(|a| a.seq))
        .transpose()?;
    let attempts: BTreeMap<String, i64> = store
        .attempt_counts(prog.id)?
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect();
    Ok(FrontierView {
        total_attempts: attempts.values().sum(),
        program: prog.name,
        benchmark_dir: prog.benchmark_dir,
        status: prog.status.to_string(),
        frontier_value: prog.frontier_value,
        frontier_seq,
        frontier_commit: prog.frontier_commit,
        baseline,
        frontier_moves: history.len(),
        attempts,
    })
}

/// The patch `commit` introduces, without the contract's hidden files (gold cases and the
/// like, which agents never see in their checkouts). When the contract cannot be read, which
/// files are hidden is unknown, so the diff is withheld.
pub(crate) fn attempt_patch(benchmark_dir: &str, commit: &str) -> Result<String, String> {
    let contract = picidae_core::Contract::load(std::path::Path::new(benchmark_dir))
        .map_err(|e| format!("diff withheld: the benchmark's contract is unreadable: {e}"))?;
    let repo = picidae_git::Repo::open(benchmark_dir).map_err(|e| e.to_string())?;
    let patch = repo.show_patch(commit).map_err(|e| e.to_string())?;
    let hidden: Vec<String> = contract
        .hidden
        .iter()
        .flat_map(|h| h.files.iter())
        .map(|f| {
            let rel = f.trim_matches('/');
            let prefix = repo.prefix().to_string_lossy();
            if prefix.is_empty() {
                rel.to_string()
            } else {
                format!("{}/{rel}", prefix.trim_end_matches('/'))
            }
        })
        .filter(|f| !f.is_empty())
        .collect();
    Ok(without_files(&patch, &hidden))
}

/// Drop the file sections of a git patch whose old or new path is one of `paths` or lies under
/// one of them (repository-relative), noting how many were withheld.
pub fn without_files(patch: &str, paths: &[String]) -> String {
    if paths.is_empty() {
        return patch.to_string();
    }
    let names = |p: &str| {
        [
            format!("a/{p}"),
            format!("b/{p}"),
            format!("\"a/{p}"),
            format!("\"b/{p}"),
        ]
    };
    let is_hidden = |header: &str| {
        paths.iter().any(|p| {
            names(p).iter().any(|n| {
                header.match_indices(n.as_str()).any(|(at, _)| {
                    let next = header[at + n.len()..].chars().next();
                    matches!(next, None | Some('/') | Some(' ') | Some('"'))
                })
            })
        })
    };
    let mut out = String::with_capacity(patch.len());
    let mut keep = true;
    let mut withheld = 0;
    for line in patch.split_inclusive('\n') {
        if let Some(header) = line.strip_prefix("diff --git ") {
            keep = !is_hidden(header.trim_end());
            if !keep {
                withheld += 1;
            }
        }
        if keep {
            out.push_str(line);
        }
    }
    if withheld > 0 {
        out.push_str(&format!(
            "[{withheld} file(s) of the hidden evaluator withheld]\n"
        ));
    }
    out
}

/// Cut a diff to [`MAX_DIFF_CHARS`] characters (on a character boundary), saying so at the end.
pub fn truncate_diff(diff: String) -> (String, bool) {
    match diff.char_indices().nth(MAX_DIFF_CHARS) {
        None => (diff, false),
        Some((at, _)) => {
            let total = diff.chars().count();
            let mut text = diff[..at].to_string();
            text.push_str(&format!(
                "\n[diff truncated: {MAX_DIFF_CHARS} of {total} characters shown]\n"
            ));
            (text, true)
        }
    }
}

static NUMBER: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf(?:inity)?)")
        .expect("valid regex")
});

/// Withhold every number that follows the word "hidden" in a note: the verifier explains an
/// overfit refutation with the hidden metric's change, which agents must not see. Numbers
/// before it (the visible effect, the finding's id) are kept.
pub fn redact_hidden(note: &str) -> String {
    let lower = note.to_ascii_lowercase();
    let Some(at) = lower.find("hidden") else {
        return note.to_string();
    };
    let (head, tail) = note.split_at(at);
    format!("{head}{}", NUMBER.replace_all(tail, "[withheld]"))
}

// ------------------------------------------------------------------ the MCP server

/// The MCP server: Picidae's memory over one store connection.
#[derive(Clone)]
pub struct MemoryServer {
    store: Arc<Mutex<Store>>,
    tool_router: ToolRouter<MemoryServer>,
}

impl MemoryServer {
    pub fn new(store: Store) -> MemoryServer {
        MemoryServer {
            store: Arc::new(Mutex::new(store)),
            tool_router: Self::tool_router(),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves no half-written state (every tool only reads).
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A tool's answer: the JSON document as text and as structured content, or a tool error.
fn answer<T: Serialize>(r: Result<T>) -> CallToolResult {
    match r.and_then(|v| serde_json::to_value(v).map_err(|e| ServerError::Serve(e.to_string()))) {
        Ok(v) => CallToolResult::structured(v),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
    }
}

#[tool_router]
impl MemoryServer {
    #[tool(
        description = "Search Picidae's memory of research attempts (every program's hypotheses, \
                       diffs, touched files and symbols, parameters, notes) for ideas like the \
                       query, best match first. Returns a short summary of how often such ideas \
                       were tried and how they went, then the hits: program, attempt seq, \
                       hypothesis, status, visible value and finding (effect with CI). Use it \
                       before trying an idea.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn search_memory(&self, Parameters(p): Parameters<SearchParams>) -> CallToolResult {
        let r = search_memory(&self.store(), &p);
        match r {
            Ok(a) => {
                let json = serde_json::to_value(&a).unwrap_or_default();
                let mut res = CallToolResult::structured(json);
                res.content.insert(0, ContentBlock::text(a.summary));
                res
            }
            Err(e) => answer::<()>(Err(e)),
        }
    }

    #[tool(
        description = "One attempt of a program by its seq: hypothesis, status, decision note, its \
                       runs (seed, status, primary value, metrics, wall seconds), its finding's \
                       evidence (effect, CI, p, q, seeds, state, flags) and its diff (cut at \
                       20000 characters).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn get_attempt(&self, Parameters(p): Parameters<AttemptParams>) -> CallToolResult {
        answer(get_attempt(&self.store(), &p))
    }

    #[tool(
        description = "Findings (attempts that beat the frontier and were tested on more seeds) \
                       with their evidence: effect, CI, p, q, seeds, state, flags. Optionally \
                       only one program's, or only those in one state (candidate, verifying, \
                       validated, refuted, retracted).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn list_findings(&self, Parameters(p): Parameters<FindingsParams>) -> CallToolResult {
        answer(list_findings(&self.store(), &p))
    }

    #[tool(
        description = "A program's frontier (best value, its attempt seq and commit), its \
                       baseline value, and how many attempts ended in each status.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn frontier(&self, Parameters(p): Parameters<FrontierParams>) -> CallToolResult {
        answer(frontier(&self.store(), &p))
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "picidae",
    instructions = "Picidae's memory of auto-research attempts: what was tried on each program, \
                    how it went, and the evidence behind each finding. Search it before \
                    spending compute on an idea."
)]
impl ServerHandler for MemoryServer {}

/// Serve `store` over stdin/stdout until the client disconnects.
pub async fn serve_stdio(store: Store) -> Result<()> {
    let running = MemoryServer::new(store)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| ServerError::Serve(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| ServerError::Serve(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
