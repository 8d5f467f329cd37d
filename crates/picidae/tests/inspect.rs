//! Looking at what a program did, through the real binary: `show` (text and JSON), `results`,
//! the results.tsv export and import, `program delete`, and the end-of-run summary.

mod common;

use common::{git, text, value_env, Env};
use serde_json::Value;

/// A benchmark whose run reports the primary `score` and a secondary `aux`, and sleeps past
/// its time budget (but not its timeout).
fn two_metric_env() -> Env {
    let contract = r#"[benchmark]
name = "two"

[boundary]
editable = ["value.txt"]

[run]
command = "sh run.sh"
time_budget = 0.2
timeout = 20
grace = 0.5

[metrics.score]
goal = "minimize"
primary = true

[metrics.aux]
goal = "maximize"
"#;
    Env::new(&[
        ("picidae.toml", contract),
        (
            "run.sh",
            "sleep 0.4\necho \"score: $(cat value.txt)\"\necho \"aux: 42.5\"\n",
        ),
        ("value.txt", "10\n"),
    ])
}

#[test]
fn show_and_results_print_every_metric_and_the_over_budget_flag() {
    let env = two_metric_env();
    let long = "raise the value to seven because a long hypothesis explains in detail why this should help the score a lot";
    let agent = env.path("agent.sh");
    std::fs::write(
        &agent,
        format!("cat > /dev/null\necho 7 > value.txt\necho \"HYPOTHESIS: {long}\"\n"),
    )
    .unwrap();
    env.command_program("p", &env.bench, &format!("sh {}", agent.display()));
    env.ok(&["run", "p", "-n", "1", "--plain"]);

    let shown = env.ok(&["show", "p", "2"]);
    assert!(shown.contains("aux=42.500000"), "{shown}");
    assert!(shown.contains("score=7.000000"), "{shown}");
    assert!(shown.contains("over budget"), "{shown}");

    let table = env.ok(&["results", "-p", "p"]);
    assert!(table.contains("aux=42.500000"), "{table}");
    assert!(table.contains("over budget"), "{table}");
    // Wrapped, not cut: every word of the hypothesis is in the table.
    for word in long.split_whitespace() {
        assert!(table.contains(word), "{word} missing:\n{table}");
    }
    let full = env.ok(&["results", "-p", "p", "--full"]);
    assert!(full.contains(long), "{full}");

    let rows: Vec<Value> =
        serde_json::from_str(&env.ok(&["results", "--json", "-p", "p"])).unwrap();
    assert_eq!(rows[1]["metrics"]["aux"], 42.5);
    assert_eq!(rows[1]["over_budget"], true);

    let json: Value = serde_json::from_str(&env.ok(&["show", "p", "2", "--json"])).unwrap();
    assert_eq!(json["seq"], 2);
    assert_eq!(json["status"], "kept");
    assert_eq!(json["runs"][0]["metrics"]["aux"], 42.5);
    assert_eq!(json["runs"][0]["over_budget"], true);
    assert!(json["runs"][0]["violations"].is_array());
    assert!(json["diff"].as_str().unwrap().contains("+7"), "{json}");
}

#[test]
fn show_json_never_carries_hidden_results() {
    // Verified over several seeds, so the hidden evaluator scores the candidate.
    let env = Env::truth(common::GOOD_EVALUATOR, "seeds = 3\nbaseline_seeds = 3");
    env.queue_program("t", &["6 6 better"], &[]);
    env.ok(&["run", "t", "-n", "1", "--plain"]);
    let store = env.store();
    let p = store.program("t").unwrap();
    let a = store.attempt_by_seq(p.id, 2).unwrap().unwrap();
    let evaluated = store
        .runs_of_attempt(a.id)
        .unwrap()
        .iter()
        .filter_map(|r| store.hidden_result(r.id).unwrap())
        .filter(|h| h.metrics.contains_key("hidden_score"))
        .count();
    assert!(evaluated > 0, "the hidden evaluator ran on attempt #2");
    let out = env.ok(&["show", "t", "2", "--json"]);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert!(!out.contains("hidden_score"), "{out}");
    assert!(!out.contains("hidden_effect"), "{out}");
    assert!(!out.contains("hidden_agrees"), "{out}");
    assert!(json["runs"][0]["metrics"]["score"].is_number(), "{out}");
    // `show` for people prints the attempt; its runs' visible metric is there.
    let shown = env.ok(&["show", "t", "2"]);
    assert!(shown.contains("score="), "{shown}");
}

#[test]
fn export_leaves_out_unmeasured_kept_commits_and_names_the_metric() {
    let env = value_env("10\n");
    env.queue_program("p", &["5"], &[]);
    env.ok(&["run", "p", "-n", "1", "--plain"]);
    // A session without a results.tsv: its commit is imported as kept, with no value.
    let base = git(&env.bench, &["rev-parse", "HEAD"]);
    git(&env.bench, &["checkout", "-q", "-b", "elsewhere"]);
    std::fs::write(env.bench.join("value.txt"), "4\n").unwrap();
    git(
        &env.bench,
        &["commit", "-q", "-am", "value four, never measured"],
    );
    let unmeasured = git(&env.bench, &["rev-parse", "HEAD"]);
    git(&env.bench, &["checkout", "-q", "-"]);
    env.ok(&[
        "import",
        "autoresearch",
        "-p",
        "p",
        "--repo",
        env.bench.to_str().unwrap(),
        "--branch",
        "elsewhere",
        "--since",
        &base,
    ]);
    let out = env.picidae(&["export", "results-tsv", "-p", "p"]);
    assert!(out.status.success(), "{}", text(&out));
    let tsv = String::from_utf8_lossy(&out.stdout);
    let mut lines = tsv.lines();
    assert_eq!(
        lines.next(),
        Some("commit\tscore\tmemory_gb\tstatus\tdescription")
    );
    assert!(!tsv.contains(&unmeasured[..7]), "{tsv}");
    assert!(
        !tsv.lines()
            .any(|l| l.contains("\t0.000000\t") && l.contains("\tkeep\t")),
        "{tsv}"
    );
    assert!(tsv.contains("5.000000"), "{tsv}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("#3"), "{stderr}");

    let ar = env.ok(&["export", "results-tsv", "-p", "p", "--autoresearch-header"]);
    assert!(
        ar.starts_with("commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"),
        "{ar}"
    );
}

#[test]
fn importing_a_results_tsv_twice_adds_nothing() {
    let env = value_env("10\n");
    env.queue_program("p", &[], &[]);
    let file = env.path("results.tsv");
    std::fs::write(
        &file,
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n\
         abc1234\t0.990000\t40.0\tkeep\tbaseline\n\
         def5678\t0.980000\t40.1\tkeep\twarmup\n\
         0badbee\t0.000000\t0.0\tcrash\twider model\n",
    )
    .unwrap();
    let first = env.ok(&["import", "results-tsv", file.to_str().unwrap(), "-p", "p"]);
    assert!(first.contains("imported 3 attempts"), "{first}");
    let second = env.ok(&["import", "results-tsv", file.to_str().unwrap(), "-p", "p"]);
    assert!(second.contains("imported 0 attempts"), "{second}");
    assert!(second.contains("3 already imported"), "{second}");
    let store = env.store();
    let p = store.program("p").unwrap();
    assert_eq!(store.results(Some(p.id)).unwrap().len(), 3);
}

#[test]
fn show_of_an_imported_attempt_prints_its_diff() {
    let env = value_env("10\n");
    env.queue_program("p", &[], &[]);
    let base = git(&env.bench, &["rev-parse", "HEAD"]);
    git(&env.bench, &["checkout", "-q", "-b", "elsewhere"]);
    std::fs::write(env.bench.join("value.txt"), "3\n").unwrap();
    git(&env.bench, &["commit", "-q", "-am", "value three"]);
    git(&env.bench, &["checkout", "-q", "-"]);
    env.ok(&[
        "import",
        "autoresearch",
        "-p",
        "p",
        "--repo",
        env.bench.to_str().unwrap(),
        "--branch",
        "elsewhere",
        "--since",
        &base,
    ]);
    let shown = env.ok(&["show", "p", "1"]);
    assert!(shown.contains("imported"), "{shown}");
    assert!(shown.contains("+3"), "{shown}");
    assert!(shown.contains("-10"), "{shown}");
}

#[test]
fn executor_help_names_every_executor() {
    let out = env_help();
    for name in ["local", "slurm", "ssh://", "docker:", "podman:"] {
        assert!(out.contains(name), "{name} missing:\n{out}");
    }
}

fn env_help() -> String {
    let out = common::bin()
        .args(["program", "create", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_summary_does_not_count_the_baseline() {
    let env = value_env("10\n");
    env.queue_program("p", &["12"], &[]);
    let out = env.ok(&["run", "p", "-n", "1", "--plain"]);
    assert!(out.contains("1 attempts: 0 kept, 1 discarded"), "{out}");
}

#[test]
fn program_delete_removes_the_program_its_files_and_refs() {
    let env = value_env("10\n");
    env.queue_program("p", &["5", "7"], &[]);
    env.queue_program("q", &[], &[]);
    env.ok(&["run", "p", "-n", "2", "--plain"]);
    let dot = env.project.join(".picidae");
    assert!(dot.join("runs").join("p").exists());
    assert!(!git(&env.bench, &["for-each-ref", "refs/picidae/p/"]).is_empty());

    // A loop holding the program's lock: the deletion is refused and nothing is removed.
    let lock_path = dot.join("locks").join("p.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock().unwrap();
    let refused = env.picidae(&["program", "delete", "p"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("program p is running"), "{err}");
    assert!(env.store().program("p").is_ok());
    drop(lock);

    // A coordinator elsewhere holding a fresh lease on the program: refused too.
    let mut store = env.store();
    let pid = store.program("p").unwrap().id;
    assert!(store.claim_program(pid, "elsewhere:1", None).unwrap());
    let refused = env.picidae(&["program", "delete", "p"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("driven by the coordinator elsewhere:1"),
        "{err}"
    );
    store.release_program(pid, "elsewhere:1").unwrap();
    drop(store);

    let out = env.ok(&["program", "delete", "p"]);
    assert!(out.contains("deleted program p: 3 attempts"), "{out}");
    let store = env.store();
    assert!(store.program("p").is_err());
    assert!(store.program("q").is_ok());
    for sub in ["runs", "attempts", "worktrees"] {
        assert!(!dot.join(sub).join("p").exists(), "{sub}/p is left");
    }
    assert_eq!(git(&env.bench, &["for-each-ref", "refs/picidae/p/"]), "");
    assert!(!git(&env.bench, &["for-each-ref", "refs/picidae/q/"]).is_empty());
    let listed = env.ok(&["program", "list"]);
    assert!(!listed.contains("│ p "), "{listed}");
    // The name can be used again.
    env.queue_program("p", &["4"], &[]);
    env.ok(&["run", "p", "-n", "1", "--plain"]);
}
