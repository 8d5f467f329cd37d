//! Every git call is pinned to the repository's own git directory and work tree, and obeys
//! nothing a hostile agent or run can plant in a checkout: a `.git` pointing elsewhere,
//! replace refs or grafts, nested repositories and gitlinks with their own configuration.
//! Each planted program leaves a marker when it runs; none may appear. Each test ends with a
//! control showing that plain git does obey what was planted.
//!
//! The per-user configuration case changes the process environment and lives in
//! `pinned_home.rs`.
mod common;

use std::path::Path;

use common::{git, git_as_user, git_bare_env, read, write, Planted};
use picidae_git::{Change, ChangeKind, GitError, Identity, Repo, Worktree};

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: path.into(),
        kind,
        outside_prefix: false,
    }
}

fn sample_repo(tmp: &Path) -> Repo {
    let dir = tmp.join("bench");
    write(&dir, "a.txt", "alpha\n");
    write(&dir, "b.txt", "beta\n");
    Repo::init(&dir, "initial", Identity::default()).unwrap()
}

/// Every operation of a worktree an agent left behind, in the order Picidae uses them;
/// returns the attempt's commit.
fn exercise(repo: &Repo, wt: &Worktree, plant: &Planted) -> String {
    let base = wt.head_commit().unwrap();
    let changes = wt.changed_paths().unwrap();
    assert!(
        changes.contains(&change("a.txt", ChangeKind::Modified)),
        "{changes:?}"
    );
    let diff = wt.diff_against_head().unwrap();
    assert!(diff.contains("+edited"), "{diff}");
    plant.assert_none_ran("status and diff");
    let sha = wt.commit_all("attempt").unwrap();
    plant.assert_none_ran("commit_all");
    // The commit landed in the real repository, on top of the real base.
    assert_eq!(repo.resolve(&sha).unwrap().as_deref(), Some(sha.as_str()));
    assert!(repo.is_ancestor(&base, &sha).unwrap());
    assert_eq!(wt.head_commit().unwrap(), sha);
    assert_eq!(
        git(repo.root(), &["cat-file", "blob", &format!("{sha}:a.txt")]),
        "edited\n"
    );
    let patch = repo.show_patch(&sha).unwrap();
    assert!(patch.contains("+edited"), "{patch}");
    std::fs::remove_file(wt.path().join("b.txt")).unwrap();
    wt.restore(&["b.txt".to_owned()]).unwrap();
    assert_eq!(read(wt.path(), "b.txt"), "beta\n");
    write(wt.path(), "a.txt", "edited again\n");
    wt.reset_clean().unwrap();
    assert_eq!(read(wt.path(), "a.txt"), "edited\n");
    plant.assert_none_ran("restore and reset_clean");
    sha
}

/// The checkout's `.git` file replaced by a pointer to a repository the agent made, whose
/// config runs programs (fsmonitor, hooks, filter and diff drivers named by a planted
/// `.gitattributes`).
#[test]
fn a_redirected_dot_git_file_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let plant = Planted::new(tmp.path());
    let repo = sample_repo(tmp.path());
    let wt = repo.add_worktree(tmp.path().join("wt"), "HEAD").unwrap();

    let evil = tmp.path().join("evil");
    git_bare_env(tmp.path(), &["init", "-q", evil.to_str().unwrap()]);
    let mut config = read(&evil, ".git/config");
    config.push_str(&plant.config("evil"));
    write(&evil, ".git/config", &config);
    write(&evil, ".git/info/attributes", "* filter=evil diff=evil\n");
    write(wt.path(), ".gitattributes", "* filter=evil diff=evil\n");
    write(
        wt.path(),
        ".git",
        &format!("gitdir: {}\n", evil.join(".git").display()),
    );
    write(wt.path(), "a.txt", "edited\n");

    let sha = exercise(&repo, &wt, &plant);
    // A fresh handle finds the real git directory from the repository's side too.
    let again = repo.worktree(wt.path());
    assert_eq!(again.head_commit().unwrap(), sha);
    // The attacker's repository received nothing.
    assert_eq!(git_bare_env(&evil, &["rev-list", "--all"]), "");
    assert!(!evil.join(".git/index").exists());

    repo.remove_worktree(wt.path()).unwrap();
    assert!(!wt.path().exists());
    plant.assert_none_ran("remove_worktree");

    // Control: plain git in such a checkout obeys the attacker's repository.
    let wt2 = repo.add_worktree(tmp.path().join("wt2"), "HEAD").unwrap();
    write(
        wt2.path(),
        ".git",
        &format!("gitdir: {}\n", evil.join(".git").display()),
    );
    git_as_user(wt2.path(), &["add", "-A"]);
    assert!(!plant.ran().is_empty(), "the control ran nothing planted");
}

/// The checkout's `.git` replaced by a whole repository directory of the agent's.
#[test]
fn a_dot_git_directory_planted_in_a_checkout_is_never_used() {
    let tmp = tempfile::tempdir().unwrap();
    let plant = Planted::new(tmp.path());
    let repo = sample_repo(tmp.path());
    let wt = repo.add_worktree(tmp.path().join("wt"), "HEAD").unwrap();

    std::fs::remove_file(wt.path().join(".git")).unwrap();
    git_bare_env(wt.path(), &["init", "-q"]);
    let mut config = read(wt.path(), ".git/config");
    config.push_str(&plant.config("evil"));
    write(wt.path(), ".git/config", &config);
    write(
        wt.path(),
        ".git/info/attributes",
        "* filter=evil diff=evil\n",
    );
    write(wt.path(), "a.txt", "edited\n");

    exercise(&repo, &wt, &plant);
    repo.remove_worktree(wt.path()).unwrap();
    assert!(!wt.path().exists());
    plant.assert_none_ran("remove_worktree");
}

/// `refs/replace/*` and `info/grafts` planted in the repository change neither what a
/// checkout contains nor what a patch or the history shows.
#[test]
fn replace_refs_and_grafts_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = sample_repo(tmp.path());
    let a = repo.head_commit().unwrap();
    let wt = repo.add_worktree(tmp.path().join("wt"), &a).unwrap();
    write(wt.path(), "a.txt", "second\n");
    let b = wt.commit_all("second").unwrap();
    let wt_evil = repo.add_worktree(tmp.path().join("wt-evil"), &a).unwrap();
    write(wt_evil.path(), "a.txt", "evil\n");
    let e = wt_evil.commit_all("evil").unwrap();
    repo.remove_worktree(wt_evil.path()).unwrap();

    // A run replaces the base commit by its own and rewrites the history of the attempt.
    git_bare_env(repo.root(), &["replace", &a, &e]);
    let common = repo.root().join(".git");
    write(&common, "info/grafts", &format!("{b}\n"));
    // Control: plain git now sees the planted history.
    assert_eq!(
        git_bare_env(repo.root(), &["show", &format!("{a}:a.txt")]),
        "evil\n"
    );
    assert_eq!(
        git_bare_env(repo.root(), &["rev-list", &b]).trim(),
        b,
        "the graft makes the attempt a root commit"
    );

    let check = repo.add_worktree(tmp.path().join("check"), &a).unwrap();
    assert_eq!(read(check.path(), "a.txt"), "alpha\n");
    assert_eq!(check.head_commit().unwrap(), a);
    write(check.path(), "a.txt", "third\n");
    let diff = check.diff_against_head().unwrap();
    assert!(diff.contains("-alpha") && !diff.contains("evil"), "{diff}");

    let patch = repo.show_patch(&b).unwrap();
    assert!(patch.contains("-alpha\n+second"), "{patch}");
    assert!(
        !patch.contains("evil") && !patch.contains("b.txt"),
        "{patch}"
    );
    assert!(repo.is_ancestor(&a, &b).unwrap());
    let log: Vec<String> = repo
        .log(&b, None)
        .unwrap()
        .into_iter()
        .map(|(sha, _)| sha)
        .collect();
    assert_eq!(log, [a.clone(), b.clone()]);
    assert_eq!(repo.commit_message(&a).unwrap(), "initial");

    let wt_b = repo.add_worktree(tmp.path().join("wt-b"), &b).unwrap();
    assert_eq!(read(wt_b.path(), "a.txt"), "second\n");
    assert!(wt_b.changed_paths().unwrap().is_empty());
}

/// A populated gitlink (submodule) and an untracked nested repository in a checkout, both
/// with a configuration and attributes of their own that run programs: git must never run
/// inside them.
#[test]
fn nested_repositories_and_gitlinks_are_never_entered() {
    let tmp = tempfile::tempdir().unwrap();
    let plant = Planted::new(tmp.path());
    let upstream = tmp.path().join("upstream");
    write(&upstream, "s.txt", "sub\n");
    git_bare_env(tmp.path(), &["init", "-q", upstream.to_str().unwrap()]);
    git_bare_env(&upstream, &["add", "-A"]);
    git_bare_env(&upstream, &["commit", "-q", "-m", "sub"]);
    let sub_head = git_bare_env(&upstream, &["rev-parse", "HEAD"])
        .trim()
        .to_owned();

    let repo = sample_repo(tmp.path());
    let root = repo.root().to_owned();
    git_bare_env(
        &root,
        &["clone", "-q", upstream.to_str().unwrap(), "vendor/sub"],
    );
    git_bare_env(&root, &["add", "vendor/sub"]);
    git_bare_env(&root, &["commit", "-q", "-m", "gitlink"]);
    let base = repo.head_commit().unwrap();

    let wt = repo.add_worktree(tmp.path().join("wt"), &base).unwrap();
    let hostile = |dir: &Path| {
        let mut config = read(dir, ".git/config");
        config.push_str(&plant.config("evil"));
        write(dir, ".git/config", &config);
        write(dir, ".git/info/attributes", "* filter=evil diff=evil\n");
        write(dir, ".gitattributes", "* filter=evil diff=evil\n");
        // A tracked file whose content git would have to hash through the filter.
        write(dir, "s.txt", "changed inside\n");
    };
    // The agent populates the gitlink at the recorded commit, and makes a repository of
    // its own beside it.
    let sub = wt.path().join("vendor/sub");
    std::fs::remove_dir_all(&sub).unwrap();
    git_bare_env(
        wt.path(),
        &["clone", "-q", upstream.to_str().unwrap(), "vendor/sub"],
    );
    hostile(&sub);
    let nested = wt.path().join("nested");
    git_bare_env(
        wt.path(),
        &["clone", "-q", upstream.to_str().unwrap(), "nested"],
    );
    hostile(&nested);
    write(wt.path(), "a.txt", "edited\n");

    assert_eq!(
        wt.changed_paths().unwrap(),
        vec![
            change("a.txt", ChangeKind::Modified),
            change("nested/", ChangeKind::Added),
        ]
    );
    let diff = wt.diff_against_head().unwrap();
    assert!(diff.contains("+edited"), "{diff}");
    plant.assert_none_ran("status and diff");

    let sha = wt.commit_all("attempt").unwrap();
    plant.assert_none_ran("commit_all");
    // The gitlink keeps its recorded commit; the new nested repository is left out of the
    // commit (its objects are not this repository's) and still shows as a change.
    let tree = git(&root, &["ls-tree", "-r", &sha]);
    assert!(
        tree.contains(&format!("160000 commit {sub_head}\tvendor/sub")),
        "{tree}"
    );
    assert!(!tree.contains("\tnested"), "{tree}");
    let patch = repo.show_patch(&sha).unwrap();
    assert!(patch.contains("+edited"), "{patch}");

    // The gitlink is in the index, populated and looking unchanged: the riskiest state for
    // `git add`.
    assert_eq!(
        wt.changed_paths().unwrap(),
        vec![change("nested/", ChangeKind::Added)]
    );
    write(wt.path(), "a.txt", "edited twice\n");
    wt.diff_against_head().unwrap();
    let second = wt.commit_all("attempt 2").unwrap();
    std::fs::remove_file(wt.path().join("b.txt")).unwrap();
    wt.restore(&["b.txt".to_owned()]).unwrap();
    write(wt.path(), "a.txt", "scratch\n");
    wt.reset_clean().unwrap();
    assert_eq!(read(wt.path(), "a.txt"), "edited twice\n");
    repo.show_patch(&second).unwrap();
    plant.assert_none_ran("second attempt, restore, reset_clean");

    repo.remove_worktree(wt.path()).unwrap();
    plant.assert_none_ran("remove_worktree");

    // Control: plain git's `add` runs git inside the populated submodule.
    let wt2 = repo.add_worktree(tmp.path().join("wt2"), &base).unwrap();
    let sub2 = wt2.path().join("vendor/sub");
    std::fs::remove_dir_all(&sub2).unwrap();
    git_bare_env(
        wt2.path(),
        &["clone", "-q", upstream.to_str().unwrap(), "vendor/sub"],
    );
    hostile(&sub2);
    git_as_user(wt2.path(), &["add", "-A"]);
    assert!(!plant.ran().is_empty(), "the control ran nothing planted");
}

/// `Repo::worktree` finds a worktree's git directory from the repository's registrations,
/// including for the main checkout and after git numbered a name that collided; a path that
/// is no registered worktree fails on use.
#[test]
fn worktree_handles_are_resolved_from_the_repository_side() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = sample_repo(tmp.path());
    let head = repo.head_commit().unwrap();
    // Same directory name twice: git registers `agent` and `agent1`.
    let one = repo
        .add_worktree(tmp.path().join("p1/agent"), &head)
        .unwrap();
    let two = repo
        .add_worktree(tmp.path().join("p2/agent"), &head)
        .unwrap();
    write(one.path(), "a.txt", "edited\n");
    let sha_one = one.commit_all("one").unwrap();
    assert_eq!(two.head_commit().unwrap(), head);
    assert_eq!(
        repo.worktree(tmp.path().join("p1/agent"))
            .head_commit()
            .unwrap(),
        sha_one
    );
    assert_eq!(
        repo.worktree(tmp.path().join("p2/./agent"))
            .head_commit()
            .unwrap(),
        head
    );

    // Each handle kept its own index: the second checkout is clean.
    assert!(two.changed_paths().unwrap().is_empty());

    // The main checkout.
    let main = repo.worktree(repo.root());
    assert_eq!(main.head_commit().unwrap(), head);
    assert!(main.changed_paths().unwrap().is_empty());

    // A directory that is not a registered worktree, even with a `.git` file naming one.
    let stranger = tmp.path().join("stranger");
    write(
        &stranger,
        ".git",
        &format!(
            "gitdir: {}\n",
            repo.root().join(".git/worktrees/agent").display()
        ),
    );
    let handle = repo.worktree(&stranger);
    for err in [
        handle.head_commit().unwrap_err(),
        handle.changed_paths().unwrap_err(),
        handle.commit_all("x").unwrap_err(),
    ] {
        assert!(matches!(err, GitError::NotAWorkTree { .. }), "{err}");
    }
    assert_eq!(one.head_commit().unwrap(), sha_one);
}
