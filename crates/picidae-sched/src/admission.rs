//! Admission: whether one more attempt of a program may start, given its budgets, what it has
//! spent, and what its attempts in flight may still spend. Pure: no store, no clock.
//!
//! An attempt is admitted with the most runs it can take (one seed under plain keep/revert,
//! all of the policy's seeds when it verifies: screening plus verification). What attempts in
//! flight have not run yet stays reserved for them until they are decided, so their
//! verification seeds always come before new exploration, and no number of attempts in flight
//! makes a budget overrun: the run budgets (of the invocation and of the program) are never
//! exceeded, and GPU-hours and money are reserved at each run's worst case (its timeout and
//! grace, on the GPUs its contract asks for), which errs on the side of stopping early.

/// A program's budgets (each `None`: unlimited).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Runs this invocation may start (`picidae run --max-runs`).
    pub invocation_runs: Option<u64>,
    /// Runs the program may have in all.
    pub program_runs: Option<i64>,
    pub gpu_hours: Option<f64>,
    pub usd: Option<f64>,
    /// Price of a GPU-hour, for the money budget.
    pub gpu_hour_usd: f64,
}

/// What the program has used so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Runs recorded for the program, whatever their state.
    pub runs: i64,
    /// `runs` when this invocation started.
    pub runs_at_start: i64,
    /// GPU-hours held by its runs (running ones up to now).
    pub gpu_hours: f64,
    /// Money spent: GPU-hours at the price plus what agents reported.
    pub usd: f64,
}

/// One attempt in flight: the runs it was admitted with, those recorded (started) and those
/// finished so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InFlight {
    pub need: u32,
    pub started: u32,
    pub finished: u32,
}

impl InFlight {
    /// Runs not yet recorded.
    fn unstarted(&self) -> i64 {
        i64::from(self.need.saturating_sub(self.started))
    }

    /// Runs whose GPU time is not yet fully charged.
    fn unfinished(&self) -> f64 {
        f64::from(self.need.saturating_sub(self.finished))
    }
}

/// Whether an attempt needing `need` runs, each holding the GPUs for at most
/// `worst_gpu_hours` per run, may start now; `Err` says which budget refuses it.
pub fn admit(
    limits: &Limits,
    usage: &Usage,
    in_flight: &[InFlight],
    need: u32,
    worst_gpu_hours: f64,
) -> Result<(), String> {
    let reserved_runs: i64 = in_flight.iter().map(InFlight::unstarted).sum();
    let committed = usage.runs + reserved_runs + i64::from(need);
    if let Some(max) = limits.invocation_runs {
        let this_invocation = committed - usage.runs_at_start;
        if this_invocation > max as i64 {
            return Err(format!("run budget of {max} runs spent"));
        }
    }
    if let Some(max) = limits.program_runs {
        if committed > max {
            let reserved = match reserved_runs {
                0 => String::new(),
                n => format!(", {n} more reserved for attempts in flight"),
            };
            return Err(format!(
                "the program's run budget is spent ({} of {max} runs{reserved})",
                usage.runs
            ));
        }
    }
    let reserved_runs_gpu: f64 = in_flight.iter().map(InFlight::unfinished).sum();
    let reserved_gpu = (reserved_runs_gpu + f64::from(need)) * worst_gpu_hours;
    if let Some(max) = limits.gpu_hours {
        if usage.gpu_hours >= max || (worst_gpu_hours > 0.0 && usage.gpu_hours + reserved_gpu > max)
        {
            return Err(format!(
                "the program's GPU-hour budget is spent ({:.3} of {max} GPU-hours used, {:.3} \
                 reserved at the runs' timeout)",
                usage.gpu_hours, reserved_gpu
            ));
        }
    }
    if let Some(max) = limits.usd {
        let reserved_usd = reserved_gpu * limits.gpu_hour_usd;
        if usage.usd >= max || (reserved_usd > 0.0 && usage.usd + reserved_usd > max) {
            return Err(format!(
                "the program's money budget is spent (${:.2} of ${max:.2} used, ${reserved_usd:.2} \
                 reserved at the runs' timeout)",
                usage.usd
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight(need: u32, started: u32, finished: u32) -> InFlight {
        InFlight {
            need,
            started,
            finished,
        }
    }

    #[test]
    fn run_budget_counts_what_attempts_in_flight_may_still_run() {
        let limits = Limits {
            program_runs: Some(10),
            ..Default::default()
        };
        let usage = Usage {
            runs: 4,
            ..Default::default()
        };
        // Two verifying attempts in flight, 3 seeds each, one seed started each: 4 reserved.
        let inflight = [flight(3, 1, 1), flight(3, 1, 0)];
        assert!(
            admit(&limits, &usage, &inflight, 3, 0.0).is_err(),
            "4+4+3 > 10"
        );
        assert!(
            admit(&limits, &usage, &inflight, 2, 0.0).is_ok(),
            "4+4+2 = 10"
        );
        assert!(admit(&limits, &usage, &[], 3, 0.0).is_ok());
    }

    #[test]
    fn many_admissions_never_exceed_the_run_budget() {
        // Admit attempts one by one until refused, each taking all it asked for.
        for max in 0..20i64 {
            for need in 1..5u32 {
                let limits = Limits {
                    program_runs: Some(max),
                    ..Default::default()
                };
                let usage = Usage::default();
                let mut inflight = Vec::new();
                while admit(&limits, &usage, &inflight, need, 0.0).is_ok() {
                    inflight.push(flight(need, 0, 0));
                }
                let total: i64 = inflight.iter().map(|f| i64::from(f.need)).sum();
                assert!(total <= max, "max {max} need {need}: {total}");
                assert!(
                    total + i64::from(need) > max,
                    "stopped early at {total} of {max}"
                );
            }
        }
    }

    #[test]
    fn invocation_budget_is_relative_to_its_start() {
        let limits = Limits {
            invocation_runs: Some(2),
            ..Default::default()
        };
        let usage = Usage {
            runs: 100,
            runs_at_start: 99,
            ..Default::default()
        };
        assert!(admit(&limits, &usage, &[], 1, 0.0).is_ok());
        assert!(admit(&limits, &usage, &[flight(1, 0, 0)], 1, 0.0).is_err());
    }

    #[test]
    fn gpu_hours_and_money_are_reserved_at_the_worst_case() {
        let limits = Limits {
            gpu_hours: Some(1.0),
            usd: Some(100.0),
            gpu_hour_usd: 50.0,
            ..Default::default()
        };
        let usage = Usage {
            gpu_hours: 0.5,
            usd: 25.0,
            ..Default::default()
        };
        // A run may hold its GPUs a quarter hour at most: one more fits, three do not.
        assert!(admit(&limits, &usage, &[], 1, 0.25).is_ok());
        let err = admit(&limits, &usage, &[flight(2, 2, 0)], 1, 0.25).unwrap_err();
        assert!(err.contains("GPU-hour"), "{err}");
        // Without GPUs only what was already spent counts.
        assert!(admit(&limits, &usage, &[flight(9, 0, 0)], 1, 0.0).is_ok());
        let spent = Usage {
            gpu_hours: 1.0,
            ..usage
        };
        assert!(admit(&limits, &spent, &[], 1, 0.0).is_err());
    }
}
