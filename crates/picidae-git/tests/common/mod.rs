//! Helpers shared by the integration tests (real git in temp dirs).
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::Command;

/// Runs plain git (for checking what the crate did), panicking on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Stages everything in `dir` and commits it as `t <t@t>`; the new commit's sha.
pub fn commit_all(dir: &Path, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            msg,
        ],
    );
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}

/// Writes `contents` to `dir/rel`, creating parent directories.
pub fn write(dir: &Path, rel: &str, contents: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, contents).unwrap();
}

pub fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap()
}

pub fn is_full_sha(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Registered worktree paths according to `git worktree list --porcelain`.
pub fn registered_worktrees(repo_root: &Path) -> Vec<String> {
    git(repo_root, &["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .map(str::to_owned)
        .collect()
}

/// Runs plain git with no per-user or system configuration, for checks and set-up that
/// must not trigger what a test planted there. Panics on failure.
pub fn git_bare_env(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs plain git as a user would (the process's own environment), returning whether it
/// succeeded: the control showing that what a test planted is live.
pub fn git_as_user(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .args(args)
        .output()
        .expect("git runs")
        .status
        .success()
}

/// A program an attacker plants: every time it runs it leaves a marker file named after
/// its first argument in `markers`, then behaves like `cat` (of its second argument, if
/// any), so the git features that call it keep working.
pub struct Planted {
    pub markers: std::path::PathBuf,
    pub program: std::path::PathBuf,
    pub hooks: std::path::PathBuf,
}

impl Planted {
    pub fn new(dir: &Path) -> Planted {
        use std::os::unix::fs::PermissionsExt;
        let markers = dir.join("markers");
        let hooks = dir.join("hooks");
        fs::create_dir_all(&markers).unwrap();
        fs::create_dir_all(&hooks).unwrap();
        let program = dir.join("evil.sh");
        fs::write(
            &program,
            format!(
                "#!/bin/sh\ntouch '{}'/\"$1\"\nif [ -n \"$2\" ] && [ -f \"$2\" ]; then cat \"$2\"; else cat; fi\n",
                markers.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        for hook in [
            "pre-commit",
            "commit-msg",
            "post-commit",
            "post-checkout",
            "post-index-change",
            "reference-transaction",
        ] {
            let script = hooks.join(hook);
            fs::write(
                &script,
                format!(
                    "#!/bin/sh\n'{}' hook-{hook} </dev/null\n",
                    program.display()
                ),
            )
            .unwrap();
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Planted {
            markers,
            program,
            hooks,
        }
    }

    /// A command line running the program with marker `what`.
    pub fn cmd(&self, what: &str) -> String {
        format!("'{}' {what}", self.program.display())
    }

    /// Config text defining drivers named `driver` (filter, diff, merge), an fsmonitor,
    /// hooks and other program-running settings, each leaving its own marker.
    pub fn config(&self, driver: &str) -> String {
        format!(
            "[filter \"{driver}\"]\n\tclean = {clean}\n\tsmudge = {smudge}\n\
             [diff \"{driver}\"]\n\ttextconv = {textconv}\n\tcommand = {command}\n\
             [merge \"{driver}\"]\n\tdriver = {merge}\n\
             [core]\n\tfsmonitor = {fsmonitor}\n\thooksPath = {hooks}\n\tpager = {pager}\n\
             \tsshCommand = {ssh}\n\
             [diff]\n\texternal = {external}\n",
            clean = self.cmd(&format!("{driver}-clean")),
            smudge = self.cmd(&format!("{driver}-smudge")),
            textconv = self.cmd(&format!("{driver}-textconv")),
            command = self.cmd(&format!("{driver}-diff-command")),
            merge = self.cmd(&format!("{driver}-merge")),
            fsmonitor = self.cmd("fsmonitor"),
            hooks = self.hooks.display(),
            pager = self.cmd("pager"),
            ssh = self.cmd("ssh"),
            external = self.cmd("external-diff"),
        )
    }

    /// The markers left so far, sorted.
    pub fn ran(&self) -> Vec<String> {
        let mut ran: Vec<String> = fs::read_dir(&self.markers)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        ran.sort();
        ran
    }

    pub fn assert_none_ran(&self, when: &str) {
        let ran = self.ran();
        assert!(ran.is_empty(), "{when}: planted programs ran: {ran:?}");
    }

    pub fn clear(&self) {
        fs::remove_dir_all(&self.markers).unwrap();
        fs::create_dir_all(&self.markers).unwrap();
    }
}
