//! The command agent: runs any program in the attempt's checkout and takes its edits.
//!
//! The prompt (program.md, the boundary, the frontier's visible numbers, recent attempts) arrives
//! on the command's stdin and in the file `$PICIDAE_PROMPT_FILE`; the same context as JSON is in
//! `$PICIDAE_CONTEXT_FILE`. The command edits files in its working directory and prints its
//! hypothesis as a line `HYPOTHESIS: ...` (otherwise its first non-empty output line is used).
//! A command that knows what its turn cost says so with `COST_USD: 0.042` and `TOKENS: 18250`
//! lines; the cost is charged to the program's money budget.
//! It runs as a job like any other: own process group, hard timeout, captured transcript.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use picidae_exec::{LocalExecutor, RunRequest};
use serde_json::json;

use crate::{Agent, AgentContext, AgentError, Proposal};

/// Earlier attempts written into an agent's context file.
pub const CONTEXT_HISTORY: usize = 50;

pub struct CommandAgent {
    command: String,
    timeout: Duration,
}

impl CommandAgent {
    pub fn new(command: String, timeout: Duration) -> CommandAgent {
        CommandAgent { command, timeout }
    }
}

/// The prompt an agent is given, as plain text.
pub fn render_prompt(ctx: &AgentContext<'_>) -> String {
    let c = ctx.contract;
    let mut p = String::new();
    p.push_str(ctx.program_md.trim());
    p.push_str("\n\n## Rules (enforced by the harness)\n");
    p.push_str(&format!(
        "- You may change only files matching: {}\n",
        c.boundary.editable.join(", ")
    ));
    p.push_str(&format!(
        "- The run command is `{}` with a time budget of {:.0}s.\n",
        c.run.command,
        c.run.time_budget.as_secs_f64()
    ));
    let primary = c.primary();
    p.push_str(&format!(
        "- Primary metric: {} ({}).\n",
        primary.name, primary.goal
    ));
    if let Some(v) = ctx.frontier_value {
        p.push_str(&format!("- Current frontier: {} = {v}\n", primary.name));
    }
    if !ctx.history.is_empty() {
        p.push_str("\n## Recent attempts (newest last)\n");
        let start = ctx.history.len().saturating_sub(20);
        for h in &ctx.history[start..] {
            let value = h
                .value
                .map(|v| format!("{v:.6}"))
                .unwrap_or_else(|| "-".into());
            p.push_str(&format!(
                "- #{} [{}] {} = {}: {}\n",
                h.seq, h.status, primary.name, value, h.hypothesis
            ));
        }
    }
    if !ctx.followups.is_empty() {
        p.push_str("\n## Ideas queued by a human (try these first)\n");
        for f in ctx.followups {
            p.push_str(&format!("- {}\n", f.trim()));
        }
    }
    if !ctx.memory.trim().is_empty() {
        p.push_str("\n## What memory says\n");
        p.push_str(ctx.memory.trim());
        p.push('\n');
    }
    p.push_str("\nEdit the files, then print one line `HYPOTHESIS: <what you changed and why>`.\n");
    p
}

/// The cost a command reported: the last `COST_USD:` and `TOKENS:` lines (unparsable or
/// negative values are ignored).
pub fn parse_cost(stdout: &str) -> crate::AgentCost {
    let last = |tag: &str| {
        stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix(tag))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .rfind(|v| v.is_finite() && *v >= 0.0)
    };
    crate::AgentCost {
        usd: last("COST_USD:"),
        tokens: last("TOKENS:").map(|t| t as i64),
    }
}

/// The hypothesis a command printed.
pub fn parse_hypothesis(stdout: &str) -> Option<String> {
    let tagged = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("HYPOTHESIS:"))
        .map(|h| h.trim().to_string())
        .rfind(|h| !h.is_empty());
    tagged.or_else(|| {
        stdout
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.chars().take(200).collect())
    })
}

impl Agent for CommandAgent {
    fn name(&self) -> String {
        let first = self.command.split_whitespace().next().unwrap_or("command");
        format!("command:{first}")
    }

    fn propose(&mut self, ctx: &AgentContext<'_>) -> Result<Proposal, AgentError> {
        let io = |path: &std::path::Path, source| AgentError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(ctx.scratch).map_err(|e| io(ctx.scratch, e))?;
        let prompt_file = ctx.scratch.join("prompt.md");
        std::fs::write(&prompt_file, render_prompt(ctx)).map_err(|e| io(&prompt_file, e))?;
        let context_file = ctx.scratch.join("context.json");
        let context = json!({
            "program": ctx.program,
            "attempt_seq": ctx.attempt_seq,
            "editable": ctx.contract.boundary.editable,
            "primary_metric": ctx.contract.primary_metric,
            "goal": ctx.contract.primary().goal,
            "frontier_value": ctx.frontier_value,
            // The recent past only: the whole history would make every attempt's context
            // grow with the program (the memory answers questions about older attempts).
            "history": &ctx.history[ctx.history.len().saturating_sub(CONTEXT_HISTORY)..],
            "memory": ctx.memory,
            "followups": ctx.followups,
        });
        std::fs::write(&context_file, context.to_string()).map_err(|e| io(&context_file, e))?;
        let program_md = ctx.scratch.join("program.md");
        std::fs::write(&program_md, ctx.program_md).map_err(|e| io(&program_md, e))?;

        let stdout_path = ctx.scratch.join("agent.stdout");
        let stderr_path = ctx.scratch.join("agent.stderr");
        let req = RunRequest {
            command: format!("( {}\n) < \"$PICIDAE_PROMPT_FILE\"", self.command),
            cwd: ctx.workspace.to_path_buf(),
            env: vec![
                ("PICIDAE_PROGRAM".into(), ctx.program.into()),
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
                ("PICIDAE_ATTEMPT".into(), ctx.attempt_seq.to_string()),
            ],
            time_budget: self.timeout,
            timeout: self.timeout,
            grace: Duration::from_secs(2),
            stdout_path: stdout_path.clone(),
            stderr_path: stderr_path.clone(),
            log_cap_bytes: 4 * 1024 * 1024,
        };
        let cancel = AtomicBool::new(false);
        let outcome = LocalExecutor::new().spawn(&req)?.wait(&cancel)?;
        let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        if outcome.timed_out {
            return Err(AgentError::TimedOut(outcome.wall_secs));
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
            hypothesis: parse_hypothesis(&stdout).unwrap_or_else(|| "(no hypothesis given)".into()),
            params: None,
            transcript: Some(format!("--- stdout ---\n{stdout}--- stderr ---\n{stderr}")),
            cost: parse_cost(&stdout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_cost, parse_hypothesis};

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
}
