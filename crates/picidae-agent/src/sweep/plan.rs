//! What a program.md tells the built-in sweep agent: a fenced block whose info string is
//! `sweep`, in TOML, so program.md files can be research directions for the sweep as they are
//! for an LLM (and compared in an arena without one):
//!
//! ````markdown
//! ```sweep
//! sampler = "tpe"          # or "random": overrides the agent's own
//! params = ["lr", "batch"] # vary only these; the others stay as the frontier has them
//! radius = 0.1             # draw within ±0.1 of the frontier on each parameter's unit scale
//! ```
//! ````
//!
//! Everything else in program.md is prose the sweep cannot read. A malformed block is an
//! error naming program.md, the line and the field.

use serde::Deserialize;

use super::Sampler;
use crate::AgentError;

/// The sweep's directions from program.md (all optional: the default is every parameter,
/// anywhere in its domain, with the agent's sampler).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepPlan {
    pub sampler: Option<Sampler>,
    /// The parameters to vary (`None`: all of them).
    pub params: Option<Vec<String>>,
    /// Largest step from the frontier on each parameter's unit scale, in (0, 1].
    pub radius: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    sampler: Option<String>,
    params: Option<Vec<String>>,
    radius: Option<f64>,
}

impl SweepPlan {
    /// Whether parameter `name` is varied.
    pub fn varies(&self, name: &str) -> bool {
        self.params
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p == name))
    }

    /// The plan in `program_md` (the default when it has no `sweep` block); `known` are the
    /// contract's parameter names.
    pub fn parse(program_md: &str, known: &[&str]) -> Result<SweepPlan, AgentError> {
        let Some((first_line, body)) = block(program_md) else {
            return Ok(SweepPlan::default());
        };
        let err = |line: usize, field: &str, msg: String| {
            AgentError::Config(format!(
                "program.md line {line}, sweep block field `{field}`: {msg}"
            ))
        };
        let b: Block = toml::from_str(&body).map_err(|e| {
            let line = e
                .span()
                .map_or(0, |s| body[..s.start.min(body.len())].matches('\n').count());
            AgentError::Config(format!(
                "program.md line {}, sweep block: {}",
                first_line + line,
                e.message().trim_end()
            ))
        })?;
        let line_of = |field: &str| {
            body.lines()
                .position(|l| l.trim_start().starts_with(field))
                .map_or(first_line, |i| first_line + i)
        };
        let sampler = match b.sampler {
            None => None,
            Some(s) => Some(
                s.parse::<Sampler>()
                    .map_err(|m| err(line_of("sampler"), "sampler", m))?,
            ),
        };
        if let Some(ps) = &b.params {
            if ps.is_empty() {
                return Err(err(
                    line_of("params"),
                    "params",
                    "name at least one parameter".into(),
                ));
            }
            if let Some(bad) = ps.iter().find(|p| !known.contains(&p.as_str())) {
                return Err(err(
                    line_of("params"),
                    "params",
                    format!(
                        "unknown parameter {bad:?} (the contract declares {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        if let Some(r) = b.radius {
            if !(r > 0.0 && r <= 1.0) {
                return Err(err(
                    line_of("radius"),
                    "radius",
                    format!("must be in (0, 1], got {r}"),
                ));
            }
        }
        Ok(SweepPlan {
            sampler,
            params: b.params,
            radius: b.radius,
        })
    }
}

/// The first fenced block whose info string is `sweep`: the line its body starts on
/// (1-based) and the body.
fn block(text: &str) -> Option<(usize, String)> {
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let t = line.trim_start();
        let fence = if t.starts_with("```") {
            "```"
        } else if t.starts_with("~~~") {
            "~~~"
        } else {
            continue;
        };
        if t.trim_start_matches(fence.chars().next().unwrap_or('`'))
            .trim()
            != "sweep"
        {
            continue;
        }
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with(fence) {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        return Some((i + 2, body));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["lr", "hidden", "batch"];

    #[test]
    fn a_sweep_block_is_read_and_prose_is_not() {
        let md = "# Tune the rate\n\nSmall steps around what works.\n\n```sweep\nsampler = \
                  \"tpe\"\nparams = [\"lr\"]\nradius = 0.1\n```\n\n```python\nx = 1\n```\n";
        let plan = SweepPlan::parse(md, KNOWN).unwrap();
        assert_eq!(plan.sampler, Some(Sampler::Tpe));
        assert_eq!(plan.params.as_deref(), Some(&["lr".to_string()][..]));
        assert_eq!(plan.radius, Some(0.1));
        assert!(plan.varies("lr") && !plan.varies("batch"));
        let none = SweepPlan::parse("Just prose.\n```toml\nsampler = 1\n```\n", KNOWN).unwrap();
        assert_eq!(none, SweepPlan::default());
        assert!(none.varies("batch"));
    }

    #[test]
    fn a_bad_block_names_the_line_and_the_field() {
        let md = "intro\n\n~~~sweep\nradius = 0.2\nparams = [\"lr\", \"depth\"]\n~~~\n";
        let e = SweepPlan::parse(md, KNOWN).unwrap_err().to_string();
        assert!(e.contains("program.md line 5"), "{e}");
        assert!(e.contains("`params`") && e.contains("\"depth\""), "{e}");
        let e = SweepPlan::parse("```sweep\nradius = 2.0\n```\n", KNOWN)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("`radius`"), "{e}");
        let e = SweepPlan::parse("```sweep\nsampler = \"grid\"\n```\n", KNOWN)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`sampler`") && e.contains("grid"), "{e}");
        let e = SweepPlan::parse("```sweep\nstep = 1\n```\n", KNOWN)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("step"), "{e}");
    }
}
