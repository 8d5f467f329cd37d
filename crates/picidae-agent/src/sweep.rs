//! The built-in sweep agent: proposes values for the parameters a contract declares inside its
//! editable files, writes them in place, and states the change as its hypothesis
//! ("lr 0.01 → 0.03").
//!
//! Sampling happens on the unit hypercube (each parameter mapped through its domain: log scale,
//! integer rounding, choices), so a model-based sampler (TPE, CMA-ES) only has to implement
//! [`Sampler`]'s contract: history of (unit point, value) in, next unit point out. The random
//! sampler is seeded by the agent seed and the attempt number, so a resumed loop proposes the
//! same thing again rather than something new.

use std::collections::BTreeMap;

use picidae_core::params::describe_change;
use picidae_core::{Assignment, ParamSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{Agent, AgentContext, AgentError, Proposal};

/// How the next point is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// Independent uniform draws on the unit scale of every parameter.
    #[default]
    Random,
}

impl Sampler {
    pub fn as_str(self) -> &'static str {
        match self {
            Sampler::Random => "random",
        }
    }
}

pub struct SweepAgent {
    sampler: Sampler,
    seed: u64,
}

impl SweepAgent {
    pub fn new(sampler: Sampler, seed: u64) -> SweepAgent {
        SweepAgent { sampler, seed }
    }

    fn sample(&self, params: &[ParamSpec], rng: &mut StdRng) -> Assignment {
        match self.sampler {
            Sampler::Random => params
                .iter()
                .map(|p| (p.name.clone(), p.from_unit(rng.random::<f64>())))
                .collect(),
        }
    }
}

fn read_file(ctx: &AgentContext<'_>, file: &str) -> Result<String, AgentError> {
    let path = ctx.workspace.join(file);
    std::fs::read_to_string(&path).map_err(|source| AgentError::Io {
        path: path.display().to_string(),
        source,
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

/// Write an assignment into the workspace's files, one read and one write per file.
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
        let path = ctx.workspace.join(file);
        std::fs::write(&path, text).map_err(|source| AgentError::Io {
            path: path.display().to_string(),
            source,
        })?;
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
        let current = current_assignment(ctx)?;
        let tried: Vec<&Assignment> = ctx
            .history
            .iter()
            .filter_map(|h| h.params.as_ref())
            .collect();
        let mut rng = StdRng::seed_from_u64(
            self.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(ctx.attempt_seq as u64),
        );
        for _ in 0..256 {
            let next = self.sample(&ctx.contract.params, &mut rng);
            if next == current || tried.contains(&&next) {
                continue;
            }
            write_assignment(ctx, &next)?;
            return Ok(Proposal {
                hypothesis: describe_change(&current, &next),
                params: Some(next),
                transcript: None,
                cost: Default::default(),
            });
        }
        Err(AgentError::Exhausted)
    }
}
