//! The core loop end to end through the real binary, real git and real processes.

mod common;

use common::{read_pids, text, value_contract, value_env, Env};
use picidae_core::{AttemptStatus, RunStatus};
use picidae_git::Repo;
use picidae_store::AttemptFilter;

#[test]
fn keep_revert_advances_the_frontier_only_on_improvement() {
    let env = value_env("10\n");
    env.queue_program("p", &["5", "7", "6", "3"], &[]);
    let out = env.ok(&["run", "p", "-n", "4", "--plain"]);
    assert!(out.contains("4 attempts: 2 kept, 2 discarded"), "{out}");

    let store = env.store();
    let p = store.program("p").unwrap();
    assert_eq!(p.frontier_value, Some(3.0));
    let history: Vec<f64> = store
        .frontier_history(p.id)
        .unwrap()
        .iter()
        .map(|h| h.value)
        .collect();
    assert_eq!(
        history,
        vec![10.0, 5.0, 3.0],
        "baseline, then only the improvements"
    );

    let attempts = store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap();
    let statuses: Vec<(i64, AttemptStatus, Option<f64>)> = attempts
        .iter()
        .map(|a| (a.seq, a.status, a.primary_value))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (1, AttemptStatus::Kept, Some(10.0)),
            (2, AttemptStatus::Kept, Some(5.0)),
            (3, AttemptStatus::Discarded, Some(7.0)),
            (4, AttemptStatus::Discarded, Some(6.0)),
            (5, AttemptStatus::Kept, Some(3.0)),
        ]
    );
    assert_eq!(attempts[2].hypothesis, "value 7");

    // Every attempt, discarded ones included, is a commit on a picidae ref with its diff.
    let repo = Repo::open(&env.bench).unwrap();
    let refs = repo.list_refs("refs/picidae/p/attempts/").unwrap();
    assert_eq!(refs.len(), 4);
    let discarded = &attempts[2];
    let patch = repo
        .show_patch(discarded.commit.as_deref().unwrap())
        .unwrap();
    assert!(patch.contains("+7"), "{patch}");
    // The discarded attempt was built on the frontier of its time (value 5), not on itself.
    assert_eq!(discarded.parent_commit, attempts[1].commit.clone().unwrap());
    // The frontier ref holds the last kept commit, whose file says 3.
    let frontier = repo.resolve("refs/picidae/p/frontier").unwrap().unwrap();
    assert_eq!(Some(frontier.clone()), p.frontier_commit);
    assert_eq!(Some(frontier), attempts[4].commit);
    // The user's checkout was never touched.
    assert_eq!(
        std::fs::read_to_string(env.bench.join("value.txt")).unwrap(),
        "10\n"
    );

    // Each run recorded an environment fingerprint, wall time and peak memory.
    for a in &attempts {
        let runs = store.runs_of_attempt(a.id).unwrap();
        assert_eq!(runs.len(), 1);
        let r = &runs[0];
        assert_eq!(r.status, RunStatus::Succeeded);
        let fp = store
            .fingerprint_json(r.fingerprint.as_deref().unwrap())
            .unwrap()
            .unwrap();
        assert!(
            fp.contains("cpu_model") && fp.contains(&p.base_commit),
            "{fp}"
        );
        assert!(r.wall_secs.unwrap() > 0.0);
        assert!(r.peak_rss_kb.unwrap() > 0);
        assert!(std::path::Path::new(r.log_dir.as_deref().unwrap())
            .join("stdout.log")
            .exists());
    }
    // Run checkouts are removed after each run.
    let wts = repo.list_worktrees().unwrap();
    assert_eq!(wts.len(), 1, "only the main checkout remains: {wts:?}");

    // results --json agrees with the store.
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["results", "--json", "-p", "p"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 5);
    assert_eq!(json[4]["attempt"]["status"], "kept");
}

#[test]
fn an_edit_outside_the_boundary_is_rejected_and_costs_no_run() {
    let env = value_env("10\n");
    env.queue_program("p", &["OUT", "NOTHING", "4"], &[]);
    let out = env.ok(&["run", "p", "-n", "3", "--plain"]);
    assert!(out.contains("1 kept, 0 discarded, 2 rejected"), "{out}");
    let store = env.store();
    let p = store.program("p").unwrap();
    let rejected = store.attempt_by_seq(p.id, 2).unwrap().unwrap();
    assert_eq!(rejected.status, AttemptStatus::Rejected);
    assert!(
        store.runs_of_attempt(rejected.id).unwrap().is_empty(),
        "no compute spent"
    );
    let why = rejected.rejection.clone().unwrap().to_string();
    assert!(why.contains("run.sh"), "{why}");
    assert!(rejected.note.as_deref().unwrap().contains("run.sh"));
    // The rejected change is still kept as evidence in git.
    let repo = Repo::open(&env.bench).unwrap();
    let patch = repo
        .show_patch(rejected.commit.as_deref().unwrap())
        .unwrap();
    assert!(
        patch.contains("run.sh") && patch.contains("+hacked"),
        "{patch}"
    );

    let nothing = store.attempt_by_seq(p.id, 3).unwrap().unwrap();
    assert_eq!(nothing.status, AttemptStatus::Rejected);
    assert!(store.runs_of_attempt(nothing.id).unwrap().is_empty());
    // Runs: the baseline and the one good attempt.
    assert_eq!(store.run_count(Some(p.id)).unwrap(), 2);
    assert_eq!(p.frontier_value, Some(4.0));
}

#[test]
fn a_run_that_ignores_sigterm_is_killed_with_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let pids = tmp.path().join("pids");
    let run = format!(
        "trap '' TERM\nsleep 60 &\necho $! >> '{p}'\necho $$ >> '{p}'\nsh -c 'trap \"\" TERM; sleep 61' &\necho $! >> '{p}'\nwait\n",
        p = pids.display()
    );
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 1.0)),
        ("run.sh", &run),
        ("value.txt", "1\n"),
    ]);
    env.queue_program("q", &["2"], &[]);
    let started = std::time::Instant::now();
    let out = env.picidae(&["run", "q", "-n", "1", "--plain"]);
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        !out.status.success(),
        "the baseline cannot succeed:\n{}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("baseline failed") && err.contains("timed-out"),
        "{err}"
    );
    assert!(elapsed < 8.0, "timeout 1s + grace 0.5s, took {elapsed}s");
    let pids = read_pids(&pids);
    assert_eq!(pids.len(), 3, "{pids:?}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    for pid in pids {
        assert!(
            !common::pid_alive(pid),
            "process {pid} survived the timeout"
        );
    }
    let store = env.store();
    let q = store.program("q").unwrap();
    let runs = store
        .runs_of_attempt(store.attempt_by_seq(q.id, 1).unwrap().unwrap().id)
        .unwrap();
    assert_eq!(runs[0].status, RunStatus::TimedOut);
    assert!(runs[0].error.as_deref().unwrap().contains("timeout"));
}

#[test]
fn invalid_metrics_never_win() {
    let env = value_env("10\n");
    env.queue_program("p", &["nan", "-1", "inf", "9"], &[]);
    let out = env.ok(&["run", "p", "-n", "4", "--plain"]);
    assert!(
        out.contains("1 kept, 0 discarded, 0 rejected, 3 failed"),
        "{out}"
    );
    let store = env.store();
    let p = store.program("p").unwrap();
    assert_eq!(p.frontier_value, Some(9.0));
    for seq in 2..=4 {
        let a = store.attempt_by_seq(p.id, seq).unwrap().unwrap();
        let runs = store.runs_of_attempt(a.id).unwrap();
        assert_eq!(runs[0].status, RunStatus::Invalid, "attempt {seq}");
        assert!(!runs[0].violations.is_empty());
    }
}

#[test]
fn results_tsv_round_trips() {
    let env = value_env("10\n");
    let agent = env.queue_agent(&["5", "7", "OUT", "3"]);
    let bench = env.bench.to_str().unwrap().to_string();
    env.ok(&[
        "program",
        "create",
        "p",
        "--benchmark",
        &bench,
        "--agent",
        "command",
        "--agent-command",
        &agent,
    ]);
    env.ok(&["run", "p", "-n", "4", "--plain"]);
    let first = env.ok(&["export", "results-tsv", "-p", "p"]);
    let lines: Vec<&str> = first.lines().collect();
    // The metric column is named after the primary metric.
    assert_eq!(lines[0], "commit\tscore\tmemory_gb\tstatus\tdescription");
    assert_eq!(
        lines.len(),
        5,
        "baseline + 3 runs, the rejected attempt never ran:\n{first}"
    );
    assert!(lines[1].ends_with("\tkeep\tbaseline"), "{}", lines[1]);
    assert!(lines[3].contains("\t7.000000\t") && lines[3].contains("\tdiscard\t"));

    let file = env.path("results.tsv");
    std::fs::write(&file, &first).unwrap();
    env.ok(&[
        "program",
        "create",
        "copy",
        "--benchmark",
        &bench,
        "--agent",
        "command",
        "--agent-command",
        "true",
    ]);
    env.ok(&[
        "import",
        "results-tsv",
        file.to_str().unwrap(),
        "-p",
        "copy",
    ]);
    let second = env.ok(&["export", "results-tsv", "-p", "copy"]);
    assert_eq!(first, second);

    // A bad file names its line and column and imports nothing.
    let bad = env.path("bad.tsv");
    std::fs::write(&bad, format!("{first}abc1234\t0.5\tlots\tkeep\tx\n")).unwrap();
    let out = env.picidae(&["import", "results-tsv", bad.to_str().unwrap(), "-p", "copy"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.tsv:6: column `memory_gb`"), "{err}");
    assert_eq!(env.ok(&["export", "results-tsv", "-p", "copy"]), first);
}

#[test]
fn check_reports_file_line_and_field() {
    let env = value_env("10\n");
    let good = env.ok(&["check", env.bench.to_str().unwrap()]);
    assert!(
        good.contains("value: ok") && good.contains("score (minimize)"),
        "{good}"
    );

    let contract =
        value_contract("sh run.sh", 10.0).replace("goal = \"minimize\"", "goal = \"lower\"");
    std::fs::write(env.bench.join("picidae.toml"), contract).unwrap();
    let out = env.picidae(&["check", env.bench.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("picidae.toml:14:"), "{err}");
    assert!(err.contains("metrics.score.goal"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_failing_agent_is_recorded_and_the_loop_goes_on() {
    let env = value_env("10\n");
    let script = env.path("flaky.sh");
    let marker = env.path("flaky.marker");
    std::fs::write(
        &script,
        format!(
            "if [ -e '{m}' ]; then echo 4 > value.txt; echo 'HYPOTHESIS: four'; else touch '{m}'; echo oops >&2; exit 3; fi\n",
            m = marker.display()
        ),
    )
    .unwrap();
    let cmd = format!("sh {}", script.display());
    env.ok(&[
        "program",
        "create",
        "p",
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--agent",
        "command",
        "--agent-command",
        &cmd,
    ]);
    let out = env.ok(&["run", "p", "-n", "2", "--plain"]);
    assert!(
        out.contains("1 kept, 0 discarded, 0 rejected, 1 failed"),
        "{out}"
    );
    let store = env.store();
    let p = store.program("p").unwrap();
    let failed = store.attempt_by_seq(p.id, 2).unwrap().unwrap();
    assert_eq!(failed.status, AttemptStatus::Failed);
    assert!(failed.note.unwrap().contains("exit code 3"));
    assert_eq!(p.frontier_value, Some(4.0));
}

/// A benchmark with one seed per attempt whose parameters (`(name, default)`, each in
/// [-1, 1]) reach `run` (its run.sh) as upper-case environment variables.
fn env_param_bench(params: &[(&str, f64)], run: &str) -> Env {
    let mut contract = value_contract("sh run.sh", 10.0).replace("min = 0.0\n", "");
    contract.push_str("\n[policy]\nseeds = 1\nbaseline_seeds = 1\n");
    for (name, default) in params {
        contract.push_str(&format!(
            "\n[[param]]\nname = \"{name}\"\nenv = \"{}\"\ndefault = {default}\nmin = -1.0\nmax = 1.0\n",
            name.to_uppercase()
        ));
    }
    Env::new(&[
        ("picidae.toml", &contract),
        ("run.sh", run),
        ("value.txt", "unused\n"),
    ])
}

/// A sweep over a parameter passed as an environment variable: no checkout for the agent, no
/// commit per attempt, every run sees its own value, and the frontier's value carries on.
#[test]
fn environment_parameter_sweeps_commit_nothing_and_runs_see_their_values() {
    let env = env_param_bench(
        &[("x", 0.9)],
        "echo \"x=$X\"; awk -v x=\"$X\" 'BEGIN { printf \"score: %.6f\\n\", (x - 0.3) * (x - 0.3) }'\n",
    );
    env.ok(&[
        "program",
        "create",
        "s",
        "--benchmark",
        env.bench.to_str().unwrap(),
    ]);
    let head_before = Repo::open(&env.bench).unwrap().head_commit().unwrap();
    env.ok(&["run", "s", "-n", "12", "--plain"]);
    let store = env.store();
    let p = store.program("s").unwrap();
    let attempts = store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(attempts.len(), 13, "baseline + 12");
    // The baseline ran the default; the frontier only improved.
    assert!((attempts[0].primary_value.unwrap() - 0.36).abs() < 1e-9);
    let mut kept = 0;
    for a in &attempts[1..] {
        assert_eq!(
            a.commit.as_deref(),
            Some(a.parent_commit.as_str()),
            "a parameter-only attempt makes no commit: {a:?}"
        );
        assert_ne!(a.status, AttemptStatus::Duplicate, "{a:?}");
        let x = a.params.as_ref().unwrap()["x"]
            .as_str()
            .unwrap()
            .to_string();
        let runs = store.runs_of_attempt(a.id).unwrap();
        assert_eq!(runs.len(), 1);
        let log = std::fs::read_to_string(
            std::path::Path::new(runs[0].log_dir.as_ref().unwrap()).join("stdout.log"),
        )
        .unwrap();
        assert!(log.contains(&format!("x={x}\n")), "run of x={x} saw {log}");
        let expected = (x.parse::<f64>().unwrap() - 0.3).powi(2);
        assert!((a.primary_value.unwrap() - expected).abs() < 1e-5);
        kept += (a.status == AttemptStatus::Kept) as usize;
    }
    assert!(kept >= 1, "some value beats x = 0.9");
    assert_eq!(
        Repo::open(&env.bench).unwrap().head_commit().unwrap(),
        head_before,
        "the benchmark's checkout is untouched"
    );
    // The frontier is the best value seen.
    let best = attempts[1..]
        .iter()
        .filter_map(|a| a.primary_value)
        .fold(0.36f64, f64::min);
    assert_eq!(store.program("s").unwrap().frontier_value, Some(best));
}

/// `picidae run` with extra environment (a short agent backoff).
fn run_with_env(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut c = common::bin();
    c.arg("--project").arg(&env.project).args(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn an_agent_that_says_done_ends_the_loop_cleanly() {
    for pipeline in ["0", "1"] {
        let env = value_env("10\n");
        env.queue_program("p", &["5", "DONE", "3"], &[]);
        let out = env.picidae(&["run", "p", "-n", "5", "--plain", "--pipeline", pipeline]);
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        assert!(
            log.contains("stopped: the agent has nothing more to propose"),
            "{log}"
        );
        let store = env.store();
        let p = store.program("p").unwrap();
        assert_eq!(p.frontier_value, Some(5.0), "{log}");
        assert_eq!(p.status, picidae_core::ProgramStatus::Active);
        let done = store.attempt_by_seq(p.id, 3).unwrap().unwrap();
        assert_eq!(
            done.note.as_deref(),
            Some("the agent said it has nothing more to propose")
        );
        assert!(store.runs_of_attempt(done.id).unwrap().is_empty());
        // The turn after it was never asked for.
        assert!(store.attempt_by_seq(p.id, 4).unwrap().is_none(), "{log}");
        assert_eq!(
            std::fs::read_to_string(env.path("queue.txt")).unwrap(),
            "3\n"
        );
    }
}

#[test]
fn repeated_agent_failures_back_off_then_pause_the_program() {
    for pipeline in ["0", "1"] {
        let env = value_env("10\n");
        // Two failures, a success (which resets the count), then failures until the pause.
        let mut queue = vec!["FAIL", "FAIL", "4"];
        queue.extend(["FAIL"; 8]);
        env.queue_program("p", &queue, &[]);
        let started = std::time::Instant::now();
        let out = run_with_env(
            &env,
            &["run", "p", "-n", "30", "--plain", "--pipeline", pipeline],
            &[("PICIDAE_AGENT_BACKOFF_MS", "40")],
        );
        let elapsed = started.elapsed();
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        assert!(
            log.contains(
                "stopped: paused after 5 agent failures in a row; the last: agent command exited \
                 with exit code 1; stderr: out of credit"
            ),
            "{log}"
        );
        // Waits of 40, 80, 160 and 320 ms before the pausing failure, twice 40 before.
        assert!(
            elapsed >= std::time::Duration::from_millis(680),
            "{elapsed:?}"
        );
        let store = env.store();
        let p = store.program("p").unwrap();
        assert_eq!(p.status, picidae_core::ProgramStatus::Paused);
        assert_eq!(p.frontier_value, Some(4.0));
        // Baseline, two failures, the success, five failures; nothing after the pause.
        let attempts = store
            .attempts(&AttemptFilter {
                program_id: Some(p.id),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(attempts.len(), 9, "{attempts:#?}");
        let last = attempts.last().unwrap();
        assert_eq!(last.status, AttemptStatus::Failed);
        assert!(
            last.note
                .as_deref()
                .unwrap()
                .contains("(paused after 5 agent failures in a row"),
            "{last:#?}"
        );
        // The reason stays on the program, for `program list` and the cockpit.
        let why = "paused after 5 agent failures in a row; the last: agent command exited with \
                   exit code 1; stderr: out of credit";
        let reason = p.paused_reason.clone().unwrap_or_default();
        assert!(reason.starts_with(why), "{reason}");
        let listed = env.ok(&["program", "list"]);
        assert!(listed.contains(&format!("p: {reason}")), "{listed}");
        // A paused program does not start until it is resumed.
        let out = env.picidae(&["run", "p", "-n", "1", "--plain"]);
        assert!(text(&out).contains("stopped: paused"), "{}", text(&out));
        env.ok(&["program", "resume", "p"]);
        let p = env.store().program("p").unwrap();
        assert_eq!(p.status, picidae_core::ProgramStatus::Active);
        assert_eq!(p.paused_reason, None, "a resume clears the reason");
    }
}

#[test]
fn the_agents_own_commits_are_its_change_on_top_of_the_frontier() {
    let env = value_env("10\n");
    env.queue_program("p", &["COMMIT 4", "COMMIT 3", "2"], &[]);
    let out = env.ok(&["run", "p", "-n", "3", "--plain"]);
    assert!(out.contains("3 kept"), "{out}");
    let store = env.store();
    let p = store.program("p").unwrap();
    assert_eq!(p.frontier_value, Some(2.0));
    let repo = Repo::open(&env.bench).unwrap();
    for seq in [2, 3, 4] {
        let a = store.attempt_by_seq(p.id, seq).unwrap().unwrap();
        assert_eq!(a.status, AttemptStatus::Kept, "{a:#?}");
        let commit = a.commit.clone().unwrap();
        // One commit of Picidae's, whose parent is the frontier the agent started from.
        assert_eq!(
            repo.resolve(&format!("{commit}^")).unwrap().as_deref(),
            Some(a.parent_commit.as_str())
        );
        let message = repo.commit_message(&commit).unwrap();
        assert!(
            message.contains(&format!("Picidae-Attempt: {seq}")),
            "{message}"
        );
        let note = a.note.clone().unwrap_or_default();
        assert_eq!(
            note.contains("the agent committed in its checkout"),
            seq != 4,
            "{note}"
        );
    }
    let patch = repo
        .show_patch(
            &store
                .attempt_by_seq(p.id, 3)
                .unwrap()
                .unwrap()
                .commit
                .unwrap(),
        )
        .unwrap();
    assert!(patch.contains("-4") && patch.contains("+3"), "{patch}");
}

#[test]
fn new_files_outside_the_boundary_are_ignored_never_committed_or_run() {
    // A run that finds a stray file scores 0: were it in the run's checkout, the attempt
    // would win on it.
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 10.0)),
        (
            "run.sh",
            "if [ -e notes.txt ] || [ -e tmp/run.log ]; then echo 'score: 0'; else echo \"score: $(cat value.txt)\"; fi\n",
        ),
        ("value.txt", "10\n"),
    ]);
    env.queue_program("p", &["STRAY 4", "OUT"], &[]);
    let out = env.ok(&["run", "p", "-n", "2", "--plain"]);
    assert!(out.contains("1 kept, 0 discarded, 1 rejected"), "{out}");
    let store = env.store();
    let p = store.program("p").unwrap();
    assert_eq!(
        p.frontier_value,
        Some(4.0),
        "the stray files never reached a run"
    );
    let a = store.attempt_by_seq(p.id, 2).unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Kept, "{a:#?}");
    let note = a.note.clone().unwrap();
    assert!(
        note.contains("ignored new files outside the boundary")
            && note.contains("notes.txt")
            && note.contains("tmp/run.log"),
        "{note}"
    );
    let repo = Repo::open(&env.bench).unwrap();
    let files = repo.tracked_files(a.commit.as_deref().unwrap()).unwrap();
    assert_eq!(files, ["picidae.toml", "run.sh", "value.txt"]);
    // Editing a file outside the boundary is still a violation.
    let out = store.attempt_by_seq(p.id, 3).unwrap().unwrap();
    assert_eq!(out.status, AttemptStatus::Rejected);
    assert!(out.note.as_deref().unwrap().contains("run.sh"), "{out:#?}");
}

#[test]
fn an_agent_committing_everything_does_not_commit_the_hidden_files_absence() {
    // The hidden files are deleted from the agent's checkout; `git add -A && git commit`
    // records their deletion, which is not the agent's change.
    let env = Env::truth(common::GOOD_EVALUATOR, "seeds = 1\nbaseline_seeds = 2");
    env.queue_program("p", &["COMMIT 5 5 committed"], &[]);
    let out = env.picidae(&["run", "p", "-n", "1", "--plain"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let store = env.store();
    let p = store.program("p").unwrap();
    let a = store.attempt_by_seq(p.id, 2).unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Kept, "{a:#?}\n{log}");
    assert_eq!(a.touched, ["value.txt"], "{a:#?}");
    let repo = Repo::open(&env.bench).unwrap();
    let files = repo.tracked_files(a.commit.as_deref().unwrap()).unwrap();
    assert!(files.iter().any(|f| f.starts_with("gold/")), "{files:?}");
}

/// A program.md's `sweep` block directs the built-in sweep: only its parameters move, the
/// others keep their values; a block the sweep cannot follow is refused when the program is
/// made, naming program.md's line and the field.
#[test]
fn a_sweep_block_in_program_md_directs_the_sweep() {
    let env = env_param_bench(
        &[("x", 0.9), ("y", 0.5)],
        "awk -v x=\"$X\" -v y=\"$Y\" 'BEGIN { printf \"score: %.6f\\n\", (x - 0.3)^2 + y^2 }'\n",
    );
    let bad = env.path("bad.md");
    std::fs::write(
        &bad,
        "Tune x.\n\n```sweep\nradius = 0.1\nparams = [\"z\"]\n```\n",
    )
    .unwrap();
    let o = env.picidae(&[
        "program",
        "create",
        "bad",
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--program-md",
        bad.to_str().unwrap(),
    ]);
    let err = text(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("program.md line 5") && err.contains("`params`") && err.contains("\"z\""),
        "{err}"
    );
    let good = env.path("good.md");
    std::fs::write(
        &good,
        "Only x matters; small steps.\n\n~~~sweep\nparams = [\"x\"]\nradius = 0.1\n~~~\n",
    )
    .unwrap();
    env.ok(&[
        "program",
        "create",
        "s",
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--program-md",
        good.to_str().unwrap(),
    ]);
    env.ok(&["run", "s", "-n", "8", "--plain"]);
    let attempts = common::attempts(&env.store(), "s");
    assert_eq!(attempts.len(), 9, "baseline + 8");
    // Each proposal moves x by at most 0.1 of its range (0.2) from a frontier it could have
    // been made on (one proposal may be made while the one before runs), and leaves y alone.
    let mut frontiers = vec![0.9];
    for a in &attempts[1..] {
        let params = a.params.as_ref().unwrap();
        assert_eq!(params["y"].as_str(), Some("0.5"), "{a:?}");
        let x: f64 = params["x"].as_str().unwrap().parse().unwrap();
        assert!(
            frontiers.iter().any(|f| (x - f).abs() <= 0.2 + 1e-3),
            "{x} from {frontiers:?}: {a:?}"
        );
        assert!(!a.hypothesis.contains('y'), "{}", a.hypothesis);
        if a.status == AttemptStatus::Kept {
            frontiers.push(x);
        }
    }
    assert!(frontiers.len() > 1, "nothing kept: {attempts:?}");
}
