//! The findings layer's judgement: is a candidate's improvement real?
//!
//! A candidate is validated only when every one of these holds:
//! 1. Welch's t-test (unequal variances; the seed samples are small and their spreads differ
//!    between configurations) gives a confidence interval on the effect whose lower bound is
//!    above zero;
//! 2. its one-sided p-value, adjusted by Benjamini–Hochberg over the program's whole testing
//!    family (every verified candidate plus every explored attempt that was screened out, at
//!    p = 1), is at most `alpha` — so trying many ideas does not manufacture wins. Under
//!    sequential verification this rule is the sequential test itself: each candidate is kept
//!    with probability at most `alpha` when it is not better, however many are tried;
//! 3. the effect exceeds the noise floor: `max(min_improvement, noise_factor × σ_baseline /
//!    √n)`, where σ_baseline is the baseline's seed-to-seed spread on this environment — a guard
//!    against samples that happen to be unusually quiet;
//! 4. the evaluator passed calibration on the contract's gold cases, when there are any (if it
//!    did not, neither its verdict nor the candidate's can be trusted: the finding is held in
//!    `verifying`, flagged `evaluator-uncalibrated`);
//! 5. the hidden evaluator, run on the candidate's and the incumbent's artifacts, agrees:
//!    its mean over the candidate's runs is strictly better than over the incumbent's (a
//!    hidden gain of zero is no agreement, whatever the tolerance), and, when
//!    `hidden.tolerance` is set, its relative gain falls short of the visible relative gain
//!    by at most that much; otherwise the finding is refuted and flagged
//!    `suspected-overfit`. The tolerance loosens the size of the agreement, never its
//!    direction ([`hidden_agrees`]).
//!
//! [`judge`] is the pure decision; the runner gathers its inputs.

use picidae_core::contract::PolicySpec;
use picidae_core::sequential::Verdict;
use picidae_core::stats::{bh_q_for, welch};
use picidae_core::Goal;
use picidae_store::Evidence;
use serde::{Deserialize, Serialize};

/// The flags a judgement sets: the visible metric improves and the hidden one does not; the
/// evaluator failed (or lacks) calibration.
pub use picidae_core::domain::{FLAG_OVERFIT, FLAG_UNCALIBRATED};

/// What the runner knows when it judges a candidate.
#[derive(Debug, Clone)]
pub struct JudgeInput<'a> {
    pub goal: Goal,
    pub candidate: &'a [f64],
    pub incumbent: &'a [f64],
    /// Seed-to-seed standard deviation of the baseline on this environment.
    pub noise_std: Option<f64>,
    /// p-values of the rest of the program's testing family.
    pub family: &'a [f64],
    /// Hidden primary metric of the candidate's and the incumbent's runs, when evaluated.
    pub hidden: Option<HiddenSamples<'a>>,
    /// `Some(false)` when the evaluator failed calibration; `None` when there is nothing to
    /// calibrate against.
    pub calibrated: Option<bool>,
    /// The sequential test's verdict (`stepwise.rs`), which replaces Welch's test.
    pub sequential: Option<&'a SequentialEvidence>,
}

/// What the sequential test concluded at its last look, in the terms of a judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct SequentialEvidence {
    /// The test declared a win (the lower bound above the threshold).
    pub won: bool,
    /// Mean per-seed effect (positive = better) and its interval at the alpha spent.
    pub effect: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// One-sided p-value of the last look, times the looks where a keep could be declared
    /// (so it may enter the testing family as a single test's would).
    pub p_value: f64,
    /// The spread of one per-seed effect the interval used.
    pub sd: f64,
    pub seeds: usize,
    pub max_seeds: usize,
    pub alpha_spent: f64,
    pub paired: bool,
}

impl SequentialEvidence {
    /// The evidence of a decisive verdict (a Continue at the last seed counts as a loss).
    pub fn from_verdict(v: &Verdict, paired: bool, max_seeds: usize) -> SequentialEvidence {
        let s = v.stats().copied();
        SequentialEvidence {
            won: matches!(v, Verdict::Win { .. }),
            effect: s.map_or(f64::NAN, |s| s.effect),
            ci_low: s.map_or(f64::NAN, |s| s.ci_low),
            ci_high: s.map_or(f64::NAN, |s| s.ci_high),
            p_value: s.map_or(1.0, |s| s.p_value),
            sd: s.map_or(0.0, |s| s.sd),
            seeds: s.map_or(0, |s| s.k),
            max_seeds,
            alpha_spent: s.map_or(0.0, |s| s.alpha_spent),
            paired,
        }
    }

    /// The pass rule, as recorded with the finding.
    pub fn rule(&self) -> String {
        format!(
            "sequential {} test, {} of at most {} seeds, alpha {:.4} spent at this look",
            if self.paired { "paired" } else { "unpaired" },
            self.seeds,
            self.max_seeds,
            self.alpha_spent
        )
    }

    /// Why, in one line.
    pub fn reason(&self) -> String {
        format!(
            "effect {:+.6} [{:+.6}, {:+.6}] after {} seed(s) ({})",
            self.effect,
            self.ci_low,
            self.ci_high,
            self.seeds,
            self.rule()
        )
    }

    pub fn evidence(&self, confidence: f64) -> Evidence {
        Evidence {
            effect: Some(self.effect),
            ci_low: Some(self.ci_low),
            ci_high: Some(self.ci_high),
            confidence: Some(confidence),
            p_value: Some(self.p_value),
            n_candidate: Some(self.seeds as i64),
            rule: Some(self.rule()),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct HiddenSamples<'a> {
    pub goal: Goal,
    pub candidate: &'a [f64],
    pub incumbent: &'a [f64],
    pub tolerance: Option<f64>,
}

/// Whether the hidden evaluator agrees with a visible gain: `hidden_gain` (positive is
/// better) must be above zero; with a tolerance, the hidden relative gain (against
/// `hidden_incumbent`) must also reach the visible relative gain minus the tolerance. A
/// relative gain is undefined against an incumbent of zero; the size is then not checked.
pub fn hidden_agrees(
    hidden_gain: f64,
    hidden_incumbent: f64,
    visible_rel_gain: Option<f64>,
    tolerance: Option<f64>,
) -> bool {
    if !(hidden_gain.is_finite() && hidden_gain > 0.0) {
        return false;
    }
    match (tolerance, visible_rel_gain) {
        (Some(t), Some(v)) if hidden_incumbent != 0.0 && hidden_incumbent.is_finite() => {
            hidden_gain / hidden_incumbent.abs() >= v - t
        }
        _ => true,
    }
}

/// The outcome of judging a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub validated: bool,
    /// Validation is withheld for a reason other than the evidence (failed calibration).
    pub blocked: bool,
    pub evidence: Evidence,
    /// Why, in one line.
    pub reason: String,
}

fn mean(xs: &[f64]) -> Option<f64> {
    let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The test a judgement rests on: Welch's, or the sequential test's last look.
struct Tested {
    effect: f64,
    ci_low: f64,
    ci_high: f64,
    p_value: f64,
    /// The spread of one seed the noise floor is measured in.
    seed_sd: f64,
}

pub fn judge(input: &JudgeInput<'_>, policy: &PolicySpec) -> Judgement {
    let mut ev = Evidence {
        confidence: Some(policy.confidence),
        n_candidate: Some(input.candidate.len() as i64),
        n_incumbent: Some(input.incumbent.len() as i64),
        ..Default::default()
    };
    let refuted = |ev: Evidence, reason: String| Judgement {
        validated: false,
        blocked: false,
        evidence: ev,
        reason,
    };
    let cmp = match input.sequential {
        Some(seq) => {
            ev = seq.evidence(policy.confidence);
            ev.n_incumbent = Some(input.incumbent.len() as i64);
            Tested {
                effect: seq.effect,
                ci_low: seq.ci_low,
                ci_high: seq.ci_high,
                p_value: seq.p_value,
                seed_sd: seq.sd,
            }
        }
        None => {
            let Some(c) = welch(
                input.candidate,
                input.incumbent,
                input.goal == Goal::Maximize,
                policy.confidence,
            ) else {
                return refuted(
                    ev,
                    format!(
                        "not enough valid seeds to test ({} candidate, {} incumbent; need 2 each)",
                        input.candidate.len(),
                        input.incumbent.len()
                    ),
                );
            };
            ev.rule = Some(format!(
                "Welch's t-test, {} candidate and {} incumbent seeds",
                c.n_candidate, c.n_incumbent
            ));
            ev.effect = Some(c.effect);
            ev.ci_low = Some(c.ci_low);
            ev.ci_high = Some(c.ci_high);
            ev.p_value = Some(c.p_value);
            Tested {
                effect: c.effect,
                ci_low: c.ci_low,
                ci_high: c.ci_high,
                p_value: c.p_value,
                seed_sd: input.noise_std.unwrap_or(0.0),
            }
        }
    };
    // Under sequential verification each candidate's test holds its own false-keep rate at
    // `alpha` over its looks; a q-value over the program's whole growing family would make
    // every further try harder to keep, until a long program could keep nothing.
    let q = match input.sequential {
        Some(_) => None,
        None => Some(bh_q_for(cmp.p_value, input.family)),
    };
    ev.q_value = q;
    // The noise of one seed: the baseline's spread, or (sequential) a per-seed effect's.
    let floor = policy
        .min_improvement
        .max(cmp.seed_sd * policy.noise_factor / (input.candidate.len().max(1) as f64).sqrt());
    ev.noise_floor = Some(floor);
    let pct = policy.confidence * 100.0;
    if input.sequential.is_some_and(|s| !s.won) {
        return refuted(ev, input.sequential.map(|s| s.reason()).unwrap_or_default());
    }
    if input.sequential.is_none() && cmp.ci_low <= 0.0 {
        return refuted(
            ev,
            format!(
                "effect {:+.6} has a {pct:.0}% interval [{:+.6}, {:+.6}] that reaches zero",
                cmp.effect, cmp.ci_low, cmp.ci_high
            ),
        );
    }
    if let Some(q) = q.filter(|q| *q > policy.alpha) {
        return refuted(
            ev,
            format!(
                "q = {q:.4} over {} tested attempts exceeds alpha {}",
                input.family.len() + 1,
                policy.alpha
            ),
        );
    }
    if cmp.effect <= floor {
        return refuted(
            ev,
            format!(
                "effect {:+.6} does not exceed the noise floor {floor:.6}",
                cmp.effect
            ),
        );
    }
    if input.calibrated == Some(false) {
        ev.flags.push(FLAG_UNCALIBRATED.into());
        return Judgement {
            validated: false,
            blocked: true,
            evidence: ev,
            reason:
                "the evaluator failed calibration on its gold cases; findings cannot be promoted"
                    .into(),
        };
    }
    if let Some(h) = input.hidden {
        match (mean(h.candidate), mean(h.incumbent)) {
            (Some(c), Some(i)) => {
                let gain = h.goal.gain(c, i);
                ev.hidden_effect = Some(gain);
                let visible_incumbent = mean(input.incumbent).filter(|m| *m != 0.0);
                let visible_rel = visible_incumbent.map(|m| cmp.effect / m.abs());
                let agrees = hidden_agrees(gain, i, visible_rel, h.tolerance);
                ev.hidden_agrees = Some(agrees);
                if !agrees {
                    ev.flags.push(FLAG_OVERFIT.into());
                    return refuted(
                        ev,
                        // The hidden number stays in the evidence (for humans); the reason,
                        // which ends up in notes an agent may read, does not carry it.
                        format!(
                            "visible metric improved by {:+.6} but the hidden evaluator disagrees: suspected overfit or gaming",
                            cmp.effect
                        ),
                    );
                }
            }
            _ => {
                ev.hidden_agrees = Some(false);
                return refuted(ev, "the hidden evaluator produced no valid result".into());
            }
        }
    }
    Judgement {
        validated: true,
        blocked: false,
        reason: format!(
            "effect {:+.6} [{:+.6}, {:+.6}], p = {:.4}{}",
            cmp.effect,
            cmp.ci_low,
            cmp.ci_high,
            cmp.p_value,
            q.map(|q| format!(", q = {q:.4}")).unwrap_or_default()
        ),
        evidence: ev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PolicySpec {
        PolicySpec {
            seeds: 5,
            baseline_seeds: 5,
            ..Default::default()
        }
    }

    const BASE: [f64; 5] = [1.00, 1.02, 0.98, 1.01, 0.99];
    const GOOD: [f64; 5] = [0.80, 0.82, 0.78, 0.81, 0.79];

    fn input<'a>(c: &'a [f64], i: &'a [f64]) -> JudgeInput<'a> {
        JudgeInput {
            goal: Goal::Minimize,
            candidate: c,
            incumbent: i,
            noise_std: Some(0.015),
            family: &[],
            hidden: None,
            calibrated: None,
            sequential: None,
        }
    }

    #[test]
    fn clear_improvement_is_validated() {
        let j = judge(&input(&GOOD, &BASE), &policy());
        assert!(j.validated, "{}", j.reason);
        let e = j.evidence;
        assert!((e.effect.unwrap() - 0.2).abs() < 1e-9);
        assert!(e.ci_low.unwrap() > 0.0 && e.p_value.unwrap() < 0.001);
    }

    #[test]
    fn a_large_family_refutes_a_marginal_win() {
        let c = [0.97, 0.99, 0.96, 0.985, 0.975];
        let alone = judge(&input(&c, &BASE), &policy());
        assert!(alone.validated, "{}", alone.reason);
        let family = vec![1.0; 200];
        let mut inp = input(&c, &BASE);
        inp.family = &family;
        let crowded = judge(&inp, &policy());
        assert!(!crowded.validated);
        assert!(crowded.reason.contains("q ="), "{}", crowded.reason);
    }

    #[test]
    fn a_sequential_win_is_not_refuted_by_the_size_of_the_family() {
        let seq = SequentialEvidence {
            won: true,
            effect: 0.03,
            ci_low: 0.01,
            ci_high: 0.05,
            p_value: 0.004,
            sd: 0.01,
            seeds: 5,
            max_seeds: 8,
            alpha_spent: 0.0167,
            paired: true,
        };
        let c = [0.97, 0.99, 0.96, 0.985, 0.975];
        let family = vec![1.0; 200];
        let mut inp = input(&c, &BASE);
        inp.family = &family;
        inp.sequential = Some(&seq);
        let j = judge(&inp, &policy());
        assert!(j.validated, "{}", j.reason);
        assert_eq!(j.evidence.q_value, None);
        assert!(!j.reason.contains("q ="), "{}", j.reason);
        // A sequential loss is refuted whatever the family.
        let lost = SequentialEvidence { won: false, ..seq };
        inp.sequential = Some(&lost);
        assert!(!judge(&inp, &policy()).validated);
    }

    #[test]
    fn noise_floor_and_hidden_and_calibration() {
        let mut p = policy();
        p.min_improvement = 0.5;
        let j = judge(&input(&GOOD, &BASE), &p);
        assert!(
            !j.validated && j.reason.contains("noise floor"),
            "{}",
            j.reason
        );

        let mut inp = input(&GOOD, &BASE);
        inp.hidden = Some(HiddenSamples {
            goal: Goal::Minimize,
            candidate: &[1.2, 1.2],
            incumbent: &[1.0, 1.0],
            tolerance: None,
        });
        let j = judge(&inp, &policy());
        assert!(!j.validated);
        assert_eq!(j.evidence.flags, vec![FLAG_OVERFIT.to_string()]);
        assert_eq!(j.evidence.hidden_agrees, Some(false));

        let mut inp = input(&GOOD, &BASE);
        inp.calibrated = Some(false);
        let j = judge(&inp, &policy());
        assert!(!j.validated && j.blocked);
    }

    #[test]
    fn a_tolerance_never_turns_no_hidden_gain_into_agreement() {
        for t in [None, Some(0.0), Some(0.05), Some(10.0)] {
            assert!(!hidden_agrees(0.0, 1.0, Some(0.1), t), "zero gain, {t:?}");
            assert!(!hidden_agrees(-0.01, 1.0, Some(0.1), t), "a loss, {t:?}");
            assert!(!hidden_agrees(f64::NAN, 1.0, Some(0.1), t), "NaN, {t:?}");
        }
        // The size: a 10% visible gain, a 6% hidden one.
        assert!(hidden_agrees(0.06, 1.0, Some(0.10), None));
        assert!(hidden_agrees(0.06, 1.0, Some(0.10), Some(0.05)));
        assert!(!hidden_agrees(0.04, 1.0, Some(0.10), Some(0.05)));
        assert!(hidden_agrees(0.04, 0.0, Some(0.10), Some(0.05)));

        // Through judge: identical hidden means refute the finding with any tolerance.
        let mut inp = input(&GOOD, &BASE);
        inp.hidden = Some(HiddenSamples {
            goal: Goal::Minimize,
            candidate: &[1.0, 1.0],
            incumbent: &[1.0, 1.0],
            tolerance: Some(0.05),
        });
        let j = judge(&inp, &policy());
        assert!(!j.validated, "{}", j.reason);
        assert_eq!(j.evidence.hidden_agrees, Some(false));
    }

    #[test]
    fn too_few_seeds_cannot_validate() {
        let j = judge(&input(&[0.5], &BASE), &policy());
        assert!(
            !j.validated && j.reason.contains("not enough"),
            "{}",
            j.reason
        );
    }
}
