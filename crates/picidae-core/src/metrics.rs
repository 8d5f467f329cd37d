//! Metrics: how they are declared, read from a run's output, and guarded.
//!
//! A run reports metrics either as lines on stdout (`name: value` or pi-autoresearch's
//! `METRIC name=value`) or as JSON objects, one per line, in the file named by
//! `$PICIDAE_METRICS`. The last value reported for a name wins. Guards turn NaN, infinities and
//! out-of-range values into an invalid run, never a win.

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

/// Parse one textual value; accepts `nan`, `inf`, `-inf` in any case so guards can see them.
fn parse_value(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches(',');
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}

/// Read the declared stdout metrics from a run's output. Unknown names are ignored; for a name
/// reported several times the last value wins.
pub fn parse_stdout<'a>(
    text: &str,
    specs: impl IntoIterator<Item = &'a MetricSpec>,
) -> MetricValues {
    let wanted: Vec<&str> = specs
        .into_iter()
        .filter(|s| s.source == MetricSource::Stdout)
        .map(|s| s.name.as_str())
        .collect();
    let mut out = MetricValues::new();
    for line in text.lines() {
        let line = line.trim();
        let (name, value) = if let Some(rest) = line.strip_prefix("METRIC ") {
            match rest.split_once('=') {
                Some((n, v)) => (n.trim(), v),
                None => continue,
            }
        } else if let Some((n, v)) = line.split_once(':') {
            (n.trim(), v)
        } else {
            continue;
        };
        if !wanted.contains(&name) {
            continue;
        }
        // Allow trailing units or comments after whitespace: `val_loss: 0.91 (best)`.
        let first = value.split_whitespace().next().unwrap_or("");
        if let Some(v) = parse_value(first) {
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// Why a JSON metrics line could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("metrics file line {line}: {message}")]
pub struct MetricsLineError {
    pub line: usize,
    pub message: String,
}

/// Read declared JSON-sourced metrics from JSON-lines text. Lines that are not JSON objects are
/// reported (with their line number) but do not stop the rest being read.
pub fn parse_json_lines<'a>(
    text: &str,
    specs: impl IntoIterator<Item = &'a MetricSpec>,
) -> (MetricValues, Vec<MetricsLineError>) {
    let wanted: Vec<&str> = specs
        .into_iter()
        .filter(|s| s.source == MetricSource::Json)
        .map(|s| s.name.as_str())
        .collect();
    let mut out = MetricValues::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(map)) => {
                for (k, v) in map {
                    if !wanted.contains(&k.as_str()) {
                        continue;
                    }
                    let value = match &v {
                        serde_json::Value::Number(n) => n.as_f64(),
                        serde_json::Value::String(s) => parse_value(s),
                        serde_json::Value::Null => Some(f64::NAN),
                        _ => None,
                    };
                    match value {
                        Some(x) => {
                            out.insert(k, x);
                        }
                        None => errors.push(MetricsLineError {
                            line: i + 1,
                            message: format!("field {k:?}: not a number: {v}"),
                        }),
                    }
                }
            }
            Ok(_) => errors.push(MetricsLineError {
                line: i + 1,
                message: "expected a JSON object".into(),
            }),
            Err(e) => errors.push(MetricsLineError {
                line: i + 1,
                message: e.to_string(),
            }),
        }
    }
    (out, errors)
}

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
    fn stdout_forms_and_last_wins() {
        let specs = [
            spec("val_loss", MetricSource::Stdout),
            spec("acc", MetricSource::Stdout),
        ];
        let v = parse_stdout(
            "step 1\nval_loss: 2.5\nMETRIC acc=0.75\nval_loss: 1.25 (final)\nother: 3\n",
            &specs,
        );
        assert_eq!(v.get("val_loss"), Some(&1.25));
        assert_eq!(v.get("acc"), Some(&0.75));
        assert!(!v.contains_key("other"));
    }

    #[test]
    fn nan_and_range_are_violations() {
        let specs = [spec("val_loss", MetricSource::Stdout)];
        let v = parse_stdout("val_loss: nan\n", &specs);
        assert!(v["val_loss"].is_nan());
        let g = check_guards(&v, &specs, "val_loss");
        assert!(matches!(g[0], Violation::NotFinite { .. }));
        let v = parse_stdout("val_loss: -1\n", &specs);
        assert!(matches!(
            check_guards(&v, &specs, "val_loss")[0],
            Violation::BelowMin { .. }
        ));
        let g = check_guards(&MetricValues::new(), &specs, "val_loss");
        assert!(matches!(g[0], Violation::Missing { .. }));
    }

    #[test]
    fn json_lines_with_bad_line_reported() {
        let specs = [spec("loss", MetricSource::Json)];
        let (v, errs) = parse_json_lines("{\"loss\": 3}\nnot json\n{\"loss\": 2.5}\n", &specs);
        assert_eq!(v["loss"], 2.5);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 2);
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
