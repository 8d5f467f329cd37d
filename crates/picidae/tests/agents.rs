//! The coding-agent adapters (claude, codex, aider) end to end through the real binary, with
//! scripted stand-ins for the CLIs first on PATH: they read the prompt the way the real CLI
//! does, check it, edit the benchmark and print output in the real CLI's format. No LLM is
//! called.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{bin, pid_alive, read_pids, text, value_contract, Env, VALUE_RUN};
use picidae_core::AttemptStatus;
use picidae_store::{Attempt, AttemptFilter};

const PROGRAM_MD: &str = "Make the score smaller. Marker: PROGRAM-MD-7731.\n";

/// Checks every stand-in makes on the prompt it was given (in `$prompt`).
const CHECK_PROMPT: &str = r#"
case "$prompt" in *PROGRAM-MD-7731*) ;; *) echo "program.md is not in the prompt" >&2; exit 3 ;; esac
case "$prompt" in *"You may change only files matching: value.txt"*) ;; *) echo "the boundary is not in the prompt" >&2; exit 3 ;; esac
case "$prompt" in *"HYPOTHESIS:"*) ;; *) echo "the answer format is not in the prompt" >&2; exit 3 ;; esac
"#;

struct Agents {
    env: Env,
    /// Where the stand-ins live (first on PATH).
    dir: PathBuf,
}

impl Agents {
    fn new() -> Agents {
        let env = Env::new(&[
            ("picidae.toml", &value_contract("sh run.sh", 10.0)),
            ("run.sh", VALUE_RUN),
            ("value.txt", "10\n"),
            ("program.md", PROGRAM_MD),
        ]);
        let dir = env.path("standins");
        std::fs::create_dir_all(&dir).unwrap();
        Agents { env, dir }
    }

    /// Install a stand-in named `name` with this shell body.
    fn standin(&self, name: &str, body: &str) {
        let path = self.dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// PATH with the stand-ins first.
    fn path_with_standins(&self) -> String {
        format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn picidae_with_path(&self, path: &str, args: &[&str]) -> Output {
        bin()
            .env("PATH", path)
            .arg("--project")
            .arg(&self.env.project)
            .args(args)
            .output()
            .unwrap()
    }

    /// `picidae args...` with the stand-ins on PATH; must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.picidae_with_path(&self.path_with_standins(), args);
        assert!(
            out.status.success(),
            "picidae {args:?} failed:\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn create(&self, agent: &str, extra: &[&str]) {
        let bench = self.env.bench.to_str().unwrap().to_string();
        let mut args = vec![
            "program",
            "create",
            "p",
            "--benchmark",
            &bench,
            "--agent",
            agent,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// Create the program with `agent`, run one attempt, and return it: the run's output must
    /// say how it went (`1 kept`, `1 rejected`, …), and the attempt must end in `status` with
    /// the agent's `hypothesis`.
    fn one_attempt(
        &self,
        agent: &str,
        said: &str,
        status: AttemptStatus,
        hypothesis: &str,
    ) -> picidae_store::Attempt {
        self.create(agent, &[]);
        let out = self.ok(&["run", "p", "-n", "1", "--plain"]);
        assert!(out.contains(said), "{out}");
        let last = self.attempts().pop().unwrap();
        assert_eq!(last.status, status, "{out}");
        assert_eq!(last.hypothesis, hypothesis);
        last
    }

    fn attempts(&self) -> Vec<Attempt> {
        let store = self.env.store();
        let p = store.program("p").unwrap();
        store
            .attempts(&AttemptFilter {
                program_id: Some(p.id),
                ..Default::default()
            })
            .unwrap()
    }

    fn attempt_dir(&self, seq: i64) -> PathBuf {
        self.env.project.join(format!(".picidae/attempts/p/{seq}"))
    }

    fn read(&self, path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

#[test]
fn claude_edit_is_committed_run_and_its_cost_recorded() {
    let a = Agents::new();
    let args_log = a.env.path("claude.args");
    a.standin(
        "claude",
        &format!(
            r#"set -e
printf '%s\n' "$@" > '{log}'
prompt=$(cat)   # claude -p reads the prompt from stdin
{CHECK_PROMPT}
echo 5 > value.txt
cat <<'JSON'
{{"type":"result","subtype":"success","is_error":false,"duration_ms":8123,"duration_api_ms":7410,"num_turns":4,"result":"I read run.sh and value.txt; the score is the value itself.\n\nHYPOTHESIS: halving the value halves the score","session_id":"5b1e0f3c-2a47-4d8e-9c3b-7e6f1a2d9b40","total_cost_usd":0.0421,"usage":{{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":300,"output_tokens":250,"service_tier":"standard"}},"permission_denials":[]}}
JSON
"#,
            log = args_log.display()
        ),
    );
    a.create("claude", &[]);
    let out = a.ok(&["run", "p", "-n", "1", "--plain"]);
    assert!(out.contains("1 kept"), "{out}");

    let attempts = a.attempts();
    let last = attempts.last().unwrap();
    assert_eq!(last.seq, 2);
    assert_eq!(last.status, AttemptStatus::Kept);
    assert_eq!(last.primary_value, Some(5.0));
    assert_eq!(last.hypothesis, "halving the value halves the score");
    assert_eq!(last.proposer, "claude");
    let store = a.env.store();
    let spend = store.program_spend(store.program("p").unwrap().id).unwrap();
    assert!((spend.agent_usd - 0.0421).abs() < 1e-9, "{spend:?}");
    assert_eq!(spend.agent_tokens, 1200 + 300 + 250);

    // The real CLI's flags: print mode, JSON, edits accepted in the checkout only, the memory's
    // MCP server configured from the file Picidae wrote.
    let args = a.read(&args_log);
    let args: Vec<&str> = args.lines().collect();
    for flag in [
        "-p",
        "--output-format",
        "json",
        "--permission-mode",
        "acceptEdits",
    ] {
        assert!(args.contains(&flag), "{flag} missing: {args:?}");
    }
    let i = args.iter().position(|a| *a == "--mcp-config").unwrap();
    let mcp = a.read(Path::new(args[i + 1]));
    assert!(mcp.contains("\"mcp\""), "{mcp}");
    assert!(mcp.contains("--project"), "{mcp}");
    // The transcript is kept beside the prompt.
    let transcript = a.read(&a.attempt_dir(2).join("transcript.txt"));
    assert!(transcript.contains("total_cost_usd"), "{transcript}");
}

#[test]
fn codex_reads_stdin_and_its_events_are_parsed() {
    let a = Agents::new();
    a.standin(
        "codex",
        &format!(
            r#"set -e
[ "$1" = exec ] || {{ echo "expected codex exec, got $*" >&2; exit 2; }}
for last in "$@"; do :; done
[ "$last" = - ] || {{ echo "expected the prompt on stdin (-), got $last" >&2; exit 2; }}
prompt=$(cat)
{CHECK_PROMPT}
echo 4 > value.txt
cat <<'JSONL'
{{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}}
{{"type":"turn.started"}}
{{"type":"item.completed","item":{{"id":"item_0","type":"reasoning","text":"**Reading value.txt**"}}}}
{{"type":"item.completed","item":{{"id":"item_1","type":"command_execution","command":"bash -lc 'cat value.txt'","aggregated_output":"10\n","exit_code":0,"status":"completed"}}}}
{{"type":"item.completed","item":{{"id":"item_2","type":"file_change","changes":[{{"path":"value.txt","kind":"update"}}],"status":"completed"}}}}
{{"type":"item.completed","item":{{"id":"item_3","type":"agent_message","text":"Set the value to 4.\n\nHYPOTHESIS: four is smaller than ten"}}}}
{{"type":"turn.completed","usage":{{"input_tokens":9000,"cached_input_tokens":8000,"output_tokens":700}}}}
JSONL
"#
        ),
    );
    let last = a.one_attempt(
        "codex",
        "1 kept",
        AttemptStatus::Kept,
        "four is smaller than ten",
    );
    assert_eq!(last.primary_value, Some(4.0));
    let store = a.env.store();
    let spend = store.program_spend(store.program("p").unwrap().id).unwrap();
    assert_eq!(spend.agent_tokens, 9700, "{spend:?}");
    assert_eq!(
        spend.agent_usd, 0.0,
        "codex reports no money cost: {spend:?}"
    );
}

#[test]
fn aider_gets_the_message_file_and_the_editable_files() {
    let a = Agents::new();
    a.standin(
        "aider",
        &format!(
            r#"set -e
msg=''; files=''; after=0; prev=''
for arg in "$@"; do
  if [ "$after" = 1 ]; then files="$files $arg"; continue; fi
  case "$prev" in
    --message-file) msg="$arg" ;;
    --input-history-file|--chat-history-file) echo history > "$arg" ;;
  esac
  [ "$arg" = -- ] && after=1
  prev="$arg"
done
[ "$files" = " value.txt" ] || {{ echo "editable files: '$files'" >&2; exit 2; }}
prompt=$(cat "$msg")
{CHECK_PROMPT}
echo 3 > value.txt
cat <<'OUT'
Aider v0.86.1
Main model: anthropic/claude-sonnet-4-20250514 with diff edit format
Git repo: none
Repo-map: disabled
Added value.txt to the chat.

The score is the value, so I will lower it.

value.txt
```
<<<<<<< SEARCH
10
=======
3
>>>>>>> REPLACE
```

HYPOTHESIS: three is smaller than ten

Tokens: 2.5k sent, 1.2k cache hit, 156 received. Cost: $0.0075 message, $0.0075 session.
Applied edit to value.txt
OUT
"#
        ),
    );
    a.one_attempt(
        "aider",
        "1 kept",
        AttemptStatus::Kept,
        "three is smaller than ten",
    );
    // Aider's history files went to the scratch directory, not into the checkout (where they
    // would have been changes outside the boundary).
    assert!(a
        .attempt_dir(2)
        .join("scratch/aider.chat.history.md")
        .is_file());
    let store = a.env.store();
    let spend = store.program_spend(store.program("p").unwrap().id).unwrap();
    assert!((spend.agent_usd - 0.0075).abs() < 1e-9, "{spend:?}");
    assert_eq!(spend.agent_tokens, 2500 + 1200 + 156);
}

#[test]
fn a_hanging_agent_is_killed_at_its_timeout_and_its_transcript_kept() {
    let a = Agents::new();
    let pids = a.env.path("pids");
    a.standin(
        "claude",
        &format!(
            "cat > /dev/null\necho 'reading the benchmark'\necho $$ >> '{p}'\nsleep 300 &\necho $! >> '{p}'\nwait\n",
            p = pids.display()
        ),
    );
    a.create("claude", &["--agent-timeout", "1"]);
    let started = std::time::Instant::now();
    let out = a.ok(&["run", "p", "-n", "1", "--plain"]);
    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );
    assert!(out.contains("1 failed"), "{out}");
    let last = a.attempts().pop().unwrap();
    assert_eq!(last.status, AttemptStatus::Failed);
    let note = last.note.clone().unwrap_or_default();
    assert!(note.contains("timed out"), "{note}");
    let transcript = a.read(&a.attempt_dir(2).join("transcript.txt"));
    assert!(transcript.contains("reading the benchmark"), "{transcript}");
    // The stand-in and its child were killed with their process group.
    let pids = read_pids(&pids);
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} survived the timeout");
    }
}

#[test]
fn unparsable_output_falls_back_to_its_first_line() {
    let a = Agents::new();
    a.standin(
        "claude",
        "cat > /dev/null\necho 6 > value.txt\necho 'Changed the value to 6 (no JSON today)'\necho '{\"type\":\"result\", cut off'\n",
    );
    a.standin("codex", "cat > /dev/null\necho 7 > value.txt\n");
    a.create("claude", &[]);
    a.ok(&["run", "p", "-n", "1", "--plain"]);
    let last = a.attempts().pop().unwrap();
    assert_eq!(last.status, AttemptStatus::Kept);
    assert_eq!(last.hypothesis, "Changed the value to 6 (no JSON today)");
    let store = a.env.store();
    let spend = store.program_spend(store.program("p").unwrap().id).unwrap();
    assert_eq!((spend.agent_usd, spend.agent_tokens), (0.0, 0));

    // An agent that says nothing at all still gets its edit run, under a placeholder.
    let bench = a.env.bench.to_str().unwrap().to_string();
    a.ok(&[
        "program",
        "create",
        "q",
        "--benchmark",
        &bench,
        "--agent",
        "codex",
    ]);
    a.ok(&["run", "q", "-n", "1", "--plain"]);
    let store = a.env.store();
    let q = store.program("q").unwrap();
    let last = store
        .attempts(&AttemptFilter {
            program_id: Some(q.id),
            ..Default::default()
        })
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.status, AttemptStatus::Kept);
    assert_eq!(last.hypothesis, "(no hypothesis given)");
}

#[test]
fn an_edit_outside_the_boundary_is_rejected_without_a_run() {
    let a = Agents::new();
    a.standin(
        "codex",
        "cat > /dev/null\necho 1 > value.txt\necho 'score: 0' > run.sh\necho '{\"type\":\"item.completed\",\"item\":{\"id\":\"item_0\",\"type\":\"agent_message\",\"text\":\"HYPOTHESIS: rewrite the scorer\"}}'\n",
    );
    let last = a.one_attempt(
        "codex",
        "1 rejected",
        AttemptStatus::Rejected,
        "rewrite the scorer",
    );
    assert!(
        last.note.as_deref().unwrap_or("").contains("run.sh"),
        "{:?}",
        last.note
    );
    let store = a.env.store();
    assert!(store.runs_of_attempt(last.id).unwrap().is_empty());
}

#[test]
fn a_missing_cli_is_named_with_what_it_needs() {
    let a = Agents::new();
    // PATH without any `claude` (the stand-ins' directory is left out, and so is any real one).
    let path: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|d| !d.join("claude").exists())
        .collect();
    let path = std::env::join_paths(path).unwrap();
    let path = path.to_str().unwrap();
    let bench = a.env.bench.to_str().unwrap().to_string();
    let out = a.picidae_with_path(
        path,
        &[
            "program",
            "create",
            "p",
            "--benchmark",
            &bench,
            "--agent",
            "claude",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`claude` is not on PATH"), "{stderr}");

    let out = a.picidae_with_path(path, &["run", "p", "-n", "1", "--plain"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`claude` was not found on PATH"),
        "{stderr}"
    );
    assert!(stderr.contains("Claude Code"), "{stderr}");
    assert!(stderr.contains("your own API key"), "{stderr}");
    // Nothing was spent on it: no attempt, not even the baseline.
    assert!(a.attempts().is_empty());
}

#[test]
fn agent_prompt_prints_exactly_what_the_next_turn_gets() {
    let a = Agents::new();
    a.standin(
        "claude",
        "cat > /dev/null\nv=$(cat value.txt); echo $((v - 1)) > value.txt\nprintf '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"HYPOTHESIS: value %s\",\"total_cost_usd\":0.01,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}\\n' $((v - 1))\n",
    );
    a.create("claude", &[]);
    a.ok(&["run", "p", "-n", "1", "--plain"]);
    a.ok(&["program", "followup", "p", "try a value of 2"]);

    let prompt = a.ok(&["agent", "prompt", "p"]);
    assert!(prompt.contains("PROGRAM-MD-7731"), "{prompt}");
    assert!(
        prompt.contains("You may change only files matching: value.txt"),
        "{prompt}"
    );
    assert!(prompt.contains("- score = 9"), "{prompt}");
    assert!(
        prompt.contains("#2 [kept] score = 9.000000: value 9"),
        "{prompt}"
    );
    assert!(prompt.contains("try a value of 2"), "{prompt}");
    assert!(prompt.contains("## What memory says"), "{prompt}");
    assert!(prompt.contains("mcp`"), "{prompt}");
    assert!(prompt.trim_end().ends_with("improve score>"), "{prompt}");
    // Nothing was written for it.
    assert!(!a.attempt_dir(3).exists());

    // The next turn gets that very text.
    a.ok(&["run", "p", "-n", "1", "--plain"]);
    let given = a.read(&a.attempt_dir(3).join("prompt.md"));
    assert_eq!(given, prompt);

    // An unknown program is an error.
    let out = a.env.picidae(&["agent", "prompt", "nope"]);
    assert!(!out.status.success(), "{}", text(&out));
}
