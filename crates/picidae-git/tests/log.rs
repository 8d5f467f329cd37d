mod common;

use common::{git, is_full_sha, write};
use picidae_git::{GitError, Identity, Repo};

#[test]
fn log_lists_a_branch_oldest_first_excluding_a_base() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    write(&dir, "train.py", "lr = 0.01\n");
    let repo = Repo::init(&dir, "initial", Identity::default()).unwrap();
    let base = repo.head_commit().unwrap();
    git(&dir, &["checkout", "-q", "-b", "exp"]);
    for (i, msg) in ["raise lr\n\nlonger body", "add warmup", "   "]
        .iter()
        .enumerate()
    {
        write(&dir, "train.py", &format!("lr = 0.0{}\n", i + 2));
        git(&dir, &["add", "-A"]);
        git(
            &dir,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty-message",
                "-m",
                msg,
            ],
        );
    }

    let all = repo.log("exp", None).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0], (base.clone(), "initial".to_string()));
    assert!(all.iter().all(|(sha, _)| is_full_sha(sha)));

    let range = repo.log("exp", Some("main")).unwrap();
    let subjects: Vec<&str> = range.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(subjects, ["raise lr", "add warmup", ""]);
    assert_eq!(range[2].0, repo.resolve("exp").unwrap().unwrap());
    assert_eq!(repo.log("HEAD", Some("exp")).unwrap(), []);

    let err = repo.log("no-such-branch", None).unwrap_err();
    assert!(matches!(err, GitError::Command { .. }), "{err}");
    let err = repo.log("exp", Some("--all")).unwrap_err();
    assert!(matches!(err, GitError::InvalidArgument(_)), "{err}");
}
