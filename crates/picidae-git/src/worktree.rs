//! One detached checkout in which a run or an agent works.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cmd::Git;
use crate::error::{GitError, Result};
use crate::repo::commit_from_stdin;
use crate::status::{parse_porcelain_v1_z, to_changes, Change};
use crate::Identity;

/// Options making patches independent of the user's diff configuration.
pub(crate) const PATCH_OPTS: &[&str] = &[
    "--binary",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-relative",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "-M",
];

/// A worktree (checkout) of the benchmark's repository.
///
/// All operations act on the whole checkout, not only on the benchmark
/// directory: [`Worktree::changed_paths`] flags what lies outside it.
#[derive(Debug, Clone)]
pub struct Worktree {
    path: PathBuf,
    prefix: PathBuf,
    prefix_str: String,
    identity: Identity,
}

impl Worktree {
    pub(crate) fn new(
        path: PathBuf,
        prefix: PathBuf,
        prefix_str: String,
        identity: Identity,
    ) -> Self {
        Worktree {
            path,
            prefix,
            prefix_str,
            identity,
        }
    }

    /// The top level of this checkout.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The benchmark directory relative to [`Worktree::path`] (same as the
    /// repository's [`crate::Repo::prefix`]).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The benchmark directory inside this checkout: `path().join(prefix())`.
    /// Runs and agents should work here.
    pub fn bench_dir(&self) -> PathBuf {
        self.path.join(&self.prefix)
    }

    fn git(&self) -> Git<'_> {
        Git::new(&self.path, &self.identity)
    }

    /// Full sha of this checkout's `HEAD`.
    pub fn head_commit(&self) -> Result<String> {
        self.git()
            .args(["rev-parse", "--verify", "HEAD^{commit}"])
            .run_text()
    }

    /// Every path that differs from `HEAD` (staged or not), sorted by
    /// repository-relative path.
    /// Untracked files are [`crate::ChangeKind::Added`]; ignored files are not
    /// listed. Paths are relative to the benchmark directory; those outside it
    /// look like `../other/file` and have `outside_prefix` set.
    ///
    /// Non-UTF-8 file names are converted lossily.
    pub fn changed_paths(&self) -> Result<Vec<Change>> {
        let out = self
            .git()
            .args([
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--ignore-submodules=none",
            ])
            .run()?;
        Ok(to_changes(parse_porcelain_v1_z(&out)?, &self.prefix_str))
    }

    /// The patch from `HEAD` to the current state of the checkout, untracked
    /// (not ignored) files included, binary-safe and applicable with
    /// `git apply` at the repository root (paths are repository-relative).
    ///
    /// The checkout's own index is left alone: the changes are staged into a
    /// temporary copy of it. Non-UTF-8 text content is converted lossily.
    pub fn diff_against_head(&self) -> Result<String> {
        let index = self.git_path("index")?;
        let tmp = TempIndex::new(&index)?;
        self.git()
            .env("GIT_INDEX_FILE", &tmp.path)
            .args(["add", "-A"])
            .run()?;
        let out = self
            .git()
            .env("GIT_INDEX_FILE", &tmp.path)
            .args(["diff", "--cached"])
            .args(PATCH_OPTS)
            .args(["HEAD", "--"])
            .run()?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Stages everything (new files, edits, deletions; not ignored files) and
    /// commits it on the detached `HEAD`, even when nothing changed, so every
    /// attempt has a commit. Returns the new commit's sha.
    pub fn commit_all(&self, message: &str) -> Result<String> {
        self.git().args(["add", "-A"]).run()?;
        commit_from_stdin(&self.path, &self.identity, message)?;
        self.head_commit()
    }

    /// Discards every change: `git reset --hard HEAD` then `git clean -ffd`.
    ///
    /// Deliberately *not* `clean -x`: ignored files (build outputs, virtual
    /// environments, downloaded data, caches) survive so the next run need not
    /// rebuild them. Untracked nested repositories are removed (`-ff`).
    pub fn reset_clean(&self) -> Result<()> {
        self.git()
            .args(["reset", "--quiet", "--hard", "HEAD"])
            .run()?;
        self.git().args(["clean", "-ffd", "--quiet"]).run()?;
        Ok(())
    }

    /// Put back the committed version of `paths` (relative to the benchmark directory), e.g.
    /// files the harness removed from this checkout on purpose. Paths not in `HEAD` are skipped.
    pub fn restore(&self, paths: &[String]) -> Result<()> {
        for p in paths {
            let full = self.prefix.join(p);
            let spec = format!("HEAD:{}", full.to_string_lossy().replace('\\', "/"));
            let exists = self
                .git()
                .args(["cat-file", "-e"])
                .arg(&spec)
                .run_allowing(128)?
                .is_some();
            if exists {
                self.git()
                    .args(["checkout", "--quiet", "HEAD", "--"])
                    .arg(&full)
                    .run()?;
            }
        }
        Ok(())
    }

    /// `git rev-parse --git-path name`, made absolute.
    fn git_path(&self, name: &str) -> Result<PathBuf> {
        let p = self
            .git()
            .args(["rev-parse", "--git-path", name])
            .run_text()?;
        Ok(self.path.join(p))
    }
}

/// A scratch copy of an index file next to it, deleted on drop.
struct TempIndex {
    path: PathBuf,
}

impl TempIndex {
    fn new(index: &Path) -> Result<TempIndex> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("index.picidae-{}-{n}", std::process::id());
        let path = index.with_file_name(name);
        let tmp = TempIndex { path };
        match std::fs::copy(index, &tmp.path) {
            // Keep the index's own mtime on the copy: git trusts an entry's stat data only
            // when the file is older than the index, so a fresher copy would hide an edit of
            // the same size made in the same second as the checkout ("racy git").
            Ok(_) => {
                let mtime = std::fs::metadata(index)
                    .and_then(|m| m.modified())
                    .map_err(|e| GitError::io(index, e))?;
                std::fs::File::options()
                    .write(true)
                    .open(&tmp.path)
                    .and_then(|f| f.set_modified(mtime))
                    .map_err(|e| GitError::io(&tmp.path, e))?;
            }
            // No index yet: `git add -A` builds one from scratch.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::io(index, e)),
        }
        Ok(tmp)
    }
}

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let mut lock = self.path.clone().into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }
}
