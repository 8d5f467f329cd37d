//! Replaying a commit's change onto another commit, in the object store only.

mod common;

use common::{commit_all, git, write};
use picidae_git::{Identity, Replayed, Repo};

#[test]
fn a_change_replays_onto_a_moved_target_or_names_its_conflicts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    write(&dir, "a.txt", "a1\n");
    write(&dir, "b.txt", "b1\n");
    let repo = Repo::init(&dir, "initial", Identity::default()).unwrap();
    let base = repo.head_commit().unwrap();
    // The change to replay: a.txt edited on a side branch.
    git(&dir, &["checkout", "-q", "-b", "side"]);
    write(&dir, "a.txt", "a2\n");
    let change = commit_all(&dir, "edit a");
    // The target moved on: b.txt edited.
    git(&dir, &["checkout", "-q", "main"]);
    write(&dir, "b.txt", "b2\n");
    let onto = commit_all(&dir, "edit b");
    let head_before = repo.head_commit().unwrap();

    let Replayed::Committed(sha) = repo.replay(&base, &change, &onto, "replayed\n").unwrap() else {
        panic!("a clean replay");
    };
    assert_eq!(repo.file_at(&sha, "a.txt").unwrap().unwrap(), b"a2\n");
    assert_eq!(repo.file_at(&sha, "b.txt").unwrap().unwrap(), b"b2\n");
    assert_eq!(git(&dir, &["rev-parse", &format!("{sha}^")]).trim(), onto);
    assert_eq!(repo.commit_message(&sha).unwrap(), "replayed");
    // Nothing checked out moved.
    assert_eq!(repo.head_commit().unwrap(), head_before);
    assert!(git(&dir, &["status", "--porcelain"]).trim().is_empty());

    // Onto its own base, the replay has the change's tree.
    let Replayed::Committed(same) = repo.replay(&base, &change, &base, "again").unwrap() else {
        panic!("a clean replay");
    };
    assert_eq!(
        git(&dir, &["rev-parse", &format!("{same}^{{tree}}")]),
        git(&dir, &["rev-parse", &format!("{change}^{{tree}}")])
    );

    // A target that edited the same lines conflicts, and says where.
    write(&dir, "a.txt", "a3\n");
    let clash = commit_all(&dir, "edit a too");
    assert_eq!(
        repo.replay(&base, &change, &clash, "x").unwrap(),
        Replayed::Conflict(vec!["a.txt".to_string()])
    );
    assert!(repo.replay(&base, "--all", &clash, "x").is_err());
}
