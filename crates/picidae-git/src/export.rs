//! Trees that leave the machine, for remote workers: an attempt's tree **exported** without
//! the files that must stay home (the hidden evaluator's), sent as a git **bundle** holding
//! only what the other side lacks, and the worker's **cache**, a bare repository the bundles
//! are fetched into and trees are checked out from.
//!
//! An export is named by its tree: the same files give the same name, so a worker that has
//! them fetches nothing. A bundle carries the tree in a commit whose parents are the exports
//! the worker says it holds (`haves`): git then leaves out every object those already carry,
//! so a new attempt costs only its delta. The carrier commits live under
//! `refs/picidae/export/` in the worker's cache (its `haves` next time).

use std::path::{Path, PathBuf};

use crate::cmd::{check_rev, Git, Pinned};
use crate::error::{GitError, Result};
use crate::{Identity, Repo};

/// Where carrier commits live, on both sides.
pub const EXPORT_REFS: &str = "refs/picidae/export/";

/// The fixed date of every carrier commit.
const EXPORT_DATE: &str = "@0 +0000";

/// The most `haves` a bundle is cut against.
pub const MAX_HAVES: usize = 16;

impl Repo {
    /// The tree of `commit` without `drop` (paths relative to the repository's root, literal,
    /// files or directories): the export's name.
    pub fn export_tree(&self, commit: &str, drop: &[String]) -> Result<String> {
        check_rev(commit)?;
        let index = tempfile::NamedTempFile::new().map_err(|e| GitError::io("index", e))?;
        let with_index = || self.git().env("GIT_INDEX_FILE", index.path());
        with_index()
            .args(["read-tree", "--end-of-options", commit])
            .run()?;
        if !drop.is_empty() {
            let mut args: Vec<String> = ["rm", "--cached", "-r", "-q", "--ignore-unmatch", "--"]
                .into_iter()
                .map(String::from)
                .collect();
            args.extend(drop.iter().map(|p| format!(":(literal){p}")));
            with_index().args(&args).run()?;
        }
        with_index().arg("write-tree").run_text()
    }

    /// A bundle carrying the exported `tree`, without what the exports `haves` (carrier
    /// commits the other side holds; those unknown here are ignored, at most [`MAX_HAVES`])
    /// already carry.
    pub fn bundle(&self, tree: &str, haves: &[String]) -> Result<Vec<u8>> {
        check_rev(tree)?;
        let mut parents = Vec::new();
        for h in haves.iter().take(MAX_HAVES) {
            if check_rev(h).is_ok() && self.has_commit(h)? && !parents.contains(h) {
                parents.push(h.clone());
            }
        }
        let mut args = vec![
            "commit-tree".to_string(),
            "-m".into(),
            "picidae export".into(),
        ];
        for p in &parents {
            args.extend(["-p".to_string(), p.clone()]);
        }
        args.extend(["--end-of-options".to_string(), tree.to_string()]);
        let carrier = self
            .git()
            .env("GIT_AUTHOR_DATE", EXPORT_DATE)
            .env("GIT_COMMITTER_DATE", EXPORT_DATE)
            .args(&args)
            .run_text()?;
        // A name of this bundle's own: bundles of the same carrier made at once must not
        // delete each other's ref.
        let name = format!(
            "{EXPORT_REFS}{carrier}-{}",
            hex_nonce(std::process::id(), &carrier)
        );
        self.update_ref(&name, &carrier, None)?;
        let mut args = vec![
            "bundle".to_string(),
            "create".into(),
            "-q".into(),
            "-".into(),
            name.clone(),
        ];
        args.extend(parents.iter().map(|p| format!("^{p}")));
        let bundle = self.git().args(&args).run();
        self.delete_ref(&name)?;
        bundle
    }

    /// Whether `rev` names a commit of this repository.
    fn has_commit(&self, rev: &str) -> Result<bool> {
        names(self.git(), rev, "commit")
    }
}

/// Whether `rev` names an object of `kind` (`commit`, `tree`) where `git` runs.
fn names(git: Git<'_>, rev: &str, kind: &str) -> Result<bool> {
    Ok(git
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{{kind}}}"),
        ])
        .run_allowing(1)?
        .is_some())
}

/// A name unique to this call among concurrent ones: the process, the thread, the time.
fn hex_nonce(pid: u32, seed: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(seed.as_bytes());
    h.write_u32(pid);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// A worker's cache of exported trees: a bare repository of its own.
#[derive(Debug, Clone)]
pub struct Cache {
    pin: Pinned,
    identity: Identity,
}

impl Cache {
    /// The cache at `dir`, created if missing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Cache> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| GitError::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| GitError::io(dir, e))?;
        let identity = Identity::new("picidae worker", "worker@picidae.invalid");
        if !dir.join("HEAD").exists() {
            Git::discover(&dir, &identity)
                .args(["init", "--quiet", "--bare"])
                .run()?;
        }
        Ok(Cache {
            pin: Pinned {
                git_dir: dir.clone(),
                common_dir: dir.clone(),
                work_tree: dir,
            },
            identity,
        })
    }

    fn git(&self) -> Git<'_> {
        Git::new(&self.pin, &self.identity)
    }

    /// The carrier commits it holds, newest first, at most [`MAX_HAVES`] (what a bundle for
    /// it may leave out).
    pub fn haves(&self) -> Result<Vec<String>> {
        let out = self
            .git()
            .args([
                "for-each-ref",
                "--sort=-creatordate",
                "--format=%(objectname)",
                EXPORT_REFS,
            ])
            .run_text()?;
        Ok(out.lines().take(MAX_HAVES).map(str::to_string).collect())
    }

    /// Whether it holds the exported `tree`.
    pub fn has(&self, tree: &str) -> Result<bool> {
        check_rev(tree)?;
        names(self.git(), tree, "tree")
    }

    /// Fetch the exports of a bundle file.
    pub fn fetch_bundle(&self, bundle: &Path) -> Result<()> {
        self.git()
            .arg("fetch")
            .args(["--quiet", "--no-tags", "--no-write-fetch-head"])
            .arg(bundle)
            .arg(format!("{EXPORT_REFS}*:{EXPORT_REFS}*"))
            .run()?;
        Ok(())
    }

    /// Write the exported `tree` into `dest` (created; must be empty or missing).
    pub fn checkout(&self, tree: &str, dest: &Path) -> Result<PathBuf> {
        check_rev(tree)?;
        std::fs::create_dir_all(dest).map_err(|e| GitError::io(dest, e))?;
        let dest = dest.canonicalize().map_err(|e| GitError::io(dest, e))?;
        let index = tempfile::NamedTempFile::new().map_err(|e| GitError::io("index", e))?;
        self.git()
            .env("GIT_INDEX_FILE", index.path())
            .args(["read-tree", "--end-of-options", tree])
            .run()?;
        let mut prefix = dest.display().to_string();
        prefix.push('/');
        self.git()
            .env("GIT_INDEX_FILE", index.path())
            .args(["checkout-index", "-a", "-f"])
            .arg(format!("--prefix={prefix}"))
            .run()?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(dir: &Path) -> Repo {
        std::fs::create_dir_all(dir.join("bench/hidden")).unwrap();
        std::fs::write(dir.join("bench/train.py"), "print('loss: 1')\n").unwrap();
        std::fs::write(dir.join("bench/hidden/eval.py"), "secret\n").unwrap();
        // Incompressible, so a bundle that carried it again would show.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let data: Vec<u8> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.join("bench/data.bin"), data).unwrap();
        Repo::init(dir, "init", Identity::new("t", "t@t")).unwrap()
    }

    #[test]
    fn an_export_leaves_the_dropped_files_home_and_bundles_only_the_delta() {
        let tmp = tempfile::tempdir().unwrap();
        let r = repo(&tmp.path().join("repo"));
        let head = r.head_commit().unwrap();
        let drop = vec!["bench/hidden".to_string()];
        let sha = r.export_tree(&head, &drop).unwrap();
        assert_eq!(
            r.export_tree(&head, &drop).unwrap(),
            sha,
            "named by its tree"
        );
        let cache = Cache::open(tmp.path().join("cache")).unwrap();
        assert!(!cache.has(&sha).unwrap());
        let full = r.bundle(&sha, &cache.haves().unwrap()).unwrap();
        let path = tmp.path().join("b.bundle");
        std::fs::write(&path, &full).unwrap();
        cache.fetch_bundle(&path).unwrap();
        assert!(cache.has(&sha).unwrap());
        assert_eq!(cache.haves().unwrap().len(), 1);
        let out = cache.checkout(&sha, &tmp.path().join("tree")).unwrap();
        assert!(out.join("bench/train.py").is_file());
        assert!(!out.join("bench/hidden").exists(), "hidden files left home");
        // A new commit that changes one small file: the bundle carries only that.
        let wt = r.add_worktree(tmp.path().join("wt"), &head).unwrap();
        std::fs::write(wt.path().join("bench/train.py"), "print('loss: 0.5')\n").unwrap();
        let next = wt.commit_all("change").unwrap();
        let sha2 = r.export_tree(&next, &drop).unwrap();
        let delta = r.bundle(&sha2, &cache.haves().unwrap()).unwrap();
        assert!(
            delta.len() * 4 < full.len(),
            "delta {} bytes vs full {}",
            delta.len(),
            full.len()
        );
        std::fs::write(&path, &delta).unwrap();
        cache.fetch_bundle(&path).unwrap();
        let out = cache.checkout(&sha2, &tmp.path().join("tree2")).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("bench/train.py")).unwrap(),
            "print('loss: 0.5')\n"
        );
    }
}
