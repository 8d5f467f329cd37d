//! Coding-agent CLIs (Claude Code, Codex, Aider) as configurations of the command agent.
//!
//! An adapter is data, not code: which binary it needs, its command-line template, its default
//! timeout, how the editable files reach it, and a pure parser for what it prints. Building one
//! gives a [`CommandAgent`], so every adapter runs like any command agent: in its own checkout,
//! its own process group, under a hard timeout, with its transcript kept, and with the boundary
//! checked by the harness afterwards whatever the CLI was allowed to do.
//!
//! These adapters run the user's own CLI with the user's own API key or login; Picidae includes
//! no LLM access. A missing binary is reported as [`AgentError::MissingBinary`], naming it.
//!
//! | adapter | prompt | editable files | cost and tokens |
//! |---|---|---|---|
//! | Claude Code | stdin (`claude -p`) | named in the prompt; edits limited to the checkout (`acceptEdits`) | `total_cost_usd`, `usage` of the JSON result |
//! | Codex | stdin (`codex exec ... -`) | named in the prompt; `workspace-write` sandbox | tokens of `turn.completed` events (`--json`) |
//! | Aider | `--message-file $PICIDAE_PROMPT_FILE` | on the command line | `Tokens:` and `Cost:` report lines |
//!
//! [`AgentError::MissingBinary`]: crate::AgentError::MissingBinary

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::command::{
    parse_hypothesis, parse_text, says_done, shell_quote, tagged_hypothesis, AgentOutput,
    CommandAgent, OutputParser, EDITABLE_FILES,
};
use crate::AgentCost;

/// The placeholder of an adapter's command line replaced by the user's extra arguments.
pub const EXTRA_ARGS: &str = "{args}";

/// The coding-agent CLIs Picidae can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    Claude,
    Codex,
    Aider,
}

/// How an adapter's CLI learns which files it may edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditablePassing {
    /// The CLI finds the files itself in its working directory; the prompt names the globs.
    InPrompt,
    /// The files matching the globs are listed on the command line (`{editable_files}`).
    OnCommandLine,
}

/// One coding-agent CLI's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Adapter {
    pub kind: AdapterKind,
    /// What the CLI is called, for messages.
    pub product: &'static str,
    /// The executable looked up on `PATH`.
    pub binary: &'static str,
    /// The command line, run by `/bin/sh` in the checkout with the prompt on stdin;
    /// `{args}` takes extra arguments, `{editable_files}` the editable files.
    pub command: &'static str,
    pub default_timeout: Duration,
    pub editable: EditablePassing,
    /// Reads the CLI's stdout.
    pub parse: OutputParser,
}

impl AdapterKind {
    pub const ALL: &'static [AdapterKind] =
        &[AdapterKind::Claude, AdapterKind::Codex, AdapterKind::Aider];

    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Claude => "claude",
            AdapterKind::Codex => "codex",
            AdapterKind::Aider => "aider",
        }
    }

    /// This CLI's configuration.
    pub fn adapter(self) -> Adapter {
        match self {
            AdapterKind::Claude => Adapter {
                kind: self,
                product: "Claude Code",
                binary: "claude",
                // Print mode, one JSON result; edits auto-accepted inside the working directory
                // only; tools limited to reading, editing, python3 and the memory's MCP server.
                command: "claude -p --output-format json --permission-mode acceptEdits \
                          --allowedTools 'Read,Edit,Write,Glob,Grep,Bash(python3:*),mcp__picidae'\
                          {args} ${PICIDAE_MCP_CONFIG:+--mcp-config \"$PICIDAE_MCP_CONFIG\"}",
                default_timeout: Duration::from_secs(1800),
                editable: EditablePassing::InPrompt,
                parse: parse_claude,
            },
            AdapterKind::Codex => Adapter {
                kind: self,
                product: "Codex",
                binary: "codex",
                // Non-interactive, JSONL events on stdout, sandboxed writes to the working
                // directory; `-` reads the prompt from stdin.
                command: "codex exec --json --full-auto --skip-git-repo-check{args} -",
                default_timeout: Duration::from_secs(1800),
                editable: EditablePassing::InPrompt,
                parse: parse_codex,
            },
            AdapterKind::Aider => Adapter {
                kind: self,
                product: "Aider",
                binary: "aider",
                // One message, then exit; no git, no commits, plain output; its history files go
                // to the scratch directory, not into the checkout (where they would be changes).
                command: "aider --message-file \"$PICIDAE_PROMPT_FILE\" --yes-always --no-git \
                          --no-auto-commits --no-gitignore --no-pretty --no-stream \
                          --no-check-update --no-show-release-notes --no-analytics \
                          --no-suggest-shell-commands --no-detect-urls --no-fancy-input \
                          --map-tokens 0 --no-restore-chat-history \
                          --input-history-file \"$PICIDAE_SCRATCH/aider.input.history\" \
                          --chat-history-file \"$PICIDAE_SCRATCH/aider.chat.history.md\"\
                          {args} -- {editable_files}",
                default_timeout: Duration::from_secs(900),
                editable: EditablePassing::OnCommandLine,
                parse: parse_aider,
            },
        }
    }
}

impl std::fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AdapterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AdapterKind::ALL
            .iter()
            .copied()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown agent {s:?} (expected claude, codex or aider)"))
    }
}

impl Adapter {
    /// The command line with `extra_args` (shell-quoted) in place of `{args}`;
    /// `{editable_files}` is left for the command agent to fill in each turn.
    pub fn command_line(&self, extra_args: &[String]) -> String {
        let extra: String = extra_args
            .iter()
            .map(|a| format!(" {}", shell_quote(a)))
            .collect();
        debug_assert!(
            self.editable == EditablePassing::InPrompt || self.command.contains(EDITABLE_FILES)
        );
        self.command.replace(EXTRA_ARGS, &extra)
    }

    /// The command agent for this CLI (`timeout` defaults to the adapter's).
    pub fn agent(&self, timeout: Option<Duration>, extra_args: &[String]) -> CommandAgent {
        CommandAgent::new(
            self.command_line(extra_args),
            timeout.unwrap_or(self.default_timeout),
        )
        .with_name(self.kind.as_str())
        .with_parser(self.parse)
        .requiring(self.binary, self.product)
    }
}

/// A finite, non-negative number.
fn amount(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite() && *x >= 0.0)
}

/// The last JSON object in `stdout` that satisfies `want`: the whole output, or one line of it.
fn last_object(stdout: &str, want: impl Fn(&Value) -> bool) -> Option<Value> {
    let whole = serde_json::from_str::<Value>(stdout.trim())
        .ok()
        .filter(|v| v.is_object() && want(v));
    whole.or_else(|| {
        stdout
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v.is_object() && want(v))
    })
}

/// Claude Code's `--output-format json` result (or the last line of `stream-json`):
/// the hypothesis from `result` (its `HYPOTHESIS:` line, else its first line), the cost from
/// `total_cost_usd`, the tokens from `usage` (input, cache writes, cache reads and output).
/// Output that is not such a result is read as plain text.
pub fn parse_claude(stdout: &str) -> AgentOutput {
    let Some(v) = last_object(stdout, |v| {
        v.get("type").and_then(Value::as_str) == Some("result") || v.get("result").is_some()
    }) else {
        return parse_text(stdout);
    };
    let result = v.get("result").and_then(Value::as_str).unwrap_or("");
    let hypothesis = parse_hypothesis(result).or_else(|| {
        v.get("subtype")
            .and_then(Value::as_str)
            .map(|s| format!("(claude ended with {s} and no message)"))
    });
    let usd = v
        .get("total_cost_usd")
        .or_else(|| v.get("cost_usd"))
        .and_then(amount);
    let tokens = v.get("usage").and_then(|u| {
        let counts: Vec<i64> = [
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        ]
        .iter()
        .filter_map(|k| u.get(*k).and_then(Value::as_i64))
        .filter(|n| *n >= 0)
        .collect();
        (!counts.is_empty()).then(|| counts.iter().sum())
    });
    AgentOutput {
        hypothesis,
        cost: AgentCost { usd, tokens },
        done: says_done(result),
    }
}

/// Codex's `exec --json` event stream: the agent's messages from `item.completed` events
/// (the hypothesis is the last `HYPOTHESIS:` line in any of them, else the first line of the
/// last one), tokens summed over `turn.completed` events (input, which includes cached input,
/// plus output). Codex reports no money cost. Output with no events is read as plain text.
pub fn parse_codex(stdout: &str) -> AgentOutput {
    let events: Vec<Value> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("type").and_then(Value::as_str).is_some())
        .collect();
    if events.is_empty() {
        return parse_text(stdout);
    }
    let mut messages: Vec<&str> = Vec::new();
    let mut tokens: Option<i64> = None;
    for e in &events {
        match e.get("type").and_then(Value::as_str) {
            Some("item.completed") => {
                let item = e.get("item").unwrap_or(&Value::Null);
                let kind = item
                    .get("type")
                    .or_else(|| item.get("item_type"))
                    .and_then(Value::as_str);
                if matches!(kind, Some("agent_message" | "assistant_message")) {
                    if let Some(t) = item.get("text").and_then(Value::as_str) {
                        messages.push(t);
                    }
                }
            }
            Some("turn.completed") => {
                let u = e.get("usage").unwrap_or(&Value::Null);
                let n: i64 = ["input_tokens", "output_tokens"]
                    .iter()
                    .filter_map(|k| u.get(*k).and_then(Value::as_i64))
                    .filter(|n| *n >= 0)
                    .sum();
                if u.is_object() {
                    tokens = Some(tokens.unwrap_or(0) + n);
                }
            }
            _ => {}
        }
    }
    let hypothesis = messages
        .iter()
        .rev()
        .find_map(|m| tagged_hypothesis(m))
        .or_else(|| messages.last().and_then(|m| parse_hypothesis(m)));
    AgentOutput {
        hypothesis,
        cost: AgentCost { usd: None, tokens },
        done: messages.last().is_some_and(|m| says_done(m)),
    }
}

/// Aider's plain output: the hypothesis from a `HYPOTHESIS:` line, else the first line of the
/// model's prose (Aider's own banner, report lines and edit blocks skipped), else the files it
/// edited; tokens summed over its `Tokens:` lines (sent, cache hits, received); the cost from
/// the last `Cost: ... $X session` (else the sum of the per-message costs).
pub fn parse_aider(stdout: &str) -> AgentOutput {
    let mut tokens: Option<i64> = None;
    let mut session: Option<f64> = None;
    let mut messages: Option<f64> = None;
    for line in stdout.lines() {
        if let Some(rest) = line.split_once("Tokens:").map(|(_, r)| r) {
            let rest = rest.split("Cost:").next().unwrap_or("");
            let mut n = 0.0;
            let mut any = false;
            for part in rest.split([',', ';']) {
                let mut words = part.split_whitespace();
                let Some(count) = words.next().and_then(token_count) else {
                    continue;
                };
                let what: Vec<&str> = words.collect();
                let what = what.join(" ");
                let what = what.trim_end_matches('.');
                if what.starts_with("sent")
                    || what.starts_with("received")
                    || what.starts_with("cache hit")
                    || what.starts_with("cache read")
                {
                    n += count;
                    any = true;
                }
            }
            if any {
                tokens = Some(tokens.unwrap_or(0) + n.round() as i64);
            }
        }
        if let Some(rest) = line.split_once("Cost:").map(|(_, r)| r) {
            for part in rest.split(',') {
                let part = part.trim();
                let Some(num) = part.strip_prefix('$') else {
                    continue;
                };
                let mut words = num.split_whitespace();
                let Some(v) = words.next().and_then(|v| v.parse::<f64>().ok()) else {
                    continue;
                };
                if !v.is_finite() || v < 0.0 {
                    continue;
                }
                match words.next().map(|w| w.trim_end_matches('.')) {
                    Some("session") => session = Some(v),
                    Some("message") => messages = Some(messages.unwrap_or(0.0) + v),
                    _ => {}
                }
            }
        }
    }
    AgentOutput {
        hypothesis: tagged_hypothesis(stdout).or_else(|| aider_prose(stdout)),
        done: says_done(stdout),
        cost: AgentCost {
            usd: session.or(messages),
            tokens,
        },
    }
}

/// `4.1k` → 4100, `1.2M` → 1 200 000, `287` → 287.
fn token_count(s: &str) -> Option<f64> {
    let s = s.trim_end_matches(['.', ',']);
    let (num, scale) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1e3),
        'm' | 'M' => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    num.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v * scale)
}

/// The first line of the model's own words in Aider's output, or which files it edited.
fn aider_prose(stdout: &str) -> Option<String> {
    const CHROME: &[&str] = &[
        "Aider v",
        "Main model:",
        "Weak model:",
        "Editor model:",
        "Model:",
        "Git repo:",
        "Repo-map:",
        "Tokens:",
        "Cost:",
        "Applied edit to",
        "Use /help",
        "https://aider.chat",
        "Warning",
        "Detected dumb terminal",
        "Can't initialize prompt toolkit",
        "<<<<<<< SEARCH",
        "=======",
        ">>>>>>> REPLACE",
        "─",
    ];
    let mut in_fence = false;
    let mut edited = Vec::new();
    let mut prose = None;
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(f) = l.strip_prefix("Applied edit to") {
            edited.push(f.trim().to_string());
        }
        if l.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        // A file name on the line before an edit block's fence is part of the block.
        let names_a_block = lines.get(i + 1).is_some_and(|n| n.starts_with("```"));
        let added = l.starts_with("Added ") && l.ends_with("to the chat.");
        if prose.is_none()
            && !in_fence
            && !l.is_empty()
            && !names_a_block
            && !added
            && !CHROME.iter().any(|c| l.starts_with(c))
        {
            prose = Some(l.chars().take(200).collect::<String>());
        }
    }
    prose.or_else(|| (!edited.is_empty()).then(|| format!("edited {}", edited.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAUDE_JSON: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":48213,"duration_api_ms":45102,"num_turns":7,"result":"I read train.py and lowered the learning rate in the warm-up phase, since the loss curve in the last attempts spikes early.\n\nHYPOTHESIS: a 3x lower warm-up learning rate avoids the early loss spike and lowers val_bpb","session_id":"3f0c2a9e-5d7b-4c1e-9a61-0b8f2e4d7c11","total_cost_usd":0.18342,"usage":{"input_tokens":42,"cache_creation_input_tokens":10234,"cache_read_input_tokens":58211,"output_tokens":1893,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"},"permission_denials":[],"uuid":"b1d2c3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e"}"#;

    #[test]
    fn claude_result_gives_hypothesis_cost_and_tokens() {
        let out = parse_claude(CLAUDE_JSON);
        assert_eq!(
            out.hypothesis.as_deref(),
            Some("a 3x lower warm-up learning rate avoids the early loss spike and lowers val_bpb")
        );
        assert_eq!(out.cost.usd, Some(0.18342));
        assert_eq!(out.cost.tokens, Some(42 + 10234 + 58211 + 1893));
    }

    #[test]
    fn claude_without_tag_uses_the_first_line_of_result() {
        let out = parse_claude(
            r#"{"type":"result","subtype":"success","is_error":false,"result":"Switched the optimizer to AdamW.\nDone.","total_cost_usd":0.02,"usage":{"input_tokens":10,"output_tokens":5}}"#,
        );
        assert_eq!(
            out.hypothesis.as_deref(),
            Some("Switched the optimizer to AdamW.")
        );
        assert_eq!((out.cost.usd, out.cost.tokens), (Some(0.02), Some(15)));
    }

    #[test]
    fn claude_stream_json_and_errors() {
        // stream-json: the last line is the result; a warning line before it is ignored.
        let stream = concat!(
            r#"{"type":"system","subtype":"init","session_id":"s","tools":["Read","Edit"]}"#,
            "\n",
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"working"}]}}"#,
            "\n",
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":30,"total_cost_usd":1.25,"usage":{"input_tokens":100,"output_tokens":50}}"#,
            "\n"
        );
        let out = parse_claude(stream);
        assert_eq!(
            out.hypothesis.as_deref(),
            Some("(claude ended with error_max_turns and no message)")
        );
        assert_eq!((out.cost.usd, out.cost.tokens), (Some(1.25), Some(150)));
    }

    #[test]
    fn each_adapter_reads_done_from_the_model_reply() {
        let claude = r#"{"type":"result","subtype":"success","result":"Every idea is tried.\nPICIDAE: DONE","usage":{}}"#;
        assert!(parse_claude(claude).done);
        assert!(!parse_claude(r#"{"type":"result","result":"HYPOTHESIS: x"}"#).done);
        let codex = r#"{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"Nothing left.\n\n**PICIDAE: DONE**"}}"#;
        assert!(parse_codex(codex).done);
        assert!(!parse_codex(CODEX_JSONL).done);
        assert!(parse_aider("Nothing left to try.\nPICIDAE: DONE\n").done);
    }

    #[test]
    fn claude_unparsable_output_falls_back_to_text() {
        let out = parse_claude("Error: Invalid API key · Please run /login\n");
        assert_eq!(
            out.hypothesis.as_deref(),
            Some("Error: Invalid API key · Please run /login")
        );
        assert_eq!(out.cost, AgentCost::default());
        let out = parse_claude("{\"type\":\"result\", truncated");
        assert_eq!(
            out.hypothesis.as_deref(),
            Some("{\"type\":\"result\", truncated")
        );
        assert_eq!(parse_claude("").hypothesis, None);
    }

    const CODEX_JSONL: &str = r#"{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Reading the training script**"}}
{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"bash -lc 'sed -n 1,80p train.py'","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc 'sed -n 1,80p train.py'","aggregated_output":"import torch\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"train.py","kind":"update"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"Raised the batch size from 32 to 64 and scaled the learning rate with it.\n\nHYPOTHESIS: a larger batch with a scaled learning rate lowers val_bpb within the same budget"}}
{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":1220}}
"#;

    #[test]
    fn codex_events_give_message_and_tokens() {
        let out = parse_codex(CODEX_JSONL);
        assert_eq!(
            out.hypothesis.as_deref(),
            Some(
                "a larger batch with a scaled learning rate lowers val_bpb within the same budget"
            )
        );
        assert_eq!(out.cost.usd, None);
        assert_eq!(out.cost.tokens, Some(24763 + 1220));
    }

    #[test]
    fn codex_without_tag_uses_the_last_message() {
        let out = parse_codex(concat!(
            r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"Looking at the code."}}"#,
            "\n",
            r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Removed dropout from the last layer."}}"#,
            "\n",
            r#"{"type":"turn.failed","error":{"message":"stream disconnected"}}"#,
            "\n",
        ));
        assert_eq!(
            out.hypothesis.as_deref(),
            Some("Removed dropout from the last layer.")
        );
        assert_eq!(out.cost.tokens, None);
    }

    #[test]
    fn codex_plain_text_falls_back() {
        let out = parse_codex("I changed value.txt\nHYPOTHESIS: smaller value\n");
        assert_eq!(out.hypothesis.as_deref(), Some("smaller value"));
        let out = parse_codex("not json at all");
        assert_eq!(out.hypothesis.as_deref(), Some("not json at all"));
        assert_eq!(out.cost, AgentCost::default());
    }

    const AIDER_OUT: &str = "\
Aider v0.86.1
Main model: anthropic/claude-sonnet-4-20250514 with diff edit format, infinite output
Weak model: anthropic/claude-3-5-haiku-20241022
Git repo: none
Repo-map: disabled
Added train.py to the chat.

I'll lower the learning rate of the warm-up phase.

train.py
```
<<<<<<< SEARCH
LR = 3e-3
=======
LR = 1e-3
>>>>>>> REPLACE
```

HYPOTHESIS: a lower warm-up learning rate stabilises early training

Tokens: 4.1k sent, 1.2k cache write, 8.2k cache hit, 287 received. Cost: $0.02 message, $0.02 session.
Applied edit to train.py
";

    #[test]
    fn aider_report_gives_tokens_and_cost() {
        let out = parse_aider(AIDER_OUT);
        assert_eq!(
            out.hypothesis.as_deref(),
            Some("a lower warm-up learning rate stabilises early training")
        );
        assert_eq!(out.cost.tokens, Some(4100 + 8200 + 287));
        assert_eq!(out.cost.usd, Some(0.02));
    }

    #[test]
    fn aider_without_tag_uses_prose_then_edits() {
        let two_turns = "\
Aider v0.86.1
Main model: gpt-4o with diff edit format
Added model.py to the chat.
Switching the activation to GELU.
Tokens: 2.5k sent, 156 received.
Cost: $0.0075 message, $0.0075 session.
Applied edit to model.py
Fixing the lint error.
Tokens: 12k sent, 1.1M received.
Cost: $0.01 message, $0.0175 session.
";
        let out = parse_aider(two_turns);
        assert_eq!(
            out.hypothesis.as_deref(),
            Some("Switching the activation to GELU.")
        );
        assert_eq!(out.cost.tokens, Some(2500 + 156 + 12_000 + 1_100_000));
        assert_eq!(out.cost.usd, Some(0.0175));

        let only_blocks = "Aider v0.86.1\nvalue.txt\n```\n<<<<<<< SEARCH\n10\n=======\n5\n>>>>>>> REPLACE\n```\nApplied edit to value.txt\n";
        let out = parse_aider(only_blocks);
        assert_eq!(out.hypothesis.as_deref(), Some("edited value.txt"));
        assert_eq!(out.cost, AgentCost::default());
        assert_eq!(parse_aider("").hypothesis, None);
    }

    #[test]
    fn adapters_build_command_agents() {
        let claude = AdapterKind::Claude.adapter();
        let line = claude.command_line(&["--model".into(), "claude opus".into()]);
        assert!(line.starts_with("claude -p --output-format json"), "{line}");
        assert!(line.contains("--permission-mode acceptEdits"), "{line}");
        assert!(line.contains(" --model 'claude opus' "), "{line}");
        assert!(!line.contains(EXTRA_ARGS), "{line}");
        let aider = AdapterKind::Aider.adapter();
        let line = aider.command_line(&[]);
        assert!(
            line.contains("--message-file \"$PICIDAE_PROMPT_FILE\""),
            "{line}"
        );
        assert!(line.ends_with("-- {editable_files}"), "{line}");
        assert_eq!(aider.editable, EditablePassing::OnCommandLine);
        let codex = AdapterKind::Codex.adapter().agent(None, &[]);
        assert_eq!(codex.timeout(), Duration::from_secs(1800));
        assert!(codex.command().ends_with(" -"), "{}", codex.command());
        assert_eq!(
            codex.requirement().map(|r| r.binary.as_str()),
            Some("codex")
        );
        for k in AdapterKind::ALL {
            assert_eq!(k.as_str().parse::<AdapterKind>(), Ok(*k));
            assert_eq!(k.adapter().binary, k.as_str());
        }
        assert!("gemini".parse::<AdapterKind>().is_err());
    }

    #[test]
    fn spec_is_stored_as_json() {
        let spec: crate::AgentSpec =
            serde_json::from_str(r#"{"kind":"adapter","adapter":"claude"}"#).unwrap();
        assert_eq!(
            spec,
            crate::AgentSpec::Adapter {
                adapter: AdapterKind::Claude,
                timeout_secs: None,
                args: vec![],
            }
        );
        assert_eq!(spec.label(), "claude");
        let agent = spec.build();
        assert_eq!(agent.name(), "claude");
        let with = crate::AgentSpec::Adapter {
            adapter: AdapterKind::Aider,
            timeout_secs: Some(60.0),
            args: vec!["--model".into(), "gpt-4o".into()],
        };
        let json = serde_json::to_string(&with).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"adapter","adapter":"aider","timeout_secs":60.0,"args":["--model","gpt-4o"]}"#
        );
        assert_eq!(
            serde_json::from_str::<crate::AgentSpec>(&json).unwrap(),
            with
        );
    }
}
