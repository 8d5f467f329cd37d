//! Commits carried between clones of one benchmark, for coordinators that share a store but
//! no directory: a commit is **packed** as a bundle holding it and every object its parents
//! lack, and **unpacked** into another clone that holds those parents. The bundle names the
//! commit under a ref of its own for the time it takes to write it; unpacking writes objects
//! only (no ref, no checkout), and checks that the commit asked for is what arrived.

use std::io::Write;
use std::path::Path;

use crate::cmd::{check_rev, Git};
use crate::error::{GitError, Result};
use crate::{Identity, Repo, EXPORT_REFS};

/// Where a commit is named while its bundle is written.
const CARRY_REFS: &str = "refs/picidae/carry/";

impl Repo {
    /// A bundle holding `commit` and what its parents do not (a commit with no parents: its
    /// whole history).
    pub fn pack_commit(&self, commit: &str) -> Result<Vec<u8>> {
        check_rev(commit)?;
        let sha = self
            .resolve(commit)?
            .ok_or_else(|| GitError::InvalidArgument(format!("{commit} names no commit")))?;
        let line = self
            .git()
            .args(["rev-list", "--parents", "-n", "1", "--end-of-options", &sha])
            .run_text()?;
        let parents: Vec<&str> = line.split_whitespace().skip(1).collect();
        let name = format!("{CARRY_REFS}{sha}-{}", std::process::id());
        self.update_ref(&name, &sha, None)?;
        let mut args = vec!["bundle", "create", "-q", "-", name.as_str()];
        let excluded: Vec<String> = parents.iter().map(|p| format!("^{p}")).collect();
        args.extend(excluded.iter().map(String::as_str));
        let bundle = self.git().args(&args).run();
        self.delete_ref(&name)?;
        bundle
    }

    /// Bring `commit` into this repository from `bundle` (made by [`Repo::pack_commit`]),
    /// whose prerequisites (the commit's parents) must already be here. Writes objects only.
    pub fn unpack_commit(&self, bundle: &[u8], commit: &str) -> Result<()> {
        check_rev(commit)?;
        let mut file = tempfile::NamedTempFile::new().map_err(|e| GitError::io("bundle", e))?;
        file.write_all(bundle)
            .and_then(|()| file.flush())
            .map_err(|e| GitError::io(file.path(), e))?;
        let path = file.path().to_string_lossy().into_owned();
        self.git().args(["bundle", "verify", "-q", &path]).run()?;
        self.git().args(["bundle", "unbundle", &path]).run()?;
        if self.resolve(commit)?.is_none() {
            return Err(GitError::Parse(format!(
                "the bundle for {commit} did not hold that commit"
            )));
        }
        Ok(())
    }

    /// Which of `commits` (full shas) this repository lacks, in their order: one git call
    /// however many are asked about.
    pub fn missing_commits(&self, commits: &[String]) -> Result<Vec<String>> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        for c in commits {
            check_rev(c)?;
        }
        let input: String = commits.iter().map(|c| format!("{c}\n")).collect();
        let out = self
            .git()
            .args(["cat-file", "--batch-check=%(objectname) %(objecttype)"])
            .stdin(input)
            .run_text()?;
        // One line per question, in order: "<sha> commit", or "<sha> missing".
        Ok(commits
            .iter()
            .zip(out.lines())
            .filter(|(_, l)| !l.ends_with(" commit"))
            .map(|(c, _)| c.clone())
            .collect())
    }

    /// A new repository at `dest` (which must not exist) holding the export in `bundle` (made
    /// by [`Repo::bundle`]) under its export ref, checked out detached: a contributor's clone
    /// of a program's public frontier. Returns it with the export's commit.
    pub fn from_export(bundle: &Path, dest: &Path, identity: Identity) -> Result<(Repo, String)> {
        if dest.exists() {
            return Err(GitError::InvalidArgument(format!(
                "{} exists already",
                dest.display()
            )));
        }
        std::fs::create_dir_all(dest).map_err(|e| GitError::io(dest, e))?;
        Git::discover(dest, &identity)
            .args(["init", "--quiet", "--initial-branch=main"])
            .run()?;
        let repo = Repo::open(dest)?.with_identity(identity);
        repo.git()
            .args(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"])
            .arg(bundle)
            .arg(format!("{EXPORT_REFS}*:{EXPORT_REFS}*"))
            .run()?;
        let listed = repo
            .git()
            .args(["for-each-ref", "--format=%(objectname)", EXPORT_REFS])
            .run_text()?;
        let commit = listed
            .lines()
            .next()
            .ok_or_else(|| GitError::Parse("the bundle holds no export".into()))?
            .to_string();
        repo.git()
            .args(["checkout", "--quiet", "--detach", &commit])
            .run()?;
        Ok((repo, commit))
    }
}
