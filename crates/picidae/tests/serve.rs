//! `picidae serve`: several programs at once on shared slots, steering through the store,
//! budgets, and a SIGKILL of the coordinator with runs in flight.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    bin, http, pid_alive, read_pids, serial, serve_address, text, value_contract, wait_until, Env,
};
use picidae_core::{AttemptStatus, RunStatus};
use picidae_git::{Identity, Repo};
use picidae_store::{AttemptFilter, Store};

/// A project with programs `a` and `b`, each on its own benchmark whose run takes `secs` and
/// records its pid; each program's agent lowers the value by one per attempt.
fn two_programs(secs: f64) -> (Env, std::path::PathBuf) {
    let pids = tempfile::tempdir().unwrap().keep().join("pids");
    let run = format!(
        "echo $$ >> '{p}'\nsleep {secs}\necho \"score: $(cat value.txt)\"\n",
        p = pids.display()
    );
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 30.0)),
        ("run.sh", &run),
        ("value.txt", "1000\n"),
    ]);
    let cmd = env.down_agent("down.sh");
    // A second benchmark, a copy of the first.
    let bench_b = env.path("bench-b");
    std::fs::create_dir_all(&bench_b).unwrap();
    for f in ["picidae.toml", "run.sh", "value.txt"] {
        std::fs::copy(env.bench.join(f), bench_b.join(f)).unwrap();
    }
    Repo::init(&bench_b, "benchmark b", Identity::default()).unwrap();
    for (name, bench) in [("a", env.bench.clone()), ("b", bench_b)] {
        env.command_program(name, &bench, &cmd);
    }
    (env, pids)
}

fn spawn_serve(env: &Env, slots: &str) -> Child {
    bin()
        .arg("--project")
        .arg(&env.project)
        .args(["serve", "--slots", slots, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn interrupt(child: Child) -> std::process::Output {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    child.wait_with_output().unwrap()
}

fn runs(store: &Store, program: &str) -> Vec<picidae_store::Run> {
    let p = store.program(program).unwrap();
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

#[test]
fn programs_run_side_by_side_and_steering_takes_effect() {
    let _serial = serial();
    let (env, _pids) = two_programs(0.4);
    let child = spawn_serve(&env, "2");
    // Both programs make progress, and with two slots their runs overlap in time.
    wait_until(
        Duration::from_secs(60),
        || {
            let s = env.store();
            runs(&s, "a").len() >= 3 && runs(&s, "b").len() >= 3
        },
        "both programs to run",
    );
    let store = env.store();
    let (ra, rb) = (runs(&store, "a"), runs(&store, "b"));
    let overlap = ra.iter().any(|x| {
        rb.iter().any(
            |y| match (x.started_at, x.finished_at, y.started_at, y.finished_at) {
                (Some(s1), Some(e1), Some(s2), Some(e2)) => s1 < e2 && s2 < e1,
                _ => false,
            },
        )
    });
    assert!(overlap, "no two runs of a and b overlapped");

    // Pause b: its attempt in flight finishes and no new run starts.
    env.ok(&["program", "pause", "b"]);
    std::thread::sleep(Duration::from_millis(1500));
    let frozen = runs(&env.store(), "b").len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        runs(&env.store(), "b").len(),
        frozen,
        "a paused program started runs"
    );
    // A follow-up queued for a reaches its next agent prompt.
    env.ok(&["program", "followup", "a", "try a cosine schedule"]);
    wait_until(
        Duration::from_secs(30),
        || {
            let s = env.store();
            let p = s.program("a").unwrap();
            s.open_followups(p.id).unwrap().is_empty()
        },
        "the follow-up to be consumed",
    );
    // Resume b: it runs again.
    env.ok(&["program", "resume", "b"]);
    wait_until(
        Duration::from_secs(30),
        || runs(&env.store(), "b").len() > frozen,
        "b to resume",
    );
    let out = interrupt(child);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[b] loop ended (paused)"), "{stdout}");
    let prompts = env.project.join(".picidae/attempts/a");
    let mut seen = false;
    for e in std::fs::read_dir(prompts).unwrap().flatten() {
        if let Ok(t) = std::fs::read_to_string(e.path().join("prompt.md")) {
            seen |= t.contains("try a cosine schedule");
        }
    }
    assert!(seen, "no prompt carried the follow-up");
    let store = env.store();
    assert!(runs(&store, "a")
        .iter()
        .all(|r| r.status == RunStatus::Succeeded));
}

#[test]
fn a_run_budget_stops_dispatch_at_the_limit() {
    let _serial = serial();
    let (env, _pids) = two_programs(0.05);
    env.ok(&["program", "set", "a", "--max-runs", "5"]);
    env.ok(&["program", "pause", "b"]);
    let child = spawn_serve(&env, "1");
    wait_until(
        Duration::from_secs(60),
        || runs(&env.store(), "a").len() >= 5,
        "five runs",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let out = interrupt(child);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("run budget is spent (5 of 5 runs)"),
        "{stdout}"
    );
    assert_eq!(runs(&env.store(), "a").len(), 5, "{}", text(&out));
    assert!(runs(&env.store(), "b").is_empty());
}

#[test]
fn sigkill_of_the_coordinator_loses_and_double_counts_nothing() {
    let _serial = serial();
    let (env, pids) = two_programs(0.6);
    let mut child = spawn_serve(&env, "2");
    wait_until(
        Duration::from_secs(60),
        || {
            let s = env.store();
            let all: Vec<_> = runs(&s, "a").into_iter().chain(runs(&s, "b")).collect();
            all.iter().filter(|r| r.status.is_terminal()).count() >= 4
                && all.iter().any(|r| r.status == RunStatus::Running)
        },
        "a run in flight",
    );
    child.kill().unwrap();
    let _ = child.wait();
    let orphans: Vec<i32> = read_pids(&pids);
    // Restart: recovery closes the interrupted runs and the loops carry on.
    let child = spawn_serve(&env, "2");
    wait_until(
        Duration::from_secs(60),
        || {
            let s = env.store();
            runs(&s, "a")
                .iter()
                .chain(runs(&s, "b").iter())
                .filter(|r| r.status == RunStatus::Succeeded)
                .count()
                >= 8
        },
        "progress after the restart",
    );
    let out = interrupt(child);
    assert!(out.status.success(), "{}", text(&out));
    for pid in orphans {
        assert!(!pid_alive(pid), "run process {pid} survived");
    }
    let store = env.store();
    store.integrity_check().unwrap();
    for name in ["a", "b"] {
        let p = store.program(name).unwrap();
        let all = runs(&store, name);
        assert!(
            all.iter().all(|r| r.status.is_terminal()),
            "{name}: {all:?}"
        );
        let interrupted = all
            .iter()
            .filter(|r| r.status == RunStatus::Cancelled)
            .count();
        assert!(interrupted <= 1, "{name}: {interrupted} interrupted runs");
        for a in store
            .attempts(&AttemptFilter {
                program_id: Some(p.id),
                ..Default::default()
            })
            .unwrap()
        {
            // Decided, or a proposal still queued for the next start.
            assert!(
                a.status.is_final() || a.status == AttemptStatus::Queued,
                "{name} #{} left {}",
                a.seq,
                a.status
            );
            let ok = store
                .runs_of_attempt(a.id)
                .unwrap()
                .iter()
                .filter(|r| r.status == RunStatus::Succeeded)
                .count();
            let ran = matches!(a.status, AttemptStatus::Kept | AttemptStatus::Discarded);
            assert_eq!(
                ok,
                usize::from(ran),
                "{name} #{} ({}): {ok} successful runs",
                a.seq,
                a.status
            );
        }
    }
}

/// One HTTP/1.1 request over a plain socket; returns (status, body).
#[test]
fn the_http_api_refuses_unauthenticated_mutations() {
    let _serial = serial();
    let (env, _pids) = two_programs(0.05);
    env.ok(&["program", "pause", "a"]);
    env.ok(&["program", "pause", "b"]);
    let mut child = spawn_serve(&env, "1");
    let addr = serve_address(&mut child);
    let (status, body) = http(&addr, "GET", "/api/programs", None, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"a\""), "{body}");
    // No token: refused, and nothing changed.
    let (status, _) = http(&addr, "POST", "/api/programs/a/resume", None, None);
    assert_eq!(status, 401);
    let (status, _) = http(
        &addr,
        "POST",
        "/api/programs/a/resume",
        Some("pcd_forged"),
        None,
    );
    assert_eq!(status, 401);
    assert_eq!(
        env.store().program("a").unwrap().status,
        picidae_core::ProgramStatus::Paused
    );
    // A read-only token may read but not steer.
    let ro = env.ok(&["token", "create", "viewer", "--read-only"]);
    let ro = ro.lines().nth(1).unwrap().trim().to_string();
    let (status, _) = http(&addr, "POST", "/api/programs/a/resume", Some(&ro), None);
    assert_eq!(status, 403);
    // A read-write token steers the running coordinator: a starts running.
    let rw = env.ok(&["token", "create", "lead"]);
    let rw = rw.lines().nth(1).unwrap().trim().to_string();
    let (status, body) = http(&addr, "POST", "/api/programs/a/resume", Some(&rw), None);
    assert!((200..300).contains(&status), "{status} {body}");
    wait_until(
        Duration::from_secs(30),
        || !runs(&env.store(), "a").is_empty(),
        "a to run",
    );
    let (status, metrics) = http(&addr, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    assert!(metrics.contains("picidae_slots_capacity 1"), "{metrics}");
    assert!(metrics.contains("picidae_runs{"), "{metrics}");
    let out = interrupt(child);
    assert!(out.status.success());
}

/// Busy fraction of explore runs between the first one's start and the last one's end.
fn utilisation(store: &Store, program: &str) -> f64 {
    let p = store.program(program).unwrap();
    let mut spans = Vec::new();
    for a in store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == picidae_core::AttemptKind::Explore)
    {
        for r in store.runs_of_attempt(a.id).unwrap() {
            if let (Some(s), Some(e)) = (r.started_at, r.finished_at) {
                spans.push((s, e));
            }
        }
    }
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    let busy: i64 = spans.iter().map(|s| s.1 - s.0).sum();
    busy as f64 / (end - start) as f64
}

/// A program whose agent takes `think` seconds and never improves (every value is new and
/// worse), so nothing goes stale.
fn slow_thinker(env: &Env, name: &str, bench: &std::path::Path, think: f64) {
    let agent = env.path(&format!("think-{name}.sh"));
    std::fs::write(
        &agent,
        format!(
            "sleep {think}\nv=$((5000 + PICIDAE_ATTEMPT)); echo $v > value.txt; echo \"HYPOTHESIS: value $v\"\n"
        ),
    )
    .unwrap();
    env.command_program(name, bench, &format!("sh {}", agent.display()));
}

#[test]
fn pipelining_keeps_the_slot_busy_while_a_slow_agent_thinks() {
    let _serial = serial();
    let mut figures = Vec::new();
    for depth in ["0", "2"] {
        let env = Env::new(&[
            ("picidae.toml", &value_contract("sh run.sh", 30.0)),
            ("run.sh", "sleep 1\necho \"score: $(cat value.txt)\"\n"),
            ("value.txt", "1000\n"),
        ]);
        slow_thinker(&env, "p", &env.bench.clone(), 1.0);
        env.ok(&["run", "p", "-n", "4", "--pipeline", depth, "--plain"]);
        let u = utilisation(&env.store(), "p");
        figures.push(u);
    }
    eprintln!(
        "slot utilisation: serial {:.2}, pipelined {:.2}",
        figures[0], figures[1]
    );
    assert!(
        figures[0] < 0.65,
        "serial loop idles while the agent thinks: {figures:?}"
    );
    assert!(
        figures[1] > 0.8,
        "pipelined loop keeps the slot busy: {figures:?}"
    );
}

#[test]
fn two_programs_share_one_slot_by_weight() {
    let _serial = serial();
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 30.0)),
        ("run.sh", "sleep 0.25\necho \"score: $(cat value.txt)\"\n"),
        ("value.txt", "1000\n"),
    ]);
    let bench_b = env.path("bench-b");
    std::fs::create_dir_all(&bench_b).unwrap();
    for f in ["picidae.toml", "run.sh", "value.txt"] {
        std::fs::copy(env.bench.join(f), bench_b.join(f)).unwrap();
    }
    Repo::init(&bench_b, "benchmark b", Identity::default()).unwrap();
    slow_thinker(&env, "a", &env.bench.clone(), 0.0);
    slow_thinker(&env, "b", &bench_b, 0.0);
    env.ok(&["program", "set", "a", "--weight", "3"]);
    let child = spawn_serve(&env, "1");
    // Count runs once both programs are past their baselines.
    wait_until(
        Duration::from_secs(60),
        || {
            let s = env.store();
            runs(&s, "a").len() >= 3 && runs(&s, "b").len() >= 3
        },
        "both programs to start exploring",
    );
    let count = |s: &Store, p: &str| runs(s, p).len() as f64;
    let (a0, b0) = {
        let s = env.store();
        (count(&s, "a"), count(&s, "b"))
    };
    std::thread::sleep(Duration::from_secs(8));
    let (a1, b1) = {
        let s = env.store();
        (count(&s, "a"), count(&s, "b"))
    };
    let out = interrupt(child);
    assert!(out.status.success(), "{}", text(&out));
    let (da, db) = (a1 - a0, b1 - b0);
    let ratio = da / db.max(1.0);
    eprintln!("runs while both competed: a {da}, b {db}, ratio {ratio:.2}");
    assert!(
        (2.0..=4.5).contains(&ratio),
        "a {da}, b {db}: ratio {ratio:.2}, weights 3:1"
    );
}

#[test]
fn the_cli_steers_through_a_running_coordinator_and_the_store_without_one() {
    let _serial = serial();
    let (env, _pids) = two_programs(0.3);
    let discovery = env.project.join(".picidae").join("serve.json");
    let child = spawn_serve(&env, "1");
    wait_until(
        Duration::from_secs(30),
        || discovery.is_file(),
        "the coordinator to leave its address",
    );
    let mode = std::fs::metadata(&discovery).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
        0,
        "the token file is private"
    );
    let out = env.picidae(&["program", "pause", "a"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("through the coordinator at http://127.0.0.1:"),
        "{said}"
    );
    assert_eq!(
        env.store().program("a").unwrap().status,
        picidae_core::ProgramStatus::Paused
    );
    let said = text(&env.picidae(&["program", "followup", "b", "try a wider layer"]));
    assert!(said.contains("through the coordinator"), "{said}");
    let said = text(&env.picidae(&["program", "set", "b", "--weight", "2", "--max-runs", "500"]));
    assert!(said.contains("through the coordinator"), "{said}");
    let store = env.store();
    let b = store.program("b").unwrap();
    assert_eq!((b.weight, b.max_runs), (2.0, Some(500)));
    let f = store.open_followups(b.id).unwrap();
    // The API records the token's name as the author: the call went through it.
    assert_eq!(f.last().unwrap().author, "local CLI (picidae serve)");
    let out = interrupt(child);
    assert!(out.status.success());
    // Gone with the coordinator: the file, and the token it held.
    assert!(!discovery.exists());
    assert!(env
        .store()
        .tokens()
        .unwrap()
        .iter()
        .filter(|t| t.name == "local CLI (picidae serve)")
        .all(|t| t.revoked));
    let said = text(&env.picidae(&["program", "resume", "a"]));
    assert!(!said.contains("through the coordinator"), "{said}");
    assert_eq!(
        env.store().program("a").unwrap().status,
        picidae_core::ProgramStatus::Active
    );
}

/// Program `a` whose explored attempt #2 (value 999) runs for a minute (its shell and its
/// `sleep` record their pids) while every other run is quick.
fn one_slow_attempt() -> (Env, std::path::PathBuf) {
    let pids = tempfile::tempdir().unwrap().keep().join("pids");
    let run = format!(
        "echo $$ >> '{p}'\nif [ \"$(cat value.txt)\" = 999 ]; then sleep 60 & echo $! >> '{p}'; wait; fi\n\
         echo \"score: $(cat value.txt)\"\n",
        p = pids.display()
    );
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 120.0)),
        ("run.sh", &run),
        ("value.txt", "1000\n"),
    ]);
    let cmd = env.down_agent("down.sh");
    env.command_program("a", &env.bench.clone(), &cmd);
    (env, pids)
}

/// The run of attempt `seq` of program `a`, once it is running.
fn running_run_of(env: &Env, seq: i64) -> picidae_store::Run {
    let mut found = None;
    wait_until(
        Duration::from_secs(60),
        || {
            let s = env.store();
            let p = s.program("a").unwrap();
            found = s
                .attempt_by_seq(p.id, seq)
                .unwrap()
                .and_then(|a| s.runs_of_attempt(a.id).unwrap().into_iter().next())
                .filter(|r| r.status == RunStatus::Running);
            found.is_some()
        },
        "the slow run to start",
    );
    found.unwrap()
}

/// The pids the slow run recorded (its shell and its `sleep`), once both are written.
fn slow_pids(pids: &std::path::Path) -> Vec<i32> {
    let mut out = Vec::new();
    wait_until(
        Duration::from_secs(20),
        || {
            // Baseline: one pid; the slow run: its shell, then its sleep.
            out = read_pids(pids);
            out.len() >= 3
        },
        "the slow run's pids",
    );
    out[out.len() - 2..].to_vec()
}

/// A cancel request written to the store by another process (this test, as the API would)
/// stops the run within about a second through the executor: its processes are gone, it is
/// recorded `cancelled` by the user once, its attempt is decided failed, its seed never runs
/// again, and the loop carries on with the next attempt.
#[test]
fn a_run_cancelled_through_the_store_stops_at_once_and_is_not_run_again() {
    let _serial = serial();
    let (env, pids) = one_slow_attempt();
    let child = spawn_serve(&env, "1");
    let run = running_run_of(&env, 2);
    let procs = slow_pids(&pids);
    assert!(procs.iter().all(|p| pid_alive(*p)), "{procs:?}");
    // Another process asks: `picidae cancel`, which writes the request to the store.
    let asked = Instant::now();
    let out = env.ok(&["cancel", &run.id.to_string()]);
    assert!(out.contains("cancel requested"), "{out}");
    wait_until(
        Duration::from_secs(10),
        || env.store().run(run.id).unwrap().status == RunStatus::Cancelled,
        "the run to be recorded cancelled",
    );
    let took = asked.elapsed();
    println!("run {} cancelled {took:?} after the request", run.id);
    assert!(took < Duration::from_secs(3), "the cancel took {took:?}");
    wait_until(
        Duration::from_secs(5),
        || procs.iter().all(|p| !pid_alive(*p)),
        "the run's processes to end",
    );
    let r = env.store().run(run.id).unwrap();
    assert_eq!(r.error.as_deref(), Some("cancelled by user"), "{r:?}");
    // The loop goes on: attempt #3 is decided after it.
    wait_until(
        Duration::from_secs(60),
        || {
            let s = env.store();
            let p = s.program("a").unwrap();
            s.attempt_by_seq(p.id, 3)
                .unwrap()
                .is_some_and(|a| a.status.is_final())
        },
        "the next attempt",
    );
    let out = interrupt(child);
    assert!(out.status.success(), "{}", text(&out));
    let s = env.store();
    let p = s.program("a").unwrap();
    let a = s.attempt_by_seq(p.id, 2).unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Failed);
    let note = a.note.unwrap_or_default();
    assert!(
        note.contains(&format!("run {} (seed 0) cancelled by user", run.id)),
        "{note}"
    );
    let runs = s.runs_of_attempt(a.id).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    // Exactly one cancelled run in the whole program: nothing else was stopped.
    let cancelled = runs_all(&s, "a")
        .into_iter()
        .filter(|r| r.status == RunStatus::Cancelled)
        .count();
    assert_eq!(cancelled, 1);
    // A finished run cannot be cancelled, and saying so is an error.
    let again = env.picidae(&["cancel", &run.id.to_string()]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already finished"),
        "{}",
        text(&again)
    );
    // A restart (crash recovery included) leaves the decided attempt and its run alone.
    let before = attempts_of(&s, "a");
    let child = spawn_serve(&env, "1");
    wait_until(
        Duration::from_secs(60),
        || attempts_of(&env.store(), "a") >= before + 2,
        "progress after the restart",
    );
    let out = interrupt(child);
    assert!(out.status.success(), "{}", text(&out));
    let s = env.store();
    assert_eq!(s.runs_of_attempt(a.id).unwrap().len(), 1);
    assert_eq!(s.attempt(a.id).unwrap().status, AttemptStatus::Failed);
}

/// A cancel requested while no coordinator runs (it was killed with the run in flight) is
/// honoured by recovery: the orphaned run is killed and closed as cancelled by the user, its
/// seed is not run again, and its attempt is decided failed.
#[test]
fn recovery_honours_a_cancel_requested_while_the_coordinator_was_down() {
    let _serial = serial();
    let (env, pids) = one_slow_attempt();
    let mut child = spawn_serve(&env, "1");
    let run = running_run_of(&env, 2);
    let procs = slow_pids(&pids);
    child.kill().unwrap();
    let _ = child.wait();
    // The run's process group outlives the coordinator.
    assert!(procs.iter().all(|p| pid_alive(*p)), "{procs:?}");
    assert!(env.store().request_run_cancel(run.id).unwrap().is_some());
    let child = spawn_serve(&env, "1");
    wait_until(
        Duration::from_secs(60),
        || {
            let s = env.store();
            let p = s.program("a").unwrap();
            s.attempt_by_seq(p.id, 2)
                .unwrap()
                .is_some_and(|a| a.status.is_final())
                && s.attempt_by_seq(p.id, 3).unwrap().is_some()
        },
        "attempt #2 decided and the loop going on",
    );
    let out = interrupt(child);
    assert!(out.status.success(), "{}", text(&out));
    for p in &procs {
        assert!(!pid_alive(*p), "run process {p} survived");
    }
    let s = env.store();
    let p = s.program("a").unwrap();
    let a = s.attempt_by_seq(p.id, 2).unwrap().unwrap();
    assert_eq!(a.status, AttemptStatus::Failed, "{:?}", a.note);
    let runs = s.runs_of_attempt(a.id).unwrap();
    assert_eq!(runs.len(), 1, "the cancelled seed ran again: {runs:?}");
    assert_eq!(runs[0].status, RunStatus::Cancelled);
    assert!(
        runs[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("cancelled by user")),
        "{:?}",
        runs[0].error
    );
}

fn runs_all(store: &Store, program: &str) -> Vec<picidae_store::Run> {
    runs(store, program)
}

fn attempts_of(store: &Store, program: &str) -> i64 {
    let p = store.program(program).unwrap();
    store
        .attempt_counts(p.id)
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum()
}
