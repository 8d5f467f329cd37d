//! Killing `picidae run` with SIGKILL mid-loop, and stopping it with Ctrl-C: the store reopens
//! with every finished run intact, orphans are killed, and nothing is lost or counted twice.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{bin, pid_alive, read_pids, text, value_contract, Env};
use picidae_core::{AttemptStatus, RunStatus};
use picidae_store::{AttemptFilter, Run};

/// A benchmark whose run takes a while and records its pid; the agent lowers the value by one
/// each attempt, so every attempt is kept.
/// The run of value 996 hangs for a minute the first time (it leaves `marker` behind).
fn slow_env() -> (Env, std::path::PathBuf, std::path::PathBuf) {
    let scratch = tempfile::tempdir().unwrap().keep();
    let tmp_pids = scratch.join("pids");
    let marker = scratch.join("marker");
    let run = format!(
        "echo $$ >> '{p}'\nv=$(cat value.txt)\nif [ \"$v\" -le 996 ] && [ ! -e '{m}' ]; then touch '{m}'; sleep 60; fi\nsleep 0.3\necho \"score: $v\"\n",
        p = tmp_pids.display(),
        m = marker.display()
    );
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 20.0)),
        ("run.sh", &run),
        ("value.txt", "1000\n"),
    ]);
    let cmd = env.down_agent("down.sh");
    env.command_program("p", &env.bench.clone(), &cmd);
    (env, tmp_pids, marker)
}

fn spawn_run(env: &Env, n: &str) -> Child {
    bin()
        .arg("--project")
        .arg(&env.project)
        .args(["run", "p", "-n", n, "--plain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn all_runs(env: &Env) -> Vec<Run> {
    let store = env.store();
    let p = store.program("p").unwrap();
    let mut out = Vec::new();
    for a in store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap()
    {
        out.extend(store.runs_of_attempt(a.id).unwrap());
    }
    out
}

/// Wait until at least `finished` runs are finished and one is running.
fn wait_for_progress(env: &Env, finished: usize, deadline: Duration) {
    let start = Instant::now();
    loop {
        let runs = all_runs(env);
        let done = runs.iter().filter(|r| r.status.is_terminal()).count();
        let running = runs.iter().any(|r| r.status == RunStatus::Running);
        if done >= finished && running {
            return;
        }
        assert!(start.elapsed() < deadline, "no progress: {runs:?}");
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn kill_9_mid_loop_loses_nothing_and_counts_nothing_twice() {
    let (env, pids, marker) = slow_env();
    let mut child = spawn_run(&env, "50");
    // Wait until the hanging run (attempt value 996) is in flight, then SIGKILL the harness.
    let start = Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the hanging run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_progress(&env, 4, Duration::from_secs(10));
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let orphan = *read_pids(&pids).last().unwrap();
    assert!(
        pid_alive(orphan),
        "the run in flight outlives a SIGKILLed harness"
    );

    // The store reopens, is sound, and holds the finished runs.
    let store = env.store();
    store.integrity_check().unwrap();
    drop(store);
    let before: BTreeMap<i64, Run> = all_runs(&env)
        .into_iter()
        .filter(|r| r.status.is_terminal())
        .map(|r| (r.id, r))
        .collect();
    assert!(before.len() >= 3, "{before:?}");
    let in_flight: Vec<Run> = all_runs(&env)
        .into_iter()
        .filter(|r| r.status == RunStatus::Running)
        .collect();
    assert_eq!(in_flight.len(), 1, "exactly the run in flight is open");

    // Start again: recovery closes the interrupted run, kills its orphaned process, resumes
    // its attempt, then carries on with two new ones (`-n` counts new attempts).
    let restart = Instant::now();
    let out = env.ok(&["run", "p", "-n", "2", "--plain"]);
    assert!(out.contains("3 attempts"), "{out}");
    assert!(restart.elapsed() < Duration::from_secs(30));
    assert!(
        !pid_alive(orphan),
        "recovery killed the orphaned run {orphan}"
    );
    for pid in read_pids(&pids) {
        assert!(!pid_alive(pid), "run process {pid} outlived the harness");
    }
    let after: BTreeMap<i64, Run> = all_runs(&env).into_iter().map(|r| (r.id, r)).collect();
    for (id, r) in &before {
        assert_eq!(
            after.get(id),
            Some(r),
            "finished run {id} changed after recovery"
        );
    }
    let interrupted = &after[&in_flight[0].id];
    assert_eq!(interrupted.status, RunStatus::Cancelled);
    assert!(interrupted
        .error
        .as_deref()
        .unwrap()
        .contains("interrupted"));
    assert!(after.values().all(|r| r.status.is_terminal()));

    // No attempt counts a seed twice, every attempt is decided, and the frontier is the best.
    let store = env.store();
    let p = store.program("p").unwrap();
    let attempts = store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap();
    for a in &attempts {
        assert!(a.status.is_final(), "attempt {} left {}", a.seq, a.status);
        let ok = store
            .runs_of_attempt(a.id)
            .unwrap()
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .count();
        assert!(
            ok <= 1,
            "attempt {} has {ok} successful runs with seeds = 1",
            a.seq
        );
    }
    let seqs: Vec<i64> = attempts.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (1..=attempts.len() as i64).collect::<Vec<_>>());
    let best = attempts
        .iter()
        .filter(|a| a.status == AttemptStatus::Kept)
        .filter_map(|a| a.primary_value)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(p.frontier_value, Some(best));
}

#[test]
fn ctrl_c_finishes_the_attempt_in_flight_and_stops_cleanly() {
    let (env, _pids, _marker) = slow_env();
    let child = spawn_run(&env, "50");
    wait_for_progress(&env, 2, Duration::from_secs(60));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(start.elapsed() < Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stopped: stop requested"), "{stdout}");
    let runs = all_runs(&env);
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{runs:?}"
    );
    let store = env.store();
    let p = store.program("p").unwrap();
    assert!(store.undecided_attempts(p.id).unwrap().is_empty());
}

#[test]
fn a_second_loop_on_the_same_program_is_refused() {
    let (env, _pids, _marker) = slow_env();
    let mut first = spawn_run(&env, "50");
    wait_for_progress(&env, 1, Duration::from_secs(60));
    let out = env.picidae(&["run", "p", "-n", "1", "--plain"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already being run"), "{err}");
    // The refused loop touched nothing: the first one's run is still in flight.
    assert!(all_runs(&env)
        .iter()
        .any(|r| r.status == RunStatus::Running));
    first.kill().unwrap();
    let _ = first.wait();
}
