//! Per-user git configuration and attributes are agent-writable (an agent sandbox keeps
//! `~/.config` writable for the agent CLIs): git run by Picidae must ignore them, and the
//! filter and diff drivers they define must never run, even when a `.gitattributes` in the
//! checkout (committed, or planted by the agent) names them.
//!
//! Runs in its own process: the environment (`HOME`, `XDG_CONFIG_HOME`) is changed for the
//! whole test binary, which therefore holds a single test.
mod common;

use std::path::Path;

use common::{git_as_user, git_bare_env, read, write, Planted};
use picidae_git::{ChangeKind, Identity, Repo};

/// Every Picidae operation on a fresh checkout of `repo`'s HEAD, with `edits` made in it
/// the way an agent would; checks what was committed byte for byte.
fn attempt(repo: &Repo, at: &Path, edits: &[(&str, &str)], plant: &Planted) {
    let wt = repo.add_worktree(at, "HEAD").unwrap();
    plant.assert_none_ran("add_worktree");
    for (path, text) in edits {
        write(wt.path(), path, text);
    }
    let changes = wt.changed_paths().unwrap();
    assert_eq!(changes.len(), edits.len(), "{changes:?}");
    let diff = wt.diff_against_head().unwrap();
    for (_, text) in edits {
        assert!(diff.contains(&format!("+{text}")), "{diff}");
    }
    plant.assert_none_ran("changed_paths and diff_against_head");
    let sha = wt.commit_all("attempt").unwrap();
    plant.assert_none_ran("commit_all");
    for (path, text) in edits {
        // Bytes as written: no clean filter transformed them.
        assert_eq!(
            git_bare_env(repo.root(), &["cat-file", "blob", &format!("{sha}:{path}")]),
            *text
        );
    }
    let patch = repo.show_patch(&sha).unwrap();
    assert!(patch.contains(&format!("+{}", edits[0].1)), "{patch}");
    let (first, _) = edits[0];
    std::fs::remove_file(wt.path().join(first)).unwrap();
    wt.restore(&[first.to_owned()]).unwrap();
    write(wt.path(), first, "scratch\n");
    wt.reset_clean().unwrap();
    assert_eq!(read(wt.path(), first), edits[0].1);
    assert!(wt.changed_paths().unwrap().is_empty());
    repo.remove_worktree(wt.path()).unwrap();
    plant.assert_none_ran("show_patch, restore, reset_clean, remove_worktree");
}

/// Control: plain git, as the user runs it, does obey the planted configuration.
fn control(repo: &Repo, at: &Path, edit: (&str, &str), plant: &Planted) {
    let wt = repo.add_worktree(at, "HEAD").unwrap();
    write(wt.path(), edit.0, edit.1);
    git_as_user(wt.path(), &["add", "-A"]);
    git_as_user(wt.path(), &["diff", "--cached"]);
    assert!(!plant.ran().is_empty(), "the control ran nothing planted");
    plant.clear();
}

#[test]
fn per_user_config_and_attributes_are_never_obeyed() {
    let tmp = tempfile::tempdir().unwrap();
    let plant = Planted::new(tmp.path());
    // Edition 2021: set_var is safe; this binary has a single test.
    std::env::remove_var("GIT_CONFIG_GLOBAL");
    std::env::remove_var("GIT_DIR");
    std::env::remove_var("GIT_WORK_TREE");
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    std::env::set_var("GIT_AUTHOR_NAME", "t");
    std::env::set_var("GIT_AUTHOR_EMAIL", "t@t");
    std::env::set_var("GIT_COMMITTER_NAME", "t");
    std::env::set_var("GIT_COMMITTER_EMAIL", "t@t");

    // (a) `$XDG_CONFIG_HOME/git/config` defines drivers, `$XDG_CONFIG_HOME/git/attributes`
    // applies them to every file.
    let dir = tmp.path().join("bench-a");
    write(&dir, "a.txt", "alpha\n");
    write(&dir, "b.txt", "beta\n");
    Repo::init(&dir, "initial", Identity::default()).unwrap();
    let xdg = tmp.path().join("xdg");
    std::env::set_var("HOME", tmp.path().join("empty-home"));
    std::env::set_var("XDG_CONFIG_HOME", &xdg);
    write(&xdg, "git/config", &plant.config("xdg"));
    write(&xdg, "git/attributes", "* filter=xdg diff=xdg\n");
    let repo = Repo::open(&dir).unwrap();
    attempt(
        &repo,
        &tmp.path().join("wt-a"),
        &[("a.txt", "edited\n"), ("new.txt", "added\n")],
        &plant,
    );
    control(&repo, &tmp.path().join("ctl-a"), ("a.txt", "x\n"), &plant);

    // (c) `~/.gitconfig` and `~/.config/git/config` define drivers; the repository's
    // committed `.gitattributes` names them, and the agent plants another one.
    let home = tmp.path().join("home");
    std::env::remove_var("XDG_CONFIG_HOME");
    std::env::set_var("HOME", &home);
    write(&home, ".config/git/config", &plant.config("evil"));
    write(&home, ".gitconfig", &plant.config("home"));
    let dir = tmp.path().join("bench-c");
    write(&dir, "a.txt", "alpha\n");
    write(&dir, "notes.md", "notes\n");
    write(
        &dir,
        ".gitattributes",
        "*.txt filter=evil diff=evil\n*.md filter=home diff=home\n",
    );
    let repo = Repo::init(&dir, "initial", Identity::default()).unwrap();
    plant.assert_none_ran("Repo::init");
    assert_eq!(
        git_bare_env(repo.root(), &["cat-file", "blob", "HEAD:a.txt"]),
        "alpha\n"
    );
    attempt(
        &repo,
        &tmp.path().join("wt-c"),
        &[
            ("a.txt", "edited\n"),
            ("notes.md", "more notes\n"),
            ("src/.gitattributes", "* filter=home diff=evil\n"),
            ("src/train.py", "print(1)\n"),
        ],
        &plant,
    );
    let wt = repo.add_worktree(tmp.path().join("wt-c2"), "HEAD").unwrap();
    write(wt.path(), "a.txt", "one more\n");
    assert_eq!(wt.changed_paths().unwrap()[0].kind, ChangeKind::Modified);
    repo.remove_worktree(wt.path()).unwrap();
    plant.assert_none_ran("second checkout");
    control(&repo, &tmp.path().join("ctl-c"), ("a.txt", "x\n"), &plant);
}
