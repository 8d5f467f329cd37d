//! The built-in sweep agent: proposes values for the parameters a contract declares inside its
//! editable files, writes them in place, and states the change as its hypothesis
//! ("lr 0.01 → 0.03").
//!
//! Sampling happens on the unit hypercube (each parameter mapped through its domain: log scale,
//! integer rounding, choices), so a model-based sampler only has to implement [`Sampler`]'s
//! contract: history of (unit point, value) in, next unit point out. [`Sampler::Random`] draws
//! uniformly; [`Sampler::Tpe`] fits a Tree-structured Parzen Estimator ([`crate::tpe`]) to the
//! history once it has enough observations. Both are seeded by the agent seed and the attempt
//! number, so a resumed loop proposes the same thing again rather than something new, and neither
//! proposes an assignment already in the history or the one currently written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use picidae_core::params::describe_change;
use picidae_core::{Assignment, Goal, ParamSpec};
use picidae_exec::safe_fs;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::tpe::{self, Dim, TpeConfig};

mod plan;

use crate::{Agent, AgentContext, AgentError, HistoryEntry, Proposal};
pub use plan::SweepPlan;

/// How the next point is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// Independent uniform draws on the unit scale of every parameter.
    #[default]
    Random,
    /// Tree-structured Parzen Estimator over the history (uniform draws until it has enough).
    Tpe,
}

impl Sampler {
    pub const ALL: &'static [Sampler] = &[Sampler::Random, Sampler::Tpe];

    pub fn as_str(self) -> &'static str {
        match self {
            Sampler::Random => "random",
            Sampler::Tpe => "tpe",
        }
    }
}

impl std::fmt::Display for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Sampler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sampler::ALL
            .iter()
            .copied()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown sampler {s:?} (expected random or tpe)"))
    }
}

/// Everything a sampler looks at for one proposal, without files: what [`SweepAgent::next`]
/// needs, and what `propose` gathers from its context.
#[derive(Debug, Clone, Copy)]
pub struct SweepInput<'a> {
    pub params: &'a [ParamSpec],
    /// Direction of the primary metric.
    pub goal: Goal,
    /// Earlier attempts, oldest first.
    pub history: &'a [HistoryEntry],
    /// The assignment currently written (the frontier's).
    pub current: &'a Assignment,
    /// The frontier's primary value, the value of `current`.
    pub current_value: Option<f64>,
    /// Sequence number the attempt will get (part of the random seed).
    pub attempt_seq: i64,
}

/// Uniform draws after the model's candidates are all taken.
const RANDOM_TRIES: usize = 256;
/// Fresh rounds of model candidates before falling back to uniform draws.
const TPE_ROUNDS: usize = 4;

/// The sweep agent: a [`Sampler`], its seed, and TPE's settings (the defaults unless set).
pub struct SweepAgent {
    sampler: Sampler,
    seed: u64,
    tpe: TpeConfig,
}

impl SweepAgent {
    pub fn new(sampler: Sampler, seed: u64) -> SweepAgent {
        SweepAgent {
            sampler,
            seed,
            tpe: TpeConfig::default(),
        }
    }

    /// The same agent with other TPE settings.
    pub fn with_tpe_config(mut self, cfg: TpeConfig) -> SweepAgent {
        self.tpe = cfg;
        self
    }

    /// The next assignment: deterministic in the seed, the attempt number and the history; never
    /// one already tried or the current one. [`AgentError::Exhausted`] when none is found.
    pub fn next(&self, input: &SweepInput<'_>) -> Result<Assignment, AgentError> {
        self.next_planned(input, &SweepPlan::default())
    }

    /// [`next`](Self::next) under a program.md's plan: its sampler, only its parameters (the
    /// others keep their current values), and no further than its radius from the current
    /// point on any varied parameter's unit scale.
    pub fn next_planned(
        &self,
        input: &SweepInput<'_>,
        plan: &SweepPlan,
    ) -> Result<Assignment, AgentError> {
        let tried: BTreeSet<&Assignment> = input
            .history
            .iter()
            .filter_map(|h| h.params.as_ref())
            .chain(std::iter::once(input.current))
            .collect();
        let mut rng = StdRng::seed_from_u64(
            self.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(input.attempt_seq as u64),
        );
        let varied: Vec<ParamSpec> = input
            .params
            .iter()
            .filter(|p| plan.varies(&p.name))
            .cloned()
            .collect();
        // Where the current point sits on each varied parameter (None: not a domain value).
        let centre: Vec<Option<f64>> = varied
            .iter()
            .map(|p| input.current.get(&p.name).and_then(|v| p.to_unit(v)))
            .collect();
        let whole = |part: Assignment| -> Assignment {
            let mut a = input.current.clone();
            a.extend(part);
            a
        };
        let near = |a: &Assignment| match plan.radius {
            None => true,
            Some(r) => varied.iter().zip(&centre).all(|(p, c)| {
                match (c, a.get(&p.name).and_then(|v| p.to_unit(v))) {
                    (Some(c), Some(x)) => (x - c).abs() <= r + 1e-9,
                    _ => true,
                }
            }),
        };
        if plan.sampler.unwrap_or(self.sampler) == Sampler::Tpe {
            let dims: Vec<Dim> = varied.iter().map(Dim::of).collect();
            let frontier = input.current_value.map(|v| (input.current, v));
            let obs = tpe::observations(&varied, input.history, input.goal, frontier);
            for _ in 0..TPE_ROUNDS {
                let Some(cands) = tpe::suggest(&dims, &obs, &self.tpe, &mut rng) else {
                    break;
                };
                if let Some(a) = cands
                    .iter()
                    .map(|x| whole(tpe::assignment_at(&varied, x)))
                    .find(|a| !tried.contains(a) && near(a))
                {
                    return Ok(a);
                }
            }
        }
        (0..RANDOM_TRIES)
            .map(|_| {
                whole(
                    varied
                        .iter()
                        .zip(&centre)
                        .map(|(p, c)| {
                            let u = rng.random::<f64>();
                            let u = match (plan.radius, c) {
                                (Some(r), Some(c)) => c + r * (2.0 * u - 1.0),
                                _ => u,
                            };
                            (p.name.clone(), p.from_unit(u))
                        })
                        .collect(),
                )
            })
            .find(|a| !tried.contains(a))
            .ok_or(AgentError::Exhausted)
    }
}

/// The largest parameter file the sweep reads.
const MAX_PARAM_FILE: u64 = 16 * 1024 * 1024;

/// A parameter file of the checkout, read without following a link: a checkout holds whatever
/// earlier attempts committed, links included ([`safe_fs::read_beneath`]).
fn read_file(ctx: &AgentContext<'_>, file: &str) -> Result<String, AgentError> {
    let bytes = safe_fs::read_beneath(ctx.workspace, Path::new(file), MAX_PARAM_FILE)?;
    String::from_utf8(bytes).map_err(|_| AgentError::Io {
        path: ctx.workspace.join(file).display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// The assignment currently written in the workspace's files.
pub fn current_assignment(ctx: &AgentContext<'_>) -> Result<Assignment, AgentError> {
    let mut out = Assignment::new();
    for p in &ctx.contract.params {
        if p.is_env() {
            let v = ctx
                .frontier_params
                .and_then(|a| a.get(&p.name).cloned())
                .or_else(|| p.default.clone())
                .unwrap_or_default();
            out.insert(p.name.clone(), v);
            continue;
        }
        let text = read_file(ctx, &p.file)?;
        out.insert(p.name.clone(), p.read(&text)?);
    }
    Ok(out)
}

/// Write an assignment into the workspace's files, one read and one write per file, each opened
/// below the workspace without following links.
pub fn write_assignment(ctx: &AgentContext<'_>, a: &Assignment) -> Result<(), AgentError> {
    let mut by_file: BTreeMap<&str, Vec<&ParamSpec>> = BTreeMap::new();
    for p in ctx.contract.params.iter().filter(|p| !p.is_env()) {
        by_file.entry(p.file.as_str()).or_default().push(p);
    }
    for (file, params) in by_file {
        let mut text = read_file(ctx, file)?;
        for p in params {
            if let Some(v) = a.get(&p.name) {
                text = p.write(&text, v)?;
            }
        }
        // Never through a link: a committed `params.yaml -> /anywhere`, or a linked directory
        // on the way, is refused rather than followed out of the checkout.
        safe_fs::write_beneath(ctx.workspace, Path::new(file), text.as_bytes())?;
    }
    Ok(())
}

impl Agent for SweepAgent {
    fn name(&self) -> String {
        format!("sweep:{}", self.sampler.as_str())
    }

    /// A parameter sweep cannot read ideas; they wait for an agent that can.
    fn uses_followups(&self) -> bool {
        false
    }

    /// Only file parameters need a checkout; a sweep of environment parameters edits nothing.
    fn needs_checkout(&self, contract: &picidae_core::Contract) -> bool {
        contract.params.iter().any(|p| !p.is_env())
    }

    fn propose(&mut self, ctx: &AgentContext<'_>) -> Result<Proposal, AgentError> {
        if ctx.contract.params.is_empty() {
            return Err(AgentError::Config(
                "the sweep agent needs [[param]] entries in the contract".into(),
            ));
        }
        let known: Vec<&str> = ctx
            .contract
            .params
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let plan = SweepPlan::parse(ctx.program_md, &known)?;
        let current = current_assignment(ctx)?;
        let next = self.next_planned(
            &SweepInput {
                params: &ctx.contract.params,
                goal: ctx.contract.primary().goal,
                history: ctx.history,
                current: &current,
                current_value: ctx.frontier_value,
                attempt_seq: ctx.attempt_seq,
            },
            &plan,
        )?;
        write_assignment(ctx, &next)?;
        Ok(Proposal {
            hypothesis: describe_change(&current, &next),
            params: Some(next),
            transcript: None,
            cost: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use picidae_core::{AttemptStatus, ParamDomain};

    use super::*;

    fn range(name: &str, min: f64, max: f64) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            file: String::new(),
            pattern: String::new(),
            domain: ParamDomain::Range {
                min,
                max,
                log: false,
                integer: false,
            },
            env: Some(name.to_uppercase()),
            default: None,
        }
    }

    fn choice(name: &str, values: &[&str]) -> ParamSpec {
        ParamSpec {
            domain: ParamDomain::Choice {
                values: values.iter().map(|v| v.to_string()).collect(),
            },
            ..range(name, 0.0, 1.0)
        }
    }

    fn assign(pairs: &[(&str, &str)]) -> Assignment {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn num(a: &Assignment, k: &str) -> f64 {
        a[k].parse().unwrap()
    }

    /// A keep/revert loop of `n` proposals after a baseline at `start` (which, like the
    /// harness's baseline, has no recorded assignment); returns the proposals with their values.
    fn simulate(
        agent: &SweepAgent,
        params: &[ParamSpec],
        goal: Goal,
        start: Assignment,
        n: usize,
        f: &dyn Fn(&Assignment) -> f64,
    ) -> Vec<(Assignment, f64)> {
        let mut current_value = f(&start);
        let mut current = start;
        let mut history = vec![HistoryEntry {
            seq: 1,
            hypothesis: "baseline".into(),
            status: AttemptStatus::Kept,
            params: None,
            value: Some(current_value),
        }];
        let mut out = Vec::new();
        for i in 0..n {
            let seq = history.len() as i64 + 1;
            let next = agent
                .next(&SweepInput {
                    params,
                    goal,
                    history: &history,
                    current: &current,
                    current_value: Some(current_value),
                    attempt_seq: seq,
                })
                .unwrap_or_else(|e| panic!("proposal {i}: {e}"));
            let v = f(&next);
            let keep = goal.improves(v, current_value, 0.0);
            history.push(HistoryEntry {
                seq,
                hypothesis: String::new(),
                status: if keep {
                    AttemptStatus::Kept
                } else {
                    AttemptStatus::Discarded
                },
                params: Some(next.clone()),
                value: Some(v),
            });
            if keep {
                current = next.clone();
                current_value = v;
            }
            out.push((next, v));
        }
        out
    }

    fn quadratic(a: &Assignment) -> f64 {
        let (x, y) = (num(a, "x") - 1.3, num(a, "y") + 2.1);
        x * x + y * y + 0.5 * x * y
    }

    fn quadratic_space() -> (Vec<ParamSpec>, Assignment) {
        (
            vec![range("x", -5.0, 5.0), range("y", -5.0, 5.0)],
            assign(&[("x", "-4.0"), ("y", "4.0")]),
        )
    }

    fn best_of(sampler: Sampler, seed: u64, n: usize) -> f64 {
        let (params, start) = quadratic_space();
        let agent = SweepAgent::new(sampler, seed);
        simulate(&agent, &params, Goal::Minimize, start, n, &quadratic)
            .iter()
            .map(|(_, v)| *v)
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn tpe_beats_random_on_a_quadratic() {
        let seeds = 1..=10u64;
        let mean = |s: Sampler| seeds.clone().map(|seed| best_of(s, seed, 40)).sum::<f64>() / 10.0;
        let (random, tpe) = (mean(Sampler::Random), mean(Sampler::Tpe));
        // Both numbers are computed here; TPE should not merely win but win clearly.
        assert!(
            tpe < 0.5 * random,
            "mean best after 40: tpe {tpe:.5} vs random {random:.5}"
        );
    }

    #[test]
    fn maximising_the_negation_proposes_the_same_points() {
        let (params, start) = quadratic_space();
        let agent = SweepAgent::new(Sampler::Tpe, 5);
        let min = simulate(
            &agent,
            &params,
            Goal::Minimize,
            start.clone(),
            25,
            &quadratic,
        );
        let max = simulate(&agent, &params, Goal::Maximize, start, 25, &|a| {
            -quadratic(a)
        });
        let points = |r: &[(Assignment, f64)]| r.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>();
        assert_eq!(points(&min), points(&max));
    }

    #[test]
    fn tpe_learns_the_best_choice() {
        let params = vec![
            choice("act", &["relu", "tanh", "gelu", "silu", "elu"]),
            range("x", 0.0, 1.0),
        ];
        let start = assign(&[("act", "relu"), ("x", "0.1")]);
        let f = |a: &Assignment| {
            (num(a, "x") - 0.6).powi(2) + if a["act"] == "gelu" { 0.0 } else { 1.0 }
        };
        let share = |sampler: Sampler| {
            let mut hits = 0;
            let mut total = 0;
            for seed in 0..5 {
                let agent = SweepAgent::new(sampler, seed);
                let runs = simulate(&agent, &params, Goal::Minimize, start.clone(), 30, &f);
                // After TPE's startup (2 dims: 5 observations, baseline included).
                for (a, _) in &runs[10..] {
                    total += 1;
                    hits += usize::from(a["act"] == "gelu");
                }
            }
            hits as f64 / total as f64
        };
        let (random, tpe) = (share(Sampler::Random), share(Sampler::Tpe));
        assert!(
            tpe > 0.5 && tpe > random,
            "share of the best choice: tpe {tpe:.2} vs random {random:.2}"
        );
    }

    #[test]
    fn proposals_are_deterministic_and_seeded() {
        let (params, start) = quadratic_space();
        let run = |seed| {
            let agent = SweepAgent::new(Sampler::Tpe, seed);
            simulate(
                &agent,
                &params,
                Goal::Minimize,
                start.clone(),
                20,
                &quadratic,
            )
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn never_proposes_a_tried_or_the_current_assignment() {
        let params = vec![choice("n", &["1", "2", "3", "4"])];
        let entry = |seq, v: &str| HistoryEntry {
            seq,
            hypothesis: String::new(),
            status: AttemptStatus::Discarded,
            params: Some(assign(&[("n", v)])),
            value: Some(seq as f64),
        };
        let history = vec![entry(1, "1"), entry(2, "2")];
        let current = assign(&[("n", "3")]);
        for sampler in Sampler::ALL {
            let agent = SweepAgent::new(*sampler, 9).with_tpe_config(TpeConfig {
                n_startup: Some(1),
                ..Default::default()
            });
            let input = SweepInput {
                params: &params,
                goal: Goal::Minimize,
                history: &history,
                current: &current,
                current_value: Some(0.5),
                attempt_seq: 3,
            };
            assert_eq!(
                agent.next(&input).unwrap(),
                assign(&[("n", "4")]),
                "{sampler}"
            );
            let full = [history.clone(), vec![entry(3, "4")]].concat();
            assert!(matches!(
                agent.next(&SweepInput {
                    history: &full,
                    ..input
                }),
                Err(AgentError::Exhausted)
            ));
        }
    }

    #[test]
    fn sampler_names() {
        let spec: crate::AgentSpec =
            serde_json::from_str(r#"{"kind":"sweep","sampler":"tpe","seed":2}"#).unwrap();
        assert_eq!(
            spec,
            crate::AgentSpec::Sweep {
                sampler: Sampler::Tpe,
                seed: 2
            }
        );
        assert_eq!(spec.label(), "sweep:tpe");
        let default: crate::AgentSpec = serde_json::from_str(r#"{"kind":"sweep"}"#).unwrap();
        assert_eq!(default.label(), "sweep:random");
        for s in Sampler::ALL {
            assert_eq!(s.as_str().parse::<Sampler>().unwrap(), *s);
        }
        assert!("cma".parse::<Sampler>().is_err());
    }

    /// A sweep of `conf/params.txt` in `workspace`, one turn.
    fn propose_in(workspace: &std::path::Path) -> Result<Proposal, AgentError> {
        let contract = picidae_core::Contract::parse(
            "[benchmark]\nname = \"d\"\n[boundary]\neditable = [\"conf/params.txt\"]\n\
             [run]\ncommand = \"true\"\ntime_budget = 1\ntimeout = 1\n\
             [metrics.m]\ngoal = \"minimize\"\n\
             [[param]]\nname = \"x\"\nfile = \"conf/params.txt\"\npattern = '^x = (\\S+)$'\n\
             min = 0.0\nmax = 1.0\n",
            std::path::Path::new("picidae.toml"),
        )
        .unwrap();
        let ctx = AgentContext {
            program: "p",
            program_md: "",
            contract: &contract,
            workspace,
            frontier_value: None,
            frontier_metrics: &[],
            frontier_params: None,
            history: &[],
            in_flight: &[],
            attempt_seq: 2,
            attempt_dir: workspace,
            scratch: workspace,
            memory: "",
            followups: &[],
            project_dir: None,
        };
        SweepAgent::new(Sampler::Random, 1).propose(&ctx)
    }

    #[test]
    fn parameter_files_are_written_in_place_never_through_a_link() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let target = outside.join("params.txt");
        std::fs::write(&target, "x = 0.5\n").unwrap();

        let plain = tmp.path().join("plain");
        std::fs::create_dir_all(plain.join("conf")).unwrap();
        std::fs::write(plain.join("conf/params.txt"), "x = 0.5\n").unwrap();
        let p = propose_in(&plain).unwrap();
        let x = &p.params.unwrap()["x"];
        assert_eq!(
            std::fs::read_to_string(plain.join("conf/params.txt")).unwrap(),
            format!("x = {x}\n")
        );

        // The file a link out of the checkout, or the directory on the way one.
        let linked_file = tmp.path().join("linked-file");
        std::fs::create_dir_all(linked_file.join("conf")).unwrap();
        symlink(&target, linked_file.join("conf/params.txt")).unwrap();
        let linked_dir = tmp.path().join("linked-dir");
        std::fs::create_dir(&linked_dir).unwrap();
        symlink(&outside, linked_dir.join("conf")).unwrap();
        for (ws, link) in [(&linked_file, "conf/params.txt"), (&linked_dir, "conf")] {
            let e = propose_in(ws).unwrap_err();
            assert!(matches!(e, AgentError::Unsafe(_)), "{e}");
            let msg = e.to_string();
            assert!(msg.contains("through a symlink"), "{msg}");
            assert!(msg.contains(&format!("/{link}")), "{msg}");
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x = 0.5\n");
    }

    #[test]
    fn a_plan_varies_only_its_parameters_and_stays_within_its_radius() {
        let params = [range("a", 0.0, 10.0), range("b", 0.0, 10.0)];
        let current = assign(&[("a", "5"), ("b", "5")]);
        let plan = SweepPlan {
            sampler: None,
            params: Some(vec!["a".into()]),
            radius: Some(0.1),
        };
        for sampler in Sampler::ALL {
            let agent = SweepAgent::new(*sampler, 7);
            let mut history = Vec::new();
            for seq in 2..30 {
                let next = agent
                    .next_planned(
                        &SweepInput {
                            params: &params,
                            goal: Goal::Minimize,
                            history: &history,
                            current: &current,
                            current_value: Some(5.0),
                            attempt_seq: seq,
                        },
                        &plan,
                    )
                    .unwrap();
                assert_eq!(next["b"], "5", "{sampler}: {next:?}");
                let a = num(&next, "a");
                assert!((4.0..=6.0).contains(&a), "{sampler}: a = {a}");
                history.push(HistoryEntry {
                    seq,
                    hypothesis: String::new(),
                    status: AttemptStatus::Discarded,
                    params: Some(next.clone()),
                    value: Some((a - 3.0).abs()),
                });
            }
        }
        // Without a radius the same plan reaches the whole domain of `a`.
        let wide = SweepPlan {
            radius: None,
            ..plan
        };
        let agent = SweepAgent::new(Sampler::Random, 7);
        let far = (2..40).any(|seq| {
            let next = agent
                .next_planned(
                    &SweepInput {
                        params: &params,
                        goal: Goal::Minimize,
                        history: &[],
                        current: &current,
                        current_value: Some(5.0),
                        attempt_seq: seq,
                    },
                    &wide,
                )
                .unwrap();
            (num(&next, "a") - 5.0).abs() > 2.0
        });
        assert!(far);
    }
}
