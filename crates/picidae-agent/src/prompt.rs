//! The prompt a language-model agent is given for one turn, as plain text.
//!
//! One template for every command agent (a script, Claude Code, Codex, Aider): the program's
//! direction (program.md), the rules the harness enforces (the boundary's editable globs, the run
//! command and its budget, the primary metric), where the frontier stands (its visible metric
//! values and parameters; hidden metrics are never named), the recent attempts, follow-up ideas,
//! the memory's brief, how to reach the memory over MCP, and the required answer format (a
//! `HYPOTHESIS:` line). [`render_prompt`] is pure: `picidae agent prompt` prints what it returns
//! for a program's next turn, and the command agent writes the same text to `prompt.md`.

use std::fmt::Write as _;

use crate::command::DONE_LINE;
use crate::AgentContext;

/// Recent attempts listed in the prompt (the memory answers questions about older ones).
pub const PROMPT_HISTORY: usize = 20;

/// The tag of the line that states an agent's hypothesis.
pub const HYPOTHESIS_TAG: &str = "HYPOTHESIS:";

/// The prompt for one turn of `ctx`'s program.
pub fn render_prompt(ctx: &AgentContext<'_>) -> String {
    let c = ctx.contract;
    let primary = c.primary();
    let hidden: &[String] = c
        .hidden
        .as_ref()
        .map(|h| h.metrics.as_slice())
        .unwrap_or(&[]);
    let mut p = String::new();
    if ctx.program_md.trim().is_empty() {
        let _ = writeln!(
            p,
            "(This program has no program.md: no direction was written for it. Improve the \
             primary metric, {}, within the rules below.)",
            primary.name
        );
    } else {
        p.push_str(ctx.program_md.trim());
        p.push('\n');
    }
    p.push_str("\n## Rules (enforced by the harness)\n");
    p.push_str(
        "- Your working directory is your own checkout of the current frontier. Edit files there, \
         and do not run the experiment: Picidae records your change, runs it and keeps it only if \
         the primary metric improves.",
    );
    if c.boundary.sandbox_agents {
        // Inside the agent sandbox the repository does not exist: git cannot commit.
        p.push_str(
            " Leave your edits uncommitted (git has no repository in your sandbox): your change \
             is everything between the frontier and your files when you finish.\n",
        );
    } else {
        p.push_str(
            " You may commit your edits or leave them uncommitted: your change is everything \
             between the frontier and your files when you finish, either way.\n",
        );
    }
    let _ = writeln!(
        p,
        "- You may change only files matching: {}. An edit or deletion of any other file is \
         rejected without a run. New files that match none of these are ignored (not part of \
         your change).",
        c.boundary.editable.join(", ")
    );
    let _ = writeln!(
        p,
        "- Keep notes and temporary files in your scratch directory, {} ($PICIDAE_SCRATCH, \
         outside the checkout); it is never part of your change.",
        ctx.scratch.display()
    );
    let measured = match &c.run.budget_metric {
        Some(m) => format!(" of {m}, as the run reports it (start-up excluded)"),
        None => String::new(),
    };
    let _ = writeln!(
        p,
        "- The run command is `{}` with a time budget of {:.0}s{measured}; it is killed at {:.0}s \
         of wall time.",
        c.run.command,
        c.run.time_budget.as_secs_f64(),
        c.run.timeout.as_secs_f64()
    );
    let _ = writeln!(p, "- Primary metric: {} ({}).", primary.name, primary.goal);

    p.push_str("\n## Where the frontier stands\n");
    match ctx.frontier_value {
        Some(v) => {
            let _ = writeln!(p, "- {} = {v}", primary.name);
        }
        None => {
            let _ = writeln!(p, "- {}: not measured yet", primary.name);
        }
    }
    for (name, value) in ctx.frontier_metrics {
        let visible = c.metrics.contains_key(name) && !hidden.iter().any(|h| h == name);
        if visible && *name != primary.name {
            let _ = writeln!(p, "- {name} = {value}");
        }
    }
    if let Some(params) = ctx.frontier_params.filter(|a| !a.is_empty()) {
        let list: Vec<String> = params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let _ = writeln!(p, "- parameters: {}", list.join(", "));
    }

    if !ctx.history.is_empty() {
        p.push_str("\n## Recent attempts (newest last)\n");
        let start = ctx.history.len().saturating_sub(PROMPT_HISTORY);
        for h in &ctx.history[start..] {
            let value = h
                .value
                .map(|v| format!("{v:.6}"))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                p,
                "- #{} [{}] {} = {}: {}",
                h.seq,
                h.status,
                primary.name,
                value,
                one_line(&h.hypothesis)
            );
        }
    }
    if !ctx.in_flight.is_empty() {
        p.push_str(
            "\n## In flight now (other attempts on this program; do not propose these again)\n",
        );
        for f in ctx.in_flight {
            let _ = writeln!(
                p,
                "- #{} [{}]: {}",
                f.seq,
                f.status,
                one_line(&f.hypothesis)
            );
            if let Some(params) = f.params.as_ref().filter(|a| !a.is_empty()) {
                let list: Vec<String> = params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                let _ = writeln!(p, "  parameters: {}", list.join(", "));
            }
            if !f.diff.trim().is_empty() {
                let _ = writeln!(p, "  ```diff\n{}\n  ```", f.diff.trim_end());
            }
        }
    }
    if !ctx.followups.is_empty() {
        p.push_str("\n## Ideas queued by a human (try these first)\n");
        for f in ctx.followups {
            let _ = writeln!(p, "- {}", f.trim());
        }
    }
    if !ctx.memory.trim().is_empty() {
        p.push_str("\n## What memory says\n");
        p.push_str(ctx.memory.trim());
        p.push('\n');
    }

    p.push_str("\n## Asking the memory\n");
    let project = ctx
        .project_dir
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "<project dir>".into());
    let _ = writeln!(
        p,
        "Earlier attempts, of this program and of others, and what came of them are searchable \
         over MCP (stdio): `picidae --project {project} mcp`, with the tools search_memory, \
         get_attempt, list_findings and frontier. Search before you repeat an idea."
    );

    p.push_str("\n## Your answer\n");
    let _ = writeln!(
        p,
        "Make one focused change to test one idea. If there is nothing left worth trying, change \
         nothing and reply with the line `{DONE_LINE}` instead: the program then stops. When you \
         are done, end your reply with exactly one line:\n{HYPOTHESIS_TAG} <what you changed, and \
         why you expect it to improve {}>",
        primary.name
    );
    p
}

/// The first line of `text`, at most 200 characters.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use picidae_core::{Assignment, AttemptStatus, Contract};

    use super::render_prompt;
    use crate::{AgentContext, HistoryEntry};

    const CONTRACT: &str = r#"
[benchmark]
name = "demo"

[boundary]
editable = ["train.py", "conf/*.toml"]

[run]
command = "python3 train.py"
time_budget = 300
timeout = 400

[metrics.val_bpb]
goal = "minimize"
primary = true

[metrics.tokens_per_s]
goal = "maximize"

[hidden]
command = "python3 judge.py"
metrics = ["secret_bpb"]
files = ["gold"]
"#;

    #[test]
    fn prompt_has_every_section_and_no_hidden_metric() {
        let contract = Contract::parse(CONTRACT, Path::new("picidae.toml")).unwrap();
        let history: Vec<HistoryEntry> = (1..=25)
            .map(|seq| HistoryEntry {
                seq,
                hypothesis: format!("idea {seq}\nwith a second line"),
                status: AttemptStatus::Discarded,
                params: None,
                value: Some(1.0 + seq as f64 / 100.0),
            })
            .collect();
        let metrics = vec![
            ("val_bpb".to_string(), 0.98),
            ("tokens_per_s".to_string(), 51234.5),
            // Never shown, even if a caller passed it.
            ("secret_bpb".to_string(), 0.5),
        ];
        let params: Assignment = [("lr".to_string(), "0.01".to_string())].into();
        let followups = vec!["try a cosine schedule".to_string()];
        let ctx = AgentContext {
            program: "p",
            program_md: "Lower val_bpb within five minutes.\n",
            contract: &contract,
            workspace: Path::new("/nonexistent"),
            frontier_value: Some(0.98),
            frontier_metrics: &metrics,
            frontier_params: Some(&params),
            history: &history,
            in_flight: &[],
            attempt_seq: 26,
            attempt_dir: Path::new("/nonexistent"),
            scratch: Path::new("/nonexistent/scratch"),
            memory: "Validated (build on these):\n- #3 lr 0.01",
            followups: &followups,
            project_dir: Some(Path::new("/projects/demo")),
        };
        let p = render_prompt(&ctx);
        assert!(
            p.starts_with("Lower val_bpb within five minutes.\n\n## Rules"),
            "{p}"
        );
        assert!(
            p.contains("You may change only files matching: train.py, conf/*.toml."),
            "{p}"
        );
        assert!(
            p.contains("`python3 train.py` with a time budget of 300s"),
            "{p}"
        );
        assert!(p.contains("Primary metric: val_bpb (minimize)."), "{p}");
        assert!(
            p.contains("- val_bpb = 0.98\n- tokens_per_s = 51234.5\n"),
            "{p}"
        );
        assert!(p.contains("- parameters: lr = 0.01"), "{p}");
        assert!(!p.contains("secret"), "a hidden metric leaked: {p}");
        // The last 20 attempts, one line each.
        assert!(!p.contains("idea 5\n"), "{p}");
        assert!(
            p.contains("- #6 [discarded] val_bpb = 1.060000: idea 6\n"),
            "{p}"
        );
        assert!(!p.contains("second line"), "{p}");
        assert!(p.contains("try a cosine schedule"), "{p}");
        assert!(p.contains("## What memory says\nValidated"), "{p}");
        assert!(p.contains("`picidae --project /projects/demo mcp`"), "{p}");
        assert!(
            p.contains("You may commit your edits or leave them uncommitted"),
            "{p}"
        );
        assert!(
            p.contains("/nonexistent/scratch ($PICIDAE_SCRATCH, outside the checkout)"),
            "{p}"
        );
        assert!(
            p.contains("New files that match none of these are ignored"),
            "{p}"
        );
        assert!(
            p.contains("reply with the line `PICIDAE: DONE` instead"),
            "{p}"
        );
        assert!(
            !crate::command::says_done(&p),
            "the prompt must not itself read as done"
        );
        assert!(
            p.trim_end().ends_with(
                "HYPOTHESIS: <what you changed, and why you expect it to improve val_bpb>"
            ),
            "{p}"
        );
    }

    #[test]
    fn a_missing_program_md_is_said_rather_than_left_blank() {
        let mut contract = Contract::parse(CONTRACT, Path::new("picidae.toml")).unwrap();
        contract.boundary.sandbox_agents = true;
        let ctx = AgentContext {
            program: "p",
            program_md: "  \n",
            contract: &contract,
            workspace: Path::new("/nonexistent"),
            frontier_value: None,
            frontier_metrics: &[],
            frontier_params: None,
            history: &[],
            in_flight: &[],
            attempt_seq: 1,
            attempt_dir: Path::new("/nonexistent"),
            scratch: Path::new("/nonexistent/scratch"),
            memory: "",
            followups: &[],
            project_dir: None,
        };
        let p = render_prompt(&ctx);
        assert!(p.contains("Leave your edits uncommitted"), "{p}");
        assert!(
            p.starts_with("(This program has no program.md: no direction was written for it. Improve the primary metric, val_bpb, within the rules below.)\n\n## Rules"),
            "{p}"
        );
    }
}
