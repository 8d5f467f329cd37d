//! Parsing `git status --porcelain=v1 -z` into changes relative to HEAD, and
//! expressing repository paths relative to the benchmark directory.

use std::collections::BTreeMap;

use crate::error::{GitError, Result};

/// How a path differs from the worktree's HEAD commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// New file (untracked files count as added).
    Added,
    /// Content, mode or type changed.
    Modified,
    /// Gone from the worktree.
    Deleted,
    /// Moved from `from` (relative to the benchmark dir, like [`Change::path`]).
    /// git only reports renames that were staged; an unstaged move shows as a
    /// deletion plus an addition.
    Renamed {
        /// The old path.
        from: String,
    },
}

/// One changed path in a worktree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// Path relative to the benchmark directory, `/`-separated. Paths outside
    /// the benchmark directory start with `../` (e.g. `../other/file`).
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
    /// True when the path (or, for a rename, its old path) lies outside the
    /// benchmark directory. Always false when the benchmark is the repo root.
    pub outside_prefix: bool,
}

/// A change in repository-relative terms, before relativizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawKind {
    Added,
    Modified,
    Deleted,
    Renamed(String),
}

/// Parses `git status --porcelain=v1 -z` output into net changes vs HEAD
/// (what `git add -A` followed by a commit would record), keyed and sorted by
/// repository-relative path.
pub(crate) fn parse_porcelain_v1_z(out: &[u8]) -> Result<Vec<(String, RawKind)>> {
    let mut tokens = out.split(|b| *b == 0).filter(|t| !t.is_empty());
    let mut by_path: BTreeMap<String, RawKind> = BTreeMap::new();
    let mut put = |path: String, kind: RawKind| {
        use std::collections::btree_map::Entry;
        match by_path.entry(path) {
            Entry::Vacant(v) => {
                v.insert(kind);
            }
            Entry::Occupied(mut o) => {
                // A path deleted from the index but present on disk shows up
                // twice ("D " and "??"): net effect is a modification.
                let merged = match (o.get(), &kind) {
                    (RawKind::Deleted, RawKind::Added) | (RawKind::Added, RawKind::Deleted) => {
                        RawKind::Modified
                    }
                    _ => kind,
                };
                o.insert(merged);
            }
        }
    };
    while let Some(tok) = tokens.next() {
        if tok.len() < 4 || tok[2] != b' ' {
            return Err(GitError::Parse(format!(
                "status entry {:?}",
                String::from_utf8_lossy(tok)
            )));
        }
        let (x, y) = (tok[0], tok[1]);
        let path = String::from_utf8_lossy(&tok[3..]).into_owned();
        let from = if matches!(x, b'R' | b'C') || matches!(y, b'R' | b'C') {
            let f = tokens.next().ok_or_else(|| {
                GitError::Parse(format!("rename entry without source for {path:?}"))
            })?;
            Some(String::from_utf8_lossy(f).into_owned())
        } else {
            None
        };
        match (x, y) {
            (b'?', b'?') => put(path, RawKind::Added),
            (b'!', b'!') => {}
            _ => {
                let unmerged = x == b'U' || y == b'U' || (x == y && matches!(x, b'A' | b'D'));
                // Is the path in HEAD, and is it on disk now?
                let in_head = if unmerged {
                    x != b'A' && y != b'A'
                } else {
                    !matches!(x, b'A' | b'R' | b'C') && !matches!(y, b'A' | b'R' | b'C')
                };
                let on_disk = y != b'D' && !(x == b'D' && y == b' ');
                let renamed_from = from.filter(|_| x == b'R' || y == b'R');
                match (in_head, on_disk) {
                    (true, true) => put(path, RawKind::Modified),
                    (true, false) => put(path, RawKind::Deleted),
                    (false, true) => match renamed_from {
                        Some(f) => put(path, RawKind::Renamed(f)),
                        None => put(path, RawKind::Added),
                    },
                    (false, false) => {
                        if let Some(f) = renamed_from {
                            put(f, RawKind::Deleted);
                        }
                    }
                }
            }
        }
    }
    Ok(by_path.into_iter().collect())
}

/// Turns repository-relative `(path, kind)` pairs into [`Change`]s relative to
/// the benchmark directory `prefix` (`/`-separated, no trailing slash, empty
/// for the repository root).
pub(crate) fn to_changes(raw: Vec<(String, RawKind)>, prefix: &str) -> Vec<Change> {
    raw.into_iter()
        .map(|(p, k)| {
            let (path, mut outside) = relativize(&p, prefix);
            let kind = match k {
                RawKind::Added => ChangeKind::Added,
                RawKind::Modified => ChangeKind::Modified,
                RawKind::Deleted => ChangeKind::Deleted,
                RawKind::Renamed(from) => {
                    let (from, from_outside) = relativize(&from, prefix);
                    outside |= from_outside;
                    ChangeKind::Renamed { from }
                }
            };
            Change {
                path,
                kind,
                outside_prefix: outside,
            }
        })
        .collect()
}

/// Expresses a repository-relative path relative to `prefix`; the flag says
/// whether it lies outside `prefix`.
pub(crate) fn relativize(path: &str, prefix: &str) -> (String, bool) {
    if prefix.is_empty() {
        return (path.to_owned(), false);
    }
    if let Some(rest) = path
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.is_empty())
    {
        return (rest.to_owned(), false);
    }
    let trailing_slash = path.ends_with('/');
    let p: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let q: Vec<&str> = prefix.split('/').filter(|c| !c.is_empty()).collect();
    // Never consume the path's last component: a file named like the
    // benchmark directory itself is outside it ("../bench").
    let max_common = p.len().saturating_sub(1).min(q.len());
    let common = p
        .iter()
        .zip(&q)
        .take(max_common)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = "../".repeat(q.len() - common);
    out.push_str(&p[common..].join("/"));
    if trailing_slash {
        out.push('/');
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, prefix: &str) -> Vec<Change> {
        to_changes(parse_porcelain_v1_z(s.as_bytes()).unwrap(), prefix)
    }

    fn c(path: &str, kind: ChangeKind, outside: bool) -> Change {
        Change {
            path: path.into(),
            kind,
            outside_prefix: outside,
        }
    }

    #[test]
    fn relativize_inside_and_outside() {
        assert_eq!(relativize("a/b", ""), ("a/b".into(), false));
        assert_eq!(relativize("bench/x/y", "bench"), ("x/y".into(), false));
        assert_eq!(relativize("other/f", "bench"), ("../other/f".into(), true));
        assert_eq!(relativize("top", "a/b"), ("../../top".into(), true));
        assert_eq!(relativize("a/c/x", "a/b"), ("../c/x".into(), true));
        assert_eq!(relativize("a/b", "a/b"), ("../b".into(), true));
        assert_eq!(
            relativize("benchmark/f", "bench"),
            ("../benchmark/f".into(), true)
        );
        assert_eq!(
            relativize("o/nested/", "bench"),
            ("../o/nested/".into(), true)
        );
    }

    #[test]
    fn parses_worktree_and_index_states() {
        let out = " M mod.txt\0 D gone.txt\0?? new.txt\0A  staged.txt\0AD vanished.txt\0\
                   R  to.txt\0from.txt\0D  back.txt\0?? back.txt\0";
        assert_eq!(
            parse(out, ""),
            vec![
                c("back.txt", ChangeKind::Modified, false),
                c("gone.txt", ChangeKind::Deleted, false),
                c("mod.txt", ChangeKind::Modified, false),
                c("new.txt", ChangeKind::Added, false),
                c("staged.txt", ChangeKind::Added, false),
                c(
                    "to.txt",
                    ChangeKind::Renamed {
                        from: "from.txt".into()
                    },
                    false
                ),
            ]
        );
    }

    #[test]
    fn rename_from_outside_is_flagged() {
        let out = "R  bench/in.txt\0elsewhere/in.txt\0";
        assert_eq!(
            parse(out, "bench"),
            vec![c(
                "in.txt",
                ChangeKind::Renamed {
                    from: "../elsewhere/in.txt".into()
                },
                true
            )]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_porcelain_v1_z(b"zz\0").is_err());
        assert!(parse_porcelain_v1_z(b"R  only-target\0").is_err());
    }
}
