//! Replaying one commit's change onto another commit: a three-way merge done entirely in the
//! object store (`git merge-tree --write-tree` with the commit's parent as the merge base,
//! then `git commit-tree`), with no checkout and no index. A replay either yields a new commit
//! whose only parent is the target, or names the files that conflict; it never leaves a
//! half-merged state anywhere.

use crate::cmd::check_rev;
use crate::{GitError, Repo, Result};

/// What replaying a change gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// The new commit (full sha), on top of the target.
    Committed(String),
    /// The change does not apply cleanly; the conflicting paths (repository-relative).
    Conflict(Vec<String>),
}

impl Repo {
    /// Replays what `commit` changed relative to `base` onto `onto`, committed with `message`
    /// as this repository's identity. When `onto` is `base` itself the result has the same
    /// tree as `commit`.
    pub fn replay(&self, base: &str, commit: &str, onto: &str, message: &str) -> Result<Replayed> {
        for rev in [base, commit, onto] {
            check_rev(rev)?;
        }
        let args = [
            "merge-tree".to_string(),
            "--write-tree".into(),
            "--name-only".into(),
            "--no-messages".into(),
            "-z".into(),
            format!("--merge-base={base}"),
            "--end-of-options".into(),
            onto.into(),
            commit.into(),
        ];
        let out = self.git().args(&args).output()?;
        let clean = match out.status.code() {
            Some(0) => true,
            Some(1) => false,
            _ => {
                return Err(GitError::Command {
                    args: args.to_vec(),
                    status: out.status,
                    stderr: out.stderr,
                })
            }
        };
        let mut fields = out.stdout.split(|b| *b == 0);
        let tree = fields
            .next()
            .map(|t| String::from_utf8_lossy(t).trim().to_string())
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| GitError::Parse("merge-tree printed no tree".into()))?;
        if !clean {
            let mut paths: Vec<String> = fields
                .take_while(|f| !f.is_empty())
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            paths.dedup();
            return Ok(Replayed::Conflict(paths));
        }
        let sha = self
            .git()
            .args([
                "commit-tree",
                "-F",
                "-",
                "-p",
                onto,
                "--end-of-options",
                &tree,
            ])
            .stdin(message.as_bytes())
            .run_text()?;
        Ok(Replayed::Committed(sha))
    }
}
