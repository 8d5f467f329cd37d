mod common;

use common::{git, is_full_sha, read, registered_worktrees, write};
use picidae_git::{Change, ChangeKind, GitError, Identity, Repo, ZERO_OID};

fn change(path: &str, kind: ChangeKind, outside: bool) -> Change {
    Change {
        path: path.into(),
        kind,
        outside_prefix: outside,
    }
}

/// A fresh repository with a few files, committed.
fn sample_repo() -> (tempfile::TempDir, Repo) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bench");
    write(&dir, "a.txt", "alpha\n");
    write(&dir, "b.txt", "beta\n");
    write(&dir, "src/c.txt", "gamma\n");
    write(&dir, ".gitignore", "cache/\n");
    write(&dir, "cache/blob", "ignored\n");
    let repo = Repo::init(&dir, "initial import", Identity::default()).unwrap();
    (tmp, repo)
}

#[test]
fn init_commits_everything_but_ignored_files() {
    let (_tmp, repo) = sample_repo();
    let head = repo.head_commit().unwrap();
    assert!(is_full_sha(&head), "{head:?}");
    assert_eq!(
        repo.resolve("HEAD").unwrap().as_deref(),
        Some(head.as_str())
    );
    assert_eq!(
        repo.resolve("main").unwrap().as_deref(),
        Some(head.as_str())
    );
    assert_eq!(repo.prefix(), std::path::Path::new(""));
    let files = git(repo.root(), &["ls-tree", "-r", "--name-only", "HEAD"]);
    let files: Vec<&str> = files.lines().collect();
    assert_eq!(files, [".gitignore", "a.txt", "b.txt", "src/c.txt"]);
    assert_eq!(repo.commit_message(&head).unwrap(), "initial import");
    assert_eq!(
        git(repo.root(), &["log", "-1", "--format=%an <%ae>|%cn <%ce>"]).trim(),
        "picidae <picidae@localhost>|picidae <picidae@localhost>"
    );
    assert_eq!(git(repo.root(), &["status", "--porcelain"]), "");
    // The root commit's patch adds everything.
    let patch = repo.show_patch(&head).unwrap();
    assert!(patch.contains("+alpha"), "{patch}");

    // A second init on the same directory is refused.
    let err = Repo::init(repo.root(), "again", Identity::default()).unwrap_err();
    assert!(matches!(err, GitError::InvalidArgument(_)), "{err}");
}

#[test]
fn open_rejects_non_repositories_and_reports_git_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Repo::open(tmp.path()).unwrap_err();
    assert!(matches!(err, GitError::NotAWorkTree { .. }), "{err}");
    let err = Repo::open(tmp.path().join("missing")).unwrap_err();
    assert!(matches!(err, GitError::NotAWorkTree { .. }), "{err}");

    let (_tmp, repo) = sample_repo();
    let err = Repo::open(repo.root().join(".git")).unwrap_err();
    assert!(matches!(err, GitError::NotAWorkTree { .. }), "{err}");

    match repo.show_patch("no-such-commit").unwrap_err() {
        GitError::Command {
            args,
            status,
            stderr,
        } => {
            assert_eq!(args.first().map(String::as_str), Some("show"));
            assert!(!status.success());
            assert!(!stderr.is_empty());
            assert_eq!(stderr, stderr.trim());
        }
        other => panic!("expected a command error, got {other}"),
    }
    assert!(matches!(
        repo.resolve("--all").unwrap_err(),
        GitError::InvalidArgument(_)
    ));
    assert_eq!(repo.resolve("refs/picidae/nothing").unwrap(), None);
}

#[test]
fn worktree_changes_commit_and_leave_main_checkout_alone() {
    let (tmp, repo) = sample_repo();
    let base = repo.head_commit().unwrap();
    let wt = repo
        .add_worktree(tmp.path().join("wts/one"), &base)
        .unwrap();
    assert_eq!(wt.head_commit().unwrap(), base);
    assert_eq!(wt.bench_dir(), wt.path());
    assert!(wt.changed_paths().unwrap().is_empty());

    let dir = wt.path().to_owned();
    write(&dir, "a.txt", "alpha\nedited line\n");
    write(&dir, "src/new.txt", "brand new\n");
    std::fs::remove_file(dir.join("b.txt")).unwrap();
    write(&dir, "cache/more", "still ignored\n");

    assert_eq!(
        wt.changed_paths().unwrap(),
        vec![
            change("a.txt", ChangeKind::Modified, false),
            change("b.txt", ChangeKind::Deleted, false),
            change("src/new.txt", ChangeKind::Added, false),
        ]
    );

    let diff = wt.diff_against_head().unwrap();
    assert!(diff.contains("+edited line"), "{diff}");
    assert!(
        diff.contains("b/src/new.txt") && diff.contains("+brand new"),
        "{diff}"
    );
    assert!(diff.contains("deleted file mode"), "{diff}");
    assert!(!diff.contains("cache/"), "{diff}");
    // diff_against_head does not stage anything in the worktree's own index.
    assert_eq!(git(&dir, &["diff", "--cached", "--name-only"]), "");

    let sha = wt.commit_all("attempt 1\n\n# heading kept").unwrap();
    assert!(is_full_sha(&sha), "{sha:?}");
    assert_ne!(sha, base);
    assert_eq!(wt.head_commit().unwrap(), sha);
    assert!(wt.changed_paths().unwrap().is_empty());
    assert_eq!(
        repo.commit_message(&sha).unwrap(),
        "attempt 1\n\n# heading kept"
    );
    assert!(repo.is_ancestor(&base, &sha).unwrap());
    assert!(!repo.is_ancestor(&sha, &base).unwrap());

    let patch = repo.show_patch(&sha).unwrap();
    assert!(patch.contains("+edited line"), "{patch}");
    assert!(patch.contains("+brand new"), "{patch}");
    assert!(patch.contains("-beta"), "{patch}");
    assert!(!patch.contains("ignored"), "{patch}");
    // The worktree's patch before committing is the commit's patch.
    assert_eq!(patch, diff);

    // An attempt that changes nothing still gets its own commit.
    let empty = wt.commit_all("attempt 2: no-op").unwrap();
    assert_ne!(empty, sha);
    assert_eq!(repo.show_patch(&empty).unwrap(), "");

    // The main checkout is untouched.
    let main = repo.root();
    assert_eq!(repo.head_commit().unwrap(), base);
    assert_eq!(read(main, "a.txt"), "alpha\n");
    assert_eq!(read(main, "b.txt"), "beta\n");
    assert!(!main.join("src/new.txt").exists());
    assert_eq!(
        git(main, &["status", "--porcelain", "--untracked-files=all"]),
        ""
    );
}

#[test]
fn reset_clean_discards_changes_but_keeps_ignored_files() {
    let (tmp, repo) = sample_repo();
    let wt = repo.add_worktree(tmp.path().join("wt"), "HEAD").unwrap();
    let dir = wt.path().to_owned();
    write(&dir, "a.txt", "changed\n");
    write(&dir, "junk/untracked.txt", "junk\n");
    write(&dir, "cache/build.o", "expensive\n");
    std::fs::remove_file(dir.join("src/c.txt")).unwrap();
    assert_eq!(wt.changed_paths().unwrap().len(), 3);

    wt.reset_clean().unwrap();
    assert!(wt.changed_paths().unwrap().is_empty());
    assert_eq!(read(&dir, "a.txt"), "alpha\n");
    assert_eq!(read(&dir, "src/c.txt"), "gamma\n");
    assert!(!dir.join("junk").exists());
    assert_eq!(read(&dir, "cache/build.o"), "expensive\n");
}

#[test]
fn staged_rename_is_reported_as_rename() {
    let (tmp, repo) = sample_repo();
    let wt = repo.add_worktree(tmp.path().join("wt"), "HEAD").unwrap();
    git(wt.path(), &["mv", "a.txt", "moved.txt"]);
    assert_eq!(
        wt.changed_paths().unwrap(),
        vec![change(
            "moved.txt",
            ChangeKind::Renamed {
                from: "a.txt".into()
            },
            false
        )]
    );
}

#[test]
fn benchmark_in_a_subdirectory_flags_changes_outside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mono");
    write(&root, "README", "top\n");
    write(&root, "other/lib.txt", "lib\n");
    write(&root, "benches/bench/train.py", "print(1)\n");
    write(&root, "benches/sibling/x", "x\n");
    Repo::init(&root, "init", Identity::default()).unwrap();

    let repo = Repo::open(root.join("benches/bench")).unwrap();
    assert_eq!(repo.prefix(), std::path::Path::new("benches/bench"));
    assert_eq!(repo.root(), root.canonicalize().unwrap());
    assert_eq!(repo.bench_dir(), repo.root().join("benches/bench"));

    let wt = repo.add_worktree(tmp.path().join("wt"), "HEAD").unwrap();
    assert_eq!(wt.bench_dir(), wt.path().join("benches/bench"));
    assert!(wt.bench_dir().join("train.py").is_file());

    write(&wt.bench_dir(), "train.py", "print(2)\n");
    write(&wt.bench_dir(), "data/new.csv", "1,2\n");
    write(wt.path(), "other/lib.txt", "hacked\n");
    write(wt.path(), "README", "hacked\n");
    std::fs::remove_file(wt.path().join("benches/sibling/x")).unwrap();
    write(wt.path(), "benches/bench2/evil", "x\n");

    let changes = wt.changed_paths().unwrap();
    // Sorted by repository-relative path.
    assert_eq!(
        changes,
        vec![
            change("../../README", ChangeKind::Modified, true),
            change("data/new.csv", ChangeKind::Added, false),
            change("train.py", ChangeKind::Modified, false),
            change("../bench2/evil", ChangeKind::Added, true),
            change("../sibling/x", ChangeKind::Deleted, true),
            change("../../other/lib.txt", ChangeKind::Modified, true),
        ]
    );
    let inside: Vec<&str> = changes
        .iter()
        .filter(|c| !c.outside_prefix)
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(inside, ["data/new.csv", "train.py"]);
    assert!(changes
        .iter()
        .all(|c| c.outside_prefix == c.path.starts_with("../")));
}

#[test]
fn update_ref_is_compare_and_swap() {
    let (tmp, repo) = sample_repo();
    let base = repo.head_commit().unwrap();
    let wt = repo.add_worktree(tmp.path().join("wt"), &base).unwrap();
    write(wt.path(), "a.txt", "v2\n");
    let second = wt.commit_all("second").unwrap();

    let name = "refs/picidae/attempts/1";
    repo.update_ref(name, &base, Some(ZERO_OID)).unwrap();
    assert_eq!(repo.resolve(name).unwrap().as_deref(), Some(base.as_str()));

    // "Must not exist yet" fails once it exists.
    let err = repo.update_ref(name, &second, Some(ZERO_OID)).unwrap_err();
    assert!(
        matches!(&err, GitError::RefConflict { expected: None, actual: Some(a), .. } if *a == base),
        "{err}"
    );

    // Right old value: swapped.
    repo.update_ref(name, &second, Some(&base)).unwrap();
    assert_eq!(
        repo.resolve(name).unwrap().as_deref(),
        Some(second.as_str())
    );

    // Stale old value: refused, ref unchanged.
    let err = repo.update_ref(name, &base, Some(&base)).unwrap_err();
    assert!(
        matches!(&err, GitError::RefConflict { actual: Some(a), .. } if *a == second),
        "{err}"
    );
    assert_eq!(
        repo.resolve(name).unwrap().as_deref(),
        Some(second.as_str())
    );

    // Unconditional update.
    repo.update_ref(name, &base, None).unwrap();
    assert_eq!(repo.resolve(name).unwrap().as_deref(), Some(base.as_str()));

    repo.update_ref("refs/picidae/attempts/2", &second, None)
        .unwrap();
    repo.update_ref("refs/picidae/best", &second, None).unwrap();
    repo.update_ref("refs/other/x", &second, None).unwrap();

    assert_eq!(
        repo.list_refs("refs/picidae/attempts/").unwrap(),
        vec![
            ("refs/picidae/attempts/1".to_owned(), base.clone()),
            ("refs/picidae/attempts/2".to_owned(), second.clone()),
        ]
    );
    let all: Vec<String> = repo
        .list_refs("refs/picidae/")
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        all,
        [
            "refs/picidae/attempts/1",
            "refs/picidae/attempts/2",
            "refs/picidae/best"
        ]
    );
    assert_eq!(repo.list_refs("refs/picidae/att").unwrap().len(), 2);
    assert!(repo.list_refs("refs/nothing/").unwrap().is_empty());

    repo.delete_ref("refs/picidae/attempts/2").unwrap();
    repo.delete_ref("refs/picidae/attempts/2").unwrap(); // already gone: fine
    assert_eq!(repo.resolve("refs/picidae/attempts/2").unwrap(), None);
    assert_eq!(repo.list_refs("refs/picidae/attempts/").unwrap().len(), 1);

    // Names outside refs/ or malformed are refused before touching anything.
    for bad in [
        "main",
        "HEAD",
        "refs/picidae/bad..name",
        "refs/picidae/sp ace",
        "-d",
    ] {
        let err = repo.update_ref(bad, &base, None).unwrap_err();
        assert!(matches!(err, GitError::InvalidArgument(_)), "{bad}: {err}");
    }
    assert_eq!(
        repo.resolve("main").unwrap().as_deref(),
        Some(base.as_str())
    );
}

#[test]
fn remove_worktree_unregisters_and_tolerates_missing_dirs() {
    let (tmp, repo) = sample_repo();
    let one = repo.add_worktree(tmp.path().join("one"), "HEAD").unwrap();
    let two = repo.add_worktree(tmp.path().join("two"), "HEAD").unwrap();
    assert_eq!(registered_worktrees(repo.root()).len(), 3);
    assert_eq!(repo.list_worktrees().unwrap().len(), 3);

    // Dirty worktree with an untracked file: removed anyway.
    write(one.path(), "a.txt", "dirty\n");
    write(one.path(), "untracked", "u\n");
    repo.remove_worktree(one.path()).unwrap();
    assert!(!one.path().exists());

    // Directory deleted by hand: removal still succeeds and unregisters it.
    std::fs::remove_dir_all(two.path()).unwrap();
    repo.remove_worktree(two.path()).unwrap();
    repo.remove_worktree(two.path()).unwrap(); // and again

    let left = registered_worktrees(repo.root());
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        std::path::Path::new(&left[0]).canonicalize().unwrap(),
        repo.root().canonicalize().unwrap()
    );

    // A directory that is not a worktree of this repo is never deleted.
    let stranger = tmp.path().join("stranger");
    write(&stranger, "keep.txt", "keep\n");
    assert!(repo.remove_worktree(&stranger).is_err());
    assert!(stranger.join("keep.txt").exists());
    // Nor is the main checkout.
    assert!(repo.remove_worktree(repo.root()).is_err());
    assert!(repo.root().join("a.txt").exists());

    // A worktree re-added at a path whose directory vanished (--force).
    let again = repo.add_worktree(tmp.path().join("two"), "HEAD").unwrap();
    assert!(again.path().join("a.txt").exists());
    repo.prune_worktrees().unwrap();
    assert_eq!(registered_worktrees(repo.root()).len(), 2);
}

#[test]
fn hostile_repo_config_does_not_run_hooks_or_sign() {
    let (tmp, repo) = sample_repo();
    let marker = tmp.path().join("hook-ran");
    let hooks = repo.root().join(".git/hooks");
    for hook in [
        "pre-commit",
        "commit-msg",
        "post-commit",
        "post-checkout",
        "reference-transaction",
    ] {
        let script = hooks.join(hook);
        std::fs::write(
            &script,
            format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    git(repo.root(), &["config", "commit.gpgsign", "true"]);
    git(repo.root(), &["config", "gpg.program", "/nonexistent/gpg"]);
    git(repo.root(), &["config", "core.autocrlf", "true"]);

    let wt = repo.add_worktree(tmp.path().join("wt"), "HEAD").unwrap();
    write(wt.path(), "a.txt", "one\r\ntwo\n");
    let sha = wt.commit_all("attempt").unwrap();
    repo.update_ref("refs/picidae/a", &sha, None).unwrap();
    repo.remove_worktree(wt.path()).unwrap();
    assert!(!marker.exists(), "a hook ran");
    // Bytes are committed as written (no CRLF conversion).
    assert_eq!(
        git(repo.root(), &["cat-file", "blob", &format!("{sha}:a.txt")]),
        "one\r\ntwo\n"
    );
}

/// An edit of the same size made right after checkout (same second as the index) must show in
/// the diff, as it does in `git status`.
#[test]
fn same_size_edit_right_after_checkout_is_in_the_diff() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("b");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(bench.join("value.txt"), "10\n").unwrap();
    let repo = picidae_git::Repo::init(&bench, "init", picidae_git::Identity::default()).unwrap();
    let head = repo.head_commit().unwrap();
    for i in 0..20 {
        let wt_path = dir.path().join(format!("wt{i}"));
        let wt = repo.add_worktree(&wt_path, &head).unwrap();
        std::fs::write(wt.bench_dir().join("value.txt"), "12\n").unwrap();
        assert_eq!(wt.changed_paths().unwrap().len(), 1);
        let patch = wt.diff_against_head().unwrap();
        assert!(
            patch.contains("+12"),
            "round {i}: empty or wrong diff: {patch:?}"
        );
        repo.remove_worktree(&wt_path).unwrap();
    }
}
