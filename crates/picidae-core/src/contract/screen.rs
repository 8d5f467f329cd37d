//! `[screen]`: a promotion stage before a candidate's full-budget seeds. A candidate first
//! runs once on the reserved seed [`SCREEN_SEED`] with a shorter time budget, and so does the
//! incumbent (once, shared by every candidate on it); a candidate whose screen value is worse
//! than the incumbent's by more than `margin` is discarded there, for a fraction of a full
//! run. The screen's value never counts as a seed of the attempt: it only decides whether the
//! full stage is worth paying for.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::raw::RawScreen;
use super::validate::duration;
use super::{ContractIssue, Locator, RunSpec};

/// The seed a screen run carries: negative, so no verification seed (0, 1, ...) is ever one.
pub const SCREEN_SEED: i64 = -1;

/// A validated `[screen]` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScreenSpec {
    /// The screen run's time budget, told to it as `PICIDAE_TIME_BUDGET` (with
    /// `PICIDAE_STAGE=screen`); shorter than `run.time_budget`.
    #[serde(with = "super::secs")]
    pub time_budget: Duration,
    /// Its hard timeout (default: twice the budget and 10 s, at most `run.timeout`).
    #[serde(with = "super::secs")]
    pub timeout: Duration,
    /// How much worse than the incumbent's screen value, in the primary metric's units, a
    /// candidate may be and still go on to the full stage (default 0: at least as good).
    pub margin: f64,
}

impl ScreenSpec {
    /// The pass rule, as a finding and a discarded attempt's note state it.
    pub fn rule(&self) -> String {
        format!(
            "a {:.3}s screen run no worse than the incumbent's by more than {}",
            self.time_budget.as_secs_f64(),
            self.margin
        )
    }
}

pub(super) fn validate(
    raw: Spanned<RawScreen>,
    run: Option<&RunSpec>,
    loc: &Locator,
    issues: &mut Vec<ContractIssue>,
) -> Option<ScreenSpec> {
    let raw = raw.into_inner();
    let budget = duration(&raw.time_budget, "screen.time_budget", loc, issues);
    let timeout = match &raw.timeout {
        Some(t) => duration(t, "screen.timeout", loc, issues),
        None => budget.map(|b| {
            let t = b * 2 + Duration::from_secs(10);
            run.map_or(t, |r| t.min(r.timeout))
        }),
    };
    if let (Some(b), Some(run)) = (budget, run) {
        if b >= run.time_budget {
            issues.push(loc.issue(
                raw.time_budget.span().start,
                "screen.time_budget",
                format!(
                    "a screen must be cheaper than a full run: {:.3}s is not shorter than \
                     run.time_budget ({:.3}s)",
                    b.as_secs_f64(),
                    run.time_budget.as_secs_f64()
                ),
            ));
        }
    }
    if let (Some(b), Some(t), Some(span)) = (budget, timeout, raw.timeout.as_ref()) {
        if t < b {
            issues.push(loc.issue(
                span.span().start,
                "screen.timeout",
                format!(
                    "hard timeout ({:.3}s) is shorter than the screen's time budget ({:.3}s)",
                    t.as_secs_f64(),
                    b.as_secs_f64()
                ),
            ));
        }
    }
    let margin = match raw.margin {
        Some(m) if !m.get_ref().is_finite() || *m.get_ref() < 0.0 => {
            issues.push(loc.issue(
                m.span().start,
                "screen.margin",
                "must be a finite number >= 0",
            ));
            0.0
        }
        Some(m) => *m.get_ref(),
        None => 0.0,
    };
    Some(ScreenSpec {
        time_budget: budget?,
        timeout: timeout?,
        margin,
    })
}
