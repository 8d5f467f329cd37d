//! Metrics: how they are declared, read from a run's output, and guarded.
//!
//! A run reports metrics either as lines on stdout (`name: value` or pi-autoresearch's
//! `METRIC name=value`) or as JSON objects, one per line, in the file named by
//! `$PICIDAE_METRICS`; [`crate::metric_lines`] defines exactly what a report is and when it is
//! ambiguous. Guards turn NaN, infinities and out-of-range values into an invalid run, never
//! a win.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether smaller or larger is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    Minimize,
    Maximize,
}

impl Goal {
    /// True when `candidate` is better than `incumbent` by more than `min_delta`.
    pub fn improves(self, candidate: f64, incumbent: f64, min_delta: f64) -> bool {
        if !candidate.is_finite() {
            return false;
        }
        if !incumbent.is_finite() {
            return true;
        }
        match self {
            Goal::Minimize => incumbent - candidate > min_delta,
            Goal::Maximize => candidate - incumbent > min_delta,
        }
    }

    /// Signed improvement: positive means better.
    pub fn gain(self, candidate: f64, incumbent: f64) -> f64 {
        match self {
            Goal::Minimize => incumbent - candidate,
            Goal::Maximize => candidate - incumbent,
        }
    }
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Goal::Minimize => "minimize",
            Goal::Maximize => "maximize",
        })
    }
}

/// Where a metric is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricSource {
    /// `name: value` or `METRIC name=value` lines on stdout.
    #[default]
    Stdout,
    /// JSON lines in the file named by `$PICIDAE_METRICS`.
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    pub name: String,
    pub goal: Goal,
    pub source: MetricSource,
    /// Inclusive lower bound; a value below it makes the run invalid.
    pub min: Option<f64>,
    /// Inclusive upper bound; a value above it makes the run invalid.
    pub max: Option<f64>,
}

/// Values read for one run.
pub type MetricValues = BTreeMap<String, f64>;

pub use crate::metric_lines::{parse_json_lines, parse_stdout, MetricsLineError};

/// Why a run's metrics make it invalid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Violation {
    Missing {
        metric: String,
    },
    NotFinite {
        metric: String,
        value: String,
    },
    BelowMin {
        metric: String,
        value: f64,
        min: f64,
    },
    AboveMax {
        metric: String,
        value: f64,
        max: f64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Missing { metric } => write!(f, "metric {metric} was not reported"),
            Violation::NotFinite { metric, value } => write!(f, "metric {metric} is {value}"),
            Violation::BelowMin { metric, value, min } => {
                write!(f, "metric {metric} = {value} is below its minimum {min}")
            }
            Violation::AboveMax { metric, value, max } => {
                write!(f, "metric {metric} = {value} is above its maximum {max}")
            }
        }
    }
}

/// Apply the guards. The primary metric must be present; every present declared metric must be
/// finite and within its range.
pub fn check_guards<'a>(
    values: &MetricValues,
    specs: impl IntoIterator<Item = &'a MetricSpec>,
    primary: &str,
) -> Vec<Violation> {
    let mut out = Vec::new();
    if !values.contains_key(primary) {
        out.push(Violation::Missing {
            metric: primary.to_string(),
        });
    }
    for spec in specs {
        let Some(&v) = values.get(&spec.name) else {
            continue;
        };
        if !v.is_finite() {
            out.push(Violation::NotFinite {
                metric: spec.name.clone(),
                value: format!("{v}"),
            });
            continue;
        }
        if let Some(min) = spec.min {
            if v < min {
                out.push(Violation::BelowMin {
                    metric: spec.name.clone(),
                    value: v,
                    min,
                });
            }
        }
        if let Some(max) = spec.max {
            if v > max {
                out.push(Violation::AboveMax {
                    metric: spec.name.clone(),
                    value: v,
                    max,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, source: MetricSource) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            goal: Goal::Minimize,
            source,
            min: Some(0.0),
            max: None,
        }
    }

    #[test]
    fn nan_and_range_are_violations() {
        let specs = [spec("val_loss", MetricSource::Stdout)];
        let (v, _) = parse_stdout("val_loss: nan\n", &specs);
        assert!(v["val_loss"].is_nan());
        let g = check_guards(&v, &specs, "val_loss");
        assert!(matches!(g[0], Violation::NotFinite { .. }));
        let (v, _) = parse_stdout("val_loss: -1\n", &specs);
        assert!(matches!(
            check_guards(&v, &specs, "val_loss")[0],
            Violation::BelowMin { .. }
        ));
        let g = check_guards(&MetricValues::new(), &specs, "val_loss");
        assert!(matches!(g[0], Violation::Missing { .. }));
    }

    #[test]
    fn goal_improves() {
        assert!(Goal::Minimize.improves(1.0, 2.0, 0.0));
        assert!(!Goal::Minimize.improves(2.0, 1.0, 0.0));
        assert!(!Goal::Minimize.improves(1.9, 2.0, 0.5));
        assert!(Goal::Maximize.improves(3.0, 2.0, 0.0));
        assert!(!Goal::Maximize.improves(f64::NAN, 2.0, 0.0));
        assert!(Goal::Maximize.improves(1.0, f64::NAN, 0.0));
    }
}
