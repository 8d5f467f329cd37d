//! Runs in its own process: the environment is changed for the whole test
//! binary to look like a fresh machine (no HOME config, no system config) with
//! a stray GIT_DIR/GIT_INDEX_FILE inherited from a caller.
mod common;

use common::{git, is_full_sha, write};
use picidae_git::{ChangeKind, Identity, Repo};

#[test]
fn works_without_any_user_git_config() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // Edition 2021: set_var is safe; this binary has a single test.
    std::env::set_var("HOME", home.path());
    std::env::set_var("XDG_CONFIG_HOME", home.path().join(".config"));
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    std::env::remove_var("GIT_CONFIG_GLOBAL");
    std::env::remove_var("GIT_AUTHOR_NAME");
    std::env::remove_var("GIT_AUTHOR_EMAIL");
    std::env::remove_var("GIT_COMMITTER_NAME");
    std::env::remove_var("GIT_COMMITTER_EMAIL");
    std::env::remove_var("EMAIL");
    // A caller's repository-selecting variables must not leak into our git.
    std::env::set_var("GIT_DIR", work.path().join("bogus.git"));
    std::env::set_var("GIT_INDEX_FILE", work.path().join("bogus-index"));

    // Sanity: plain git really has no identity here.
    let probe = std::process::Command::new("git")
        .args(["config", "--get", "user.name"])
        .env_remove("GIT_DIR")
        .current_dir(home.path())
        .output()
        .unwrap();
    assert!(
        !probe.status.success(),
        "a user.name is configured somewhere"
    );

    let dir = work.path().join("bench");
    write(&dir, "train.py", "print('hi')\n");
    let who = Identity::new("Robo Researcher", "robo@example.invalid");
    let repo = Repo::init(&dir, "import", who).unwrap();
    let head = repo.head_commit().unwrap();
    assert!(is_full_sha(&head));

    let wt = repo.add_worktree(work.path().join("wt"), &head).unwrap();
    write(wt.path(), "train.py", "print('bye')\n");
    let changes = wt.changed_paths().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::Modified);
    assert!(wt.diff_against_head().unwrap().contains("+print('bye')"));
    let sha = wt.commit_all("attempt").unwrap();
    repo.update_ref("refs/picidae/attempts/1", &sha, Some(picidae_git::ZERO_OID))
        .unwrap();

    let author = git(
        repo.root(),
        &["log", "-1", "--format=%an <%ae>|%cn <%ce>", &sha],
    );
    assert_eq!(
        author.trim(),
        "Robo Researcher <robo@example.invalid>|Robo Researcher <robo@example.invalid>"
    );
    assert!(!work.path().join("bogus.git").exists());
    assert!(!work.path().join("bogus-index").exists());
    repo.remove_worktree(wt.path()).unwrap();
}
