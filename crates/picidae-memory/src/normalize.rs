//! Patch normalization for dedup, and the symbols a patch touches.
//!
//! Two patches are "the same idea" when their changed lines agree after dropping whitespace
//! differences, blank lines and comments. Comment syntax follows the file's extension (`#` for
//! Python, shell, TOML, YAML, R; `//` and one-line `/* */` for C-family, Rust, Go, JS/TS, CUDA;
//! `--` for SQL, Lua, Haskell); in files of unknown type only whitespace is normalized, so code
//! like Python's `a // 2` is never mistaken for a comment. Context lines and hunk positions are
//! ignored, so the same edit made at a shifted place still matches.

/// The changed lines of a unified diff, normalized, in order, each prefixed with `+` or `-`.
pub fn normalize_patch(patch: &str) -> String {
    let mut out = Vec::new();
    let mut style = Style::None;
    for line in patch.lines() {
        if let Some(path) = line.strip_prefix("+++ ") {
            style = Style::for_path(path.trim());
            out.push(format!("@{}", path.trim().trim_start_matches("b/")));
            continue;
        }
        if line.starts_with("---") {
            continue;
        }
        let (sign, body) = match line.as_bytes().first() {
            Some(b'+') => ('+', &line[1..]),
            Some(b'-') => ('-', &line[1..]),
            _ => continue,
        };
        let code = strip_comment(body, style);
        let squashed: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
        if squashed.is_empty() {
            continue;
        }
        out.push(format!("{sign}{squashed}"));
    }
    out.join("\n")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Style {
    None,
    Hash,
    Slash,
    Dash,
}

impl Style {
    fn for_path(path: &str) -> Style {
        let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "py" | "sh" | "bash" | "toml" | "yaml" | "yml" | "r" | "jl" | "pl" | "rb" | "cfg"
            | "ini" | "mk" => Style::Hash,
            "rs" | "c" | "h" | "cc" | "cpp" | "hpp" | "cu" | "cuh" | "go" | "js" | "ts"
            | "java" | "kt" | "swift" | "scala" | "cs" | "zig" => Style::Slash,
            "sql" | "lua" | "hs" => Style::Dash,
            _ => Style::None,
        }
    }
}

fn strip_comment(line: &str, style: Style) -> String {
    let mut s = line.to_string();
    if style == Style::None {
        return s;
    }
    // one-line block comments
    if style == Style::Slash {
        while let (Some(a), Some(b)) = (s.find("/*"), s.find("*/")) {
            if b <= a {
                break;
            }
            s.replace_range(a..b + 2, " ");
        }
    }
    let mut in_str: Option<char> = None;
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match in_str {
            Some(q) if c == q => in_str = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => in_str = Some(c),
            None if c == '#' && style == Style::Hash => return chars[..i].iter().collect(),
            None if c == '/' && style == Style::Slash && chars.get(i + 1) == Some(&'/') => {
                return chars[..i].iter().collect()
            }
            None if c == '-' && style == Style::Dash && chars.get(i + 1) == Some(&'-') => {
                return chars[..i].iter().collect()
            }
            None => {}
        }
    }
    s
}

/// Names a patch touches: hunk-header context (usually the enclosing function) and the targets
/// of assignments and definitions on changed lines.
pub fn touched_symbols(patch: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim();
        if !s.is_empty() && s.len() <= 80 && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("@@") {
            if let Some(ctx) = rest.split("@@").nth(1) {
                if let Some(name) = ident_after_keyword(ctx) {
                    push(&name);
                }
            }
            continue;
        }
        if line.starts_with("+++") || line.starts_with("---") {
            continue;
        }
        let body = match line.as_bytes().first() {
            Some(b'+') | Some(b'-') => &line[1..],
            _ => continue,
        };
        if let Some(name) = ident_after_keyword(body) {
            push(&name);
        } else if let Some((lhs, _)) = body.split_once('=') {
            let lhs = lhs
                .trim()
                .trim_end_matches(['+', '-', '*', '/', ':', '!', '<', '>']);
            let name = lhs.split_whitespace().last().unwrap_or("");
            if is_ident(name) {
                push(name);
            }
        }
    }
    out
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn ident_after_keyword(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if matches!(*w, "def" | "class" | "fn" | "function" | "struct" | "impl") {
            let name: String = words
                .get(i + 1)?
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            return is_ident(&name).then_some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "--- a/train.py\n+++ b/train.py\n@@ -1,3 +1,3 @@ def main():\n-LR = 0.01\n+LR = 0.03  # faster\n ctx\n";
    const B: &str = "--- a/train.py\n+++ b/train.py\n@@ -10,3 +10,4 @@\n-LR  =  0.01\n+LR = 0.03\n+\n other ctx\n";

    #[test]
    fn whitespace_comments_and_context_do_not_matter() {
        assert_eq!(normalize_patch(A), normalize_patch(B));
        assert_eq!(normalize_patch(A), "@train.py\n-LR = 0.01\n+LR = 0.03");
        let c = A.replace("0.03", "0.05");
        assert_ne!(normalize_patch(A), normalize_patch(&c));
    }

    #[test]
    fn comment_markers_inside_strings_are_kept() {
        assert_eq!(
            normalize_patch("+++ b/a.py\n+url = 'http://x#y'  # note\n"),
            "@a.py\n+url = 'http://x#y'"
        );
    }

    #[test]
    fn comment_syntax_follows_the_file_type() {
        // Python's floor division is code, not a comment.
        let half = normalize_patch("+++ b/a.py\n+x = a // 2\n");
        let third = normalize_patch("+++ b/a.py\n+x = a // 3\n");
        assert_ne!(half, third);
        // In Rust it is a comment.
        assert_eq!(
            normalize_patch("+++ b/a.rs\n+let x = 1; // one\n"),
            normalize_patch("+++ b/a.rs\n+let x = 1; /* uno */\n")
        );
        // The same change to another file is another change.
        assert_ne!(
            normalize_patch("+++ b/a.py\n+x = 1\n"),
            normalize_patch("+++ b/b.py\n+x = 1\n")
        );
    }

    #[test]
    fn symbols() {
        let s = touched_symbols(A);
        assert_eq!(s, vec!["main".to_string(), "LR".to_string()]);
        let s = touched_symbols("+def warmup(steps):\n+    total += 1\n");
        assert_eq!(s, vec!["warmup".to_string(), "total".to_string()]);
    }
}
