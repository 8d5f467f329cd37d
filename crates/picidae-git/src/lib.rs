//! picidae-git: Picidae's only door to git.
//!
//! This crate owns every git operation the scheduler performs on a
//! benchmark's repository:
//!
//! * **Attempts as commits.** Every attempt, kept or discarded, becomes a
//!   commit ([`Worktree::commit_all`], `--allow-empty` so even a no-op attempt
//!   has one) recorded under a picidae ref ([`Repo::update_ref`], a
//!   compare-and-swap), so its diff ([`Repo::show_patch`]) is never lost.
//! * **Isolation.** Every run and every agent works in its own detached
//!   checkout ([`Repo::add_worktree`]) sharing the object store of the main
//!   checkout, which is never touched.
//! * **Scope checks.** [`Worktree::changed_paths`] reports what an agent
//!   changed relative to the *benchmark directory* (which may be a
//!   subdirectory of the repository), flagging changes outside it so the
//!   caller can reject them.
//!
//! # Why the git command line and not libgit2
//!
//! * It is the real git: the same object format, repository config, attributes,
//!   filters and (sparse, LFS, sha256 ...) behaviour the user's own tools see.
//! * `git worktree` is fully supported; libgit2's worktree support is partial.
//! * No C library to build or link, so the workspace stays pure Rust.
//!
//! # Hardening
//!
//! Agents and runs are hostile. Every invocation is pinned to the repository's own git
//! directory and work tree (`GIT_DIR`, `GIT_COMMON_DIR`, `GIT_WORK_TREE`; a worktree's git
//! directory is looked up from the repository's registrations, never from the checkout's
//! `.git`), reads no global, XDG or system config or attributes (`HOME` is pointed at
//! nothing for git), honours no replace refs or grafts, never runs git inside a nested
//! repository or submodule, and runs no hooks, fsmonitor, pager, editor, signing or
//! textconv/external diff. It commits as the caller's [`Identity`] (so it works with no
//! global git config at all), with the inherited repository-selecting variables
//! (`GIT_DIR`, `GIT_INDEX_FILE`, ...) removed. The details, and why, are in `cmd.rs`.
//!
//! What this means for a benchmark: only the repository's own config applies. Filters the
//! user installed globally (`git lfs install` writes `~/.gitconfig`) do not run; install
//! them in the repository (`git lfs install --local`). Per-user ignore files and
//! `safe.directory` entries are not read either. Submodules are never entered, and their
//! recorded commits are never changed by an attempt.
//!
//! Failures are [`GitError`] values carrying git's arguments, exit status and
//! stderr; nothing here panics on git's behalf.

mod carry;
mod cmd;
mod error;
mod export;
mod replay;
mod repo;
mod status;
mod worktree;

pub use error::{GitError, Result};
pub use export::{Cache, EXPORT_REFS, MAX_HAVES};
pub use replay::Replayed;
pub use repo::{Repo, ZERO_OID};
pub use status::{Change, ChangeKind};
pub use worktree::Worktree;

/// Author and committer of the commits this crate makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `GIT_AUTHOR_NAME` / `GIT_COMMITTER_NAME`.
    pub name: String,
    /// `GIT_AUTHOR_EMAIL` / `GIT_COMMITTER_EMAIL`.
    pub email: String,
}

impl Identity {
    /// An identity with the given name and email.
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Identity {
            name: name.into(),
            email: email.into(),
        }
    }
}

impl Default for Identity {
    /// `picidae <picidae@localhost>`.
    fn default() -> Self {
        Identity::new("picidae", "picidae@localhost")
    }
}
