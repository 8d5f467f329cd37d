//! One detached checkout in which a run or an agent works.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cmd::{Git, Pinned};
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
    /// Its git directory and work tree as the repository registered them; `None` when no
    /// registered worktree lives at `path` (every operation then fails).
    pin: Option<Pinned>,
    prefix: PathBuf,
    prefix_str: String,
    identity: Identity,
}

impl Worktree {
    pub(crate) fn new(
        path: PathBuf,
        pin: Option<Pinned>,
        prefix: PathBuf,
        prefix_str: String,
        identity: Identity,
    ) -> Self {
        Worktree {
            path,
            pin,
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

    pub(crate) fn pin(&self) -> Option<&Pinned> {
        self.pin.as_ref()
    }

    fn pinned(&self) -> Result<&Pinned> {
        self.pin.as_ref().ok_or_else(|| GitError::NotAWorkTree {
            path: self.path.clone(),
            detail: "no registered worktree of the repository lives here".into(),
        })
    }

    fn git(&self) -> Result<Git<'_>> {
        Ok(Git::new(self.pinned()?, &self.identity))
    }

    /// Full sha of this checkout's `HEAD`.
    pub fn head_commit(&self) -> Result<String> {
        self.git()?
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
    ///
    /// Gitlinks (submodules) are left out: git would have to run inside them, under their own
    /// configuration, to compare them, and [`Worktree::commit_all`] never records a change to
    /// one either. A nested repository that is not yet a gitlink is listed (`dir/`), like any
    /// untracked path.
    pub fn changed_paths(&self) -> Result<Vec<Change>> {
        let out = self
            .git()?
            .args([
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--ignore-submodules=all",
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
        let index = self.pinned()?.git_dir.join("index");
        let tmp = TempIndex::new(&index)?;
        self.stage_all(Some(&tmp.path))?;
        let out = self
            .git()?
            .env("GIT_INDEX_FILE", &tmp.path)
            .args(["diff", "--cached", "--ignore-submodules=all"])
            .args(PATCH_OPTS)
            .args(["HEAD", "--"])
            .run()?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Applies `patch` (repository-relative, as [`Worktree::diff_against_head`] writes it) to
    /// the checkout's files, merging three ways where its context moved. Git refuses paths
    /// outside the checkout and writes through no symbolic link; a patch that does not apply
    /// is an error and may leave conflict markers behind.
    pub fn apply_patch(&self, patch: &str) -> Result<()> {
        self.git()?
            .args(["apply", "--3way", "--whitespace=nowarn", "-"])
            .stdin(patch.as_bytes().to_vec())
            .run()?;
        Ok(())
    }

    /// Stages everything (new files, edits, deletions; not ignored files) and
    /// commits it on the detached `HEAD`, even when nothing changed, so every
    /// attempt has a commit. Returns the new commit's sha.
    ///
    /// Gitlinks already in the index keep their recorded commit: `git add` would run
    /// `git status` inside each populated submodule (under that repository's own config) to
    /// see whether it changed. An untracked nested repository is left out (it stays a change
    /// in [`Worktree::changed_paths`]).
    pub fn commit_all(&self, message: &str) -> Result<String> {
        self.stage_all(None)?;
        commit_from_stdin(self.pinned()?, &self.identity, message)?;
        self.head_commit()
    }

    /// `git add -A` into `index` (default: the checkout's own), except for the gitlinks
    /// the index already holds (see [`Worktree::commit_all`]).
    fn stage_all(&self, index: Option<&Path>) -> Result<()> {
        fn with_index<'g>(git: Git<'g>, index: Option<&Path>) -> Git<'g> {
            match index {
                Some(i) => git.env("GIT_INDEX_FILE", i),
                None => git,
            }
        }
        let listing = with_index(self.git()?, index)
            .args(["ls-files", "--stage", "-z"])
            .run()?;
        // `<mode> <object> <stage>\t<path>`; a gitlink's mode is 160000.
        let mut excluded = Vec::new();
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            if let Some(path) = entry.strip_prefix(b"160000 ") {
                let tab = path.iter().position(|b| *b == b'\t').ok_or_else(|| {
                    GitError::Parse(format!(
                        "ls-files entry {:?}",
                        String::from_utf8_lossy(entry)
                    ))
                })?;
                excluded.extend_from_slice(b":(top,literal,exclude)");
                excluded.extend_from_slice(&path[tab + 1..]);
                excluded.push(0);
            }
        }
        // An untracked nested repository is left out: git would record only its HEAD (whose
        // objects this repository lacks), or fail when it has none. It still shows in
        // `changed_paths`, so the boundary check sees it.
        let untracked = with_index(self.git()?, index)
            .args([
                "ls-files",
                "--others",
                "--exclude-standard",
                "--directory",
                "-z",
            ])
            .run()?;
        for entry in untracked.split(|b| *b == 0).filter(|e| e.ends_with(b"/")) {
            let rel = String::from_utf8_lossy(entry).into_owned();
            for nested in nested_repositories(&self.path.join(&rel), &rel) {
                excluded.extend_from_slice(b":(top,literal,exclude)");
                excluded.extend_from_slice(nested.trim_end_matches('/').as_bytes());
                excluded.push(0);
            }
        }
        let add = with_index(self.git()?, index).args(["add", "-A"]);
        if excluded.is_empty() {
            add.run()?;
        } else {
            let mut specs = b":/\0".to_vec();
            specs.extend_from_slice(&excluded);
            add.args(["--pathspec-from-file=-", "--pathspec-file-nul"])
                .stdin(specs)
                .run()?;
        }
        Ok(())
    }

    /// Discards every change: `git reset --hard HEAD` then `git clean -ffd`.
    ///
    /// Deliberately *not* `clean -x`: ignored files (build outputs, virtual
    /// environments, downloaded data, caches) survive so the next run need not
    /// rebuild them. Untracked nested repositories are removed (`-ff`).
    pub fn reset_clean(&self) -> Result<()> {
        self.git()?
            .args(["reset", "--quiet", "--hard", "HEAD"])
            .run()?;
        self.git()?.args(["clean", "-ffd", "--quiet"]).run()?;
        Ok(())
    }

    /// Points `HEAD` (detached) at `base` and leaves the index and the files as they are, as
    /// `git reset --soft <base>` does; a branch the checkout may have been switched to is left
    /// where it is. Afterwards [`Worktree::changed_paths`], [`Worktree::diff_against_head`] and
    /// [`Worktree::commit_all`] see everything between `base` and the checkout's files: commits
    /// made in the checkout since `base`, whatever their ancestry, plus what is not committed.
    pub fn reset_soft(&self, base: &str) -> Result<()> {
        let spec = format!("{base}^{{commit}}");
        let base = self
            .git()?
            .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
            .arg(&spec)
            .run_text()?;
        self.git()?
            .args([
                "update-ref",
                "--no-deref",
                "-m",
                "picidae: back to the start",
                "HEAD",
            ])
            .arg(&base)
            .run()?;
        Ok(())
    }

    /// Removes `paths` (relative to the benchmark directory, as [`Worktree::changed_paths`]
    /// gives them) from the index and from the checkout: `git rm --cached` then
    /// `git clean -ffd`, so links are removed, never followed. Meant for new paths (absent from
    /// `HEAD`); a path `HEAD` has would be left as a staged deletion.
    pub fn discard_paths(&self, paths: &[String]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let mut specs = Vec::new();
        for p in paths {
            specs.extend_from_slice(b":(top,literal)");
            specs.extend_from_slice(self.repo_relative(p).as_bytes());
            specs.push(0);
        }
        self.git()?
            .args([
                "rm",
                "--cached",
                "-r",
                "-q",
                "--ignore-unmatch",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
            ])
            .stdin(specs.clone())
            .run()?;
        // `git clean` takes no pathspec file: the paths go on its command line.
        let mut clean = self.git()?.args(["clean", "-ffdq", "--"]);
        for spec in specs.split(|b| *b == 0).filter(|s| !s.is_empty()) {
            clean = clean.arg(String::from_utf8_lossy(spec).into_owned());
        }
        clean.run()?;
        Ok(())
    }

    /// `path` (relative to the benchmark directory, `../` allowed) relative to the top level.
    fn repo_relative(&self, path: &str) -> String {
        let mut parts: Vec<&str> = self
            .prefix_str
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        for c in path.trim_end_matches('/').split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        parts.join("/")
    }

    /// Put back the committed version of `paths` (relative to the benchmark directory), e.g.
    /// files the harness removed from this checkout on purpose. Paths not in `HEAD` are skipped.
    pub fn restore(&self, paths: &[String]) -> Result<()> {
        for p in paths {
            let full = self.prefix.join(p);
            let spec = format!("HEAD:{}", full.to_string_lossy().replace('\\', "/"));
            let exists = self
                .git()?
                .args(["cat-file", "-e"])
                .arg(&spec)
                .run_allowing(128)?
                .is_some();
            if exists {
                self.git()?
                    .args(["checkout", "--quiet", "HEAD", "--"])
                    .arg(&full)
                    .run()?;
            }
        }
        Ok(())
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

/// The directories at or below `dir` (shown as `rel`, repository-relative with a trailing
/// `/`) that hold a `.git` entry, walked without following links and bounded in size.
fn nested_repositories(dir: &Path, rel: &str) -> Vec<String> {
    const MAX_ENTRIES: usize = 100_000;
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), rel.to_string())];
    let mut seen = 0;
    while let Some((d, r)) = stack.pop() {
        if std::fs::symlink_metadata(d.join(".git")).is_ok() {
            found.push(r);
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return found;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let name = e.file_name().to_string_lossy().into_owned();
                stack.push((e.path(), format!("{r}{name}/")));
            }
        }
    }
    found
}
