//! `Repo::exclude_dir`: a directory listed in the repository's own `info/exclude` is no change
//! of the work tree, whatever characters its name holds; the tracked files are untouched.

mod common;

use common::write;
use picidae_git::{Identity, Repo};

#[test]
fn an_excluded_directory_is_no_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bench");
    write(&dir, "a.txt", "alpha\n");
    let repo = Repo::init(&dir, "initial import", Identity::default()).unwrap();
    write(&dir, "sub/[odd]*dir/store.sqlite", "db\n");
    write(&dir, "sub/other.txt", "kept\n");
    let changed = |repo: &Repo| -> Vec<String> {
        repo.worktree(repo.root())
            .changed_paths()
            .unwrap()
            .into_iter()
            .map(|c| c.path)
            .collect()
    };
    assert_eq!(
        changed(&repo),
        ["sub/[odd]*dir/store.sqlite", "sub/other.txt"]
    );

    let odd = dir.join("sub/[odd]*dir");
    assert!(repo.exclude_dir(&odd).unwrap());
    assert_eq!(changed(&repo), ["sub/other.txt"]);
    assert!(!repo.exclude_dir(&odd).unwrap(), "listed twice");
    assert!(!repo.exclude_dir(&dir).unwrap(), "the whole work tree");
    assert!(
        !repo.exclude_dir(tmp.path()).unwrap(),
        "outside the work tree"
    );
    let exclude = std::fs::read_to_string(repo.common_dir().join("info/exclude")).unwrap();
    assert_eq!(
        exclude
            .lines()
            .filter(|l| l.contains("odd"))
            .collect::<Vec<_>>(),
        ["/sub/\\[odd\\]\\*dir/"]
    );
    assert!(!exclude.contains("other.txt"), "{exclude}");
}
