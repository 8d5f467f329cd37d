//! `picidae mcp` driven by a real MCP client: the official Python SDK (`pip install mcp`),
//! through `tests/mcp_client.py`, which starts `picidae --project DIR mcp` over stdio,
//! initializes, lists the tools and calls them; these tests check the answers against the store.
//!
//! The Python `mcp` package is required to run them. When `python3 -c "import mcp"` fails:
//! - with `PICIDAE_REQUIRE_MCP=1` in the environment (CI sets it, after
//!   `python3 -m pip install mcp`), the tests FAIL;
//! - otherwise each test prints a loud "skipped: python mcp package not installed" and passes,
//!   so a machine without the package can still run the rest of the suite.

mod common;

use std::process::Command;

use common::{text, value_contract, Env, GOOD_EVALUATOR, VALUE_RUN};
use serde_json::{json, Value};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
const TOOLS: [&str; 4] = ["frontier", "get_attempt", "list_findings", "search_memory"];
/// Nothing an MCP client receives may name the hidden evaluator's numbers.
const HIDDEN: [&str; 3] = ["hidden_effect", "hidden_agrees", "hidden_score"];

/// Whether the Python MCP SDK can be imported; panics when it cannot and
/// `PICIDAE_REQUIRE_MCP=1`.
fn mcp_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("PICIDAE_REQUIRE_MCP").as_deref() == Ok("1") {
        panic!(
            "PICIDAE_REQUIRE_MCP=1 but `python3 -c \"import mcp\"` fails: \
             install it with `python3 -m pip install mcp`"
        );
    }
    eprintln!();
    eprintln!("**************************************************************************");
    eprintln!("*** skipped: python mcp package not installed (python3 -m pip install mcp)");
    eprintln!("*** set PICIDAE_REQUIRE_MCP=1 to make this a failure");
    eprintln!("**************************************************************************");
    false
}

/// Run the client against `env`'s project with `plan` ([tool, args] pairs); returns its JSON
/// document and the raw text it printed.
fn client(env: &Env, plan: &Value) -> (Value, String) {
    let out = Command::new("python3")
        .arg(CLIENT)
        .arg(env!("CARGO_BIN_EXE_picidae"))
        .arg(&env.project)
        .arg(plan.to_string())
        .env_remove("PICIDAE_PROJECT")
        .output()
        .unwrap();
    assert!(out.status.success(), "mcp client failed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("client printed no JSON ({e}):\n{}", text(&out)));
    (doc, stdout)
}

fn assert_no_hidden(raw: &str) {
    for bad in HIDDEN {
        assert!(!raw.contains(bad), "an MCP answer contains {bad:?}:\n{raw}");
    }
}

/// The structured answer of call `i`, which must have succeeded.
fn ok(doc: &Value, i: usize) -> &Value {
    let call = &doc["calls"][i];
    assert_eq!(call["is_error"], false, "call {i} failed: {call}");
    &call["structured"]
}

/// The error text of call `i`, which must have failed.
fn err(doc: &Value, i: usize) -> String {
    let call = &doc["calls"][i];
    assert_eq!(
        call["is_error"], true,
        "call {i} should have failed: {call}"
    );
    call["text"][0].as_str().unwrap().to_string()
}

#[test]
fn an_mcp_client_queries_the_memory() {
    if !mcp_available() {
        return;
    }
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 10.0)),
        ("run.sh", VALUE_RUN),
        ("value.txt", "10\n"),
    ]);
    env.queue_program("p", &["7", "12", "4"], &[]);
    env.ok(&["run", "p", "-n", "3", "--plain"]);

    let store = env.store();
    let p = store.program("p").unwrap();
    let tried = (1..=4)
        .map(|seq| store.attempt_by_seq(p.id, seq).unwrap().unwrap())
        .find(|a| a.hypothesis == "value 12")
        .expect("an attempt with hypothesis `value 12`");

    let plan = json!([
        ["search_memory", {"query": "what about value 12?"}],
        ["search_memory", {"query": "value", "program": "p", "limit": 2}],
        ["get_attempt", {"program": "p", "seq": tried.seq}],
        ["list_findings", {}],
        ["list_findings", {"program": "p", "state": "validated"}],
        ["frontier", {"program": "p"}],
        ["frontier", {"program": "nope"}],
        ["get_attempt", {"program": "p", "seq": 99}],
        ["list_findings", {"state": "won"}],
    ]);
    let (doc, raw) = client(&env, &plan);
    assert_no_hidden(&raw);

    // The handshake and the tool list.
    assert_eq!(doc["server"], "picidae");
    let tools = doc["tools"].as_object().unwrap();
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, TOOLS);
    let search = &tools["search_memory"]["input_schema"];
    assert_eq!(search["required"], json!(["query"]), "{search}");
    assert_eq!(search["properties"]["query"]["type"], "string");
    assert_eq!(
        tools["get_attempt"]["input_schema"]["required"],
        json!(["program", "seq"])
    );
    assert_eq!(tools["frontier"]["annotations"]["readOnlyHint"], true);

    // search_memory: the attempt whose hypothesis shares the words, with its outcome.
    let found = ok(&doc, 0);
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits[0]["seq"], tried.seq, "{found}");
    assert_eq!(hits[0]["hypothesis"], "value 12");
    assert_eq!(hits[0]["status"], tried.status.as_str());
    assert_eq!(hits[0]["value"], 12.0);
    let summary = found["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("#{}", tried.seq)), "{summary}");
    // The summary is also the first text block, for clients that read text only.
    assert_eq!(doc["calls"][0]["text"][0], summary);
    assert!(ok(&doc, 1)["hits"].as_array().unwrap().len() <= 2);

    // get_attempt: runs, visible value, diff.
    let a = ok(&doc, 2);
    assert_eq!(a["hypothesis"], "value 12");
    assert_eq!(a["commit"], tried.commit.as_deref().unwrap());
    let runs = a["runs"].as_array().unwrap();
    assert_eq!(runs.len(), store.runs_of_attempt(tried.id).unwrap().len());
    assert_eq!(runs[0]["primary_value"], 12.0);
    assert_eq!(runs[0]["metrics"]["score"], 12.0);
    assert_eq!(runs[0]["status"], "succeeded");
    let diff = a["diff"].as_str().unwrap();
    assert!(diff.contains("+12"), "{diff}");

    // list_findings: as many as the store holds.
    let all = store.findings(Some(p.id), None).unwrap();
    assert_eq!(ok(&doc, 3)["count"], all.len());
    assert_eq!(ok(&doc, 3)["findings"].as_array().unwrap().len(), all.len());
    assert!(ok(&doc, 4)["findings"].is_array());

    // frontier: the store's numbers.
    let f = ok(&doc, 5);
    assert_eq!(f["frontier_value"].as_f64(), p.frontier_value);
    let frontier_seq = store.attempt(p.frontier_attempt_id.unwrap()).unwrap().seq;
    assert_eq!(f["frontier_seq"], frontier_seq);
    assert_eq!(f["frontier_commit"], p.frontier_commit.as_deref().unwrap());
    let history = store.frontier_history(p.id).unwrap();
    assert_eq!(f["baseline"]["value"].as_f64(), Some(history[0].value));
    assert_eq!(f["baseline"]["seq"], 1);
    for (status, n) in store.attempt_counts(p.id).unwrap() {
        assert_eq!(f["attempts"][status.as_str()], n, "{f}");
    }
    assert_eq!(f["total_attempts"], 4);

    // Failed lookups are tool errors that say what was wrong.
    let e = err(&doc, 6);
    assert!(
        e.contains("no program named \"nope\"") && e.contains("p"),
        "{e}"
    );
    let e = err(&doc, 7);
    assert!(e.contains("no attempt #99"), "{e}");
    let e = err(&doc, 8);
    assert!(e.contains("unknown finding state \"won\""), "{e}");
}

#[test]
fn mcp_answers_never_carry_hidden_evaluator_numbers() {
    if !mcp_available() {
        return;
    }
    // A change that only helps the visible metric: the hidden evaluator disagrees, so the store
    // holds hidden results and a hidden effect for the finding.
    let env = Env::truth(GOOD_EVALUATOR, "seeds = 5\nbaseline_seeds = 5");
    env.queue_program("p", &["7 12 overfit"], &[]);
    env.ok(&["run", "p", "-n", "1", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let findings = store.findings(Some(p.id), None).unwrap();
    assert_eq!(findings.len(), 1);
    assert!(
        findings[0].evidence.hidden_effect.is_some(),
        "{:?}",
        findings[0]
    );

    let plan = json!([
        ["search_memory", {"query": "overfit"}],
        ["get_attempt", {"program": "p", "seq": 1}],
        ["get_attempt", {"program": "p", "seq": 2}],
        ["list_findings", {}],
        ["list_findings", {"program": "p", "state": "refuted"}],
        ["frontier", {"program": "p"}],
    ]);
    let (doc, raw) = client(&env, &plan);
    assert_no_hidden(&raw);
    for i in 0..6 {
        ok(&doc, i);
    }
    // The visible evidence and the flag are there.
    let listed = ok(&doc, 4)["findings"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    let ev = &listed[0]["evidence"];
    assert!(ev["effect"].as_f64().unwrap() > 2.0, "{ev}");
    assert_eq!(ev["n_seeds"], 5);
    assert_eq!(ev["flags"], json!(["suspected-overfit"]));
    // The baseline changed nothing, so it has no diff: the benchmark's first commit (gold
    // cases and all) is not shown as its diff.
    assert_eq!(ok(&doc, 1)["diff"], "");
    let a = ok(&doc, 2);
    assert_eq!(a["finding"]["state"], "refuted");
    assert!(a["diff"].as_str().unwrap().contains("+7 12 overfit"), "{a}");
    assert_eq!(a["runs"].as_array().unwrap().len(), 5);
    assert_eq!(
        ok(&doc, 0)["hits"][0]["finding"]["state"],
        "refuted",
        "{}",
        ok(&doc, 0)
    );
}
