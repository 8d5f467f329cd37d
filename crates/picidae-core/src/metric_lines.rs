//! What a metric report is, exactly, and what makes one ambiguous.
//!
//! A run's stdout is one stream written by several processes: the agent's code and, after it,
//! the benchmark's own (non-editable) evaluator. Whatever the agent's code prints must not be
//! able to frame, absorb or hide the evaluator's report. So a report is read by these rules:
//!
//! * **A metric line is a whole line**: `NAME: VALUE` or `METRIC NAME=VALUE`, with optional
//!   surrounding blanks, where `NAME` is a declared metric and `VALUE` is one number. Words
//!   may follow the value (`val_loss: 0.91 (best)`, `time: 3.2 s`) as long as they hold no
//!   digit, `:` or `=`, so a second report cannot hide behind the first. Lines end at `\n`
//!   (a trailing `\r` is dropped); any other control character in a line that names a
//!   metric makes it ambiguous (a `\r` in the middle redraws a terminal line).
//! * **The last mention decides.** For each declared name, the last line in which `NAME:` or
//!   `NAME=` appears anywhere is the one read. If that line is a metric line, its value is the
//!   run's; if it is not (`score: 0.1score: 7` from a report printed without its newline, or
//!   `xscore: 7`, the evaluator's line absorbed into the agent's), the run's report is
//!   **ambiguous**: the caller makes the run invalid and records the reason. Earlier
//!   mentions that are not metric lines (progress logs such as `step 3 | loss: 2.1`) are
//!   ignored.
//! * **A value is a decimal number that a 64-bit float represents**: `[+-]digits[.digits]
//!   [e[+-]digits]`, or `nan`/`inf` (kept, so the guards can make the run invalid). A
//!   literal that overflows to infinity (`1e400`), underflows to zero or a subnormal
//!   (`1e-400`), or is a negative zero (`-0`, `-0.000`) is ambiguous: each would pass for a
//!   number it is not. Hex, digit separators and trailing commas are not numbers.
//!
//! JSON lines (`$PICIDAE_METRICS`) follow the same value rules; each non-blank line must be
//! one JSON object.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::metrics::{MetricSource, MetricSpec, MetricValues};

/// A line of a metrics report that could not be used, and why. For stdout it makes the run's
/// report ambiguous; for the JSON file, the line is skipped (and reported).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct MetricsLineError {
    pub line: usize,
    pub message: String,
}

/// Why a textual value is not a usable number.
fn parse_number(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "nan" | "+nan" | "-nan" => return Ok(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => return Ok(f64::INFINITY),
        "-inf" | "-infinity" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let digits = decimal_mantissa(s).ok_or_else(|| format!("{s:?} is not a decimal number"))?;
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a decimal number"))?;
    if v.is_infinite() {
        return Err(format!("{s} overflows a 64-bit float"));
    }
    let nonzero = digits.bytes().any(|b| (b'1'..=b'9').contains(&b));
    if nonzero && (v == 0.0 || v.is_subnormal()) {
        return Err(format!("{s} underflows a 64-bit float"));
    }
    if v == 0.0 && v.is_sign_negative() {
        return Err(format!("{s} is a negative zero"));
    }
    Ok(v)
}

/// The mantissa digits of `[+-]?(d+(.d*)?|.d+)([eE][+-]?d+)?`, or `None` if `s` is not of
/// that form.
fn decimal_mantissa(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut mantissa = String::new();
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        mantissa.push(b[i] as char);
        i += 1;
    }
    let int_digits = i - start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            mantissa.push(b[i] as char);
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return None;
        }
    }
    (i == b.len()).then_some(mantissa)
}

/// Whether `line` mentions `name` followed by blanks and `:` or `=` anywhere.
fn mentions(line: &str, name: &str) -> bool {
    let mut from = 0;
    while let Some(pos) = line[from..].find(name) {
        let after = line[from + pos + name.len()..].trim_start_matches([' ', '\t']);
        if after.starts_with(':') || after.starts_with('=') {
            return true;
        }
        from += pos + name.len().max(1);
    }
    false
}

/// Read `line` as a metric line of `name`: its value, or why it is not one.
fn read_metric_line(line: &str, name: &str) -> Result<f64, String> {
    if line
        .chars()
        .any(|c| c.is_control() && c != '\t' && c != '\r')
        || line.trim_end_matches('\r').contains('\r')
    {
        return Err("it holds a control character".into());
    }
    let body = line.trim_matches([' ', '\t', '\r']);
    let (n, rest) = match body.strip_prefix("METRIC ") {
        Some(r) => r
            .split_once('=')
            .ok_or_else(|| "it is not `METRIC NAME=VALUE`".to_string())?,
        None => body
            .split_once(':')
            .ok_or_else(|| format!("it does not start with `{name}:`"))?,
    };
    if n.trim_matches([' ', '\t']) != name {
        return Err(format!("it does not start with `{name}:`"));
    }
    let mut words = rest.split_whitespace();
    let value = words.next().ok_or_else(|| "it has no value".to_string())?;
    if let Some(extra) =
        words.find(|w| w.contains([':', '=']) || w.bytes().any(|b| b.is_ascii_digit()))
    {
        return Err(format!("{extra:?} follows the value (one value per line)"));
    }
    parse_number(value)
}

/// Read the declared stdout metrics of a run's output by the rules of this module. Returns
/// the values and the ambiguous reports (a non-empty list makes the run invalid).
pub fn parse_stdout<'a>(
    text: &str,
    specs: impl IntoIterator<Item = &'a MetricSpec>,
) -> (MetricValues, Vec<MetricsLineError>) {
    let wanted: Vec<&str> = specs
        .into_iter()
        .filter(|s| s.source == MetricSource::Stdout)
        .map(|s| s.name.as_str())
        .collect();
    // The last line mentioning each name.
    let mut last: Vec<Option<(usize, &str)>> = vec![None; wanted.len()];
    for (i, line) in text.split('\n').enumerate() {
        for (k, name) in wanted.iter().enumerate() {
            if !name.is_empty() && mentions(line, name) {
                last[k] = Some((i + 1, line));
            }
        }
    }
    let mut values = MetricValues::new();
    let mut errors = Vec::new();
    for (name, found) in wanted.iter().zip(last) {
        let Some((line_no, line)) = found else {
            continue;
        };
        match read_metric_line(line, name) {
            Ok(v) => {
                values.insert(name.to_string(), v);
            }
            Err(why) => errors.push(MetricsLineError {
                line: line_no,
                message: format!(
                    "the last line naming metric {name} is not a metric line of its own ({why}): {:?}",
                    shorten(line)
                ),
            }),
        }
    }
    (values, errors)
}

fn shorten(line: &str) -> String {
    const MAX: usize = 120;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        let head: String = line.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// Read declared JSON-sourced metrics from JSON-lines text. Lines that are not JSON objects,
/// and declared fields whose value is not a usable number, are reported with their line
/// number; the rest is still read.
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
        let fail = |message: String| MetricsLineError {
            line: i + 1,
            message,
        };
        let map: std::collections::BTreeMap<String, Box<RawValue>> =
            match serde_json::from_str(line) {
                Ok(m) => m,
                Err(_) if serde_json::from_str::<serde_json::Value>(line).is_ok() => {
                    errors.push(fail("expected a JSON object".into()));
                    continue;
                }
                Err(e) => {
                    errors.push(fail(e.to_string()));
                    continue;
                }
            };
        for (k, raw) in map {
            if !wanted.contains(&k.as_str()) {
                continue;
            }
            let text = raw.get();
            let value = if text == "null" {
                Ok(f64::NAN)
            } else if text.starts_with('"') {
                match serde_json::from_str::<String>(text) {
                    Ok(s) => parse_number(s.trim()),
                    Err(e) => Err(e.to_string()),
                }
            } else if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
                parse_number(text)
            } else {
                Err(format!("not a number: {text}"))
            };
            match value {
                Ok(x) => {
                    out.insert(k, x);
                }
                Err(why) => errors.push(fail(format!("field {k:?}: {why}"))),
            }
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Goal;

    fn spec(name: &str, source: MetricSource) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            goal: Goal::Minimize,
            source,
            min: None,
            max: None,
        }
    }

    fn stdout(text: &str) -> (MetricValues, Vec<MetricsLineError>) {
        let specs = [
            spec("score", MetricSource::Stdout),
            spec("acc", MetricSource::Stdout),
        ];
        parse_stdout(text, &specs)
    }

    #[test]
    fn whole_lines_last_wins_and_progress_logs_ignored() {
        let (v, e) = stdout(
            "step 1 | score: 9\nscore: 2.5\nMETRIC acc=0.75\nscore: 1.25 (final)\nother: 3\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(v.get("score"), Some(&1.25));
        assert_eq!(v.get("acc"), Some(&0.75));
        let (v, e) = stdout("  score :\t3e-2 bpb\r\n");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(v["score"], 0.03);
    }

    #[test]
    fn a_report_without_its_newline_cannot_absorb_the_next_one() {
        // The agent's code prints `score: 0.1` without a newline; the evaluator's line follows.
        let (v, e) = stdout("score: 0.1score: 7\n");
        assert!(!v.contains_key("score"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 1);
        let (v, e) = stdout("score: 0.1 score: 7\n");
        assert!(!v.contains_key("score") && e.len() == 1, "{v:?} {e:?}");
        // The agent's code reports early, then swallows the evaluator's line.
        let (v, e) = stdout("score: 0.1\nxscore: 7\n");
        assert!(!v.contains_key("score") && e.len() == 1, "{v:?} {e:?}");
        let (v, e) = stdout("score: 0.1\nxMETRIC score=7\n");
        assert!(!v.contains_key("score") && e.len() == 1, "{v:?} {e:?}");
        // A carriage return redraws the terminal line; it is not one report.
        let (_, e) = stdout("score: 7\rscore: 0\n");
        assert_eq!(e.len(), 1, "{e:?}");
        // Two values on one line.
        let (_, e) = stdout("score: 1 2\n");
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn values_must_be_representable() {
        for bad in [
            "1e-400", "-0", "-0.000", "1e400", "0x10", "1_000", "1,", "1e", "--1", ".",
        ] {
            let (v, e) = stdout(&format!("score: {bad}\n"));
            assert!(!v.contains_key("score"), "{bad} passed as {v:?}");
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
        }
        for (ok, want) in [
            ("0", 0.0),
            ("+1.5", 1.5),
            (".5", 0.5),
            ("2.", 2.0),
            ("1E3", 1000.0),
        ] {
            let (v, e) = stdout(&format!("score: {ok}\n"));
            assert!(e.is_empty(), "{ok}: {e:?}");
            assert_eq!(v["score"], want);
        }
        let (v, e) = stdout("score: NaN\n");
        assert!(e.is_empty() && v["score"].is_nan());
    }

    #[test]
    fn json_lines_follow_the_same_value_rules() {
        let specs = [spec("loss", MetricSource::Json)];
        let (v, errs) = parse_json_lines(
            "{\"loss\": 3}\nnot json\n[1]\n{\"loss\": 1e-400}\n{\"loss\": -0.0}\n{\"loss\": 2.5}\n",
            &specs,
        );
        assert_eq!(v["loss"], 2.5);
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5], "{errs:?}");
        let (v, errs) = parse_json_lines("{\"loss\": \"nan\"}\n{\"x\": 1e999}\n", &specs);
        assert!(v["loss"].is_nan());
        assert!(errs.is_empty(), "an undeclared field is not read: {errs:?}");
    }
}
