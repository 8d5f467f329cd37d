//! The tools against a store holding everything a real project holds — including hidden
//! evaluator results and hidden evidence — asserting what comes back and what never does.

use picidae_core::{AttemptKind, AttemptStatus, MetricValues, RunStatus};
use picidae_git::{Identity, Repo};
use picidae_store::{Decision, HiddenResult, NewAttempt, NewProgram, RunResult};

use super::*;

/// Numbers that exist only on the hidden side; none may appear in any answer.
const HIDDEN_EFFECT: f64 = -0.7319;
const HIDDEN_SCORE: f64 = 42.4242;
const FORBIDDEN: [&str; 7] = [
    "SECRET",
    "hidden_effect",
    "hidden_agrees",
    "hidden_score",
    "0.7319",
    "42.4242",
    "hidden_results",
];

const CONTRACT: &str = r#"[benchmark]
name = "tiny"

[boundary]
editable = ["train.py"]

[run]
command = "python train.py"
time_budget = 10
timeout = 10

[metrics.score]
goal = "minimize"

[hidden]
command = "sh evaluate.sh"
metrics = ["hidden_score"]
files = ["gold"]
"#;

struct Fixture {
    _tmp: tempfile::TempDir,
    server: MemoryServer,
    commit2: String,
}

fn run(store: &mut Store, attempt: i64, seed: i64, value: f64) -> i64 {
    let r = store.insert_run(attempt, seed, "local").unwrap();
    store
        .finish_run(
            r.id,
            &RunResult {
                status: Some(RunStatus::Succeeded),
                wall_secs: Some(1.5),
                metrics: MetricValues::from([("score".to_string(), value)]),
                primary_value: Some(value),
                ..Default::default()
            },
        )
        .unwrap();
    r.id
}

/// Program `tiny`: #1 baseline (frontier, value 10), #2 "raise the learning rate" (a refuted
/// finding whose hidden evaluator disagreed; hidden results recorded for its runs).
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let bench = tmp.path().join("bench");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(bench.join("picidae.toml"), CONTRACT).unwrap();
    std::fs::write(bench.join("train.py"), "lr = 0.01\n").unwrap();
    std::fs::create_dir_all(bench.join("gold/a")).unwrap();
    std::fs::write(bench.join("gold/a/truth.txt"), "1\n").unwrap();
    let repo = Repo::init(&bench, "benchmark", Identity::default()).unwrap();
    let base = repo.head_commit().unwrap();
    std::fs::write(bench.join("train.py"), "lr = 0.03\n").unwrap();
    // A gold file changes in the same commit (as an imported commit might): never shown.
    std::fs::write(bench.join("gold/a/truth.txt"), "SECRET 77\n").unwrap();
    let commit2 = repo.worktree(repo.root()).commit_all("raise lr").unwrap();

    let mut store = Store::open_in_memory().unwrap();
    let p = store
        .create_program(&NewProgram {
            name: "tiny".into(),
            benchmark_dir: bench.to_string_lossy().into_owned(),
            program_md: "make it fast".into(),
            agent: serde_json::json!({}),
            policy: serde_json::json!({}),
            base_commit: base.clone(),
        })
        .unwrap();
    let a1 = store
        .insert_attempt(&NewAttempt {
            program_id: p.id,
            kind: AttemptKind::Baseline,
            parent_commit: base.clone(),
            hypothesis: "baseline".into(),
            proposer: "picidae".into(),
            params: None,
        })
        .unwrap();
    store
        .set_attempt_commit(a1.id, &base, "h1", &[], None)
        .unwrap();
    run(&mut store, a1.id, 0, 10.0);
    store
        .decide_attempt(
            a1.id,
            &Decision {
                status: AttemptStatus::Kept,
                primary_value: Some(10.0),
                note: None,
                advance_frontier: true,
                judged_against: None,
            },
        )
        .unwrap();

    let a2 = store
        .insert_attempt(&NewAttempt {
            program_id: p.id,
            kind: AttemptKind::Explore,
            parent_commit: base.clone(),
            hypothesis: "raise the learning rate to 0.03".into(),
            proposer: "agent".into(),
            params: Some(serde_json::json!({"lr": "0.03"})),
        })
        .unwrap();
    store
        .set_attempt_commit(a2.id, &commit2, "h2", &["train.py".to_string()], None)
        .unwrap();
    let runs: Vec<i64> = [9.0, 9.2, 8.9]
        .iter()
        .enumerate()
        .map(|(i, v)| run(&mut store, a2.id, i as i64, *v))
        .collect();
    for r in &runs {
        store
            .set_hidden_result(&HiddenResult {
                run_id: *r,
                ok: true,
                metrics: MetricValues::from([("hidden_score".to_string(), HIDDEN_SCORE)]),
                error: None,
                evaluated_at: 1,
            })
            .unwrap();
    }
    let f = store
        .create_finding(p.id, a2.id, a1.id, "score", None)
        .unwrap();
    store
        .move_finding(f.id, FindingState::Verifying, None, "queued 2 more seeds")
        .unwrap();
    let reason = format!(
        "visible metric improved by +0.966667 but the hidden metric changed by \
         {HIDDEN_EFFECT:+.6}: suspected overfit or gaming"
    );
    store
        .conclude_finding(
            f.id,
            FindingState::Refuted,
            &Evidence {
                effect: Some(0.966667),
                ci_low: Some(0.7),
                ci_high: Some(1.2),
                confidence: Some(0.95),
                p_value: Some(0.001),
                q_value: Some(0.002),
                n_candidate: Some(3),
                n_incumbent: Some(1),
                noise_floor: Some(0.1),
                hidden_effect: Some(HIDDEN_EFFECT),
                hidden_agrees: Some(false),
                flags: vec!["overfit".into()],
                rule: None,
            },
            &reason,
            a2.id,
            &Decision {
                status: AttemptStatus::Discarded,
                primary_value: Some(9.033333),
                note: Some(format!("finding {} refuted: {reason}", f.id)),
                advance_frontier: false,
                judged_against: None,
            },
        )
        .unwrap();
    let a2 = store.attempt(a2.id).unwrap();
    let patch = repo.show_patch(&commit2).unwrap();
    picidae_memory::index_attempt(&store, &a2, &patch).unwrap();
    let a1 = store.attempt(a1.id).unwrap();
    picidae_memory::index_attempt(&store, &a1, "").unwrap();
    Fixture {
        _tmp: tmp,
        server: MemoryServer::new(store),
        commit2,
    }
}

/// The whole MCP result (content and structured content) as the client receives it.
fn wire(r: &CallToolResult) -> String {
    serde_json::to_string(r).unwrap()
}

fn structured(r: &CallToolResult) -> serde_json::Value {
    assert_ne!(r.is_error, Some(true), "tool error: {}", wire(r));
    r.structured_content.clone().expect("structured content")
}

fn assert_no_hidden(text: &str) {
    for bad in FORBIDDEN {
        assert!(!text.contains(bad), "answer contains {bad:?}: {text}");
    }
}

#[test]
fn no_answer_carries_hidden_evaluator_numbers() {
    let fx = fixture();
    let s = &fx.server;
    let answers = [
        s.search_memory(Parameters(SearchParams {
            query: "learning rate".into(),
            program: None,
            limit: None,
        })),
        s.search_memory(Parameters(SearchParams {
            query: "hidden overfit".into(),
            program: Some("tiny".into()),
            limit: Some(50),
        })),
        s.get_attempt(Parameters(AttemptParams {
            program: "tiny".into(),
            seq: 2,
        })),
        s.get_attempt(Parameters(AttemptParams {
            program: "tiny".into(),
            seq: 1,
        })),
        s.list_findings(Parameters(FindingsParams::default())),
        s.list_findings(Parameters(FindingsParams {
            program: Some("tiny".into()),
            state: Some("refuted".into()),
        })),
        s.frontier(Parameters(FrontierParams {
            program: "tiny".into(),
        })),
    ];
    for a in &answers {
        assert_ne!(a.is_error, Some(true), "{}", wire(a));
        assert_no_hidden(&wire(a));
    }
    // Tool descriptions and schemas are returned too.
    assert_no_hidden(&serde_json::to_string(&s.tool_router.list_all()).unwrap());
}

#[test]
fn search_finds_the_attempt_with_its_outcome() {
    let fx = fixture();
    let r = fx.server.search_memory(Parameters(SearchParams {
        query: "learning rate".into(),
        program: Some("tiny".into()),
        limit: None,
    }));
    let v = structured(&r);
    let hits = v["hits"].as_array().unwrap();
    assert_eq!(hits[0]["seq"], 2, "{v}");
    assert_eq!(hits[0]["finding"]["state"], "refuted");
    assert!(v["summary"].as_str().unwrap().contains("#2"), "{v}");
    // The summary comes first as plain text for clients that ignore structured content.
    let first = r.content[0].as_text().unwrap();
    assert_eq!(first.text, v["summary"].as_str().unwrap());
}

#[test]
fn get_attempt_shows_runs_visible_evidence_and_diff() {
    let fx = fixture();
    let v = structured(&fx.server.get_attempt(Parameters(AttemptParams {
        program: "tiny".into(),
        seq: 2,
    })));
    assert_eq!(v["hypothesis"], "raise the learning rate to 0.03");
    assert_eq!(v["status"], "discarded");
    assert_eq!(v["commit"], fx.commit2.as_str());
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[1]["seed"], 1);
    assert_eq!(runs[1]["primary_value"], 9.2);
    assert_eq!(runs[1]["metrics"]["score"], 9.2);
    assert_eq!(runs[1]["wall_secs"], 1.5);
    let ev = &v["finding"]["evidence"];
    assert_eq!(ev["effect"], 0.966667);
    assert_eq!(ev["ci_low"], 0.7);
    assert_eq!(ev["q_value"], 0.002);
    assert_eq!(ev["n_seeds"], 3);
    assert_eq!(ev["flags"], serde_json::json!(["overfit"]));
    assert_eq!(v["finding"]["state"], "refuted");
    // The visible effect stays in the notes; the hidden change is withheld.
    let note = v["note"].as_str().unwrap();
    assert!(note.contains("+0.966667"), "{note}");
    assert!(
        note.contains("hidden metric changed by [withheld]"),
        "{note}"
    );
    let diff = v["diff"].as_str().unwrap();
    assert!(diff.contains("+lr = 0.03"), "{diff}");
    assert!(!diff.contains("gold"), "{diff}");
    assert!(
        diff.ends_with("[1 file(s) of the hidden evaluator withheld]\n"),
        "{diff}"
    );
    assert_eq!(v["diff_truncated"], false);
    // The baseline changed nothing: no diff (not the benchmark's whole first commit).
    let base = structured(&fx.server.get_attempt(Parameters(AttemptParams {
        program: "tiny".into(),
        seq: 1,
    })));
    assert_eq!(base["diff"], "");
}

#[test]
fn list_findings_filters_by_program_and_state() {
    let fx = fixture();
    let s = &fx.server;
    let all = structured(&s.list_findings(Parameters(FindingsParams::default())));
    assert_eq!(all["count"], 1);
    let f = &all["findings"][0];
    assert_eq!(f["program"], "tiny");
    assert_eq!(f["attempt_seq"], 2);
    assert_eq!(f["incumbent_seq"], 1);
    assert_eq!(f["hypothesis"], "raise the learning rate to 0.03");
    assert_eq!(f["evidence"]["p_value"], 0.001);
    let none = structured(&s.list_findings(Parameters(FindingsParams {
        program: Some("tiny".into()),
        state: Some("Validated".into()),
    })));
    assert_eq!(none["count"], 0);
}

#[test]
fn hidden_file_sections_are_dropped_from_patches() {
    let patch =
        "diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-a\n+b\n\
                 diff --git a/bench/gold/x.txt b/bench/gold/x.txt\n+secret\n\
                 diff --git a/bench/golden.txt b/bench/golden.txt\n+kept\n";
    let out = without_files(patch, &["bench/gold".to_string()]);
    assert!(out.contains("+b\n"), "{out}");
    assert!(!out.contains("secret"), "{out}");
    assert!(
        out.contains("+kept"),
        "a path sharing a prefix is not hidden: {out}"
    );
    assert!(out.ends_with("[1 file(s) of the hidden evaluator withheld]\n"));
    assert_eq!(without_files(patch, &[]), patch);
}

#[test]
fn frontier_reports_baseline_frontier_and_counts() {
    let fx = fixture();
    let v = structured(&fx.server.frontier(Parameters(FrontierParams {
        program: "tiny".into(),
    })));
    assert_eq!(v["frontier_value"], 10.0);
    assert_eq!(v["frontier_seq"], 1);
    assert_eq!(v["baseline"]["value"], 10.0);
    assert_eq!(v["baseline"]["seq"], 1);
    assert_eq!(v["attempts"]["kept"], 1);
    assert_eq!(v["attempts"]["discarded"], 1);
    assert_eq!(v["total_attempts"], 2);
}

#[test]
fn lookups_that_fail_are_tool_errors_with_clear_messages() {
    let fx = fixture();
    let s = &fx.server;
    let cases = [
        (
            s.frontier(Parameters(FrontierParams {
                program: "nope".into(),
            })),
            "no program named \"nope\" (known programs: tiny)",
        ),
        (
            s.get_attempt(Parameters(AttemptParams {
                program: "tiny".into(),
                seq: 9,
            })),
            "program \"tiny\" has no attempt #9 (it has 2 attempts",
        ),
        (
            s.list_findings(Parameters(FindingsParams {
                program: None,
                state: Some("won".into()),
            })),
            "unknown finding state \"won\"",
        ),
        (
            s.search_memory(Parameters(SearchParams {
                query: " ? ".into(),
                program: None,
                limit: None,
            })),
            "empty query",
        ),
        (
            s.search_memory(Parameters(SearchParams {
                query: "lr".into(),
                program: Some("nope".into()),
                limit: None,
            })),
            "no program named \"nope\"",
        ),
    ];
    for (r, want) in cases {
        assert_eq!(r.is_error, Some(true), "{}", wire(&r));
        let text = &r.content[0].as_text().unwrap().text;
        assert!(text.contains(want), "{text:?} lacks {want:?}");
    }
}

#[test]
fn redaction_and_truncation() {
    assert_eq!(
        redact_hidden("finding 3 refuted: visible +0.5 but the Hidden metric changed by -1.2e-3"),
        "finding 3 refuted: visible +0.5 but the Hidden metric changed by [withheld]"
    );
    assert_eq!(
        redact_hidden("effect +0.1 [0.0, 0.2]"),
        "effect +0.1 [0.0, 0.2]"
    );
    let (short, cut) = truncate_diff("abc".into());
    assert_eq!((short.as_str(), cut), ("abc", false));
    let long = "é".repeat(MAX_DIFF_CHARS + 5);
    let (text, cut) = truncate_diff(long);
    assert!(cut);
    assert!(text.starts_with(&"é".repeat(MAX_DIFF_CHARS)));
    assert!(text.ends_with(&format!(
        "[diff truncated: {MAX_DIFF_CHARS} of {} characters shown]\n",
        MAX_DIFF_CHARS + 5
    )));
}
