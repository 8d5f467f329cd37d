//! The memory of program.md files: every arena entry's text with its arena's last scored
//! result, for whoever writes the next program.md (the arena's meta-loop, a person with
//! `picidae memory programs`).
//!
//! A result is an entry's aggregate over whole programs (its rank, its true gain per unit of
//! budget with the interval over trials, its false keeps and spend), never one commit's truth.
//! It is not offered to research agents through MCP: they search attempts, whose answers carry
//! visible numbers only. There are few texts (arenas × entries), so a search reads them all
//! and ranks in memory, the same on both engines.

use std::collections::BTreeSet;

use picidae_store::{ArenaResult, Store};
use serde::Serialize;

use crate::{query_words, Result};

/// One program.md of one arena, with how it did.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramMdHit {
    pub arena: String,
    pub benchmark_dir: String,
    pub label: String,
    /// The query's words found in the text.
    pub matched: usize,
    /// `None` until the arena is scored (`picidae arena show`).
    pub result: Option<ArenaResult>,
    pub program_md: String,
}

impl ProgramMdHit {
    /// "arena A, entry L: rank 1 of 3, true gain 0.41 per run [0.3, 0.52], false keeps 0/4".
    pub fn line(&self) -> String {
        let head = format!("arena {}, entry {}", self.arena, self.label);
        let Some(r) = &self.result else {
            return format!("{head}: not scored yet");
        };
        use picidae_core::params::{format_interval, format_number};
        let rate = r.rate.map_or("-".into(), |v| format_number(v, false));
        let interval =
            format_interval(r.rate_low, r.rate_high).map_or(String::new(), |i| format!(" {i}"));
        format!(
            "{head}: rank {} of {}, true gain {rate} per {}{interval} over {} trial(s), false \
             keeps {}/{}, {} runs",
            r.rank, r.entries, r.per, r.trials, r.false_keeps, r.keeps, r.runs
        )
    }
}

/// How far down its arena's ranking a result sits: 0 first, 1 last; unscored after all.
fn place(r: Option<&ArenaResult>) -> f64 {
    match r {
        Some(r) if r.entries > 1 => (r.rank - 1) as f64 / (r.entries - 1) as f64,
        Some(_) => 0.0,
        None => 2.0,
    }
}

/// The words of a text, for matching: a query word matches a word it equals or begins (four
/// letters or more), so "step" finds "steps".
fn matches(words: &BTreeSet<String>, query: &[String]) -> usize {
    query
        .iter()
        .filter(|q| {
            words.contains(q.as_str())
                || (q.len() >= 4 && words.iter().any(|w| w.starts_with(q.as_str())))
        })
        .count()
}

/// Program.md texts of every arena (of `benchmark_dir` only, when given; never of
/// `except_arena`), matching `query` (all of them when it has no words), best first: most
/// query words found, then best place in their arena, then highest rate.
pub fn search_program_mds(
    store: &Store,
    query: &str,
    benchmark_dir: Option<&str>,
    except_arena: Option<&str>,
    limit: usize,
) -> Result<Vec<ProgramMdHit>> {
    let q = query_words(query);
    let mut hits = Vec::new();
    for arena in store.arenas()? {
        if benchmark_dir.is_some_and(|b| b != arena.benchmark_dir)
            || except_arena == Some(arena.name.as_str())
        {
            continue;
        }
        let results = store.arena_results(arena.id)?;
        let mut seen = BTreeSet::new();
        for e in store.arena_entries(arena.id)? {
            if !seen.insert(e.label.clone()) {
                continue;
            }
            let words: BTreeSet<String> = query_words(&e.program_md).into_iter().collect();
            let matched = matches(&words, &q);
            if !q.is_empty() && matched == 0 {
                continue;
            }
            hits.push(ProgramMdHit {
                arena: arena.name.clone(),
                benchmark_dir: arena.benchmark_dir.clone(),
                result: results.iter().find(|r| r.label == e.label).cloned(),
                label: e.label,
                matched,
                program_md: e.program_md,
            });
        }
    }
    hits.sort_by(|a, b| {
        b.matched
            .cmp(&a.matched)
            .then_with(|| place(a.result.as_ref()).total_cmp(&place(b.result.as_ref())))
            .then_with(|| {
                let rate = |h: &ProgramMdHit| {
                    h.result
                        .as_ref()
                        .and_then(|r| r.rate)
                        .unwrap_or(f64::NEG_INFINITY)
                };
                rate(b).total_cmp(&rate(a))
            })
            .then_with(|| (&a.arena, &a.label).cmp(&(&b.arena, &b.label)))
    });
    hits.truncate(limit);
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rank: i64, entries: i64, rate: f64) -> ArenaResult {
        ArenaResult {
            label: String::new(),
            rank,
            entries,
            per: "run".into(),
            truth_metric: "loss".into(),
            hidden: true,
            seeds: 3,
            trials: 2,
            rate: Some(rate),
            rate_low: Some(rate - 0.1),
            rate_high: Some(rate + 0.1),
            keeps: 4,
            false_keeps: 1,
            runs: 24,
            gpu_hours: 0.0,
            scored_at: 0,
        }
    }

    #[test]
    fn a_query_word_matches_the_words_it_begins() {
        let words: BTreeSet<String> = query_words("Take large steps, each time.")
            .into_iter()
            .collect();
        assert_eq!(matches(&words, &query_words("step size")), 1);
        assert_eq!(matches(&words, &query_words("large steps")), 2);
        // Short words match only whole words.
        assert_eq!(matches(&words, &query_words("ta")), 0);
    }

    #[test]
    fn places_order_first_before_last_before_unscored() {
        assert!(place(Some(&result(1, 3, 0.1))) < place(Some(&result(2, 3, 0.5))));
        assert!(place(Some(&result(3, 3, 0.5))) < place(None));
        let hit = ProgramMdHit {
            arena: "md".into(),
            benchmark_dir: String::new(),
            label: "large".into(),
            matched: 0,
            result: Some(result(1, 3, 0.4)),
            program_md: String::new(),
        };
        let line = hit.line();
        assert!(line.contains("rank 1 of 3"), "{line}");
        assert!(line.contains("0.4 per run [0.3, 0.5]"), "{line}");
        assert!(line.contains("false keeps 1/4"), "{line}");
    }
}
