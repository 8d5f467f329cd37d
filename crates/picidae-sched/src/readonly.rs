//! The non-editable files of a run's checkout stay as committed while the run executes.
//!
//! The boundary check sees only the committed patch; at run time the agent's code could
//! rewrite the benchmark's own files (the evaluator script the run command calls after it,
//! a data loader, the contract) and the visible metric would be whatever it wants. So:
//!
//! * **Sandboxed runs** get every tracked file the boundary does not make editable bound
//!   read-only over the writable checkout ([`protected_binds`]), and the checkout's `.git`
//!   file too. A directory that holds no editable tracked file is bound read-only as a
//!   whole, so nothing new can be planted beside its files either (a module that would shadow
//!   one of them); a directory that holds an editable file stays writable, with its other
//!   files bound one by one. New files elsewhere (outputs, caches) remain possible.
//! * **Every run** whose checkout is local is checked afterwards ([`rewritten`]): a tracked,
//!   non-editable file that differs from the commit (changed, deleted, or replaced by a link)
//!   makes the run invalid, with the files named. Without the sandbox this is detection only:
//!   a file rewritten and restored within the run is not seen (see docs/reliability.md).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use picidae_core::Boundary;
use picidae_git::{Change, ChangeKind};

/// Whether a benchmark-relative path (`/`-separated) is one of the contract's hidden files
/// (or lies inside one), which are deleted from run checkouts on purpose.
fn is_hidden(path: &str, hidden: &[String]) -> bool {
    hidden.iter().any(|h| {
        let h = h.trim_matches('/');
        !h.is_empty() && (path == h || path.starts_with(&format!("{h}/")))
    })
}

/// `repo_path` (relative to the repository root) as seen from the benchmark directory
/// `prefix`, or `None` when it lies outside it.
fn bench_relative<'a>(repo_path: &'a str, prefix: &Path) -> Option<&'a str> {
    let prefix = prefix.to_str().unwrap_or("").trim_matches('/');
    if prefix.is_empty() {
        return Some(repo_path);
    }
    repo_path
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
}

/// The paths (relative to the checkout's root) to bind read-only for a run: directories that
/// hold no editable tracked file, and the remaining non-editable files one by one. `tracked`
/// lists the commit's files relative to the repository root; `prefix` is the benchmark
/// directory inside the repository. Hidden files are left out (they are not in the checkout).
pub fn protected_binds(
    tracked: &[String],
    prefix: &Path,
    boundary: &Boundary,
    hidden: &[String],
) -> Vec<PathBuf> {
    let editable = |p: &str| match bench_relative(p, prefix) {
        Some(rel) => boundary.check_one(rel, false).is_none(),
        None => false,
    };
    // Every directory above an editable file stays writable.
    let mut open: BTreeSet<&str> = BTreeSet::new();
    open.insert("");
    for p in tracked.iter().filter(|p| editable(p)) {
        let mut end = 0;
        while let Some(i) = p[end..].find('/') {
            end += i;
            open.insert(&p[..end]);
            end += 1;
        }
    }
    let mut binds: BTreeSet<PathBuf> = BTreeSet::new();
    for p in tracked {
        if editable(p) || bench_relative(p, prefix).is_some_and(|rel| is_hidden(rel, hidden)) {
            continue;
        }
        // The highest ancestor that holds no editable file, else the file itself.
        let mut bind = p.as_str();
        let mut end = 0;
        while let Some(i) = p[end..].find('/') {
            end += i;
            if !open.contains(&p[..end]) {
                bind = &p[..end];
                break;
            }
            end += 1;
        }
        binds.insert(PathBuf::from(bind));
    }
    // A directory bind covers the files below it.
    let all: Vec<PathBuf> = binds.iter().cloned().collect();
    binds.retain(|b| !all.iter().any(|o| o != b && b.starts_with(o)));
    let mut out: Vec<PathBuf> = binds.into_iter().collect();
    out.push(PathBuf::from(".git"));
    out
}

/// The tracked, non-editable files a run changed in its checkout (from the checkout's status
/// against its commit): edits, deletions and type changes. Hidden files, deleted on purpose,
/// and new untracked files (a run's outputs) are not counted.
pub fn rewritten(changes: &[Change], boundary: &Boundary, hidden: &[String]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match &c.kind {
            ChangeKind::Added => None,
            ChangeKind::Deleted if is_hidden(&c.path, hidden) => None,
            ChangeKind::Renamed { from } => Some(from),
            _ => Some(&c.path),
        })
        .filter(|p| boundary.check_one(p, false).is_some())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use picidae_core::contract::BoundarySpec;

    fn boundary(globs: &[&str]) -> Boundary {
        Boundary::new(&BoundarySpec {
            editable: globs.iter().map(|s| s.to_string()).collect(),
            sandbox_agents: false,
            sandbox_agents_unset: false,
        })
        .unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn directories_without_editable_files_are_bound_whole() {
        let tracked = strings(&[
            "picidae.toml",
            "run.sh",
            "evaluate.sh",
            "solve.sh",
            "src/model.py",
            "src/util.py",
            "data/a.csv",
            "data/deep/b.csv",
            "gold/labels.txt",
        ]);
        let b = boundary(&["solve.sh", "src/model.py"]);
        let binds = protected_binds(&tracked, Path::new(""), &b, &strings(&["gold"]));
        let got: Vec<&str> = binds.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            got,
            vec![
                "data",
                "evaluate.sh",
                "picidae.toml",
                "run.sh",
                "src/util.py",
                ".git"
            ]
        );
    }

    #[test]
    fn a_benchmark_in_a_subdirectory_protects_the_rest_of_the_repository() {
        let tracked = strings(&["README", "other/x.py", "bench/train.py", "bench/eval.py"]);
        let b = boundary(&["train.py"]);
        let binds = protected_binds(&tracked, Path::new("bench"), &b, &[]);
        let got: Vec<&str> = binds.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(got, vec!["README", "bench/eval.py", "other", ".git"]);
    }

    #[test]
    fn rewritten_counts_protected_changes_only() {
        let b = boundary(&["solve.sh"]);
        let change = |path: &str, kind: ChangeKind| Change {
            path: path.into(),
            kind,
            outside_prefix: false,
        };
        let changes = vec![
            change("solve.sh", ChangeKind::Modified),
            change("evaluate.sh", ChangeKind::Modified),
            change("run.sh", ChangeKind::Deleted),
            change("gold/labels.txt", ChangeKind::Deleted),
            change("out.log", ChangeKind::Added),
        ];
        assert_eq!(
            rewritten(&changes, &b, &strings(&["gold"])),
            vec!["evaluate.sh".to_string(), "run.sh".to_string()]
        );
    }
}
