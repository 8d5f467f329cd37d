//! Commits carried between two clones of one repository as bundles: a chain of commits made
//! in one clone arrives in the other one bundle at a time, each bundle holding only what its
//! parents lack, and a bundle whose parents are missing is refused.

mod common;

use common::{commit_all, git, write};
use picidae_git::{Identity, Repo};

#[test]
fn a_chain_of_commits_travels_one_bundle_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let here = tmp.path().join("here");
    write(&here, "a.txt", "a1\n");
    write(&here, "big.txt", &"x".repeat(200_000));
    let repo = Repo::init(&here, "initial", Identity::default()).unwrap();
    let base = repo.head_commit().unwrap();
    let there = tmp.path().join("there");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            here.to_str().unwrap(),
            there.to_str().unwrap(),
        ],
    );
    let clone = Repo::open(&there).unwrap();

    write(&here, "a.txt", "a2\n");
    let first = commit_all(&here, "first");
    write(&here, "b.txt", "b\n");
    let second = commit_all(&here, "second");

    let asked = vec![base.clone(), first.clone(), second.clone()];
    assert_eq!(
        clone.missing_commits(&asked).unwrap(),
        vec![first.clone(), second.clone()]
    );

    // The second's parent is not there yet: refused, nothing written.
    let second_bundle = repo.pack_commit(&second).unwrap();
    assert!(clone.unpack_commit(&second_bundle, &second).is_err());
    assert_eq!(clone.missing_commits(&asked).unwrap().len(), 2);

    let first_bundle = repo.pack_commit(&first).unwrap();
    // Only the delta travels: the big file the base holds is not in the bundle.
    assert!(first_bundle.len() < 20_000, "{} bytes", first_bundle.len());
    clone.unpack_commit(&first_bundle, &first).unwrap();
    clone.unpack_commit(&second_bundle, &second).unwrap();
    assert!(clone.missing_commits(&asked).unwrap().is_empty());
    assert_eq!(clone.file_at(&second, "b.txt").unwrap().unwrap(), b"b\n");
    // No temporary ref is left behind in the packing clone.
    assert!(!git(&here, &["for-each-ref"]).contains("refs/picidae/carry/"));
}
