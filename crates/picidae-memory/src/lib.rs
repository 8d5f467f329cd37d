//! Picidae's memory: every attempt of every program, queryable before compute is spent.
//!
//! - **Index**: each attempt's hypothesis, diff, touched files and symbols, parameter assignment
//!   and notes go into the store's own database: SQLite's FTS5 (`memory_fts`, rowid = attempt
//!   id, Porter stemming, bm25), or on PostgreSQL a weighted `tsvector` with a GIN index
//!   (Snowball stemming, `ts_rank`), split into words the same way. No second system to keep
//!   in sync, transactional with the attempt, and fast enough at 1M attempts (see `picidae-bench
//!   memory`). Both engines find the same attempts for a query; their rank formulas
//!   differ, so the order of equally good matches may too. Outcomes (status, visible
//!   value, finding effect ± CI) are joined in at query time, so answers are always current.
//! - **Dedup**: three keys are checked before an attempt runs — the exact patch on the same
//!   parent, the normalized patch (whitespace- and comment-insensitive) on the same parent, and
//!   the full parameter assignment on the same benchmark. A match is recorded as a duplicate of
//!   the prior attempt and not run.
//! - **SQL**: none here. The rows and queries are the store's (`picidae_store::memory_index`);
//!   this crate decides what is indexed and how a question becomes a query.
//! - **Answers** about attempts never contain hidden-evaluator numbers: nothing here reads
//!   `hidden_results`, and findings are reported by their visible evidence only.
//! - **Program.md files** ([`program_md`]): every arena entry's text with its arena's last
//!   ranking (an aggregate over whole programs), for whoever writes the next program.md.

mod normalize;
pub mod program_md;
pub mod retry;

use std::collections::BTreeMap;

use picidae_core::domain::FindingState;
use picidae_core::{Assignment, AttemptStatus};
use picidae_store::db::DbError;
use picidae_store::memory_index::{DedupKey, IndexRow};
use picidae_store::Backend;
use picidae_store::{Attempt, Store};
use serde::{Deserialize, Serialize};
use sha2::Digest;

pub use normalize::{normalize_patch, touched_symbols};
pub use program_md::{search_program_mds, ProgramMdHit};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory index: {0}")]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] picidae_store::StoreError),
    #[error("empty query: give some words to search for")]
    EmptyQuery,
}

pub type Result<T, E = MemoryError> = std::result::Result<T, E>;

fn sha(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Hash of the normalized patch.
pub fn norm_hash(patch: &str) -> String {
    sha(&normalize_patch(patch))
}

/// Hash of a full parameter assignment (canonical: sorted names).
pub fn params_hash(a: &Assignment) -> String {
    let canon: Vec<String> = a.iter().map(|(k, v)| format!("{k}={}", v.trim())).collect();
    sha(&canon.join("\n"))
}

/// What the memory knows about one attempt, ready for a prompt or a JSON answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hit {
    pub attempt_id: i64,
    pub program: String,
    pub seq: i64,
    pub hypothesis: String,
    pub status: AttemptStatus,
    /// Visible primary metric (mean over its runs).
    pub value: Option<f64>,
    pub finding: Option<FindingSummary>,
    pub duplicate_of: Option<i64>,
    pub files: Vec<String>,
    /// FTS5 bm25 rank (lower is better); 0 for exact lookups.
    pub rank: f64,
}

/// A finding as agents may see it: visible evidence only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FindingSummary {
    pub id: i64,
    pub state: FindingState,
    pub effect: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub seeds: Option<i64>,
    /// Why a refuted finding was refuted ([`Refutation`]); `None` for other states.
    #[serde(default)]
    pub refutation: Option<Refutation>,
}

/// The kind of a refutation, which decides whether the idea is worth verifying again: one
/// refuted for lack of power (its interval straddles zero, or its effect is positive but
/// below the noise floor or the false-discovery bound) may be verified again by a policy
/// with more seeds; one contradicted by the evidence, flagged as overfit, or whose seeds
/// failed may not.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Refutation {
    LackOfPower,
    Contradicted,
    SuspectedOverfit,
    SeedFailed,
}

impl Refutation {
    /// The kind of a refuted finding's refutation, from its visible evidence and flags.
    pub fn of(f: &picidae_store::Finding) -> Option<Refutation> {
        if f.state != FindingState::Refuted {
            return None;
        }
        let e = &f.evidence;
        if e.flags
            .iter()
            .any(|x| x == picidae_core::domain::FLAG_OVERFIT)
        {
            return Some(Refutation::SuspectedOverfit);
        }
        Some(match (e.effect, e.ci_high) {
            (Some(_), Some(h)) if h <= 0.0 => Refutation::Contradicted,
            (Some(effect), Some(_)) if effect > 0.0 => Refutation::LackOfPower,
            (Some(_), Some(_)) => Refutation::Contradicted,
            _ => Refutation::SeedFailed,
        })
    }

    /// How the kind reads in a sentence ("lacked power", ...).
    pub fn label(self) -> &'static str {
        match self {
            Refutation::LackOfPower => "lacked power",
            Refutation::Contradicted => "contradicted",
            Refutation::SuspectedOverfit => "suspected overfit",
            Refutation::SeedFailed => "a seed failed",
        }
    }
}

impl Hit {
    /// One line for a prompt: `#12 [refuted, Δ=+0.0021 [-0.0010, +0.0052]] lr 0.01 → 0.03`.
    pub fn line(&self) -> String {
        let outcome = match &self.finding {
            Some(f) => {
                let state = match (f.refutation, f.seeds) {
                    (Some(r), Some(n)) => format!("{} ({}, {n} seeds)", f.state, r.label()),
                    (Some(r), None) => format!("{} ({})", f.state, r.label()),
                    _ => f.state.to_string(),
                };
                match (f.effect, f.ci_low, f.ci_high) {
                    (Some(e), Some(l), Some(h)) => {
                        format!("{state}, Δ={e:+.4} [{l:+.4}, {h:+.4}]")
                    }
                    _ => state,
                }
            }
            None => self.status.to_string(),
        };
        let value = self
            .value
            .map(|v| format!(" value {v:.6}"))
            .unwrap_or_default();
        format!(
            "{}#{} [{outcome}{value}] {}",
            self.program_prefix(),
            self.seq,
            self.hypothesis
        )
    }

    fn program_prefix(&self) -> String {
        format!("{} ", self.program)
    }
}

/// Put an attempt into the index (or refresh it). `diff` is the attempt's patch text.
pub fn index_attempt(store: &Store, a: &Attempt, diff: &str) -> Result<()> {
    let params = a
        .params
        .as_ref()
        .and_then(|p| p.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or(&v.to_string())))
                .collect::<Vec<_>>()
                .join(" ; ")
        })
        .unwrap_or_default();
    store.memory_put(&IndexRow {
        attempt_id: a.id,
        hypothesis: a.hypothesis.clone(),
        diff: diff.to_string(),
        files: a.touched.join(" "),
        symbols: touched_symbols(diff).join(" "),
        params,
        notes: a.note.clone().unwrap_or_default(),
        program: program_token(a.program_id),
    })?;
    Ok(())
}

/// Record an attempt's dedup keys.
pub fn set_keys(
    store: &Store,
    attempt_id: i64,
    patch: &str,
    params: Option<&Assignment>,
) -> Result<()> {
    let params = params.map(params_hash);
    store.set_dedup_keys(attempt_id, &norm_hash(patch), params.as_deref())?;
    Ok(())
}

/// Which earlier attempt a proposal repeats, and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Duplicate {
    pub of: Hit,
    /// `exact-patch`, `normalized-patch` or `same-parameters`.
    pub how: String,
}

/// Find an earlier attempt on the same benchmark that this proposal repeats: one that was
/// decided, is queued, or is running. A rejected or failed-to-propose attempt says nothing
/// about the idea and does not count; nor does one refuted for lack of power on fewer seeds
/// than `seeds`, the asking program's (it may be verified again with more power).
pub fn find_duplicate(
    store: &Store,
    benchmark_dir: &str,
    exclude_attempt: i64,
    parent: &str,
    patch: &str,
    params: Option<&Assignment>,
    seeds: Option<i64>,
) -> Result<Option<Duplicate>> {
    // An empty patch (a change of environment parameters only) says nothing about code: only
    // the parameter assignment can make such an attempt a repeat.
    let (patch_hash, norm) = if patch.is_empty() {
        (String::new(), String::new())
    } else {
        (sha(patch), norm_hash(patch))
    };
    let checks = [
        (DedupKey::ExactPatch, patch_hash),
        (DedupKey::NormalizedPatch, norm),
        (
            DedupKey::SameParameters,
            params.map(params_hash).unwrap_or_default(),
        ),
    ];
    for (how, key) in checks {
        if key.is_empty() {
            continue;
        }
        let found = store.first_with_key(benchmark_dir, parent, how, &key, exclude_attempt)?;
        if let Some(mut id) = found {
            // Point at the attempt that actually ran, not at another duplicate.
            while let Some(next) = store.duplicate_of(id)? {
                if next == id {
                    break;
                }
                id = next;
            }
            let of = hit_for(store, id, 0.0)?;
            let weaker = of.finding.as_ref().is_some_and(|f| {
                f.refutation == Some(Refutation::LackOfPower)
                    && matches!((f.seeds, seeds), (Some(had), Some(asks)) if asks > had)
            });
            if weaker {
                return Ok(None);
            }
            return Ok(Some(Duplicate {
                of,
                how: how.as_str().to_string(),
            }));
        }
    }
    Ok(None)
}

/// Mark an attempt as a duplicate of another.
pub fn mark_duplicate(store: &Store, attempt_id: i64, of: i64) -> Result<()> {
    store.set_duplicate_of(attempt_id, of)?;
    Ok(())
}

fn hit_for(store: &Store, attempt_id: i64, rank: f64) -> Result<Hit> {
    match hits_for(store, &[(attempt_id, rank)])?.pop() {
        Some(hit) => Ok(hit),
        None => Err(picidae_store::StoreError::NoSuchAttempt(attempt_id).into()),
    }
}

/// The hits for `found` (attempt id and rank), in its order: the attempts, their programs and
/// what they repeat come in one statement, whatever the number of hits.
fn hits_for(store: &Store, found: &[(i64, f64)]) -> Result<Vec<Hit>> {
    let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
    let mut findings = store.findings_for_attempts(&ids)?;
    let mut hits = Vec::with_capacity(found.len());
    for row in store.memory_hit_rows(&ids)? {
        let a = row.attempt;
        let finding = findings.remove(&a.id).map(|f| FindingSummary {
            id: f.id,
            state: f.state,
            effect: f.evidence.effect,
            ci_low: f.evidence.ci_low,
            ci_high: f.evidence.ci_high,
            seeds: f.evidence.n_candidate,
            refutation: Refutation::of(&f),
        });
        let rank = found
            .iter()
            .find(|(id, _)| *id == a.id)
            .map_or(0.0, |(_, r)| *r);
        hits.push(Hit {
            attempt_id: a.id,
            program: row.program,
            seq: a.seq,
            hypothesis: a.hypothesis,
            status: a.status,
            value: a.primary_value,
            finding,
            duplicate_of: row.duplicate_of,
            files: a.touched,
            rank,
        });
    }
    Ok(hits)
}

fn program_token(program_id: i64) -> String {
    format!("prog{program_id}")
}

/// Words that carry no meaning for a search.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "by", "at", "from", "is",
    "are", "was", "be", "it", "its", "this", "that", "we", "should", "what", "about", "how", "can",
    "do", "does", "if", "then", "than", "as", "into", "try", "tried", "first",
];

/// The searchable words of free text: lower-cased, at least two characters, no stopwords.
pub fn query_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric() && c != '_') {
        let w = w.to_lowercase();
        if w.len() >= 2 && !STOPWORDS.contains(&w.as_str()) && !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// An FTS5 expression joining quoted words with `AND` or `OR`.
pub fn fts_query(words: &[String], op: &str) -> Option<String> {
    (!words.is_empty()).then(|| {
        words
            .iter()
            .map(|w| format!("\"{w}\""))
            .collect::<Vec<_>>()
            .join(&format!(" {op} "))
    })
}

/// The full-text query for `words` (all of them, or any) in the backend's syntax: FTS5's
/// expression on SQLite, a `tsquery` on PostgreSQL. [`query_words`] keeps only letters, digits
/// and `_`, so no word carries query syntax.
pub fn text_query(backend: Backend, words: &[String], all: bool) -> Option<String> {
    match backend {
        Backend::Sqlite => fts_query(words, if all { "AND" } else { "OR" }),
        Backend::Postgres => (!words.is_empty()).then(|| {
            words
                .iter()
                .map(|w| {
                    // `_` splits a word into parts on both engines; all parts must match.
                    let parts: Vec<&str> = w.split('_').filter(|p| !p.is_empty()).collect();
                    format!("({})", parts.join(" & "))
                })
                .collect::<Vec<_>>()
                .join(if all { " & " } else { " | " })
        }),
    }
}

/// Search attempts by text, best first.
///
/// All words must match first; when that finds fewer than `limit` attempts, any word may match,
/// leaving out words so common (in more than a fifth of all attempts) that they cannot
/// discriminate. bm25 orders the most recent [`RANK_WINDOW`] matches, so a query costs about
/// the same at 10k and at 1M attempts.
pub fn search(store: &Store, text: &str, program: Option<&str>, limit: usize) -> Result<Vec<Hit>> {
    let words = query_words(text);
    if words.is_empty() {
        return Err(MemoryError::EmptyQuery);
    }
    let program_id = program.map(|p| store.program(p)).transpose()?.map(|p| p.id);
    let programs = store.program_count()?;
    // With one program there is nothing to filter; otherwise the program is a token of the
    // index, intersected inside the full-text engine.
    let backend = store.backend();
    let scope = |q: String| match program_id {
        Some(id) if programs > 1 => match backend {
            Backend::Sqlite => format!("program:{} AND ({q})", program_token(id)),
            Backend::Postgres => format!("{} & ({q})", program_token(id)),
        },
        _ => q,
    };
    let mut found = ranked(
        store,
        &scope(text_query(backend, &words, true).unwrap_or_default()),
        limit,
    )?;
    if found.len() < limit && words.len() > 1 {
        // Attempt ids are dense enough to stand in for the number of indexed attempts
        // (COUNT(*) would read the whole index).
        let total = store.max_attempt_id()?;
        let mut selective = Vec::new();
        for w in &words {
            // In a small memory every word is "common"; the cut only helps in a large one.
            if total < MIN_COMMON_CUT || doc_count(store, w, total / 5 + 1)? * 5 <= total {
                selective.push(w.clone());
            }
        }
        if selective.is_empty() {
            selective = words.clone();
        }
        for (id, r) in ranked(
            store,
            &scope(text_query(backend, &selective, false).unwrap_or_default()),
            limit,
        )? {
            if found.len() >= limit {
                break;
            }
            if !found.iter().any(|(f, _)| *f == id) {
                found.push((id, r));
            }
        }
    }
    hits_for(store, &found)
}

/// Below this many attempts no word is left out of an any-word search as too common.
const MIN_COMMON_CUT: i64 = 200;

/// How many of the most recent matches are ranked. FTS5 yields matches in rowid order lazily,
/// so this bounds the work of a query whatever the size of the memory; bm25 then orders the
/// window. Older matches beyond it are reached by more specific words.
pub const RANK_WINDOW: usize = 400;

fn ranked(store: &Store, q: &str, limit: usize) -> Result<Vec<(i64, f64)>> {
    let window = RANK_WINDOW.max(limit * 4);
    let mut out = store.memory_matches(q, window as i64)?;
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
    out.truncate(limit);
    Ok(out)
}

/// How many indexed attempts contain `word` (as the engine stems it), counting no further
/// than `cap`. SQLite counts the matches; PostgreSQL answers from its planner's statistics of
/// the index (the frequent lexemes of the column, kept by `ANALYZE`), which costs a plan
/// rather than a visit to every matching row.
fn doc_count(store: &Store, word: &str, cap: i64) -> Result<i64> {
    let q = text_query(store.backend(), &[word.to_string()], true).unwrap_or_default();
    Ok(store.memory_match_count(&q, cap)?)
}

/// Attempts like a given one: sharing words of its hypothesis, its files, symbols and
/// parameters.
pub fn similar(store: &Store, attempt_id: i64, limit: usize) -> Result<Vec<Hit>> {
    let text = match store.memory_words(attempt_id)? {
        Some(w) => format!("{} {} {} {}", w.hypothesis, w.files, w.symbols, w.params),
        None => store.attempt(attempt_id)?.hypothesis,
    };
    let mut hits = search(store, &text, None, limit + 1)?;
    hits.retain(|h| h.attempt_id != attempt_id);
    hits.truncate(limit);
    Ok(hits)
}

/// A short answer for a prompt: how often an idea like `text` was tried and how it went,
/// grouped by hypothesis (e.g. `tried 3×: refuted ×2, kept ×1; best Δ=+0.0020`).
pub fn summary(store: &Store, text: &str, program: Option<&str>, limit: usize) -> Result<String> {
    let hits = match search(store, text, program, limit) {
        Ok(h) => h,
        Err(MemoryError::EmptyQuery) => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    if hits.is_empty() {
        return Ok("memory: nothing like this was tried".into());
    }
    let mut groups: BTreeMap<String, Vec<&Hit>> = BTreeMap::new();
    for h in &hits {
        groups.entry(h.hypothesis.clone()).or_default().push(h);
    }
    let mut lines = vec![format!("memory: {} related attempt(s)", hits.len())];
    let mut ordered: Vec<(&String, &Vec<&Hit>)> = groups.iter().collect();
    ordered.sort_by(|a, b| {
        a.1[0]
            .rank
            .partial_cmp(&b.1[0].rank)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for (hyp, hs) in ordered {
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for h in hs {
            let o = h
                .finding
                .as_ref()
                .map(|f| f.state.to_string())
                .unwrap_or_else(|| h.status.to_string());
            *outcomes.entry(o).or_default() += 1;
        }
        let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} ×{n}")).collect();
        let best = hs
            .iter()
            .filter_map(|h| h.finding.as_ref())
            .filter_map(|f| Some((f.effect?, f.ci_low?, f.ci_high?)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(e, l, h)| {
                format!(
                    "; Δ={e:+.4} (CI {:+.4}..{:+.4}, ±{:.4})",
                    l,
                    h,
                    (h - l) / 2.0
                )
            })
            .unwrap_or_default();
        let seqs: Vec<String> = hs.iter().map(|h| format!("#{}", h.seq)).collect();
        lines.push(format!(
            "- {hyp}: tried {}× ({}): {}{best}",
            hs.len(),
            seqs.join(", "),
            outcomes.join(", ")
        ));
    }
    Ok(lines.join("\n"))
}

/// Index size in bytes (FTS5's shadow tables, or the PostgreSQL table with its indexes), for
/// benchmarks.
pub fn index_bytes(store: &Store) -> Result<i64> {
    Ok(store.memory_index_bytes()?)
}

/// What an agent should know before proposing: the program's validated findings, its most
/// recent refuted ideas and failures, and how to ask for more. Visible numbers only.
pub fn program_brief(store: &Store, program: &str, limit: usize) -> Result<String> {
    let p = store.program(program)?;
    let findings = store.findings(Some(p.id), None)?;
    let mut lines = Vec::new();
    let mut validated: Vec<_> = findings
        .iter()
        .filter(|f| f.state == FindingState::Validated)
        .collect();
    validated.sort_by(|a, b| {
        b.evidence
            .effect
            .unwrap_or(0.0)
            .total_cmp(&a.evidence.effect.unwrap_or(0.0))
    });
    if !validated.is_empty() {
        lines.push("Validated (build on these):".to_string());
        for f in validated.iter().take(limit) {
            lines.push(format!("- {}", hit_for(store, f.attempt_id, 0.0)?.line()));
        }
    }
    let refuted: Vec<_> = findings
        .iter()
        .rev()
        .filter(|f| f.state == FindingState::Refuted)
        .take(limit)
        .collect();
    if !refuted.is_empty() {
        lines.push("Refuted (do not retry as is):".to_string());
        for f in refuted {
            lines.push(format!("- {}", hit_for(store, f.attempt_id, 0.0)?.line()));
        }
    }
    let failed = store.recent_failed_attempts(p.id, limit)?;
    if !failed.is_empty() {
        lines.push("Recently failed or duplicated:".to_string());
        for id in failed {
            lines.push(format!("- {}", hit_for(store, id, 0.0)?.line()));
        }
    }
    lines.push(format!(
        "Ask before trying an idea: `picidae memory search \"<idea>\" -p {program}` (or the MCP tool search_memory)."
    ));
    Ok(lines.join("\n"))
}
