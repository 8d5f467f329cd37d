//! Power, said out loud: the smallest true effect verification finds reliably with the
//! policy's seeds at the noise a program's runs have shown, compared with the gains worth
//! having. The loop reports it after the baseline (`LoopEvent::Power`), the agent's prompt
//! states it, and the API's program view carries it for the cockpit ([`program_power`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use picidae_core::contract::PolicySpec;
use picidae_core::metrics::MetricSpec;
use picidae_core::sequential::{min_detectable_effect, win_looks, PooledNoise};
use picidae_core::Contract;
use picidae_core::{Goal, RunStatus};
use picidae_store::{Program, Store};
use serde::Serialize;

use crate::SchedError;

/// The chance of detecting an effect that the power report speaks of.
pub const POWER: f64 = 0.8;
/// Without a declared range, gains worth having are this share of the baseline's value.
const WORTH_SHARE: f64 = 0.05;
/// With a declared range, gains worth having are this share of the headroom.
const WORTH_HEADROOM: f64 = 0.25;

/// What verification can detect at this noise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Power {
    /// The smallest true effect found with probability [`POWER`] at `seeds` seeds.
    pub min_effect: f64,
    pub seeds: u32,
    /// The spread of one run it was computed from, with its degrees of freedom.
    pub run_sd: f64,
    pub df: f64,
    /// The gains worth having it is compared with, and what they are.
    pub worth: Option<(f64, String)>,
    /// Said when `min_effect` is larger than `worth`.
    pub warning: Option<String>,
}

impl Power {
    /// What the agent is told in its prompt: the effect verification finds reliably, and, with
    /// low power, that smaller gains will mostly not be kept.
    pub fn agent_note(&self, metric: &str) -> String {
        let mut note = format!(
            "Power: verification finds a change of {:.4} or more in {metric} reliably (with up \
             to {} seed(s) at this noise).",
            self.min_effect, self.seeds
        );
        if self.warning.is_some() {
            note.push_str(
                " That is more than the gains worth having, so smaller real gains will mostly \
                 not be kept: prefer changes you expect to move the metric at least that much.",
            );
        }
        note
    }
}

/// The smallest true effect a verification of at most `cap` seeds (a keep possible from
/// `fewest` on) finds with probability [`POWER`], at the alpha of one win-look, when one
/// difference has the spread `noise`.
pub(crate) fn detectable(
    policy: &PolicySpec,
    noise: PooledNoise,
    (fewest, cap): (usize, usize),
) -> Option<f64> {
    let looks = win_looks(fewest, cap).len().max(1);
    let df = (noise.df > 0.0).then_some(noise.df);
    min_detectable_effect(noise.sd, cap, policy.alpha / looks as f64, POWER, df)
}

/// The power of verification under `policy` at a run spread of `noise`, for a metric whose
/// baseline is `baseline`: at the most seeds a candidate may get, paired differences bounded
/// by √2 of the run spread, the alpha of one look where a keep may be declared.
pub fn power(
    policy: &PolicySpec,
    noise: PooledNoise,
    baseline: f64,
    metric: &MetricSpec,
) -> Option<Power> {
    let seeds = if policy.verifies() {
        policy.seed_cap()
    } else {
        1
    };
    let sd_diff = noise.sd * std::f64::consts::SQRT_2;
    let min_effect = detectable(
        policy,
        PooledNoise {
            sd: sd_diff,
            df: noise.df,
        },
        (policy.seeds as usize, seeds as usize),
    )?;
    let bound = match metric.goal {
        Goal::Minimize => metric.min,
        Goal::Maximize => metric.max,
    };
    let worth = match bound {
        Some(b) if (b - baseline).abs() > 0.0 => Some((
            WORTH_HEADROOM * (b - baseline).abs(),
            format!(
                "a quarter of the headroom to the metric's declared {} of {b}",
                if metric.goal == Goal::Minimize {
                    "minimum"
                } else {
                    "maximum"
                }
            ),
        )),
        _ if baseline != 0.0 && baseline.is_finite() => Some((
            WORTH_SHARE * baseline.abs(),
            "5% of the baseline's value".to_string(),
        )),
        _ => None,
    };
    let warning = worth.as_ref().and_then(|(w, what)| {
        (min_effect > *w).then(|| {
            format!(
                "low power: with {seeds} seed(s) at this noise (one run's spread {:.4}), only effects of {min_effect:.4} or more are found reliably, more than {w:.4} ({what}); raise policy.max_seeds, reduce the noise of a run, or expect few keeps",
                noise.sd
            )
        })
    });
    Some(Power {
        min_effect,
        seeds,
        run_sd: noise.sd,
        df: noise.df,
        worth,
        warning,
    })
}

/// The power of `program` as the store knows it, for a reader outside the loop (the API): the
/// run noise learned on the machine fingerprint of the frontier's latest run, the contract at
/// the program's base commit with its policy overrides. `None` before the frontier has runs
/// with a spread (two seeds of one attempt).
/// `bench` is where this process reads the program's benchmark (`Clones::benchmark_dir`).
pub fn program_power(
    store: &Store,
    program: &Program,
    bench: &std::path::Path,
) -> Result<Option<Power>, SchedError> {
    let (Some(frontier), Some(value)) = (program.frontier_attempt_id, program.frontier_value)
    else {
        return Ok(None);
    };
    let Some(fp) = store
        .runs_of_attempt(frontier)?
        .into_iter()
        .rev()
        .filter(|r| r.status == RunStatus::Succeeded)
        .find_map(|r| r.fingerprint)
    else {
        return Ok(None);
    };
    let contract = base_contract(program, bench)?;
    let policy = crate::program::effective_policy(&contract, &program.policy);
    let values = store.seed_values(program.id, &fp, crate::noise::NOISE_RUNS)?;
    let prior = crate::noise::learn(&values, &[], -1);
    Ok(prior
        .run
        .and_then(|noise| power(&policy, noise, value, contract.primary())))
}

/// The contract at `program`'s base commit, read from git once per process: it cannot change
/// for that commit, and [`program_power`] is asked on every read of a program's view.
fn base_contract(program: &Program, bench: &std::path::Path) -> Result<Arc<Contract>, SchedError> {
    /// Contracts by (benchmark directory, base commit).
    type Read = HashMap<(String, String), Arc<Contract>>;
    static READ: LazyLock<Mutex<Read>> = LazyLock::new(|| Mutex::new(HashMap::new()));
    let key = (program.benchmark_dir.clone(), program.base_commit.clone());
    if let Some(c) = READ.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(Arc::clone(c));
    }
    let repo = picidae_git::Repo::open(bench)?;
    let (contract, _) = crate::contract_source::program_contract(&repo, program)?;
    let contract = Arc::new(contract);
    READ.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::clone(&contract));
    Ok(contract)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_warns_when_only_large_effects_are_detectable() {
        let metric = MetricSpec {
            name: "score".into(),
            goal: Goal::Maximize,
            source: Default::default(),
            min: Some(0.0),
            max: Some(1.5),
        };
        let policy = PolicySpec {
            seeds: 3,
            baseline_seeds: 3,
            ..Default::default()
        };
        let noisy = PooledNoise { sd: 0.2, df: 2.0 };
        let p = power(&policy, noisy, 1.2, &metric).unwrap();
        assert!(p.min_effect > 0.075, "{p:?}");
        assert!(p.warning.as_deref().unwrap().contains("low power"), "{p:?}");
        let quiet = PooledNoise {
            sd: 0.001,
            df: 30.0,
        };
        let p = power(&policy, quiet, 1.2, &metric).unwrap();
        assert!(p.warning.is_none(), "{p:?}");
        // More seeds, a smaller detectable effect.
        let more = PolicySpec {
            max_seeds: 20,
            ..policy.clone()
        };
        let a = power(&policy, noisy, 1.2, &metric).unwrap();
        let b = power(&more, noisy, 1.2, &metric).unwrap();
        assert!(b.min_effect < a.min_effect, "{a:?} {b:?}");
    }
}
