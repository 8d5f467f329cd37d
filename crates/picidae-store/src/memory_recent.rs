//! The newest matches of a memory query on PostgreSQL. The memory ranks only the most recent
//! matches of a query (`picidae_memory::RANK_WINDOW`); FTS5 walks its matches newest first
//! and stops, but a GIN index yields them in no order, so "the newest 400" would mean reading
//! every match, and a common query at a million attempts reads a hundred thousand rows.
//!
//! Instead each document carries two recency tokens (schema migration 12): `picidaeepoch<k>`
//! for attempt ids `k·4096 ..`, and `picidaeera<k>` for ids `k·65536 ..`. A search first asks
//! the index for the matches among the newest attempts only (the query intersected with the
//! tokens that cover them, which the index answers from the tokens' short posting lists). When
//! that look finds a full window, it is exactly the newest window of all matches, because the
//! tokens cover every id above their lowest; when it finds fewer, the density it saw says how
//! far back the next look must reach, and a query too rare for any span to pay is asked of
//! the whole index, where being rare is what makes it cheap.

use crate::{params, Result, Store};

/// Attempt ids per epoch token (`picidaeepoch<id >> 12>`), as the schema computes them.
const EPOCH_SHIFT: u32 = 12;
/// Attempt ids per era token (`picidaeera<id >> 16>`).
const ERA_SHIFT: u32 = 16;
/// The most tokens one look names: the index pays for each, and the query's consistency
/// check visits every one for every candidate row.
const MAX_TOKENS: i64 = 24;
/// The first look covers at least this many of the newest attempts.
const FIRST_SPAN: i64 = 4 << EPOCH_SHIFT;
/// Below this many attempts the whole index is asked at once: its common queries cost less
/// than a first look followed by a second.
const SMALL_INDEX: i64 = 8 * FIRST_SPAN;
/// A look that would have to cover more than this share of all attempts is asked of the whole
/// index instead.
const WHOLE_INDEX_SHARE: f64 = 0.25;

/// The recency tokens (as a tsquery disjunction) whose documents include every attempt id in
/// `low ..= high`, and the lowest id they cover; `None` when the range reaches the first
/// attempts or needs more than [`MAX_TOKENS`] tokens, so only the whole index will do.
fn cover(high: i64, low: i64) -> Option<(String, i64)> {
    if low <= 0 {
        return None;
    }
    [(EPOCH_SHIFT, "picidaeepoch"), (ERA_SHIFT, "picidaeera")]
        .into_iter()
        .find_map(|(shift, prefix)| {
            let (hi, lo) = (high >> shift, low >> shift);
            (lo > 0 && hi - lo < MAX_TOKENS).then(|| {
                let tokens: Vec<String> = (lo..=hi).rev().map(|k| format!("{prefix}{k}")).collect();
                (tokens.join(" | "), lo << shift)
            })
        })
}

/// How many of the newest attempts the looks must cover to find `window` matches, given that
/// `found` matched among the newest `covered`: the span the density predicts, widened by two
/// and a half standard errors of that density (a count of `found` is about Poisson), and
/// never less than twice what was covered.
fn next_span(window: usize, found: usize, covered: i64) -> i64 {
    let found = found as f64 + 1.0;
    let slack = 1.0 + 2.5 / found.sqrt();
    let predicted = (window as f64 * covered as f64 / found * slack).ceil() as i64;
    predicted.max(covered * 2)
}

const RANKED: &str = "SELECT attempt_id, -ts_rank('{0, 0.2, 0.4, 1.0}', doc, q)
     FROM memory_fts, to_tsquery('picidae', ?1) q";

impl Store {
    /// PostgreSQL's side of [`Store::memory_matches`]: the newest `window` matches of `q`,
    /// found through the recency tokens (see the module docs). Each look covers only ids
    /// older than the looks before it, so no match is read twice.
    pub(crate) fn memory_matches_recent(&self, q: &str, window: i64) -> Result<Vec<(i64, f64)>> {
        let want = window.max(0) as usize;
        // The newest indexed attempt (the primary key's last entry).
        let top: i64 = self.db.query_row(
            "SELECT COALESCE(MAX(attempt_id), 0) FROM memory_fts",
            (),
            |r| r.get(0),
        )?;
        let mut found: Vec<(i64, f64)> = Vec::new();
        // Every match with an id from `upper` to `top` is in `found`.
        let mut upper = top + 1;
        let mut span = if top < SMALL_INDEX { top } else { FIRST_SPAN };
        while found.len() < want {
            let rest = (want - found.len()) as i64;
            let Some((tokens, low)) = cover(upper - 1, top - span + 1) else {
                found.extend(self.db.query_map(
                    &format!(
                        "{RANKED} WHERE doc @@ q AND attempt_id < ?3
                         ORDER BY attempt_id DESC LIMIT ?2"
                    ),
                    params![q, rest, upper],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?);
                break;
            };
            found.extend(self.db.query_map(
                &format!(
                    "{RANKED} WHERE doc @@ (q && to_tsquery('simple', ?3)) AND attempt_id < ?4
                     ORDER BY attempt_id DESC LIMIT ?2"
                ),
                params![q, rest, tokens, upper],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?);
            upper = low;
            let covered = top - low + 1;
            span = next_span(want, found.len(), covered);
            if span as f64 > top as f64 * WHOLE_INDEX_SHARE {
                // Too rare for a span to pay: the rest is asked of the whole index.
                span = top;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every id the tokens name lies in `low ..`, and every id in `top - span + 1 ..= top`
    /// is named: a look over the cover misses none of the newest attempts.
    #[test]
    fn a_cover_holds_every_id_of_its_span() {
        for (top, span) in [
            (1_000_000, 16_384),
            (1_000_000, 70_000),
            (1_000_000, 200_000),
            (50_000, 20_000),
            (4_097, 1),
        ] {
            let (tokens, low) =
                cover(top, top - span + 1).expect("a span short of the first attempts");
            assert!(low <= top - span + 1, "{top} {span}: low {low}");
            let named: Vec<&str> = tokens.split(" | ").collect();
            assert!(named.len() as i64 <= MAX_TOKENS);
            for id in [low, top - span + 1, (low + top) / 2, top] {
                let epoch = format!("picidaeepoch{}", id >> EPOCH_SHIFT);
                let era = format!("picidaeera{}", id >> ERA_SHIFT);
                assert!(
                    named.contains(&epoch.as_str()) || named.contains(&era.as_str()),
                    "{top} {span}: id {id} not covered by {tokens}"
                );
            }
            if named[0].starts_with("picidaeepoch") {
                assert_eq!(low % (1 << EPOCH_SHIFT), 0);
            } else {
                assert_eq!(low % (1 << ERA_SHIFT), 0);
            }
        }
    }

    #[test]
    fn a_span_reaching_the_first_attempts_is_the_whole_index() {
        assert_eq!(cover(10_000, 10_000 - 16_384 + 1), None);
        assert_eq!(cover(10_000, 1), None);
        // Ids 1..=4095 share epoch 0 with nothing newer to cut away.
        assert_eq!(cover(5_000, 1_001), None);
        // More than 24 eras (about 1.5 million ids) is the whole index too.
        assert_eq!(cover(4_000_000, 1_000_001), None);
        // An older range alone: the newest tokens are not named.
        let (tokens, low) = cover(81_919, 70_000).unwrap();
        assert_eq!(tokens, "picidaeepoch19 | picidaeepoch18 | picidaeepoch17");
        assert_eq!(low, 17 << EPOCH_SHIFT);
    }

    #[test]
    fn a_sparse_look_predicts_a_longer_span() {
        // 100 matches among 16,384 attempts: 400 need about 65k, and a quarter more for the
        // scatter of the count.
        let s = next_span(400, 100, 16_384);
        assert!((75_000..85_000).contains(&s), "{s}");
        // A count of 10 says less: the margin is wider (about 1.8 times the prediction
        // against 1.25).
        let thin = next_span(400, 9, 1_638) as f64 / (400.0 * 1_638.0 / 10.0);
        assert!(thin > 1.7, "{thin}");
        // A look that found nothing at all still widens, and never by less than double.
        assert!(next_span(400, 0, 16_384) > 16_384 * 100);
        assert_eq!(next_span(400, 399, 16_384), 32_768);
    }
}
