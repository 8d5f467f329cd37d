//! `picidae import autoresearch` and `picidae import pi-log`, end to end: a real git repository
//! shaped like an autoresearch session, the real binary, the real store.

mod common;

use std::path::{Path, PathBuf};

use common::{git, value_contract, Env, VALUE_RUN};
use serde_json::Value;

fn commit(dir: &Path, lr: &str, message: &str) -> String {
    std::fs::write(dir.join("train.py"), format!("LR = {lr}\nprint('train')\n")).unwrap();
    git(dir, &["commit", "-q", "-am", message]);
    git(dir, &["rev-parse", "HEAD"])
}

fn env() -> Env {
    Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 10.0)),
        ("run.sh", VALUE_RUN),
        ("value.txt", "10\n"),
    ])
}

fn program(env: &Env, name: &str) {
    env.ok(&[
        "program",
        "create",
        name,
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--agent",
        "command",
        "--agent-command",
        "true",
    ]);
}

/// The attempts of a program, from `picidae results --json`.
fn attempts(env: &Env, program: &str) -> Vec<Value> {
    let out = env.ok(&["results", "--json", "-p", program]);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    rows.into_iter()
        .map(|mut r| {
            let mut a = r["attempt"].take();
            a["peak_gpu_mb"] = r["peak_gpu_mb"].take();
            a["runs"] = r["runs"].take();
            a
        })
        .collect()
}

fn summary(a: &[Value]) -> Vec<(String, String, Option<f64>)> {
    a.iter()
        .map(|a| {
            (
                a["hypothesis"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
                a["primary_value"].as_f64(),
            )
        })
        .collect()
}

fn s(h: &str, st: &str, v: Option<f64>) -> (String, String, Option<f64>) {
    (h.to_string(), st.to_string(), v)
}

/// An autoresearch session: train.py on `main`, three commits left on `autoresearch/mar5`, one
/// discarded commit reset away, and a results.tsv (untracked, as autoresearch leaves it) that
/// also lists a crash whose commit git no longer has. Returns (dir, base, kept commits,
/// discarded commit).
fn session(root: &Path) -> (PathBuf, String, Vec<String>, String) {
    let dir = root.join("nanochat");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train.py"), "LR = 0.02\nprint('train')\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "results.tsv\n").unwrap();
    git(&dir, &["init", "-q", "--initial-branch=main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "initial: train.py"]);
    let base = git(&dir, &["rev-parse", "HEAD"]);
    git(&dir, &["checkout", "-q", "-b", "autoresearch/mar5"]);
    let c1 = commit(&dir, "0.04", "raise matrix LR to 0.04");
    let discarded = commit(&dir, "0.08", "raise matrix LR to 0.08");
    git(&dir, &["reset", "-q", "--hard", "HEAD~1"]);
    let c2 = commit(&dir, "0.05", "add 100-step LR warmup");
    let c3 = commit(&dir, "0.06", "tune weight decay to 0.1");
    let short = |s: &str| s[..7].to_string();
    let tsv = format!(
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n\
         {}\t0.997900\t44.0\tkeep\tbaseline\n\
         {}\t0.993200\t44.2\tkeep\tLR 0.04\n\
         {}\t1.005100\t44.2\tdiscard\tLR 0.08 diverges\n\
         deadbee\t0.000000\t0.0\tcrash\tdouble model width (OOM)\n\
         {}\t0.990100\t44.3\tkeep\twarmup 100 steps\n",
        short(&base),
        short(&c1),
        short(&discarded),
        short(&c2),
    );
    std::fs::write(dir.join("results.tsv"), tsv).unwrap();
    (dir, base, vec![c1, c2, c3], discarded)
}

#[test]
fn autoresearch_branch_and_results_tsv_become_attempts() {
    let env = env();
    program(&env, "ar");
    let (dir, base, kept, discarded) = session(env.tmp.path());
    let dir_s = dir.to_str().unwrap();

    let out = env.ok(&[
        "import",
        "autoresearch",
        "-p",
        "ar",
        "--repo",
        dir_s,
        "--branch",
        "autoresearch/mar5",
        "--since",
        "main",
    ]);
    assert!(out.contains("imported 6 attempts into ar"), "{out}");
    assert!(
        out.contains("3 commits") && out.contains("5 results.tsv rows"),
        "{out}"
    );

    let a = attempts(&env, "ar");
    assert_eq!(
        summary(&a),
        [
            s("baseline", "kept", Some(0.9979)),
            s("raise matrix LR to 0.04", "kept", Some(0.9932)),
            s("LR 0.08 diverges", "discarded", Some(1.0051)),
            s("double model width (OOM)", "failed", None),
            s("add 100-step LR warmup", "kept", Some(0.9901)),
            s("tune weight decay to 0.1", "kept", None),
        ]
    );
    assert!(a.iter().all(|a| a["kind"] == "imported" && a["runs"] == 1));
    // Full shas wherever git has the commit: the branch, the baseline at the fork point, and
    // the discarded commit reset away (still in the object store).
    let commits: Vec<&str> = a.iter().map(|a| a["commit"].as_str().unwrap()).collect();
    assert_eq!(
        commits,
        [
            base.as_str(),
            &kept[0],
            &discarded,
            "deadbee",
            &kept[1],
            &kept[2]
        ]
    );
    assert_eq!(a[1]["proposer"], "autoresearch:autoresearch/mar5");
    assert_eq!(a[2]["proposer"], "autoresearch:results.tsv");
    let lost = a[3]["note"].as_str().unwrap();
    assert!(lost.contains("diff lost"), "{lost}");
    assert_eq!(a[1]["peak_gpu_mb"], (44.2f64 * 1024.0).round() as i64);
    assert_eq!(a[5]["peak_gpu_mb"], Value::Null);

    // Importing the same session again adds nothing.
    let again = env.ok(&[
        "import",
        "autoresearch",
        "-p",
        "ar",
        "--repo",
        dir_s,
        "--branch",
        "autoresearch/mar5",
        "--since",
        "main",
    ]);
    assert!(
        again.contains("imported 0 attempts") && again.contains("6 already imported"),
        "{again}"
    );
    assert_eq!(attempts(&env, "ar").len(), 6);

    // Without --since (the program's base commit is not in this repository) the whole history
    // of the checked-out branch comes in: the root commit too, kept, with no row of its own
    // (the baseline row names it).
    program(&env, "all");
    env.ok(&["import", "autoresearch", "-p", "all", "--repo", dir_s]);
    let all = attempts(&env, "all");
    assert_eq!(all.len(), 6);
    assert_eq!(all[0]["commit"].as_str().unwrap(), base);
    assert_eq!(all[0]["hypothesis"], "initial: train.py");
    assert_eq!(all[0]["primary_value"], 0.9979);

    // A bad results.tsv names its file, line and column, and nothing is imported.
    program(&env, "bad");
    let bad = env.path("bad.tsv");
    let text = std::fs::read_to_string(dir.join("results.tsv")).unwrap();
    std::fs::write(&bad, text.replace("\tdiscard\t", "\tdiscarded\t")).unwrap();
    let out = env.picidae(&[
        "import",
        "autoresearch",
        "-p",
        "bad",
        "--repo",
        dir_s,
        "--since",
        "main",
        "--results",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.tsv:4: column `status`"), "{err}");
    assert!(attempts(&env, "bad").is_empty());
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/autoresearch.jsonl")
}

#[test]
fn pi_log_results_become_attempts() {
    let env = env();
    program(&env, "pi");
    let file = fixture();
    let out = env.ok(&["import", "pi-log", file.to_str().unwrap(), "-p", "pi"]);
    assert!(out.contains("imported 6 attempts into pi"), "{out}");
    assert!(out.contains("2 segments"), "{out}");

    let a = attempts(&env, "pi");
    assert_eq!(
        summary(&a),
        [
            s("baseline", "kept", Some(0.9979)),
            s("raise matrix LR from 0.02 to 0.04", "kept", Some(0.9932)),
            s("swap GELU for SwiGLU in the MLP", "discarded", Some(1.0051)),
            s("double the model width", "failed", None),
            s("fused attention kernel", "failed", None),
            s("baseline at depth 16", "kept", Some(0.9644)),
        ]
    );
    assert_eq!(a[0]["commit"], "4e1c0a7");
    assert_eq!(a[0]["peak_gpu_mb"], (44.2f64 * 1024.0).round() as i64);
    assert_eq!(a[1]["proposer"], "pi-autoresearch:autoresearch.jsonl");
    let note = a[2]["note"].as_str().unwrap();
    assert!(note.contains("diff lost"), "{note}");

    // One segment only.
    program(&env, "deep");
    env.ok(&[
        "import",
        "pi-log",
        file.to_str().unwrap(),
        "-p",
        "deep",
        "--segment",
        "1",
    ]);
    assert_eq!(
        summary(&attempts(&env, "deep")),
        [s("baseline at depth 16", "kept", Some(0.9644))]
    );
}

#[test]
fn pi_log_with_a_bad_line_imports_nothing() {
    let env = env();
    program(&env, "pi");
    let text = std::fs::read_to_string(fixture()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[4] = lines[4].replace("\"status\":\"discard\"", "\"status\":\"discarded\"");
    lines[6] = lines[6].replace("\"metric\":0.9901,", "");
    let bad = env.path("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();

    let out = env.picidae(&["import", "pi-log", bad.to_str().unwrap(), "-p", "pi"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:5: field `status`"), "{err}");
    assert!(err.contains("\"discarded\" is not one of"), "{err}");
    assert!(
        err.contains("bad.jsonl:7: field `metric`: missing"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(attempts(&env, "pi").is_empty());

    std::fs::write(&bad, "{\"type\":\"config\"}\n{not json\n").unwrap();
    let out = env.picidae(&["import", "pi-log", bad.to_str().unwrap(), "-p", "pi"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:2: not JSON"), "{err}");
    assert!(attempts(&env, "pi").is_empty());
}
