//! A hub (`picidae serve` opened to contributors) for the contributor tests: a benchmark whose
//! score is value.txt's first line, patches of it, submissions over loopback HTTP, verdicts,
//! and `picidae contribute` with a scripted agent.

use std::process::{Child, Stdio};
use std::time::Duration;

use picidae_store::ContributionState;

use super::{bin, http, serve_address, text, value_contract, wait_until, Env};

/// value.txt: the score on its first line, then five filler lines and a free last line.
pub fn value_lines(score: &str, last: &str) -> Vec<String> {
    let mut lines = vec![score.to_string()];
    lines.extend((0..5).map(|k| format!("filler {k}")));
    lines.push(last.to_string());
    lines
}

/// The patch that turns value.txt's lines `before` into `after` (as many lines), every line
/// given as context or change.
pub fn lines_patch(before: &[String], after: &[String]) -> String {
    let n = before.len();
    let mut p = format!(
        "diff --git a/value.txt b/value.txt\n--- a/value.txt\n+++ b/value.txt\n@@ -1,{n} +1,{n} @@\n"
    );
    for (b, a) in before.iter().zip(after) {
        if b == a {
            p.push_str(&format!(" {b}\n"));
        } else {
            p.push_str(&format!("-{b}\n+{a}\n"));
        }
    }
    p
}

/// The patch that changes the score from `from` to `to` (the last line left as `last`).
pub fn value_patch(from: &str, to: &str) -> String {
    lines_patch(&value_lines(from, "free"), &value_lines(to, "free"))
}

pub fn submit(
    addr: &str,
    token: &str,
    parent: &str,
    patch: &str,
    hypothesis: &str,
    claimed: f64,
) -> (u16, serde_json::Value) {
    let body = serde_json::json!({
        "parent_commit": parent,
        "patch": patch,
        "hypothesis": hypothesis,
        "claimed_value": claimed,
        "seeds": [0, 1, 2],
        "log": "score: as claimed",
    });
    let (status, answer) = http(
        addr,
        "POST",
        "/api/programs/p/contributions",
        Some(token),
        Some(&body.to_string()),
    );
    let v = serde_json::from_str(&answer).unwrap_or_else(|_| panic!("{status}: {answer}"));
    (status, v)
}

/// Submit, which must be accepted (202); the contribution's id.
pub fn queued(
    addr: &str,
    token: &str,
    parent: &str,
    patch: &str,
    hypothesis: &str,
    claimed: f64,
) -> i64 {
    let (status, answer) = submit(addr, token, parent, patch, hypothesis, claimed);
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_i64().unwrap()
}

/// A GET with `token` that must answer 200: its JSON.
pub fn get_json(addr: &str, path: &str, token: &str) -> serde_json::Value {
    let (status, answer) = http(addr, "GET", path, Some(token), None);
    assert_eq!(status, 200, "{path}: {answer}");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{path}: {e}: {answer}"))
}

pub fn token(env: &Env, name: &str) -> String {
    let out = env.ok(&["token", "create", name, "--contributor"]);
    out.lines().nth(1).expect("the secret").trim().to_string()
}

pub fn state_of(env: &Env, id: i64) -> ContributionState {
    env.store().contribution(id).unwrap().state
}

pub fn wait_decided(env: &Env, id: i64) -> ContributionState {
    let c = wait_contribution(env, id);
    eprintln!("contribution {id}: {:?} {:?}", c.state, c.reason);
    c.state
}

pub fn wait_contribution(env: &Env, id: i64) -> picidae_store::Contribution {
    wait_until(
        Duration::from_secs(60),
        || {
            !matches!(
                state_of(env, id),
                ContributionState::Queued | ContributionState::Verifying
            )
        },
        "a contribution's verdict",
    );
    env.store().contribution(id).unwrap()
}

pub fn spawn_hub(env: &Env) -> (Child, String) {
    spawn_hub_with(env, &[])
}

/// The hub, with `extra` options for `picidae serve`.
pub fn spawn_hub_with(env: &Env, extra: &[&str]) -> (Child, String) {
    let mut serve = bin()
        .arg("--project")
        .arg(&env.project)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--slots",
            "2",
            "--private-reads",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = serve_address(&mut serve);
    (serve, addr)
}

/// A benchmark whose score is value.txt's first line (100 at first; `contract_extra` added
/// to the contract, `run` its run.sh), with a program `p` whose own agent changes nothing,
/// opened to contributors with `open` options.
pub fn score_env(contract_extra: &str, run: &str, open: &[&str]) -> Env {
    let start = value_lines("100", "free").join("\n") + "\n";
    let env = Env::new(&[
        (
            "picidae.toml",
            &(value_contract("sh run.sh", 10.0) + contract_extra),
        ),
        ("run.sh", run),
        ("value.txt", &start),
    ]);
    env.command_program("p", &env.bench.clone(), "sleep 0.2");
    env.ok(&[&["program", "open", "p"], open].concat());
    env
}

pub const SCORE_RUN: &str = "echo \"score: $(head -n 1 value.txt)\"\n";

/// A contributor's agent that lowers the score by 10 a turn; its command line.
pub fn lowering_agent(env: &Env) -> String {
    let lower = env.path("lower.sh");
    std::fs::write(
        &lower,
        "v=$(head -n 1 value.txt); v=$((v - 10))\n\
         { echo \"$v\"; tail -n +2 value.txt; } > value.next && mv value.next value.txt\n\
         echo \"HYPOTHESIS: lower the score to $v\"\n",
    )
    .unwrap();
    format!("sh {}", lower.display())
}

/// `picidae contribute p` against the hub at `addr` with a command agent: its output, which
/// must say it succeeded.
pub fn contribute(addr: &str, token: &str, dir: &std::path::Path, agent: &str, n: &str) -> String {
    let out = bin()
        .args(["contribute", "p", "--hub", &format!("http://{addr}")])
        .args(["--token", token, "--dir", dir.to_str().unwrap()])
        .args(["--agent", "command", "--agent-command", agent, "-n", n])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

/// Wait until the hub has measured the baseline of 100.
pub fn wait_baseline(env: &Env) {
    wait_until(
        Duration::from_secs(60),
        || env.store().program("p").unwrap().frontier_value == Some(100.0),
        "the baseline",
    );
}
