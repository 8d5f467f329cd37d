//! autoresearch's `results.tsv`: tab-separated `commit, val_bpb, memory_gb, status, description`.
//!
//! The second column carries the program's primary metric whatever its name; `status` is one of
//! `keep`, `discard`, `crash`. Parsing reports the line and column of any bad row and keeps going
//! only when asked to (`parse` is strict: one bad row rejects the file, so an import is all or
//! nothing).

use std::fmt;

use serde::{Deserialize, Serialize};

pub const HEADER: &str = "commit\tval_bpb\tmemory_gb\tstatus\tdescription";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TsvStatus {
    Keep,
    Discard,
    Crash,
}

impl TsvStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TsvStatus::Keep => "keep",
            TsvStatus::Discard => "discard",
            TsvStatus::Crash => "crash",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TsvRow {
    pub commit: String,
    pub value: f64,
    pub memory_gb: f64,
    pub status: TsvStatus,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: column `{column}`: {message}")]
pub struct TsvError {
    pub file: String,
    pub line: usize,
    pub column: &'static str,
    pub message: String,
}

/// Format rows as a results.tsv file (header included). Tabs and newlines inside descriptions
/// become spaces so every row stays one line of five columns.
pub fn format(rows: &[TsvRow]) -> String {
    format_with_metric(rows, "val_bpb")
}

/// [`format`] with the second column named `metric` (the primary metric's name) instead of
/// `val_bpb`. A metric name with a tab or newline would break the header; those become `_`.
pub fn format_with_metric(rows: &[TsvRow], metric: &str) -> String {
    let metric: String = metric
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    let mut out = format!("commit\t{metric}\tmemory_gb\tstatus\tdescription\n");
    for r in rows {
        let desc: String = r
            .description
            .chars()
            .map(|c| {
                if c == '\t' || c == '\n' || c == '\r' {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        out.push_str(&format!(
            "{}\t{:.6}\t{:.1}\t{}\t{}\n",
            r.commit,
            r.value,
            r.memory_gb,
            r.status.as_str(),
            desc
        ));
    }
    out
}

impl fmt::Display for TsvRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.commit, self.value, self.status.as_str())
    }
}

/// Parse a results.tsv file. `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<TsvRow>, TsvError> {
    let err = |line: usize, column: &'static str, message: String| TsvError {
        file: file.to_string(),
        line,
        column,
        message,
    };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if n == 1 && line.starts_with("commit\t") {
            continue;
        }
        let cols: Vec<&str> = line.splitn(5, '\t').collect();
        if cols.len() < 4 {
            return Err(err(
                n,
                "commit",
                format!("expected 5 tab-separated columns, found {}", cols.len()),
            ));
        }
        let commit = cols[0].trim();
        if commit.is_empty() || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(err(
                n,
                "commit",
                format!("{commit:?} is not a hex commit id"),
            ));
        }
        let value: f64 = cols[1]
            .trim()
            .parse()
            .map_err(|_| err(n, "val_bpb", format!("{:?} is not a number", cols[1])))?;
        let memory_gb: f64 = cols[2]
            .trim()
            .parse()
            .map_err(|_| err(n, "memory_gb", format!("{:?} is not a number", cols[2])))?;
        let status = match cols[3].trim() {
            "keep" => TsvStatus::Keep,
            "discard" => TsvStatus::Discard,
            "crash" => TsvStatus::Crash,
            other => {
                return Err(err(
                    n,
                    "status",
                    format!("{other:?} is not one of keep, discard, crash"),
                ))
            }
        };
        rows.push(TsvRow {
            commit: commit.to_string(),
            value,
            memory_gb,
            status,
            description: cols.get(4).map(|s| s.to_string()).unwrap_or_default(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_column_is_named_and_still_parses() {
        let rows = vec![TsvRow {
            commit: "a1b2c3d".into(),
            value: 0.5,
            memory_gb: 1.0,
            status: TsvStatus::Keep,
            description: "x".into(),
        }];
        let text = format_with_metric(&rows, "val loss");
        assert!(text.starts_with("commit\tval_loss\tmemory_gb\tstatus\tdescription\n"));
        assert_eq!(parse(&text, "r.tsv").unwrap(), rows);
        assert!(format(&rows).starts_with(HEADER));
    }

    #[test]
    fn round_trip() {
        let rows = vec![
            TsvRow {
                commit: "a1b2c3d".into(),
                value: 0.997900,
                memory_gb: 44.0,
                status: TsvStatus::Keep,
                description: "baseline".into(),
            },
            TsvRow {
                commit: "b2c3d4e".into(),
                value: 0.0,
                memory_gb: 0.0,
                status: TsvStatus::Crash,
                description: "double width\t(OOM)".into(),
            },
        ];
        let text = format(&rows);
        let back = parse(&text, "r.tsv").unwrap();
        assert_eq!(back[0], rows[0]);
        assert_eq!(back[1].description, "double width (OOM)");
        assert_eq!(format(&back), text);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse(&format!("{HEADER}\nabc1234\t0.5\t1.0\tkept\tx\n"), "r.tsv").unwrap_err();
        assert_eq!((e.line, e.column), (2, "status"));
        let e = parse("abc1234\tzero\t1.0\tkeep\tx\n", "r.tsv").unwrap_err();
        assert_eq!((e.line, e.column), (1, "val_bpb"));
        assert!(e.to_string().starts_with("r.tsv:1: column `val_bpb`"));
    }
}
