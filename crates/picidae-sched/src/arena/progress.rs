//! An arena's progress over spend: for each entry's program in each trial, the visible value of
//! its frontier against the runs and GPU-hours it had used when the frontier moved. What the
//! cockpit's arena page overlays; read from the store only (no truth is measured, and no
//! hidden-evaluator number is in it).

use picidae_store::{ArenaEntry, FrontierMove, RunSpend, Store, StoreError};
use serde::Serialize;

/// One point of a progress line: after `runs` runs and `gpu_hours`, the frontier was `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProgressPoint {
    pub runs: i64,
    pub gpu_hours: f64,
    pub value: f64,
}

/// One entry's program in one trial, with its line.
#[derive(Debug, Clone, Serialize)]
pub struct TrialProgress {
    pub label: String,
    pub trial: i64,
    pub program: String,
    /// What it has used so far.
    pub runs: i64,
    pub gpu_hours: f64,
    /// Oldest first: the baseline, each move of the frontier, and the frontier's value now.
    pub points: Vec<ProgressPoint>,
}

/// The program of each of an arena's `entries` (`Store::arena_entries`), in their order.
pub fn arena_progress(
    store: &Store,
    entries: &[ArenaEntry],
) -> Result<Vec<TrialProgress>, StoreError> {
    let mut out = Vec::new();
    for e in entries {
        let p = store.program_by_id(e.program_id)?;
        let spend = store.run_spend(p.id)?;
        let moves = store.frontier_history(p.id)?;
        out.push(TrialProgress {
            label: e.label.clone(),
            trial: e.trial,
            program: p.name,
            runs: spend.len() as i64,
            gpu_hours: spend.iter().map(|s| s.gpu_ms).sum::<f64>() / 3_600_000.0,
            points: line(&moves, &spend),
        });
    }
    Ok(out)
}

/// The frontier's moves placed on the spend axis (the runs finished by the time each was
/// decided), ending at the spend so far with the last value.
pub fn line(moves: &[FrontierMove], spend: &[RunSpend]) -> Vec<ProgressPoint> {
    let mut points = Vec::with_capacity(moves.len() + 1);
    let (mut runs, mut gpu_ms) = (0usize, 0.0);
    for m in moves {
        while runs < spend.len() && spend[runs].finished_at <= m.at {
            gpu_ms += spend[runs].gpu_ms;
            runs += 1;
        }
        if !m.value.is_finite() {
            continue;
        }
        points.push(ProgressPoint {
            runs: runs as i64,
            gpu_hours: gpu_ms / 3_600_000.0,
            value: m.value,
        });
    }
    if let Some(last) = points.last().copied() {
        let total_ms: f64 = spend.iter().map(|s| s.gpu_ms).sum();
        if (spend.len() as i64) > last.runs {
            points.push(ProgressPoint {
                runs: spend.len() as i64,
                gpu_hours: total_ms / 3_600_000.0,
                value: last.value,
            });
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(at: i64, value: f64) -> FrontierMove {
        FrontierMove {
            attempt_id: 0,
            commit: String::new(),
            value,
            at,
        }
    }

    fn run(finished_at: i64) -> RunSpend {
        RunSpend {
            finished_at,
            gpu_ms: 1_800_000.0,
        }
    }

    #[test]
    fn a_move_sits_at_the_spend_of_its_decision_and_the_line_runs_to_the_spend_so_far() {
        let spend = [run(10), run(20), run(30), run(40), run(50)];
        let moves = [mv(20, 5.0), mv(40, 3.0)];
        let pts = line(&moves, &spend);
        let got: Vec<(i64, f64, f64)> =
            pts.iter().map(|p| (p.runs, p.gpu_hours, p.value)).collect();
        assert_eq!(got, vec![(2, 1.0, 5.0), (4, 2.0, 3.0), (5, 2.5, 3.0)]);
    }

    #[test]
    fn no_frontier_yet_is_no_line() {
        assert!(line(&[], &[run(1)]).is_empty());
        let pts = line(&[mv(5, 1.0)], &[]);
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].runs, 0);
    }
}
