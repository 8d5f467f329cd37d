//! A checkout whose user committed in it, or left new files behind: `reset_soft` takes the
//! checkout back to its starting commit with every change kept, and `discard_paths` drops new
//! paths from what would be committed.

mod common;

use common::{git, read, write};
use picidae_git::{Change, ChangeKind, Identity, Repo};

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: path.into(),
        kind,
        outside_prefix: false,
    }
}

fn sample() -> (tempfile::TempDir, Repo) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bench");
    write(&dir, "a.txt", "alpha\n");
    write(&dir, "b.txt", "beta\n");
    let repo = Repo::init(&dir, "initial import", Identity::default()).unwrap();
    (tmp, repo)
}

fn commit_here(dir: &std::path::Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=someone",
            "-c",
            "user.email=someone@example.invalid",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
}

#[test]
fn commits_made_in_the_checkout_become_changes_against_the_start() {
    let (tmp, repo) = sample();
    let base = repo.head_commit().unwrap();
    let wt = repo.add_worktree(tmp.path().join("wt"), &base).unwrap();
    write(wt.path(), "a.txt", "committed\n");
    std::fs::remove_file(wt.path().join("b.txt")).unwrap();
    commit_here(wt.path(), "one");
    write(wt.path(), "c.txt", "second commit\n");
    commit_here(wt.path(), "two");
    write(wt.path(), "d.txt", "not committed\n");
    // Relative to its own HEAD, only the uncommitted file differs.
    assert_eq!(
        wt.changed_paths().unwrap(),
        vec![change("d.txt", ChangeKind::Added)]
    );

    wt.reset_soft(&base).unwrap();
    assert_eq!(wt.head_commit().unwrap(), base);
    assert_eq!(
        wt.changed_paths().unwrap(),
        vec![
            change("a.txt", ChangeKind::Modified),
            change("b.txt", ChangeKind::Deleted),
            change("c.txt", ChangeKind::Added),
            change("d.txt", ChangeKind::Added),
        ]
    );
    let patch = wt.diff_against_head().unwrap();
    assert!(patch.contains("+committed") && patch.contains("+not committed"));
    let commit = wt.commit_all("all of it").unwrap();
    assert_eq!(
        git(wt.path(), &["rev-parse", &format!("{commit}^")]).trim(),
        base,
        "one commit on top of the start"
    );
    assert_eq!(read(wt.path(), "a.txt"), "committed\n");
    let files = repo.tracked_files(&commit).unwrap();
    assert_eq!(files, ["a.txt", "c.txt", "d.txt"]);
}

#[test]
fn a_checkout_moved_to_an_unrelated_commit_is_compared_with_the_start() {
    let (tmp, repo) = sample();
    let base = repo.head_commit().unwrap();
    let wt = repo.add_worktree(tmp.path().join("wt"), &base).unwrap();
    // An orphan branch: a history that does not descend from the start.
    git(wt.path(), &["checkout", "-q", "--orphan", "elsewhere"]);
    git(wt.path(), &["rm", "-q", "-r", "--cached", "."]);
    std::fs::remove_file(wt.path().join("b.txt")).unwrap();
    write(wt.path(), "a.txt", "rewritten\n");
    commit_here(wt.path(), "orphan");
    let orphan = git(wt.path(), &["rev-parse", "HEAD"]).trim().to_string();
    assert!(!repo.is_ancestor(&base, &orphan).unwrap());

    wt.reset_soft(&base).unwrap();
    assert_eq!(wt.head_commit().unwrap(), base);
    assert_eq!(
        wt.changed_paths().unwrap(),
        vec![
            change("a.txt", ChangeKind::Modified),
            change("b.txt", ChangeKind::Deleted),
        ]
    );
    // The branch the checkout was switched to is left where it was.
    assert_eq!(
        git(wt.path(), &["rev-parse", "refs/heads/elsewhere"]).trim(),
        orphan
    );
    assert!(wt.reset_soft("no-such-commit").is_err());
}

#[test]
fn discarded_new_paths_are_neither_committed_nor_left_in_the_checkout() {
    let (tmp, repo) = sample();
    let base = repo.head_commit().unwrap();
    let wt = repo.add_worktree(tmp.path().join("wt"), &base).unwrap();
    write(wt.path(), "a.txt", "edited\n");
    write(wt.path(), "notes.txt", "scratch\n");
    write(wt.path(), "tmp/deep/log.txt", "scratch\n");
    write(wt.path(), "staged.txt", "scratch\n");
    git(wt.path(), &["add", "staged.txt"]);
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&outside, wt.path().join("link")).unwrap();

    wt.discard_paths(&[
        "notes.txt".into(),
        "tmp/deep/log.txt".into(),
        "staged.txt".into(),
        "link".into(),
    ])
    .unwrap();
    assert_eq!(
        wt.changed_paths().unwrap(),
        vec![change("a.txt", ChangeKind::Modified)]
    );
    for gone in ["notes.txt", "tmp/deep/log.txt", "staged.txt", "link"] {
        assert!(
            std::fs::symlink_metadata(wt.path().join(gone)).is_err(),
            "{gone}"
        );
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me\n");
    let commit = wt.commit_all("edit").unwrap();
    assert_eq!(repo.tracked_files(&commit).unwrap(), ["a.txt", "b.txt"]);
}

#[test]
fn discarded_paths_outside_a_benchmark_subdirectory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mono");
    write(&root, "benches/bench/train.py", "print(1)\n");
    write(&root, "README", "top\n");
    Repo::init(&root, "init", Identity::default()).unwrap();
    let repo = Repo::open(root.join("benches/bench")).unwrap();
    let wt = repo.add_worktree(tmp.path().join("wt"), "HEAD").unwrap();
    write(&wt.bench_dir(), "scratch.txt", "x\n");
    write(wt.path(), "stray.txt", "x\n");
    wt.discard_paths(&["scratch.txt".into(), "../../stray.txt".into()])
        .unwrap();
    assert!(wt.changed_paths().unwrap().is_empty());
    assert!(!wt.path().join("stray.txt").exists());
    assert!(wt.path().join("README").exists());
}
