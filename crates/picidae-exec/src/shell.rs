//! POSIX shell quoting.
//!
//! Owns [`quote`] and [`join`], used wherever this crate builds a command
//! line that a `/bin/sh` (local or remote) will parse: the sandbox wrapper
//! and every script sent over SSH. Quoting wraps each word in single quotes,
//! writing an embedded `'` as `'\''`, which every POSIX shell parses back to
//! the original bytes.

/// Quotes `word` so that a POSIX shell reads it back as exactly one word
/// with exactly these bytes. Words made only of characters that are never
/// special (`A-Za-z0-9` and `_-./=:,+@%`) are returned unchanged.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./=:,+@%".contains(&b));
    if plain {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes every word with [`quote`] and joins them with single spaces.
pub fn join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn plain_words_are_unchanged() {
        assert_eq!(quote("abc-1.2/x=y"), "abc-1.2/x=y");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn shell_reads_back_the_same_bytes() {
        let words = [
            "plain",
            "",
            "with space",
            "it's",
            "''",
            "$HOME `id` $(id) \\n \"q\"",
            "new\nline\ttab",
            "*?[a]{b,c}~!#;&|<>()",
            "ünï ☃",
        ];
        let script = format!("for a in {}; do printf '%s\\0' \"$a\"; done", join(words));
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success());
        let got: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
        assert_eq!(got.len(), words.len() + 1);
        for (w, g) in words.iter().zip(got) {
            assert_eq!(w.as_bytes(), g);
        }
    }
}
