//! Running `git` hardened and pinned.
//!
//! Agents and their runs are hostile: they write the checkout (including its `.git` file,
//! `.gitattributes` and nested repositories) and the agent CLIs' state under `$HOME`
//! (`~/.config` among it). Every git process started here therefore obeys only the
//! repository's own configuration (the user's) and what is forced below, never a file an
//! agent can write:
//!
//! * **Pinned repository.** [`Location::Pinned`] sets `GIT_DIR`, `GIT_COMMON_DIR` and
//!   `GIT_WORK_TREE` explicitly: git never discovers a repository from a directory an agent
//!   wrote, never reads a checkout's `.git` file (which an agent may point at a repository
//!   of its own, with its own config) nor a `commondir` file. Only opening the benchmark
//!   directory the user named ([`Location::Discover`]) lets git find the repository.
//! * **No global, XDG or system configuration or attributes.** `GIT_CONFIG_NOSYSTEM=1`,
//!   `GIT_CONFIG_GLOBAL=/dev/null`, `GIT_ATTR_NOSYSTEM=1`, `core.attributesFile=/dev/null`,
//!   and `HOME` / `XDG_CONFIG_HOME` set, for git only, to a path that cannot exist
//!   ([`NO_HOME`]), so `~/.gitconfig`, `~/.config/git/{config,attributes,ignore}` and `~`
//!   in config values lead nowhere. The repository's `config` (and its `config.worktree`
//!   files, inside the git directory no sandboxed agent can reach) stays in force.
//! * **Filter, diff and merge drivers.** A driver runs only if a trusted config defines it:
//!   an agent may *name* one in a `.gitattributes`, but with the sources above gone it
//!   can only name drivers the user configured in the repository (git-lfs installed with
//!   `git lfs install --local`, say). Patches are made with `--no-textconv --no-ext-diff`.
//! * **No replace objects, no grafts.** `GIT_NO_REPLACE_OBJECTS=1`, `--no-replace-objects`,
//!   `GIT_GRAFT_FILE=/dev/null`: a `refs/replace/*` ref or an `info/grafts` file planted by
//!   a run cannot change what a commit contains or descends from.
//! * **Never inside another repository.** `submodule.recurse=false`,
//!   `diff.ignoreSubmodules=dirty` and `status.submoduleSummary=false`; `status` runs with
//!   `--ignore-submodules=all`, and staging leaves gitlinks out (see
//!   [`crate::Worktree::commit_all`]), because `git add` otherwise runs `git status` inside
//!   every populated submodule, where that repository's own config and attributes apply.
//! * **Nothing else that runs programs:** hooks (`core.hooksPath=/dev/null`), fsmonitor,
//!   signing, pager, editor and terminal prompts are off. Plus a fixed identity, bytes in
//!   bytes out (`core.autocrlf=false`), no untracked cache, no background gc, and none of
//!   the caller's repository-, config-, attribute- or pathspec-changing variables.
//!
//! `safe.directory` is only honoured from global and system config, so those entries are
//! not seen either: a repository owned by another user is refused, never trusted.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::error::{GitError, Result};
use crate::Identity;

/// `HOME` and `XDG_CONFIG_HOME` of every git process: below a character device, so nothing
/// can ever exist there and git finds no per-user file.
pub(crate) const NO_HOME: &str = "/dev/null/picidae-no-home";

/// Configuration forced on every invocation (`git -c k=v ...`); command-line config wins
/// over every config file.
///
/// * `core.hooksPath=/dev/null`: repository hooks never run (an agent could
///   plant one in the shared `.git`).
/// * `core.fsmonitor=false`: the fsmonitor setting can name a program to run.
/// * `core.attributesFile=/dev/null`: no per-user attributes file.
/// * `submodule.recurse=false`, `diff.ignoreSubmodules=dirty`,
///   `status.submoduleSummary=false`: never look into a submodule's work tree (that would
///   run git there, under that repository's config); commit changes of gitlinks still show
///   in patches.
/// * `commit.gpgsign` / `tag.gpgsign` off: no signing prompt or agent needed.
/// * `core.autocrlf=false`: bytes in, bytes out.
/// * `core.untrackedCache=false`: untracked files are always looked for, never taken from
///   a cache in the index.
/// * `advice.*=false`: worktrees are detached on purpose; the graft file is disabled.
/// * `gc.auto=0`, `maintenance.auto=false`: no background gc racing with
///   concurrent worktree/ref operations (the user's own git still collects).
const HARDENING: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.attributesFile=/dev/null",
    "submodule.recurse=false",
    "diff.ignoreSubmodules=dirty",
    "status.submoduleSummary=false",
    "commit.gpgsign=false",
    "tag.gpgsign=false",
    "core.autocrlf=false",
    "core.untrackedCache=false",
    "advice.detachedHead=false",
    "advice.graftFileDeprecated=false",
    "gc.auto=0",
    "maintenance.auto=false",
];

/// Variables that would make git operate on another repository, index or configuration
/// than the one we point it at (`git rev-parse --local-env-vars` and more), read attributes
/// or pathspecs differently, or run external programs. Removed from every invocation
/// (some are then set to our own values).
const SCRUBBED_ENV: &[&str] = &[
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_SYSTEM",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_ATTR_SOURCE",
    "GIT_LITERAL_PATHSPECS",
    "GIT_GLOB_PATHSPECS",
    "GIT_NOGLOB_PATHSPECS",
    "GIT_ICASE_PATHSPECS",
    "GIT_EXTERNAL_DIFF",
    "GIT_DIFF_OPTS",
    "GIT_TRACE",
];

/// Variables set on every invocation (after [`SCRUBBED_ENV`] is removed).
const FORCED_ENV: &[(&str, &str)] = &[
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_ATTR_NOSYSTEM", "1"),
    ("GIT_NO_REPLACE_OBJECTS", "1"),
    ("GIT_GRAFT_FILE", "/dev/null"),
    ("HOME", NO_HOME),
    ("XDG_CONFIG_HOME", NO_HOME),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_OPTIONAL_LOCKS", "0"),
    ("GIT_EDITOR", ":"),
    ("GIT_PAGER", "cat"),
    ("LC_ALL", "C"),
];

/// A repository and work tree named explicitly (absolute paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pinned {
    /// `GIT_DIR`: the main checkout's git directory, or `<common>/worktrees/<name>` for a
    /// linked worktree.
    pub git_dir: PathBuf,
    /// `GIT_COMMON_DIR`: where objects, refs and the repository config live.
    pub common_dir: PathBuf,
    /// `GIT_WORK_TREE`, also the working directory of git.
    pub work_tree: PathBuf,
}

/// Where a git invocation operates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Location<'a> {
    /// The repository and work tree given explicitly: the normal case.
    Pinned(&'a Pinned),
    /// Let git find the repository from this directory: only for a directory the user
    /// named (opening or creating the benchmark's repository).
    Discover(&'a Path),
}

/// What a finished git process left behind.
pub(crate) struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// One git invocation being built.
pub(crate) struct Git<'a> {
    location: Location<'a>,
    identity: &'a Identity,
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    stdin: Option<Vec<u8>>,
}

impl<'a> Git<'a> {
    /// A git invocation on the pinned repository and work tree.
    pub fn new(pin: &'a Pinned, identity: &'a Identity) -> Self {
        Git::at(Location::Pinned(pin), identity)
    }

    /// A git invocation that discovers its repository from `dir` (see [`Location::Discover`]).
    pub fn discover(dir: &'a Path, identity: &'a Identity) -> Self {
        Git::at(Location::Discover(dir), identity)
    }

    fn at(location: Location<'a>, identity: &'a Identity) -> Self {
        Git {
            location,
            identity,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: &'static str, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key, value.as_ref().to_owned()));
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    fn display_args(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Runs git and returns whatever it did; only a failure to start is an error.
    pub fn output(self) -> Result<Output> {
        let mut cmd = Command::new("git");
        // Its own process group: a Ctrl-C at the terminal is for Picidae to handle (finish the
        // attempt in flight), not to kill a commit half-way.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let dir = match self.location {
            Location::Pinned(pin) => &pin.work_tree,
            Location::Discover(dir) => dir,
        };
        cmd.current_dir(dir).arg("--no-replace-objects");
        for kv in HARDENING {
            cmd.arg("-c").arg(kv);
        }
        cmd.arg("--no-pager").args(&self.args);
        for key in SCRUBBED_ENV {
            cmd.env_remove(key);
        }
        for (key, value) in FORCED_ENV {
            cmd.env(key, value);
        }
        if let Location::Pinned(pin) = self.location {
            cmd.env("GIT_DIR", &pin.git_dir)
                .env("GIT_COMMON_DIR", &pin.common_dir)
                .env("GIT_WORK_TREE", &pin.work_tree);
        }
        cmd.env("GIT_AUTHOR_NAME", &self.identity.name)
            .env("GIT_AUTHOR_EMAIL", &self.identity.email)
            .env("GIT_COMMITTER_NAME", &self.identity.name)
            .env("GIT_COMMITTER_EMAIL", &self.identity.email);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

        tracing::debug!(dir = %dir.display(), args = ?self.args, "git");
        let spawn_err = |source| GitError::Spawn {
            args: self.display_args(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let stdin_pipe = child.stdin.take();
        let input = self.stdin.as_deref();
        // Feed stdin from another thread so a large input cannot deadlock
        // against git filling its stdout pipe.
        let out = std::thread::scope(|scope| {
            if let (Some(mut pipe), Some(bytes)) = (stdin_pipe, input) {
                scope.spawn(move || {
                    // A write error means git exited early; its status says why.
                    let _ = pipe.write_all(bytes);
                });
            }
            child.wait_with_output()
        })
        .map_err(spawn_err)?;
        Ok(Output {
            status: out.status,
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }

    /// Runs git; a non-zero exit is a [`GitError::Command`]. Returns stdout.
    pub fn run(self) -> Result<Vec<u8>> {
        let args = self.display_args();
        let out = self.output()?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(GitError::Command {
                args,
                status: out.status,
                stderr: out.stderr,
            })
        }
    }

    /// [`Git::run`], stdout as (lossy) UTF-8 with trailing whitespace trimmed.
    pub fn run_text(self) -> Result<String> {
        let out = self.run()?;
        Ok(String::from_utf8_lossy(&out).trim_end().to_owned())
    }

    /// Runs git; `Ok(Some(stdout))` on success, `Ok(None)` when it exits with
    /// `quiet_code`, an error otherwise.
    pub fn run_allowing(self, quiet_code: i32) -> Result<Option<Vec<u8>>> {
        let args = self.display_args();
        let out = self.output()?;
        if out.status.success() {
            Ok(Some(out.stdout))
        } else if out.status.code() == Some(quiet_code) {
            Ok(None)
        } else {
            Err(GitError::Command {
                args,
                status: out.status,
                stderr: out.stderr,
            })
        }
    }
}

/// Rejects revisions git would parse as options (or that cannot be passed).
pub(crate) fn check_rev(rev: &str) -> Result<()> {
    if rev.is_empty() || rev.starts_with('-') || rev.contains('\0') || rev.contains('\n') {
        return Err(GitError::InvalidArgument(format!(
            "not a usable revision: {rev:?}"
        )));
    }
    Ok(())
}
