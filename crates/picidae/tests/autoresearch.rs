//! autoresearch's own conventions carried over: a budget the run measures itself (its training
//! time, start-up excluded), peak GPU memory as a run figure exported as results.tsv's
//! `memory_gb`, and its program.md rewritten into what Picidae does.
//!
//! There is no GPU here: the GPU-memory case runs a scripted stand-in for `nvidia-smi`
//! (`PICIDAE_NVIDIA_SMI`) that answers the same query, with the same CSV, as the real tool.

mod common;

use common::{bin, git, text, Env};
use serde_json::Value;

/// A benchmark whose run takes 1.2 s of start-up, then reports `score` and its training time,
/// both the number in value.txt. With `budget_metric`, the budget (1 s) is judged on the
/// reported training time; without it, on the wall clock.
fn budget_env(budget_metric: bool) -> Env {
    let contract = format!(
        r#"[benchmark]
name = "budget"

[boundary]
editable = ["value.txt"]

[run]
command = "sh run.sh"
time_budget = 1.0
timeout = 20
{}

[metrics.score]
goal = "minimize"
primary = true

[metrics.training_seconds]
goal = "minimize"
"#,
        if budget_metric {
            "budget_metric = \"training_seconds\""
        } else {
            ""
        }
    );
    Env::new(&[
        ("picidae.toml", &contract),
        (
            "run.sh",
            "sleep 1.2\nv=$(cat value.txt)\necho \"score: $v\"\necho \"training_seconds: $v\"\n",
        ),
        ("value.txt", "10\n"),
    ])
}

fn show(env: &Env, seq: &str) -> Value {
    serde_json::from_str(&env.ok(&["show", "p", seq, "--json"])).unwrap()
}

fn over_budget(env: &Env, seq: &str) -> Vec<bool> {
    show(env, seq)["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["over_budget"].as_bool().unwrap())
        .collect()
}

#[test]
fn a_run_that_reports_its_training_time_is_judged_on_it() {
    let env = budget_env(true);
    env.queue_program("p", &["0.5"], &[]);
    let out = env.ok(&["run", "p", "-n", "1", "--plain"]);
    assert!(out.contains("1 kept"), "{out}");
    // The baseline trained for 10 s of a 1 s budget; the attempt for 0.5 s, although its wall
    // time (1.2 s of start-up) is past the budget.
    assert_eq!(over_budget(&env, "1"), [true]);
    assert_eq!(over_budget(&env, "2"), [false]);
    let shown = env.ok(&["show", "p", "1"]);
    assert!(
        shown.contains("budget:     over its time budget"),
        "{shown}"
    );

    // The prompt says what the budget measures.
    let prompt = env.ok(&["agent", "prompt", "p"]);
    assert!(
        prompt.contains(
            "a time budget of 1s of training_seconds, as the run reports it (start-up excluded)"
        ),
        "{prompt}"
    );
}

#[test]
fn without_a_budget_metric_the_wall_clock_decides() {
    let env = budget_env(false);
    env.queue_program("p", &["0.5"], &[]);
    env.ok(&["run", "p", "-n", "1", "--plain"]);
    assert_eq!(over_budget(&env, "1"), [true]);
    assert_eq!(over_budget(&env, "2"), [true]);
}

#[test]
fn a_budget_metric_must_be_a_declared_metric_other_than_the_primary() {
    let tmp = tempfile::tempdir().unwrap();
    for (metric, message) in [
        ("train_time", "\"train_time\" is not a declared metric"),
        ("score", "the budget metric must not be the primary metric"),
    ] {
        std::fs::write(
            tmp.path().join("picidae.toml"),
            format!(
                "[boundary]\neditable = [\"a\"]\n\n[run]\ncommand = \"true\"\ntime_budget = 1\n\
                 budget_metric = \"{metric}\"\n\n[metrics.score]\ngoal = \"minimize\"\n"
            ),
        )
        .unwrap();
        let out = bin().arg("check").arg(tmp.path()).output().unwrap();
        assert!(!out.status.success(), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("picidae.toml:7:17: field `run.budget_metric`") && err.contains(message),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn peak_gpu_memory_is_a_run_figure_and_results_tsv_memory_gb() {
    let env = Env::new(&[
        (
            "picidae.toml",
            "[boundary]\neditable = [\"value.txt\"]\n\n[run]\ncommand = \"sh run.sh\"\n\
             time_budget = 10\n\n[metrics.score]\ngoal = \"minimize\"\n",
        ),
        ("value.txt", "10\n"),
        ("run.sh", "placeholder\n"),
    ]);
    // The run says which pid holds GPU memory; the stand-in lists it with 3 GiB, next to
    // another machine user's process, which must not count.
    let pids = env.path("gpu-pids");
    env.commit_file(
        "run.sh",
        &format!(
            "echo \"$$\" > '{}'\nsleep 2.5\necho \"score: $(cat value.txt)\"\n",
            pids.display()
        ),
        "run.sh reports its pid",
    );
    let smi = env.path("nvidia-smi");
    std::fs::write(
        &smi,
        format!(
            "#!/bin/sh\n\
             [ \"$1\" = --query-compute-apps=pid,used_memory ] || exit 2\n\
             [ \"$2\" = --format=csv,noheader,nounits ] || exit 2\n\
             echo '1, 70000'\n\
             [ -s '{p}' ] && echo \"$(cat '{p}'), 3072\"\n\
             exit 0\n",
            p = pids.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.queue_program("p", &["4"], &[]);
    let out = bin()
        .arg("--project")
        .arg(&env.project)
        .args(["run", "p", "-n", "1", "--plain"])
        .env("PICIDAE_NVIDIA_SMI", &smi)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let runs = show(&env, "2")["runs"].clone();
    assert_eq!(runs[0]["peak_gpu_mb"], 3072, "{runs:#}");
    let shown = env.ok(&["show", "p", "2"]);
    assert!(shown.contains("gpu 3072 MiB"), "{shown}");

    let tsv = env.ok(&["export", "results-tsv", "-p", "p"]);
    let rows: Vec<Vec<&str>> = tsv
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{tsv}");
    for row in &rows {
        assert_eq!(row[2], "3.0", "memory_gb is the GPU memory: {tsv}");
    }
}

/// The documented way to carry on an autoresearch session under Picidae: create the program at
/// the session branch's tip (so the next attempt builds on the session's best), and import the
/// session's history with `--since` the commit it started from.
#[test]
fn an_imported_session_continues_from_its_branch_tip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("session");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("picidae.toml"),
        common::value_contract("sh run.sh", 10.0),
    )
    .unwrap();
    std::fs::write(dir.join("run.sh"), common::VALUE_RUN).unwrap();
    std::fs::write(dir.join("value.txt"), "10\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "results.tsv\nrun.log\n").unwrap();
    git(&dir, &["init", "-q", "--initial-branch=main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "baseline"]);
    let base = git(&dir, &["rev-parse", "--short=7", "HEAD"]);
    git(&dir, &["checkout", "-q", "-b", "autoresearch/dec2"]);
    std::fs::write(dir.join("value.txt"), "7\n").unwrap();
    git(&dir, &["commit", "-q", "-am", "value 7"]);
    let tip = git(&dir, &["rev-parse", "HEAD"]);
    std::fs::write(
        dir.join("results.tsv"),
        format!(
            "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n{base}\t10.0\t1.0\tkeep\tbaseline\n\
             {}\t7.0\t1.0\tkeep\tvalue 7\n",
            &tip[..7]
        ),
    )
    .unwrap();
    std::fs::write(dir.join("run.log"), "score: 7\n").unwrap();

    let project = tmp.path().join("project");
    let ok = |args: &[&str]| {
        let out = bin()
            .arg("--project")
            .arg(&project)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["init", project.to_str().unwrap()]);
    let queue = tmp.path().join("queue.txt");
    std::fs::write(&queue, "5\n").unwrap();
    let agent = format!(
        "sh -c 'cat >/dev/null; v=$(head -n1 {q}); sed -i 1d {q}; echo $v > value.txt; echo \"HYPOTHESIS: value $v\"'",
        q = queue.display()
    );
    ok(&[
        "program",
        "create",
        "dec2",
        "--benchmark",
        dir.to_str().unwrap(),
        "--agent",
        "command",
        "--agent-command",
        &agent,
    ]);

    // Without --since the whole session is behind the program's base: said, nothing imported.
    let out = bin()
        .arg("--project")
        .arg(&project)
        .args([
            "import",
            "autoresearch",
            "-p",
            "dec2",
            "--repo",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("e.g. --since main"),
        "{}",
        text(&out)
    );
    let imported = ok(&[
        "import",
        "autoresearch",
        "-p",
        "dec2",
        "--repo",
        dir.to_str().unwrap(),
        "--since",
        "main",
    ]);
    assert!(imported.contains("imported 2 attempts"), "{imported}");

    // The loop measures the tip as its baseline and builds on it.
    let out = ok(&["run", "dec2", "-n", "1", "--plain"]);
    assert!(out.contains("1 kept"), "{out}");
    let loc = picidae_sched::project::store_location(&project.join(".picidae")).unwrap();
    let store = picidae_store::Store::open_location(&loc).unwrap();
    let p = store.program("dec2").unwrap();
    assert_eq!(p.base_commit, tip);
    let attempts = common::attempts(&store, "dec2");
    let baseline = attempts
        .iter()
        .find(|a| a.kind == picidae_core::AttemptKind::Baseline)
        .unwrap();
    assert_eq!(baseline.primary_value, Some(7.0), "{attempts:#?}");
    let explore = attempts.last().unwrap();
    assert_eq!(explore.parent_commit, tip);
    assert_eq!(p.frontier_value, Some(5.0));
}

/// autoresearch's own program.md, rewritten in place by `picidae import program-md`, committed,
/// and read by the program: the agent is no longer told to commit, run, log or loop itself.
#[test]
fn import_program_md_rewrites_the_loop_instructions_in_place() {
    let program_md = "# autoresearch\n\n\
        Edit `value.txt` only. Lower score is better.\n\n\
        ## The experiment loop\n\n\
        LOOP FOREVER:\n\n\
        1. Tune `value.txt`.\n\
        2. git commit -am \"idea\"\n\
        3. Run it: `sh run.sh > run.log 2>&1`\n\
        4. Read the result: `grep \"^score:\" run.log`\n\
        5. Append a row to results.tsv.\n\
        6. If the score got worse, `git reset --hard HEAD~1`.\n";
    let env = Env::new(&[
        ("picidae.toml", &common::value_contract("sh run.sh", 10.0)),
        ("run.sh", common::VALUE_RUN),
        ("value.txt", "10\n"),
        ("program.md", program_md),
    ]);
    let file = env.bench.join("program.md");
    let out = bin()
        .args(["import", "program-md"])
        .arg(&file)
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (line, kind) in [
        (7, "loop_forever"),
        (10, "commit"),
        (11, "runs_itself"),
        (12, "reads_log"),
        (13, "results_log"),
        (14, "keep_revert"),
    ] {
        let want = format!("{}:line {line} ({kind}): ", file.display());
        assert!(stderr.contains(&want), "{want:?} in {stderr}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("6 instruction(s) rewritten"),
        "{}",
        text(&out)
    );
    let rewritten = std::fs::read_to_string(&file).unwrap();
    assert!(
        rewritten.starts_with("# autoresearch\n\nEdit `value.txt` only. Lower score is better.\n"),
        "{rewritten}"
    );
    assert!(rewritten.contains("1. Tune `value.txt`.\n2. Picidae commits your change"));
    for gone in [
        "LOOP FOREVER",
        "git commit",
        "run.log",
        "results.tsv",
        "git reset",
    ] {
        assert!(!rewritten.contains(gone), "{gone:?} left in {rewritten}");
    }
    assert!(rewritten.contains("## How this program runs under Picidae"));

    // A second pass changes nothing (printing to stdout).
    let again = bin()
        .args(["import", "program-md"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), rewritten);
    assert!(again.stderr.is_empty(), "{}", text(&again));

    // Committed, it is what the program's agent reads.
    env.commit_file("program.md", &rewritten, "program.md for Picidae");
    env.queue_program("p", &["4"], &[]);
    let prompt = env.ok(&["agent", "prompt", "p"]);
    assert!(
        prompt.contains("Picidae runs the experiment for you"),
        "{prompt}"
    );
    assert!(!prompt.contains("LOOP FOREVER"), "{prompt}");
}

#[test]
fn import_program_md_names_the_file_and_line_of_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("program.md");
    std::fs::write(&file, b"# ok\n\nfine\n\xff broken\n").unwrap();
    let out = bin()
        .args(["import", "program-md"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4: not valid UTF-8", file.display())),
        "{err}"
    );
    let missing = bin()
        .args(["import", "program-md"])
        .arg(tmp.path().join("nope.md"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.md"));
}
