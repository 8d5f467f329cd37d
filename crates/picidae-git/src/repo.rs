//! The repository holding a benchmark: refs, commits, worktrees.

use std::path::{Path, PathBuf};

use crate::cmd::{check_rev, Git, Pinned};
use crate::error::{GitError, Result};
use crate::worktree::Worktree;
use crate::Identity;

/// The all-zero object id. As `expected_old` in [`Repo::update_ref`] it means
/// "the ref must not exist yet" (whatever the repository's hash length).
pub const ZERO_OID: &str = "0000000000000000000000000000000000000000";

/// Serializes the operations that rewrite a repository's shared metadata (worktree
/// registrations, refs): git takes lock files for them and fails, rather than waits, when
/// another git holds one, and `worktree prune` can remove a registration another process is
/// still creating. Threads of one process wait on a mutex; processes (coordinators sharing a
/// benchmark) on an OS lock of `picidae-meta.lock` in the repository's common git directory,
/// released when the guard drops or the process dies.
struct MetaLock {
    _file: Option<std::fs::File>,
    _serial: std::sync::MutexGuard<'static, ()>,
}

fn repo_lock(common_dir: &Path) -> MetaLock {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(common_dir.join("picidae-meta.lock"))
        .ok()
        .filter(|f| f.lock().is_ok());
    MetaLock {
        _file: file,
        _serial: serial,
    }
}

/// A git work tree containing a benchmark directory.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
    /// The main checkout's git directory, common directory and work tree (`root`), as
    /// discovered once by [`Repo::open`].
    pin: Pinned,
    prefix: PathBuf,
    /// `prefix` with `/` separators and no trailing slash ("" at the root).
    prefix_str: String,
    identity: Identity,
}

impl Repo {
    /// Opens the work tree containing `path` (which must exist and be inside a
    /// git work tree, not in a `.git` directory or a bare repository). When
    /// `path` is a subdirectory, that subdirectory is the benchmark directory:
    /// see [`Repo::prefix`]. Commits use [`Identity::default`] unless changed
    /// with [`Repo::with_identity`].
    pub fn open(path: impl AsRef<Path>) -> Result<Repo> {
        let path = path.as_ref();
        let not_a_work_tree = |detail: String| GitError::NotAWorkTree {
            path: path.to_owned(),
            detail,
        };
        if !path.is_dir() {
            return Err(not_a_work_tree("no such directory".into()));
        }
        let identity = Identity::default();
        let inside = Git::discover(path, &identity)
            .args(["rev-parse", "--is-inside-work-tree"])
            .run_text()
            .map_err(|e| match e {
                GitError::Command { stderr, .. } => not_a_work_tree(stderr),
                other => other,
            })?;
        if inside != "true" {
            return Err(not_a_work_tree(
                "inside a git directory, not a work tree".into(),
            ));
        }
        let out = Git::discover(path, &identity)
            .args([
                "rev-parse",
                "--path-format=absolute",
                "--show-toplevel",
                "--git-dir",
                "--git-common-dir",
                "--show-prefix",
            ])
            .run()?;
        let out = String::from_utf8(out)
            .map_err(|_| GitError::Parse("work tree path is not UTF-8".into()))?;
        let mut lines = out.split('\n');
        let mut next_path = |what: &str| {
            lines
                .next()
                .filter(|l| !l.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| GitError::Parse(format!("rev-parse {what}: {out:?}")))
        };
        let root = next_path("--show-toplevel")?;
        let git_dir = next_path("--git-dir")?;
        let common_dir = next_path("--git-common-dir")?;
        let prefix_str = lines.next().unwrap_or("").trim_end_matches('/').to_owned();
        Ok(Repo {
            pin: Pinned {
                git_dir,
                common_dir,
                work_tree: root.clone(),
            },
            root,
            prefix: PathBuf::from(&prefix_str),
            prefix_str,
            identity,
        })
    }

    /// Makes `path` (created if missing; must not already be a repository) a
    /// new repository on branch `main`, commits everything in it (honouring
    /// any `.gitignore`) with `initial_message`, and opens it.
    pub fn init(path: impl AsRef<Path>, initial_message: &str, identity: Identity) -> Result<Repo> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|e| GitError::io(path, e))?;
        if path.join(".git").exists() {
            return Err(GitError::InvalidArgument(format!(
                "{} is already a git repository",
                path.display()
            )));
        }
        Git::discover(path, &identity)
            .args(["init", "--quiet", "--initial-branch=main"])
            .run()?;
        let root = absolute(path)?;
        let pin = Pinned {
            git_dir: root.join(".git"),
            common_dir: root.join(".git"),
            work_tree: root,
        };
        Git::new(&pin, &identity).args(["add", "-A"]).run()?;
        commit_from_stdin(&pin, &identity, initial_message)?;
        Ok(Repo::open(path)?.with_identity(identity))
    }

    /// The same repository, committing as `identity`.
    pub fn with_identity(mut self, identity: Identity) -> Repo {
        self.identity = identity;
        self
    }

    /// The identity commits are made with.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The top level of the work tree (as git reports it: symlinks resolved).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The benchmark directory relative to [`Repo::root`] (empty when the
    /// benchmark is the whole repository).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The benchmark directory: `root().join(prefix())`.
    pub fn bench_dir(&self) -> PathBuf {
        self.root.join(&self.prefix)
    }

    pub(crate) fn git(&self) -> Git<'_> {
        Git::new(&self.pin, &self.identity)
    }

    /// A clone of this repository at `dst` (a new directory), checked out at this
    /// repository's `HEAD`; returns the benchmark directory inside it. An arena gives each of
    /// its programs one, so no program sees another's attempts as its own history.
    pub fn clone_to(&self, dst: &Path) -> Result<PathBuf> {
        if dst.exists() {
            return Err(GitError::InvalidArgument(format!(
                "{} already exists",
                dst.display()
            )));
        }
        let parent = dst
            .parent()
            .ok_or_else(|| GitError::InvalidArgument(format!("{} has no parent", dst.display())))?;
        std::fs::create_dir_all(parent).map_err(|e| GitError::io(parent, e))?;
        let head = self.head_commit()?;
        Git::discover(parent, &self.identity)
            .args(["clone", "--quiet", "--no-hardlinks", "--no-checkout"])
            .arg(&self.root)
            .arg(dst)
            .run()?;
        let clone = Repo::open(dst)?.with_identity(self.identity.clone());
        clone
            .git()
            .args(["checkout", "--quiet", "--detach", &head])
            .run()?;
        Ok(absolute(dst)?.join(&self.prefix))
    }

    /// Full sha of the main checkout's `HEAD` commit.
    pub fn head_commit(&self) -> Result<String> {
        self.resolve("HEAD")?
            .ok_or_else(|| GitError::InvalidArgument("HEAD does not name a commit yet".into()))
    }

    /// Full sha of the commit `rev` names, or `None` if it names none
    /// (unknown ref, or not a commit). Annotated tags are peeled.
    pub fn resolve(&self, rev: &str) -> Result<Option<String>> {
        check_rev(rev)?;
        let out = self
            .git()
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("{rev}^{{commit}}"))
            .run_allowing(1)?;
        Ok(out.map(|o| String::from_utf8_lossy(&o).trim().to_owned()))
    }

    /// The object a ref points at (not peeled), if the ref exists.
    fn ref_value(&self, name: &str) -> Result<Option<String>> {
        let out = self
            .git()
            .args(["rev-parse", "--verify", "--quiet", name])
            .run_allowing(1)?;
        Ok(out.map(|o| String::from_utf8_lossy(&o).trim().to_owned()))
    }

    /// Points ref `name` (must start with `refs/`) at `new` (a sha or any rev).
    ///
    /// `expected_old`: `None` updates unconditionally; `Some(sha)` updates only
    /// if the ref is currently at `sha`; `Some(ZERO_OID)` (or `Some("")`) only
    /// if the ref does not exist yet. The check and the update are atomic
    /// (`git update-ref name new old`). When the ref holds another value the
    /// error is [`GitError::RefConflict`].
    pub fn update_ref(&self, name: &str, new: &str, expected_old: Option<&str>) -> Result<()> {
        let _serial = repo_lock(&self.pin.common_dir);
        check_ref_name(self, name)?;
        check_rev(new)?;
        let old = expected_old.map(|o| {
            if o.bytes().all(|b| b == b'0') {
                String::new() // "must not exist", independent of hash length
            } else {
                o.to_owned()
            }
        });
        if let Some(o) = old.as_deref().filter(|o| !o.is_empty()) {
            check_rev(o)?;
        }
        let mut git = self.git().args(["update-ref", "--no-deref", name, new]);
        if let Some(o) = &old {
            git = git.arg(o);
        }
        match git.run() {
            Ok(_) => Ok(()),
            Err(err) => {
                let Some(expected) = old else {
                    return Err(err);
                };
                let actual = self.ref_value(name)?;
                let expected_sha = if expected.is_empty() {
                    None
                } else {
                    // The expected value may be an abbreviation or a rev name.
                    self.git()
                        .args(["rev-parse", "--verify", "--quiet", &expected])
                        .run_allowing(1)?
                        .map(|o| String::from_utf8_lossy(&o).trim().to_owned())
                        .or(Some(expected.clone()))
                };
                if actual != expected_sha {
                    Err(GitError::RefConflict {
                        name: name.to_owned(),
                        expected: (!expected.is_empty()).then_some(expected),
                        actual,
                    })
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Deletes ref `name` (must start with `refs/`). Deleting a ref that does
    /// not exist is not an error.
    pub fn delete_ref(&self, name: &str) -> Result<()> {
        check_ref_name(self, name)?;
        self.git()
            .args(["update-ref", "--no-deref", "-d", name])
            .run()?;
        Ok(())
    }

    /// All refs whose full name starts with `prefix` (plain string prefix, e.g.
    /// `"refs/picidae/"`), as `(name, sha)` sorted by name.
    pub fn list_refs(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let mut git = self
            .git()
            .args(["for-each-ref", "--format=%(objectname) %(refname)"]);
        // for-each-ref matches whole path components; narrow to the prefix's
        // directory, then filter on the exact string prefix below.
        if let Some(i) = prefix.rfind('/') {
            git = git.arg(&prefix[..=i]);
        }
        let out = git.run()?;
        let text = String::from_utf8_lossy(&out);
        let mut refs = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let (sha, name) = line
                .split_once(' ')
                .ok_or_else(|| GitError::Parse(format!("for-each-ref line {line:?}")))?;
            if name.starts_with(prefix) {
                refs.push((name.to_owned(), sha.to_owned()));
            }
        }
        refs.sort();
        Ok(refs)
    }

    /// Creates a detached checkout of `commit` at `path`
    /// (`git worktree add --detach --force`; `path` must not exist or be an
    /// empty directory; missing parents are created). The returned handle's
    /// benchmark directory is `path.join(self.prefix())`.
    pub fn add_worktree(&self, path: impl AsRef<Path>, commit: &str) -> Result<Worktree> {
        let _serial = repo_lock(&self.pin.common_dir);
        check_rev(commit)?;
        let path = absolute(path.as_ref())?;
        self.git()
            .args(["worktree", "add", "--detach", "--force"])
            .arg(&path)
            .arg(commit)
            .run()?;
        let wt = self.worktree(&path);
        if wt.pin().is_none() {
            return Err(GitError::Parse(format!(
                "git worktree add registered no worktree at {}",
                path.display()
            )));
        }
        Ok(wt)
    }

    /// A handle on an existing worktree of this repository rooted at `path`
    /// (for instance one created before a restart), or on the main checkout when `path`
    /// is [`Repo::root`].
    ///
    /// Its git directory is looked up from the repository's side, never from `path`: the
    /// worktree whose `<common dir>/worktrees/<name>/gitdir` names `path/.git`. When no
    /// registered worktree lives at `path` the handle is still returned, and every
    /// operation on it fails with [`GitError::NotAWorkTree`].
    pub fn worktree(&self, path: impl AsRef<Path>) -> Worktree {
        let path = path.as_ref();
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let pin = if same_dir(&path, &self.root) {
            Some(Pinned {
                work_tree: path.clone(),
                ..self.pin.clone()
            })
        } else {
            linked_git_dir(&self.pin.common_dir, &path).map(|git_dir| Pinned {
                git_dir,
                common_dir: self.pin.common_dir.clone(),
                work_tree: path.clone(),
            })
        };
        Worktree::new(
            path,
            pin,
            self.prefix.clone(),
            self.prefix_str.clone(),
            self.identity.clone(),
        )
    }

    /// Removes the worktree at `path`, even with local changes, then prunes
    /// stale worktree records. A directory already deleted by hand is fine.
    /// If git refuses (e.g. it holds a nested repository) and `path` is a
    /// registered worktree of this repository, its directory is deleted
    /// directly; a directory that is not one is never deleted.
    pub fn remove_worktree(&self, path: impl AsRef<Path>) -> Result<()> {
        let _serial = repo_lock(&self.pin.common_dir);
        let path = absolute(path.as_ref())?;
        if same_dir(&path, &self.root) {
            return Err(GitError::InvalidArgument(format!(
                "{} is the main work tree",
                path.display()
            )));
        }
        if path.exists() {
            let removed = self
                .git()
                .args(["worktree", "remove", "--force", "--force"])
                .arg(&path)
                .run();
            if let Err(err) = removed {
                if path.exists() {
                    let registered = self.list_worktrees()?.iter().any(|w| same_dir(w, &path));
                    if !registered {
                        return Err(err);
                    }
                    tracing::warn!(path = %path.display(), error = %err,
                        "git worktree remove failed; deleting the directory");
                    std::fs::remove_dir_all(&path).map_err(|e| GitError::io(&path, e))?;
                }
            }
        }
        self.prune_unlocked()
    }

    /// Forgets worktrees whose directories no longer exist (`git worktree prune`).
    pub fn prune_worktrees(&self) -> Result<()> {
        let _serial = repo_lock(&self.pin.common_dir);
        self.prune_unlocked()
    }

    fn prune_unlocked(&self) -> Result<()> {
        self.git().args(["worktree", "prune"]).run()?;
        Ok(())
    }

    /// Paths of all registered worktrees, the main work tree first.
    pub fn list_worktrees(&self) -> Result<Vec<PathBuf>> {
        let out = self.git().args(["worktree", "list", "--porcelain"]).run()?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| l.strip_prefix("worktree "))
            .map(PathBuf::from)
            .collect())
    }

    /// The patch `commit` introduces relative to its first parent (everything,
    /// for a root commit), binary-safe and applicable with `git apply` at the
    /// repository root. Paths are repository-relative.
    pub fn show_patch(&self, commit: &str) -> Result<String> {
        check_rev(commit)?;
        let out = self
            .git()
            .args(["show", "--format=", "--patch", "-m", "--first-parent"])
            .args(crate::worktree::PATCH_OPTS)
            .arg(commit)
            .arg("--")
            .run()?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The patch that turns commit `from`'s tree into commit `to`'s, in the form of
    /// [`show_patch`](Self::show_patch).
    pub fn patch_between(&self, from: &str, to: &str) -> Result<String> {
        check_rev(from)?;
        check_rev(to)?;
        let out = self
            .git()
            .arg("diff")
            .args(crate::worktree::PATCH_OPTS)
            .arg(from)
            .arg(to)
            .arg("--")
            .run()?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The paths of every file `commit` holds (blobs and links; submodules excluded),
    /// repository-relative with `/` separators.
    pub fn tracked_files(&self, commit: &str) -> Result<Vec<String>> {
        check_rev(commit)?;
        let out = self
            .git()
            .args([
                "ls-tree",
                "-r",
                "-z",
                "--full-tree",
                "--format=%(objecttype) %(path)",
            ])
            .arg(commit)
            .arg("--")
            .run()?;
        let mut files = Vec::new();
        for entry in out.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8(entry.to_vec())
                .map_err(|_| GitError::Parse("a tracked path is not UTF-8".into()))?;
            if let Some(path) = entry.strip_prefix("blob ") {
                files.push(path.to_owned());
            }
        }
        Ok(files)
    }

    /// The bytes of the file at `path` (repository-relative) in `commit`, or `None` when
    /// `commit` has no such file.
    pub fn file_at(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
        check_rev(commit)?;
        if path.is_empty() || path.contains(['\0', '\n']) || path.starts_with('/') {
            return Err(GitError::InvalidArgument(format!(
                "not a usable path: {path:?}"
            )));
        }
        let spec = format!("{commit}:{path}");
        let kind = self.git().args(["cat-file", "-t"]).arg(&spec).output()?;
        if !kind.status.success() || String::from_utf8_lossy(&kind.stdout).trim() != "blob" {
            return Ok(None);
        }
        Ok(Some(
            self.git().args(["cat-file", "blob"]).arg(&spec).run()?,
        ))
    }

    /// The full message of `commit`, without trailing newlines.
    pub fn commit_message(&self, commit: &str) -> Result<String> {
        check_rev(commit)?;
        let out = self
            .git()
            .args(["show", "-s", "--format=%B"])
            .arg(commit)
            .arg("--")
            .run()?;
        Ok(String::from_utf8_lossy(&out)
            .trim_end_matches('\n')
            .to_owned())
    }

    /// The commits reachable from `tip` but not from `exclude` (when given), oldest first
    /// (`git log --reverse --topo-order tip ^exclude`), as `(full sha, subject)`. The subject is
    /// the message's first paragraph on one line, as `git log --format=%s` prints it.
    pub fn log(&self, tip: &str, exclude: Option<&str>) -> Result<Vec<(String, String)>> {
        check_rev(tip)?;
        let mut git = self
            .git()
            .args(["log", "--reverse", "--topo-order", "--format=%H %s"])
            .arg(tip);
        if let Some(x) = exclude {
            check_rev(x)?;
            git = git.arg(format!("^{x}"));
        }
        let out = git.arg("--").run()?;
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let (sha, subject) = line.split_once(' ').unwrap_or((line, ""));
                if sha.is_empty() || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(GitError::Parse(format!("git log line {line:?}")));
                }
                Ok((sha.to_owned(), subject.to_owned()))
            })
            .collect()
    }

    /// Whether commit `a` is an ancestor of (or equal to) commit `b`.
    pub fn is_ancestor(&self, a: &str, b: &str) -> Result<bool> {
        check_rev(a)?;
        check_rev(b)?;
        Ok(self
            .git()
            .args(["merge-base", "--is-ancestor", a, b])
            .run_allowing(1)?
            .is_some())
    }
}

/// `git commit` of whatever is staged in `dir`, even if nothing, message on stdin.
pub(crate) fn commit_from_stdin(pin: &Pinned, identity: &Identity, message: &str) -> Result<()> {
    Git::new(pin, identity)
        .args([
            "commit",
            "--quiet",
            "--no-verify",
            "--allow-empty",
            "--allow-empty-message",
            // Keep '#' lines (markdown headings); only trim blank lines/spaces.
            "--cleanup=whitespace",
            "--file=-",
        ])
        .stdin(message.as_bytes())
        .run()?;
    Ok(())
}

fn check_ref_name(repo: &Repo, name: &str) -> Result<()> {
    let bad = || GitError::InvalidArgument(format!("not a valid ref name under refs/: {name:?}"));
    if !name.starts_with("refs/") || name.starts_with('-') {
        return Err(bad());
    }
    repo.git()
        .args(["check-ref-format", name])
        .run_allowing(1)?
        .map(|_| ())
        .ok_or_else(bad)
}

/// The git directory (`<common>/worktrees/<name>`) of the linked worktree whose work tree
/// is `path`, read from the `gitdir` files git keeps there (git names a worktree after its
/// directory and adds a number on collisions, so the name alone is not enough). `None`
/// when no registered worktree, or more than one, lives at `path`.
fn linked_git_dir(common_dir: &Path, path: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(common_dir.join("worktrees")).ok()?;
    let canonical = path.canonicalize().ok();
    // (admin dir, the work tree its gitdir file names)
    let mut registered = Vec::new();
    for entry in entries.flatten() {
        let admin = entry.path();
        let Ok(text) = std::fs::read(admin.join("gitdir")) else {
            continue;
        };
        let text = text.trim_ascii_end();
        let dot_git =
            admin.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(text));
        if dot_git.file_name() != Some(std::ffi::OsStr::new(".git")) {
            continue;
        }
        if let Some(top) = dot_git.parent() {
            registered.push((admin.clone(), top.to_path_buf()));
        }
    }
    let only = |found: Vec<PathBuf>| match <[PathBuf; 1]>::try_from(found) {
        Ok([one]) => Some(one),
        Err(_) => None,
    };
    let exact: Vec<PathBuf> = registered
        .iter()
        .filter(|(_, top)| top == path || Some(top) == canonical.as_ref())
        .map(|(admin, _)| admin.clone())
        .collect();
    if !exact.is_empty() {
        return only(exact);
    }
    let canonical = canonical?;
    only(
        registered
            .into_iter()
            .filter(|(_, top)| top.canonicalize().ok().as_ref() == Some(&canonical))
            .map(|(admin, _)| admin)
            .collect(),
    )
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| GitError::io(path, e))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

impl Repo {
    /// The repository's common git directory (`git rev-parse --git-common-dir`), shared by
    /// all its worktrees.
    pub fn common_dir(&self) -> &Path {
        &self.pin.common_dir
    }

    /// Keeps the directory `dir`, inside this work tree, out of every status and commit by
    /// listing it in the repository's own `info/exclude` (never in a tracked `.gitignore`).
    /// Returns false, changing nothing, when it is listed already, or when `dir` is not
    /// strictly inside the work tree.
    pub fn exclude_dir(&self, dir: &Path) -> Result<bool> {
        let dir = dir.canonicalize().map_err(|e| GitError::io(dir, e))?;
        let root = self
            .root
            .canonicalize()
            .map_err(|e| GitError::io(&self.root, e))?;
        let Ok(rel) = dir.strip_prefix(&root) else {
            return Ok(false);
        };
        if rel.as_os_str().is_empty() {
            return Ok(false);
        }
        let mut pattern = String::from("/");
        for (i, part) in rel.components().enumerate() {
            if i > 0 {
                pattern.push('/');
            }
            for c in part.as_os_str().to_string_lossy().chars() {
                if matches!(c, '\\' | '*' | '?' | '[' | ']' | '!' | '#') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
        }
        pattern.push('/');
        let info = self.pin.common_dir.join("info");
        let file = info.join("exclude");
        let existing = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(GitError::io(&file, e)),
        };
        if existing.lines().any(|l| l.trim_end() == pattern) {
            return Ok(false);
        }
        std::fs::create_dir_all(&info).map_err(|e| GitError::io(&info, e))?;
        let mut text = existing;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&pattern);
        text.push('\n');
        std::fs::write(&file, text).map_err(|e| GitError::io(&file, e))?;
        Ok(true)
    }
}
