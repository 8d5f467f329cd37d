//! The command agent: runs any program in the attempt's checkout and takes its edits.
//!
//! The prompt ([`crate::prompt::render_prompt`]) arrives on the command's stdin and in the file
//! `$PICIDAE_PROMPT_FILE`; the same context as JSON is in `$PICIDAE_CONTEXT_FILE`, program.md in
//! `$PICIDAE_PROGRAM_MD`, and `$PICIDAE_SCRATCH` is a directory outside the checkout for the
//! command's own files (`scratch/` inside the attempt directory; the only part of it the command
//! may write). Where the project is known, `$PICIDAE_MCP_CONFIG` names an MCP client
//! configuration (`{"mcpServers": {"picidae": ...}}`) that starts the memory server. A command
//! line may contain `{editable_files}`, replaced by the shell-quoted paths of the existing files
//! the boundary lets the agent change.
//!
//! The command edits files in its working directory and says what it did on stdout. How that
//! output is read is the agent's [`OutputParser`]: by default ([`parse_text`]) a line
//! `HYPOTHESIS: ...` (otherwise the first non-empty line) and, for a command that knows what its
//! turn cost, `COST_USD: 0.042` and `TOKENS: 18250` lines; the cost is charged to the program's
//! money budget. The coding-agent adapters ([`crate::adapters`]) are command agents with their
//! own command line and parser.
//!
//! It runs as a job like any other: own process group, hard timeout, captured transcript
//! (`agent.stdout`, `agent.stderr` and `transcript.txt` in the attempt directory, kept whether
//! the command succeeded, failed or was killed).
//!
//! The attempt directory belongs to the harness. It is made afresh for each turn (whatever was
//! there, links included, is removed without being followed), its files are created with
//! `O_EXCL | O_NOFOLLOW`, the captured output is read back with `O_NOFOLLOW`, and the transcript
//! is renamed into place ([`picidae_exec::safe_fs`]): a link an agent planted there is refused
//! or replaced, never written or read through. Inside the agent sandbox the directory is
//! read-only and only `scratch/` is writable.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use picidae_exec::{safe_fs, LocalExecutor, RunRequest, Sandbox, SandboxSpec};
use serde_json::json;

use crate::prompt::{render_prompt, HYPOTHESIS_TAG};
use crate::{Agent, AgentContext, AgentCost, AgentError, Proposal};

/// The agent's captured output and the transcript made of it, in the attempt directory.
pub const AGENT_STDOUT: &str = "agent.stdout";
pub const AGENT_STDERR: &str = "agent.stderr";
pub const TRANSCRIPT: &str = "transcript.txt";

/// Earlier attempts written into an agent's context file.
pub const CONTEXT_HISTORY: usize = 50;

/// The placeholder of a command line replaced by the editable files.
pub const EDITABLE_FILES: &str = "{editable_files}";

/// At most this many files replace [`EDITABLE_FILES`].
pub const MAX_EDITABLE_FILES: usize = 200;

/// The line (alone on its line; Markdown emphasis around it is allowed) by which a command
/// says it has nothing left to propose: its turn proposes nothing, and the loop ends cleanly.
pub const DONE_LINE: &str = "PICIDAE: DONE";

/// What a command's output says about its turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentOutput {
    pub hypothesis: Option<String>,
    pub cost: AgentCost,
    /// The command printed [`DONE_LINE`].
    pub done: bool,
}

/// Reads a command's stdout. Pure, so each format is tested on captured samples.
pub type OutputParser = fn(&str) -> AgentOutput;

/// What coding-agent CLIs keep under `$HOME` (logins, settings, sessions); writable inside an
/// agent sandbox when it exists.
const AGENT_HOME_STATE: [&str; 6] = [
    ".claude",
    ".claude.json",
    ".codex",
    ".aider",
    ".config",
    ".cache",
];

/// A program the command needs on `PATH`, checked before each turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The executable's name, as looked up on `PATH`.
    pub binary: String,
    /// What it is, for the error message ("Claude Code").
    pub product: String,
}

pub struct CommandAgent {
    command: String,
    timeout: Duration,
    name: String,
    parse: OutputParser,
    requires: Option<Requirement>,
}

impl CommandAgent {
    /// `req` under bubblewrap (`boundary.sandbox_agents`): the checkout and the scratch
    /// directory writable, the attempt directory around the scratch directory read-only, the
    /// agent CLIs' own configuration under `$HOME` writable (they keep logins and sessions there), the directory of the required binary read-only, the
    /// network kept (agents call their model's API); the benchmark's repository, its hidden
    /// files, the store and other programs' data do not exist inside.
    fn sandboxed(
        &self,
        ctx: &AgentContext<'_>,
        req: &RunRequest,
    ) -> Result<RunRequest, AgentError> {
        if !Sandbox::available() {
            return Err(AgentError::Config(
                "the contract sets `boundary.sandbox_agents` but bubblewrap (`bwrap`) is not available here; install it (Debian: bubblewrap)".into(),
            ));
        }
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let mut writable = vec![canon(ctx.workspace), canon(ctx.scratch)];
        // The attempt directory (prompt, context, logs, transcript) is readable, not writable:
        // its scratch directory, bound writable below it, is the agent's.
        let mut readonly = vec![canon(ctx.attempt_dir)];
        if let Some(home) = std::env::var_os("HOME") {
            for d in AGENT_HOME_STATE {
                let p = Path::new(&home).join(d);
                if p.exists() {
                    writable.push(canon(&p));
                }
            }
        }
        if let Some(bin) = self.requires.as_ref().and_then(|r| find_on_path(&r.binary)) {
            if let Some(dir) = canon(&bin).parent() {
                if !picidae_exec::sandbox::SYSTEM_DIRS
                    .iter()
                    .any(|s| dir.starts_with(s))
                {
                    readonly.push(dir.to_path_buf());
                }
            }
        }
        Sandbox::new(SandboxSpec {
            writable,
            readonly,
            hidden: Vec::new(),
            devices: Vec::new(),
            network: true,
        })
        .wrap(req)
        .map_err(|e| AgentError::Config(format!("agent sandbox: {e}")))
    }

    /// A command whose output is read by [`parse_text`].
    pub fn new(command: String, timeout: Duration) -> CommandAgent {
        let first = command.split_whitespace().next().unwrap_or("command");
        CommandAgent {
            name: format!("command:{first}"),
            command,
            timeout,
            parse: parse_text,
            requires: None,
        }
    }

    /// The name recorded as the attempts' proposer.
    pub fn with_name(mut self, name: impl Into<String>) -> CommandAgent {
        self.name = name.into();
        self
    }

    pub fn with_parser(mut self, parse: OutputParser) -> CommandAgent {
        self.parse = parse;
        self
    }

    /// Refuse to start (with a message naming `binary`) when `binary` is not on `PATH`.
    pub fn requiring(mut self, binary: &str, product: &str) -> CommandAgent {
        self.requires = Some(Requirement {
            binary: binary.into(),
            product: product.into(),
        });
        self
    }

    pub fn command(&self) -> &str {
        &self.command
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn requirement(&self) -> Option<&Requirement> {
        self.requires.as_ref()
    }
}

/// The default reading of a command's output: [`parse_hypothesis`] and [`parse_cost`].
pub fn parse_text(stdout: &str) -> AgentOutput {
    AgentOutput {
        hypothesis: parse_hypothesis(stdout),
        cost: parse_cost(stdout),
        done: says_done(stdout),
    }
}

/// Whether `text` has a line that is [`DONE_LINE`] (surrounding spaces and Markdown emphasis
/// aside). Mentioning it inside a sentence does not count.
pub fn says_done(text: &str) -> bool {
    text.lines().any(|l| {
        l.trim()
            .trim_matches(['*', '_', '`', '#', '>', '-', ' '])
            .trim()
            == DONE_LINE
    })
}

/// The cost a command reported: the last `COST_USD:` and `TOKENS:` lines (unparsable or
/// negative values are ignored).
pub fn parse_cost(stdout: &str) -> AgentCost {
    let last = |tag: &str| {
        stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix(tag))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .rfind(|v| v.is_finite() && *v >= 0.0)
    };
    AgentCost {
        usd: last("COST_USD:"),
        tokens: last("TOKENS:").map(|t| t as i64),
    }
}

/// The hypothesis a command printed: its last `HYPOTHESIS:` line (Markdown emphasis around the
/// tag is allowed), otherwise its first non-empty line, at most 200 characters.
pub fn parse_hypothesis(stdout: &str) -> Option<String> {
    tagged_hypothesis(stdout).or_else(|| {
        stdout
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.chars().take(200).collect())
    })
}

/// The last non-empty `HYPOTHESIS:` line of `text`, if any.
pub fn tagged_hypothesis(text: &str) -> Option<String> {
    let tag = HYPOTHESIS_TAG.trim_end_matches(':');
    text.lines()
        .filter_map(|l| {
            let l = l
                .trim()
                .trim_start_matches(['*', '_', '`', '#', '>', '-', ' ']);
            let rest = l.strip_prefix(tag)?.trim_start_matches(['*', '_', '`']);
            let rest = rest.strip_prefix(':')?;
            Some(
                rest.trim_start_matches(['*', '_', '`'])
                    .trim()
                    .trim_end_matches(['*', '_', '`'])
                    .trim()
                    .to_string(),
            )
        })
        .rfind(|h| !h.is_empty())
}

/// Where `binary` is on `PATH` (or `binary` itself when it is a path), if it is an executable file.
pub fn find_on_path(binary: &str) -> Option<PathBuf> {
    if binary.contains('/') {
        let p = PathBuf::from(binary);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// `s` quoted for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The existing files under `workspace` (relative paths, sorted) that the boundary lets the agent
/// change (the harness's own check), at most [`MAX_EDITABLE_FILES`].
pub fn editable_files(ctx: &AgentContext<'_>) -> Result<Vec<String>, AgentError> {
    let boundary = picidae_core::Boundary::new(&ctx.contract.boundary)
        .map_err(|e| AgentError::Config(format!("boundary globs: {e}")))?;
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let dir = ctx.workspace.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(|source| AgentError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let path = rel.join(&name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(path);
            } else if let Some(s) = path.to_str() {
                if boundary.check_one(s, false).is_none() {
                    out.push(s.to_string());
                }
            }
        }
    }
    out.sort();
    out.truncate(MAX_EDITABLE_FILES);
    Ok(out)
}

/// An MCP client configuration that starts this project's memory server.
fn mcp_config(project: &Path) -> serde_json::Value {
    // The running binary when it is picidae itself (not on PATH under `cargo run`), else by name.
    let exe = std::env::current_exe()
        .ok()
        .filter(|p| p.file_stem().and_then(|s| s.to_str()) == Some("picidae"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "picidae".into());
    json!({
        "mcpServers": {
            "picidae": {
                "type": "stdio",
                "command": exe,
                "args": ["--project", project.display().to_string(), "mcp"],
            }
        }
    })
}

impl CommandAgent {
    /// The command line for this turn, with its placeholders filled in.
    fn command_line(&self, ctx: &AgentContext<'_>) -> Result<String, AgentError> {
        if !self.command.contains(EDITABLE_FILES) {
            return Ok(self.command.clone());
        }
        let files: Vec<String> = editable_files(ctx)?
            .iter()
            .map(|f| shell_quote(f))
            .collect();
        Ok(self.command.replace(EDITABLE_FILES, &files.join(" ")))
    }
}

impl Agent for CommandAgent {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn preflight(&self) -> Result<(), AgentError> {
        match &self.requires {
            Some(r) if find_on_path(&r.binary).is_none() => Err(AgentError::MissingBinary {
                binary: r.binary.clone(),
                product: r.product.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn prompt(&self, ctx: &AgentContext<'_>) -> Option<String> {
        Some(render_prompt(ctx))
    }

    fn propose(&mut self, ctx: &AgentContext<'_>) -> Result<Proposal, AgentError> {
        self.preflight()?;
        let dir = ctx.attempt_dir;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|source| AgentError::Io {
                path: parent.display().to_string(),
                source,
            })?;
        }
        // Whatever an earlier agent left at this attempt's directory (links included) is
        // removed, not followed; the harness's files are then created, never overwritten.
        safe_fs::recreate_dir(dir)?;
        safe_fs::create_dir_fresh(ctx.scratch)?;
        let prompt_file = dir.join("prompt.md");
        safe_fs::write_new(dir, "prompt.md", render_prompt(ctx).as_bytes())?;
        let context_file = dir.join("context.json");
        let hidden: &[String] = ctx
            .contract
            .hidden
            .as_ref()
            .map(|h| h.metrics.as_slice())
            .unwrap_or(&[]);
        let frontier_metrics: serde_json::Map<String, serde_json::Value> = ctx
            .frontier_metrics
            .iter()
            .filter(|(n, _)| ctx.contract.metrics.contains_key(n) && !hidden.contains(n))
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect();
        let context = json!({
            "program": ctx.program,
            "attempt_seq": ctx.attempt_seq,
            "editable": ctx.contract.boundary.editable,
            "primary_metric": ctx.contract.primary_metric,
            "goal": ctx.contract.primary().goal,
            "frontier_value": ctx.frontier_value,
            "frontier_metrics": frontier_metrics,
            "frontier_params": ctx.frontier_params,
            // The recent past only: the whole history would make every attempt's context
            // grow with the program (the memory answers questions about older attempts).
            "history": &ctx.history[ctx.history.len().saturating_sub(CONTEXT_HISTORY)..],
            "in_flight": ctx.in_flight,
            "memory": ctx.memory,
            "followups": ctx.followups,
        });
        safe_fs::write_new(dir, "context.json", context.to_string().as_bytes())?;
        let program_md = dir.join("program.md");
        safe_fs::write_new(dir, "program.md", ctx.program_md.as_bytes())?;

        let mut env = vec![
            ("PICIDAE_PROGRAM".to_string(), ctx.program.to_string()),
            (
                "PICIDAE_PROMPT_FILE".into(),
                prompt_file.display().to_string(),
            ),
            (
                "PICIDAE_CONTEXT_FILE".into(),
                context_file.display().to_string(),
            ),
            (
                "PICIDAE_PROGRAM_MD".into(),
                program_md.display().to_string(),
            ),
            ("PICIDAE_SCRATCH".into(), ctx.scratch.display().to_string()),
            ("PICIDAE_ATTEMPT".into(), ctx.attempt_seq.to_string()),
        ];
        if let Some(project) = ctx.project_dir {
            safe_fs::write_new(dir, "mcp.json", mcp_config(project).to_string().as_bytes())?;
            env.push((
                "PICIDAE_MCP_CONFIG".into(),
                dir.join("mcp.json").display().to_string(),
            ));
        }

        // The executor opens the logs by path; they are created here first, in the directory
        // just made, so nothing planted is there when it does.
        for name in [AGENT_STDOUT, AGENT_STDERR] {
            safe_fs::write_new(dir, name, b"")?;
        }
        let log_cap_bytes = 4 * 1024 * 1024;
        let req = RunRequest {
            command: format!(
                "( {}\n) < \"$PICIDAE_PROMPT_FILE\"",
                self.command_line(ctx)?
            ),
            cwd: ctx.workspace.to_path_buf(),
            env,
            time_budget: self.timeout,
            timeout: self.timeout,
            grace: Duration::from_secs(2),
            stdout_path: dir.join(AGENT_STDOUT),
            stderr_path: dir.join(AGENT_STDERR),
            log_cap_bytes,
        };
        let req = if ctx.contract.boundary.sandbox_agents {
            self.sandboxed(ctx, &req)?
        } else {
            req
        };
        let cancel = AtomicBool::new(false);
        let outcome = LocalExecutor::new().spawn(&req)?.wait(&cancel)?;
        // Read back without following a link (an agent outside the sandbox can reach this
        // directory), and no more than the executor writes.
        let read = |name: &str| match safe_fs::read_nofollow(dir, name, log_cap_bytes + 4096) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.is_not_found() => Ok(String::new()),
            Err(e) => Err(e),
        };
        let (stdout, stderr) = (read(AGENT_STDOUT), read(AGENT_STDERR));
        let shown = |r: &Result<String, safe_fs::SafeFsError>| match r {
            Ok(s) => s.clone(),
            Err(e) => format!("[picidae: {e}]\n"),
        };
        let transcript = format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            shown(&stdout),
            shown(&stderr)
        );
        // Kept whatever happens next, so a failed or killed turn can be read afterwards.
        // Renamed into place: a link planted at the name is replaced, its target untouched.
        safe_fs::replace_file(dir, TRANSCRIPT, transcript.as_bytes())?;
        let stdout = stdout?;
        let stderr = stderr?;
        if outcome.timed_out {
            return Err(AgentError::TimedOut(outcome.wall_secs));
        }
        let parsed = (self.parse)(&stdout);
        if parsed.done {
            return Err(AgentError::Done);
        }
        if !outcome.succeeded() {
            let how = match (outcome.exit_code, outcome.signal) {
                (Some(c), _) => format!("exit code {c}"),
                (_, Some(s)) => format!("signal {s}"),
                _ => "an unknown status".into(),
            };
            let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            return Err(AgentError::Exited(format!("{how}; stderr: {tail}")));
        }
        Ok(Proposal {
            hypothesis: parsed
                .hypothesis
                .unwrap_or_else(|| "(no hypothesis given)".into()),
            params: None,
            transcript: Some(transcript),
            cost: parsed.cost,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::{
        editable_files, parse_cost, parse_hypothesis, parse_text, says_done, shell_quote,
        tagged_hypothesis, CommandAgent,
    };
    use crate::{Agent, AgentContext};

    #[test]
    fn cost_lines_are_read_and_nonsense_ignored() {
        let c = parse_cost("COST_USD: 0.5\nTOKENS: 1200\nCOST_USD: 0.25\n");
        assert_eq!((c.usd, c.tokens), (Some(0.25), Some(1200)));
        let c = parse_cost("COST_USD: -3\nTOKENS: many\n");
        assert_eq!((c.usd, c.tokens), (None, None));
    }

    #[test]
    fn hypothesis_prefers_tagged_line() {
        assert_eq!(
            parse_hypothesis("thinking\nHYPOTHESIS: wider layer\ndone\n").as_deref(),
            Some("wider layer")
        );
        assert_eq!(
            parse_hypothesis("\n  first line\nsecond").as_deref(),
            Some("first line")
        );
        assert_eq!(parse_hypothesis(""), None);
    }

    #[test]
    fn done_is_a_line_of_its_own() {
        assert!(says_done("looked around\nPICIDAE: DONE\n"));
        assert!(says_done("  **PICIDAE: DONE**  "));
        assert!(says_done("`PICIDAE: DONE`"));
        assert!(!says_done("print `PICIDAE: DONE` when nothing is left"));
        assert!(!says_done("PICIDAE: DONE?"));
        assert!(!says_done("HYPOTHESIS: wider layer\n"));
        assert!(parse_text("PICIDAE: DONE\n").done);
        assert!(!parse_text("HYPOTHESIS: x\n").done);
    }

    #[test]
    fn hypothesis_tag_may_be_emphasised() {
        for line in [
            "**HYPOTHESIS:** lower the learning rate",
            "**HYPOTHESIS**: lower the learning rate",
            "- HYPOTHESIS: lower the learning rate",
            "`HYPOTHESIS: lower the learning rate`",
        ] {
            assert_eq!(
                tagged_hypothesis(line).as_deref(),
                Some("lower the learning rate"),
                "{line}"
            );
        }
        assert_eq!(tagged_hypothesis("HYPOTHESISE: no"), None);
        assert_eq!(tagged_hypothesis("HYPOTHESIS:   \n"), None);
    }

    #[test]
    fn editable_files_match_the_boundary() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "train.py",
            "conf/a.toml",
            "conf/deep/b.toml",
            "run.sh",
            ".git/config",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        let contract = picidae_core::Contract::parse(
            "[benchmark]\nname = \"d\"\n[boundary]\neditable = [\"train.py\", \"conf/*.toml\"]\n\
             [run]\ncommand = \"true\"\ntime_budget = 1\ntimeout = 1\n[metrics.m]\ngoal = \"minimize\"\n",
            Path::new("picidae.toml"),
        )
        .unwrap();
        let ctx = AgentContext {
            program: "p",
            program_md: "",
            contract: &contract,
            workspace: dir.path(),
            frontier_value: None,
            frontier_metrics: &[],
            frontier_params: None,
            history: &[],
            in_flight: &[],
            attempt_seq: 1,
            attempt_dir: dir.path(),
            scratch: dir.path(),
            memory: "",
            followups: &[],
            project_dir: None,
        };
        let files = editable_files(&ctx).unwrap();
        assert!(files.contains(&"train.py".to_string()), "{files:?}");
        assert!(files.contains(&"conf/a.toml".to_string()), "{files:?}");
        assert!(
            !files.iter().any(|f| f == "run.sh" || f.starts_with(".git")),
            "{files:?}"
        );
        let agent = CommandAgent::new("aider -- {editable_files}".into(), Duration::from_secs(1));
        assert!(agent
            .command_line(&ctx)
            .unwrap()
            .starts_with("aider -- conf/a.toml"));
    }

    #[test]
    fn a_missing_binary_is_named() {
        let agent = CommandAgent::new("x".into(), Duration::from_secs(1))
            .requiring("picidae-no-such-cli", "No Such CLI");
        let err = agent.preflight().unwrap_err().to_string();
        assert!(
            err.contains("`picidae-no-such-cli` was not found on PATH"),
            "{err}"
        );
        assert!(err.contains("No Such CLI"), "{err}");
        assert!(err.contains("your own API key"), "{err}");
        let agent = CommandAgent::new("x".into(), Duration::from_secs(1)).requiring("sh", "sh");
        assert!(agent.preflight().is_ok());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("src/model.py"), "src/model.py");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
