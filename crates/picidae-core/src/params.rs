//! Parameters declared inside editable files, for the built-in sweep agents.
//!
//! A parameter names a file, a regular expression whose first capture group is the value, and a
//! domain (a numeric range, optionally log-scaled or integer, or a list of choices). This module
//! reads the current value out of file text and writes a new one in, touching nothing else.
//!
//! A parameter may instead be passed to the run as an environment variable (`env = "LR"` with a
//! `default`): then a sweep attempt changes no file at all, needs no commit, and is identified by
//! its assignment alone (the fast path for pure hyperparameter sweeps).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    /// File relative to the benchmark directory (empty for an environment parameter).
    pub file: String,
    /// Regex (multi-line mode) whose first capture group is the value (empty for an
    /// environment parameter).
    pub pattern: String,
    pub domain: ParamDomain,
    /// Passed to runs as this environment variable instead of being written into a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The value an environment parameter has before any attempt sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ParamDomain {
    Range {
        min: f64,
        max: f64,
        log: bool,
        integer: bool,
    },
    Choice {
        values: Vec<String>,
    },
}

/// A parameter assignment: name → value as written in the file.
pub type Assignment = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("parameter {param}: pattern {pattern:?} does not match anything in {file}")]
    NoMatch {
        param: String,
        file: String,
        pattern: String,
    },
    #[error("parameter {param}: invalid pattern: {message}")]
    BadPattern { param: String, message: String },
}

impl ParamSpec {
    /// True for a parameter passed as an environment variable rather than written in a file.
    pub fn is_env(&self) -> bool {
        self.env.is_some()
    }

    fn regex(&self) -> Result<regex::Regex, ParamError> {
        regex::RegexBuilder::new(&self.pattern)
            .multi_line(true)
            .build()
            .map_err(|e| ParamError::BadPattern {
                param: self.name.clone(),
                message: e.to_string(),
            })
    }

    /// The value currently written in `text` (the first match).
    pub fn read(&self, text: &str) -> Result<String, ParamError> {
        let re = self.regex()?;
        re.captures(text)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_string())
            .ok_or_else(|| self.no_match())
    }

    /// `text` with the first match's value replaced by `value`.
    pub fn write(&self, text: &str, value: &str) -> Result<String, ParamError> {
        let re = self.regex()?;
        let caps = re.captures(text).ok_or_else(|| self.no_match())?;
        let m = caps.get(1).ok_or_else(|| self.no_match())?;
        let mut out = String::with_capacity(text.len() + value.len());
        out.push_str(&text[..m.start()]);
        out.push_str(value);
        out.push_str(&text[m.end()..]);
        Ok(out)
    }

    fn no_match(&self) -> ParamError {
        ParamError::NoMatch {
            param: self.name.clone(),
            file: self.file.clone(),
            pattern: self.pattern.clone(),
        }
    }

    /// Map a point of the unit interval onto the domain and format it as file text. For choices,
    /// `u` selects an index.
    pub fn from_unit(&self, u: f64) -> String {
        let u = u.clamp(0.0, 1.0);
        match &self.domain {
            ParamDomain::Choice { values } => {
                let i = ((u * values.len() as f64) as usize).min(values.len() - 1);
                values[i].clone()
            }
            ParamDomain::Range {
                min,
                max,
                log,
                integer,
            } => {
                let x = if *log {
                    (min.ln() + u * (max.ln() - min.ln())).exp()
                } else {
                    min + u * (max - min)
                };
                format_number(x, *integer)
            }
        }
    }

    /// Position of a written value on the unit interval (inverse of [`from_unit`]); `None` when it
    /// is not a value of the domain.
    ///
    /// [`from_unit`]: ParamSpec::from_unit
    pub fn to_unit(&self, value: &str) -> Option<f64> {
        match &self.domain {
            ParamDomain::Choice { values } => values
                .iter()
                .position(|v| v == value.trim())
                .map(|i| (i as f64 + 0.5) / values.len() as f64),
            ParamDomain::Range { min, max, log, .. } => {
                let x: f64 = value.trim().parse().ok()?;
                let u = if *log {
                    if x <= 0.0 {
                        return None;
                    }
                    (x.ln() - min.ln()) / (max.ln() - min.ln())
                } else {
                    (x - min) / (max - min)
                };
                u.is_finite().then_some(u.clamp(0.0, 1.0))
            }
        }
    }
}

/// Format a number for a source file: integers plainly, floats with up to 4 significant digits.
pub fn format_number(x: f64, integer: bool) -> String {
    if integer {
        return format!("{}", x.round() as i64);
    }
    if x == 0.0 {
        return "0.0".into();
    }
    let digits = 4;
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{:.*e}", (digits - 1) as usize, x);
    }
    let decimals = (digits - 1 - magnitude).max(1) as usize;
    let s = format!("{x:.decimals$}");
    // trim trailing zeros but keep one digit after the point
    let trimmed = s.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

/// `[low, high]` in [`format_number`]'s digits, when both ends are known.
pub fn format_interval(low: Option<f64>, high: Option<f64>) -> Option<String> {
    Some(format!(
        "[{}, {}]",
        format_number(low?, false),
        format_number(high?, false)
    ))
}

/// A short human description of a change in assignment: `lr 0.01 → 0.03, batch 32 → 16`.
pub fn describe_change(before: &Assignment, after: &Assignment) -> String {
    let parts: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| match before.get(k) {
            Some(old) => format!("{k} {old} → {v}"),
            None => format!("{k} = {v}"),
        })
        .collect();
    if parts.is_empty() {
        "no parameter change".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lr() -> ParamSpec {
        ParamSpec {
            name: "lr".into(),
            file: "train.py".into(),
            pattern: r"^LEARNING_RATE = (\S+)$".into(),
            domain: ParamDomain::Range {
                min: 1e-3,
                max: 1.0,
                log: true,
                integer: false,
            },
            env: None,
            default: None,
        }
    }

    #[test]
    fn read_write_round_trip_touches_only_the_value() {
        let text = "import x\nLEARNING_RATE = 0.05\nOTHER = 1\n";
        let p = lr();
        assert_eq!(p.read(text).unwrap(), "0.05");
        let out = p.write(text, "0.3").unwrap();
        assert_eq!(out, "import x\nLEARNING_RATE = 0.3\nOTHER = 1\n");
        assert!(matches!(
            p.read("nothing here"),
            Err(ParamError::NoMatch { .. })
        ));
    }

    #[test]
    fn unit_mapping_is_inverse_on_log_scale() {
        let p = lr();
        assert_eq!(p.from_unit(0.0), "0.001");
        assert_eq!(p.from_unit(1.0), "1.0");
        let mid = p.from_unit(0.5);
        let u = p.to_unit(&mid).unwrap();
        assert!((u - 0.5).abs() < 0.01, "{mid} -> {u}");
    }

    #[test]
    fn choices_and_integers() {
        let p = ParamSpec {
            domain: ParamDomain::Choice {
                values: vec!["4".into(), "8".into(), "16".into()],
            },
            ..lr()
        };
        assert_eq!(p.from_unit(0.0), "4");
        assert_eq!(p.from_unit(0.99), "16");
        assert_eq!(format_number(31.6, true), "32");
        assert_eq!(format_number(0.012345, false), "0.01235");
    }

    #[test]
    fn describe() {
        let mut a = Assignment::new();
        a.insert("lr".into(), "0.01".into());
        a.insert("b".into(), "32".into());
        let mut b = a.clone();
        b.insert("lr".into(), "0.03".into());
        assert_eq!(describe_change(&a, &b), "lr 0.01 → 0.03");
    }
}
