//! Running `git` hardened: no hooks, no signing, no CRLF conversion, no prompts,
//! no pager, a fixed identity, and none of the caller's repository-selecting
//! environment variables.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use crate::error::{GitError, Result};
use crate::Identity;

/// Configuration forced on every invocation (`git -c k=v ...`).
///
/// * `core.hooksPath=/dev/null`: repository hooks never run (an agent could
///   plant one in the shared `.git`).
/// * `commit.gpgsign` / `tag.gpgsign` off: no signing prompt or agent needed.
/// * `core.autocrlf=false`: bytes in, bytes out.
/// * `advice.detachedHead=false`: worktrees are detached on purpose.
/// * `core.fsmonitor=false`: the fsmonitor setting can name a program to run.
/// * `gc.auto=0`, `maintenance.auto=false`: no background gc racing with
///   concurrent worktree/ref operations (the user's own git still collects).
const HARDENING: &[&str] = &[
    "core.hooksPath=/dev/null",
    "commit.gpgsign=false",
    "tag.gpgsign=false",
    "core.autocrlf=false",
    "advice.detachedHead=false",
    "core.fsmonitor=false",
    "gc.auto=0",
    "maintenance.auto=false",
];

/// Variables that would make git operate on another repository or index than
/// the one we point it at (`git rev-parse --local-env-vars`), plus a few that
/// run external programs. Removed from every invocation.
const SCRUBBED_ENV: &[&str] = &[
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_EXTERNAL_DIFF",
    "GIT_DIFF_OPTS",
    "GIT_TRACE",
];

/// What a finished git process left behind.
pub(crate) struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// One git invocation being built.
pub(crate) struct Git<'a> {
    dir: &'a Path,
    identity: &'a Identity,
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    stdin: Option<Vec<u8>>,
}

impl<'a> Git<'a> {
    pub fn new(dir: &'a Path, identity: &'a Identity) -> Self {
        Git {
            dir,
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
        cmd.current_dir(self.dir);
        for kv in HARDENING {
            cmd.arg("-c").arg(kv);
        }
        cmd.arg("--no-pager").args(&self.args);
        for key in SCRUBBED_ENV {
            cmd.env_remove(key);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_EDITOR", ":")
            .env("GIT_PAGER", "cat")
            .env("LC_ALL", "C")
            .env("GIT_AUTHOR_NAME", &self.identity.name)
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

        tracing::debug!(dir = %self.dir.display(), args = ?self.args, "git");
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
