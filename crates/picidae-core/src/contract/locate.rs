//! Turning byte offsets of the contract text into located issues.

use super::*;
// ---------------------------------------------------------------------------------------------

/// Source text plus the means to turn byte offsets into located issues.
pub(super) struct Locator<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
}

impl Locator<'_> {
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub(super) fn snippet(&self, line: usize) -> String {
        self.text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .to_string()
    }

    pub(super) fn issue(
        &self,
        offset: usize,
        field: &str,
        message: impl Into<String>,
    ) -> ContractIssue {
        let (line, column) = self.line_col(offset);
        ContractIssue {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
            snippet: self.snippet(line),
        }
    }

    /// The dotted field at a byte offset, derived from the nearest table header and the key on
    /// the offset's line. Used for errors the TOML deserializer reports with only a span.
    pub(super) fn field_at(&self, offset: usize) -> String {
        let (line, _) = self.line_col(offset);
        let mut table = String::new();
        let mut key = String::new();
        for (i, l) in self.text.lines().enumerate() {
            if i + 1 > line {
                break;
            }
            let t = l.trim();
            if let Some(h) = t.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
                table = h.trim().to_string();
                key.clear();
            } else if let Some(h) = t.strip_prefix('[').and_then(|h| h.split(']').next()) {
                table = h.trim().to_string();
                key.clear();
            }
            if i + 1 == line {
                if let Some((k, _)) = t.split_once('=') {
                    if !t.starts_with('[') {
                        key = k.trim().trim_matches('"').to_string();
                    }
                }
            }
        }
        match (table.is_empty(), key.is_empty()) {
            (true, true) => "(top level)".into(),
            (true, false) => key,
            (false, true) => table,
            (false, false) => format!("{table}.{key}"),
        }
    }
}
