//! The Tree-structured Parzen Estimator (TPE): the sweep agent's model-based sampler.
//!
//! TPE models where good points lie rather than the objective itself. The observations (earlier
//! attempts' assignments, mapped onto the unit cube by [`ParamSpec::to_unit`], with their primary
//! value) are split at the `gamma` quantile of the value into a good group and a bad group. Each
//! group gets a density per dimension, `l(x)` for the good and `g(x)` for the bad: a Parzen
//! estimator of truncated Gaussian kernels on `[0, 1]` plus a uniform prior component for a range,
//! a smoothed categorical distribution for a list of choices. Candidates are drawn from `l`, and
//! the one with the largest `l(x) / g(x)` (the sum over dimensions of the log-ratios) is proposed.
//!
//! This module owns the estimator and the split ([`suggest`], on plain unit-cube points, so it can
//! be tested without files) and the translation of an agent's history into observations
//! ([`observations`]). Everything is a pure function of its inputs and the random generator it is
//! given, so the sweep agent stays deterministic for a given seed and attempt number.

use picidae_core::{Assignment, AttemptStatus, Goal, ParamDomain, ParamSpec};
use rand::Rng;
use statrs::function::erf::{erfc, erfc_inv};

use crate::HistoryEntry;

/// TPE's knobs. The defaults suit the small budgets of a research loop (tens of runs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeConfig {
    /// Fraction of the valued observations that form the good group (at least one).
    pub gamma: f64,
    /// Candidates drawn from the good density per proposal.
    pub n_candidates: usize,
    /// Observations needed before the model is used; `None`: twice the number of dimensions,
    /// between 5 and 10. Before that the sweep samples uniformly at random.
    pub n_startup: Option<usize>,
    /// Weight of the uniform prior component, in observations.
    pub prior_weight: f64,
    /// Count attempts that failed without a value (diverged, crashed) as bad observations, so
    /// the model learns to avoid their region instead of ignoring it.
    pub failures_as_bad: bool,
}

impl Default for TpeConfig {
    fn default() -> Self {
        TpeConfig {
            gamma: 0.25,
            n_candidates: 24,
            n_startup: None,
            prior_weight: 1.0,
            failures_as_bad: true,
        }
    }
}

impl TpeConfig {
    /// Observations needed before the model is used, for a space of `dims` dimensions.
    pub fn startup(&self, dims: usize) -> usize {
        self.n_startup.unwrap_or((2 * dims).clamp(5, 10))
    }
}

/// The shape of one dimension of the unit cube.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// A numeric range (log scale and integer rounding are already folded into the unit scale).
    Continuous,
    /// A list of this many choices; choice `i` sits at `(i + 0.5) / n` on the unit scale.
    Categorical(usize),
}

impl Dim {
    pub fn of(p: &ParamSpec) -> Dim {
        match &p.domain {
            ParamDomain::Range { .. } => Dim::Continuous,
            ParamDomain::Choice { values } => Dim::Categorical(values.len().max(1)),
        }
    }

    fn index(self, u: f64) -> usize {
        match self {
            Dim::Continuous => 0,
            Dim::Categorical(k) => ((u.clamp(0.0, 1.0) * k as f64) as usize).min(k - 1),
        }
    }
}

/// One evaluated point.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Coordinates on the unit cube, one per dimension.
    pub point: Vec<f64>,
    /// The value to minimise (the primary metric, negated when it is maximised); `None` for an
    /// attempt that failed without a value.
    pub loss: Option<f64>,
}

/// The observations in an agent's history: entries with a full assignment and a finite value,
/// plus (as failures) failed entries with an assignment but no value. `frontier` (the current
/// assignment and its value) is added when no entry already holds that assignment: it is how the
/// baseline's point, which has no recorded assignment, enters the model.
///
/// Points still in flight (proposed, queued or running: no value yet) enter as a *constant
/// liar*: each is given the worst loss observed so far. Proposals made while others run (the
/// pipeline, several attempts at once) are then pushed away from the points already taken
/// instead of collapsing onto the one most promising spot.
pub fn observations(
    params: &[ParamSpec],
    history: &[HistoryEntry],
    goal: Goal,
    frontier: Option<(&Assignment, f64)>,
) -> Vec<Observation> {
    let loss = |v: f64| match goal {
        Goal::Minimize => v,
        Goal::Maximize => -v,
    };
    let mut out = Vec::new();
    let mut seen: Vec<&Assignment> = Vec::new();
    let mut pending: Vec<Vec<f64>> = Vec::new();
    for h in history {
        let Some(a) = h.params.as_ref() else { continue };
        let Some(point) = unit_point(params, a) else {
            continue;
        };
        match h.value {
            Some(v) if v.is_finite() => {
                seen.push(a);
                out.push(Observation {
                    point,
                    loss: Some(loss(v)),
                });
            }
            _ if h.status == AttemptStatus::Failed => out.push(Observation { point, loss: None }),
            _ if in_flight(h.status) => pending.push(point),
            _ => {}
        }
    }
    if let Some((a, v)) = frontier {
        if v.is_finite() && !seen.contains(&a) {
            if let Some(point) = unit_point(params, a) {
                out.push(Observation {
                    point,
                    loss: Some(loss(v)),
                });
            }
        }
    }
    let worst = out
        .iter()
        .filter_map(|o| o.loss)
        .max_by(|a, b| a.total_cmp(b));
    if let Some(liar) = worst {
        out.extend(pending.into_iter().map(|point| Observation {
            point,
            loss: Some(liar),
        }));
    }
    out
}

/// An attempt whose value is still to come.
fn in_flight(status: AttemptStatus) -> bool {
    matches!(
        status,
        AttemptStatus::Proposed | AttemptStatus::Queued | AttemptStatus::Running
    )
}

/// An assignment on the unit cube; `None` when a parameter is missing or out of its domain.
pub fn unit_point(params: &[ParamSpec], a: &Assignment) -> Option<Vec<f64>> {
    params
        .iter()
        .map(|p| a.get(&p.name).and_then(|v| p.to_unit(v)))
        .collect()
}

/// The assignment at a point of the unit cube.
pub fn assignment_at(params: &[ParamSpec], point: &[f64]) -> Assignment {
    params
        .iter()
        .zip(point)
        .map(|(p, &u)| (p.name.clone(), p.from_unit(u)))
        .collect()
}

/// Candidate points, the most promising first (by `l(x) / g(x)`); `None` while there are fewer
/// observations than the startup count or none with a value, when the caller should sample at
/// random instead.
pub fn suggest<R: Rng + ?Sized>(
    dims: &[Dim],
    obs: &[Observation],
    cfg: &TpeConfig,
    rng: &mut R,
) -> Option<Vec<Vec<f64>>> {
    let usable: Vec<&Observation> = obs
        .iter()
        .filter(|o| o.point.len() == dims.len())
        .filter(|o| o.loss.is_some() || cfg.failures_as_bad)
        .collect();
    let mut valued: Vec<(f64, &Observation)> = usable
        .iter()
        .filter_map(|o| o.loss.filter(|l| l.is_finite()).map(|l| (l, *o)))
        .collect();
    if dims.is_empty() || valued.is_empty() || usable.len() < cfg.startup(dims.len()) {
        return None;
    }
    valued.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_good = ((cfg.gamma * valued.len() as f64).ceil() as usize).clamp(1, valued.len());
    let good: Vec<&Observation> = valued[..n_good].iter().map(|(_, o)| *o).collect();
    let mut bad: Vec<&Observation> = valued[n_good..].iter().map(|(_, o)| *o).collect();
    bad.extend(usable.iter().filter(|o| o.loss.is_none()));

    let fit = |group: &[&Observation], d: usize| {
        let xs: Vec<f64> = group.iter().map(|o| o.point[d]).collect();
        Estimator::fit(dims[d], &xs, cfg.prior_weight)
    };
    let l: Vec<Estimator> = (0..dims.len()).map(|d| fit(&good, d)).collect();
    let g: Vec<Estimator> = (0..dims.len()).map(|d| fit(&bad, d)).collect();

    let mut scored: Vec<(f64, Vec<f64>)> = (0..cfg.n_candidates.max(1))
        .map(|_| {
            let x: Vec<f64> = l.iter().map(|e| e.sample(rng)).collect();
            let score = x
                .iter()
                .zip(l.iter().zip(&g))
                .map(|(&xi, (li, gi))| li.log_pdf(xi) - gi.log_pdf(xi))
                .sum::<f64>();
            (score, x)
        })
        .collect();
    // Stable: equal scores keep the order they were drawn in.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    Some(scored.into_iter().map(|(_, x)| x).collect())
}

/// A one-dimensional density on `[0, 1]`.
#[derive(Debug, Clone)]
enum Estimator {
    /// Truncated Gaussian kernels at `mus` with `sigmas` (log-normalisers `log_z`), each of weight
    /// one, plus a uniform component of weight `prior`.
    Parzen {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        log_z: Vec<f64>,
        prior: f64,
    },
    /// Probability of each choice.
    Categorical { probs: Vec<f64> },
}

const SQRT_2: f64 = std::f64::consts::SQRT_2;
/// ln(sqrt(2π)).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Standard normal CDF.
fn phi_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / SQRT_2)
}

/// Standard normal quantile.
fn phi_inv(p: f64) -> f64 {
    -SQRT_2 * erfc_inv(2.0 * p)
}

fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + xs.map(|x| (x - m).exp()).sum::<f64>().ln()
}

impl Estimator {
    fn fit(dim: Dim, xs: &[f64], prior: f64) -> Estimator {
        let prior = prior.max(1e-6);
        match dim {
            Dim::Categorical(k) => {
                let mut counts = vec![prior / k as f64; k];
                for &x in xs {
                    counts[dim.index(x)] += 1.0;
                }
                let total: f64 = counts.iter().sum();
                Estimator::Categorical {
                    probs: counts.into_iter().map(|c| c / total).collect(),
                }
            }
            Dim::Continuous => {
                let mus: Vec<f64> = xs.iter().map(|x| x.clamp(0.0, 1.0)).collect();
                let sigmas = bandwidths(&mus);
                let log_z = mus
                    .iter()
                    .zip(&sigmas)
                    .map(|(&m, &s)| (phi_cdf((1.0 - m) / s) - phi_cdf(-m / s)).max(1e-300).ln())
                    .collect();
                Estimator::Parzen {
                    mus,
                    sigmas,
                    log_z,
                    prior,
                }
            }
        }
    }

    fn log_pdf(&self, x: f64) -> f64 {
        match self {
            Estimator::Categorical { probs } => {
                let i = Dim::Categorical(probs.len()).index(x);
                probs[i].ln()
            }
            Estimator::Parzen {
                mus,
                sigmas,
                log_z,
                prior,
            } => {
                let x = x.clamp(0.0, 1.0);
                let total = mus.len() as f64 + prior;
                let kernels = mus.iter().zip(sigmas).zip(log_z).map(|((&m, &s), &lz)| {
                    let z = (x - m) / s;
                    -0.5 * z * z - LN_SQRT_2PI - s.ln() - lz
                });
                // The uniform component's density on [0, 1] is 1.
                log_sum_exp(kernels.chain(std::iter::once(prior.ln()))) - total.ln()
            }
        }
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Estimator::Categorical { probs } => {
                let k = probs.len();
                let mut r = rng.random::<f64>();
                let mut pick = k - 1;
                for (i, p) in probs.iter().enumerate() {
                    if r < *p {
                        pick = i;
                        break;
                    }
                    r -= p;
                }
                (pick as f64 + 0.5) / k as f64
            }
            Estimator::Parzen {
                mus, sigmas, prior, ..
            } => {
                let total = mus.len() as f64 + prior;
                let r = rng.random::<f64>() * total;
                let i = r as usize;
                if i >= mus.len() {
                    return rng.random::<f64>();
                }
                // Inverse CDF of the kernel truncated to [0, 1].
                let (m, s) = (mus[i], sigmas[i]);
                let (lo, hi) = (phi_cdf(-m / s), phi_cdf((1.0 - m) / s));
                let p = (lo + rng.random::<f64>() * (hi - lo)).clamp(1e-300, 1.0 - 1e-16);
                (m + s * phi_inv(p)).clamp(0.0, 1.0)
            }
        }
    }
}

/// Kernel widths: the larger gap to a neighbouring point (the ends of `[0, 1]` count as
/// neighbours), clipped to `[1 / min(100, n + 1), 1]`, so lone points get wide kernels and
/// crowded ones narrow kernels, but never narrower than the data can support.
fn bandwidths(mus: &[f64]) -> Vec<f64> {
    let n = mus.len();
    let min_sigma = 1.0 / (n as f64 + 1.0).min(100.0);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
    let mut sigmas = vec![1.0; n];
    for (rank, &i) in order.iter().enumerate() {
        let left = if rank == 0 {
            mus[i]
        } else {
            mus[i] - mus[order[rank - 1]]
        };
        let right = if rank + 1 == n {
            1.0 - mus[i]
        } else {
            mus[order[rank + 1]] - mus[i]
        };
        sigmas[i] = left.max(right).clamp(min_sigma, 1.0);
    }
    sigmas
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn integrate(e: &Estimator) -> f64 {
        let n = 20_000;
        (0..n)
            .map(|i| e.log_pdf((i as f64 + 0.5) / n as f64).exp())
            .sum::<f64>()
            / n as f64
    }

    #[test]
    fn parzen_density_integrates_to_one_and_peaks_at_points() {
        let e = Estimator::fit(Dim::Continuous, &[0.02, 0.3, 0.31, 0.9], 1.0);
        assert!((integrate(&e) - 1.0).abs() < 1e-3, "{}", integrate(&e));
        assert!(e.log_pdf(0.305) > e.log_pdf(0.6));
        let empty = Estimator::fit(Dim::Continuous, &[], 1.0);
        assert!(
            empty.log_pdf(0.4).abs() < 1e-12,
            "the prior alone is uniform"
        );
    }

    #[test]
    fn parzen_samples_stay_in_the_unit_interval_near_the_points() {
        let e = Estimator::fit(Dim::Continuous, &[0.0, 0.01, 1.0, 0.99, 0.995], 0.5);
        let mut rng = StdRng::seed_from_u64(3);
        let xs: Vec<f64> = (0..2000).map(|_| e.sample(&mut rng)).collect();
        assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
        let middle = xs.iter().filter(|x| (0.3..0.7).contains(*x)).count();
        assert!(middle < 600, "{middle} of 2000 in the empty middle");
    }

    #[test]
    fn categorical_is_smoothed_and_favours_observed_choices() {
        let k = 4;
        let at = |i: usize| (i as f64 + 0.5) / k as f64;
        let e = Estimator::fit(Dim::Categorical(k), &[at(2), at(2), at(0)], 1.0);
        let p: Vec<f64> = (0..k).map(|i| e.log_pdf(at(i)).exp()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[2] > p[0] && p[0] > p[1]);
        assert!(p[1] > 0.0 && p[3] > 0.0, "unseen choices keep some mass");
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            let x = e.sample(&mut rng);
            assert_eq!(
                x,
                at(Dim::Categorical(k).index(x)),
                "samples sit on choices"
            );
            counts[Dim::Categorical(k).index(x)] += 1;
        }
        assert!(counts[2] > counts[0] && counts[0] > counts[1], "{counts:?}");
    }

    #[test]
    fn suggest_waits_for_startup_and_prefers_the_good_region() {
        let dims = [Dim::Continuous, Dim::Categorical(3)];
        let cfg = TpeConfig::default();
        let mut rng = StdRng::seed_from_u64(7);
        // Loss is low near x = 0.2 with choice 1.
        let obs: Vec<Observation> = (0..30)
            .map(|i| {
                let x = (i as f64 * 0.37) % 1.0;
                let c = i % 3;
                let loss = (x - 0.2).powi(2) + if c == 1 { 0.0 } else { 0.5 };
                Observation {
                    point: vec![x, (c as f64 + 0.5) / 3.0],
                    loss: Some(loss),
                }
            })
            .collect();
        assert!(suggest(&dims, &obs[..cfg.startup(2) - 1], &cfg, &mut rng).is_none());
        let cands = suggest(&dims, &obs, &cfg, &mut rng).unwrap();
        assert_eq!(cands.len(), cfg.n_candidates);
        let best = &cands[0];
        assert!((best[0] - 0.2).abs() < 0.2, "{best:?}");
        assert_eq!(dims[1].index(best[1]), 1, "{best:?}");
    }

    /// The loss of the valued observations: low near x = 0.2.
    fn bowl() -> Vec<Observation> {
        (0..24)
            .map(|i| {
                let x = (i as f64 * 0.37 + 0.05) % 1.0;
                Observation {
                    point: vec![x],
                    loss: Some((x - 0.2).powi(2)),
                }
            })
            .collect()
    }

    /// Mean distance of the top suggestion from x = 0.2 over many seeds.
    fn mean_distance_from_best(obs: &[Observation]) -> f64 {
        let dims = [Dim::Continuous];
        let cfg = TpeConfig::default();
        let n = 40;
        (0..n)
            .map(|seed| {
                let mut rng = StdRng::seed_from_u64(seed);
                let cands = suggest(&dims, obs, &cfg, &mut rng).unwrap();
                (cands[0][0] - 0.2).abs()
            })
            .sum::<f64>()
            / n as f64
    }

    #[test]
    fn points_in_flight_push_the_next_proposals_away_from_them() {
        let base = bowl();
        let alone = mean_distance_from_best(&base);
        // Three proposals already in flight at the most promising spot, as the constant liar
        // enters them: with the worst loss seen.
        let worst = base.iter().filter_map(|o| o.loss).fold(f64::MIN, f64::max);
        let mut with_pending = base.clone();
        with_pending.extend((0..3).map(|k| Observation {
            point: vec![0.19 + 0.01 * k as f64],
            loss: Some(worst),
        }));
        let pushed = mean_distance_from_best(&with_pending);
        assert!(
            pushed > alone * 1.5,
            "in flight: {pushed:.4} from the best spot, alone: {alone:.4}"
        );
    }

    #[test]
    fn in_flight_history_entries_become_liars_with_the_worst_loss() {
        let spec = ParamSpec {
            name: "lr".into(),
            file: String::new(),
            pattern: String::new(),
            domain: ParamDomain::Range {
                min: 0.0,
                max: 1.0,
                log: false,
                integer: false,
            },
            env: Some("LR".into()),
            default: None,
        };
        let entry = |seq: i64, lr: &str, status: AttemptStatus, value: Option<f64>| HistoryEntry {
            seq,
            hypothesis: String::new(),
            status,
            params: Some([("lr".to_string(), lr.to_string())].into_iter().collect()),
            value,
        };
        let history = [
            entry(2, "0.1", AttemptStatus::Discarded, Some(3.0)),
            entry(3, "0.4", AttemptStatus::Kept, Some(1.0)),
            entry(4, "0.7", AttemptStatus::Queued, None),
            entry(5, "0.9", AttemptStatus::Running, None),
            entry(6, "0.5", AttemptStatus::Rejected, None),
        ];
        let obs = observations(&[spec], &history, Goal::Minimize, None);
        let losses: Vec<(f64, Option<f64>)> = obs.iter().map(|o| (o.point[0], o.loss)).collect();
        assert_eq!(
            losses,
            vec![
                (0.1, Some(3.0)),
                (0.4, Some(1.0)),
                (0.7, Some(3.0)),
                (0.9, Some(3.0))
            ],
            "the queued and running points take the worst loss; a rejected one is left out"
        );
    }

    #[test]
    fn failures_count_as_bad() {
        let dims = [Dim::Continuous];
        let mut obs: Vec<Observation> = (0..10)
            .map(|i| Observation {
                point: vec![0.05 * i as f64],
                loss: Some(1.0),
            })
            .collect();
        // Everything above 0.5 failed; one valued point there is no better than the rest.
        obs.extend((0..10).map(|i| Observation {
            point: vec![0.55 + 0.045 * i as f64],
            loss: None,
        }));
        let mut rng = StdRng::seed_from_u64(11);
        let with = suggest(&dims, &obs, &TpeConfig::default(), &mut rng).unwrap();
        assert!(with[0][0] < 0.55, "{:?}", with[0]);
    }
}
