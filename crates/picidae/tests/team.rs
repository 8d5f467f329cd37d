//! Team mode: `picidae serve` coordinators share one real PostgreSQL store (a private server
//! started by the store's `testing` fixture) and nothing else: each has a project directory
//! and a clone of the benchmark of its own, and the directory the programs were created from
//! is moved away before they start, so commits reach a coordinator only through the store.
//! Each takes a fair share of the programs through leases in the store.
//!
//! - Three coordinators, one killed with SIGKILL while its run is in flight: another takes its
//!   program over at once (the holder's process is gone).
//! - Two coordinators, one stopped with SIGSTOP (alive, silent) while its run is in flight: its
//!   lease expires and the other takes the program over, and when the stalled one wakes it
//!   finds the lease gone and lets go.
//!
//! In the end every attempt is accounted for exactly once: every attempt decided, each program
//! spent its run budget, no seed of an attempt counted twice, every run executed exactly once
//! (an interrupted one closed as cancelled and its seed run again), and nothing left running.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{bin, pid_alive, text, value_contract, wait_until, Env};
use picidae_core::{AttemptStatus, RunStatus};
use picidae_store::{AttemptFilter, Store};

const RUNS_EACH: usize = 12;

/// Coordinator `i`'s own project, on the shared store, with its own clone of the benchmark
/// (named for the directory the programs recorded): nothing in it is shared with the project
/// the programs were created in or with another coordinator.
fn own_project(env: &Env, i: usize) -> PathBuf {
    let root = env.path(&format!("coordinator-{i}"));
    let clone = root.join("bench");
    let out = std::process::Command::new("git")
        .args(["clone", "-q"])
        .arg(&env.bench)
        .arg(&clone)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let url = std::fs::read_to_string(env.project.join(".picidae/store.url")).unwrap();
    let recorded = env.store().programs().unwrap()[0].benchmark_dir.clone();
    let project = root.join("project");
    let out = bin()
        .arg("init")
        .arg(&project)
        .args(["--store", url.trim()])
        .arg("--clone")
        .arg(format!("{recorded}={}", clone.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    project
}

fn spawn_serve(env: &Env, i: usize, expiry_secs: u32) -> Child {
    let out = std::fs::File::create(env.path(&format!("coordinator-{i}.log"))).unwrap();
    bin()
        .arg("--project")
        .arg(env.path(&format!("coordinator-{i}/project")))
        .args(["serve", "--slots", "1", "--no-api"])
        .env("PICIDAE_LEASE_EXPIRY_SECS", expiry_secs.to_string())
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Executions recorded by the run script: (run id, pid) per line.
fn executions(log: &Path) -> Vec<(i64, i32)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (r, p) = l.split_once(' ')?;
            Some((r.parse().ok()?, p.parse().ok()?))
        })
        .collect()
}

/// Kill a coordinator and return what it wrote to stderr.
fn kill_for_stderr(child: &mut Child) -> String {
    use std::io::Read;
    let _ = child.kill();
    let _ = child.wait();
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

fn lease_owner(store: &Store, program: &str) -> Option<String> {
    let id = store.program(program).unwrap().id;
    store.program_lease(id).unwrap().map(|(o, _)| o)
}

/// A project on `url` whose programs each lower `value.txt` by their own step per attempt, and
/// the file where every run execution records its run id and pid.
fn team_env(url: &str, programs: &[&str]) -> (Env, PathBuf) {
    let log = tempfile::tempdir().unwrap().keep().join("executions");
    // Each execution records its run id and pid, then takes long enough to be caught in flight.
    let run = format!(
        "echo \"$PICIDAE_RUN_ID $$\" >> '{log}'\nsleep 0.4\necho \"score: $(cat value.txt)\"\n",
        log = log.display()
    );
    let env = Env::with_store(
        &[
            ("picidae.toml", &value_contract("sh run.sh", 20.0)),
            ("run.sh", &run),
            ("value.txt", "100000\n"),
        ],
        Some(url),
    );
    assert!(
        !env.project.join(".picidae/store.sqlite").exists(),
        "the project must not fall back to SQLite"
    );
    for (k, p) in programs.iter().enumerate() {
        // Each program takes its own steps, so the memory sees no program repeat another's
        // patch (programs on one benchmark share it).
        let agent = env.path(&format!("down-{p}.sh"));
        std::fs::write(
            &agent,
            format!(
                "v=$(cat value.txt); v=$((v - {})); echo $v > value.txt; echo \"HYPOTHESIS: value $v\"\n",
                k + 1
            ),
        )
        .unwrap();
        env.command_program(p, &env.bench.clone(), &format!("sh {}", agent.display()));
        env.ok(&["program", "set", p, "--max-runs", &RUNS_EACH.to_string()]);
    }
    (env, log)
}

/// Start `n` coordinators and let each take one program: the programs wait, paused, until
/// all have said they are here. Returns them with their lease names.
fn start_team(
    env: &Env,
    programs: &[&str],
    n: usize,
    expiry_secs: u32,
) -> (Vec<Child>, Vec<String>) {
    for p in programs {
        env.ok(&["program", "pause", p]);
    }
    for i in 0..n {
        own_project(env, i);
    }
    // The benchmark the programs were created from is gone: no coordinator can read it.
    std::fs::rename(&env.bench, env.path("bench-moved-away")).unwrap();
    let coordinators: Vec<Child> = (0..n).map(|i| spawn_serve(env, i, expiry_secs)).collect();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let names = coordinators
        .iter()
        .map(|c| format!("{}:{}", host.trim(), c.id()))
        .collect();
    wait_until(
        Duration::from_secs(30),
        || env.store().live_coordinators(60_000).unwrap().len() == n,
        "the coordinators to register",
    );
    for p in programs {
        env.ok(&["program", "resume", p]);
    }
    wait_until(
        Duration::from_secs(30),
        || {
            let store = env.store();
            let owners: BTreeSet<Option<String>> =
                programs.iter().map(|p| lease_owner(&store, p)).collect();
            owners.len() == programs.len() && owners.iter().all(|o| o.is_some())
        },
        "each coordinator to take one program",
    );
    (coordinators, names)
}

/// Wait until a run of `program` is in flight: recorded running, and its process has started
/// executing the run script (its line is in the executions `log`). A coordinator killed between
/// the two would leave a run its successor closes before the script ran a line, which the
/// accounting could not tell from a run never executed.
fn wait_for_a_run(env: &Env, program: &str, log: &Path) {
    wait_until(
        Duration::from_secs(30),
        || {
            let store = env.store();
            let id = store.program(program).unwrap().id;
            let started: BTreeSet<i64> = executions(log).into_iter().map(|(r, _)| r).collect();
            store
                .unfinished_runs(Some(id))
                .unwrap()
                .iter()
                .any(|r| r.status == RunStatus::Running && started.contains(&r.id))
        },
        "a run to be in flight",
    );
}

/// Wait until every program spent its budget (dumping the coordinators' logs if not), then
/// stop the coordinators still alive with Ctrl-C; each must exit cleanly.
fn finish(env: &Env, programs: &[&str], coordinators: Vec<Child>, dead: Option<usize>) {
    let mut coordinators = coordinators;
    let spent = || {
        let store = env.store();
        programs.iter().all(|p| {
            let id = store.program(p).unwrap().id;
            store.run_count(Some(id)).unwrap() >= RUNS_EACH as i64
                && store.unfinished_runs(Some(id)).unwrap().is_empty()
        })
    };
    let start = Instant::now();
    while !spent() {
        if start.elapsed() > Duration::from_secs(120) {
            let store = env.store();
            let state: Vec<String> = programs
                .iter()
                .map(|p| {
                    let pr = store.program(p).unwrap();
                    format!(
                        "{p}: {} lease {:?}, {} runs, unfinished {:?}",
                        pr.status,
                        store.program_lease(pr.id).unwrap(),
                        store.run_count(Some(pr.id)).unwrap(),
                        store.unfinished_runs(Some(pr.id)).unwrap()
                    )
                })
                .collect();
            for (i, c) in coordinators.iter_mut().enumerate() {
                let out = kill_for_stderr(c);
                let log = std::fs::read_to_string(env.path(&format!("coordinator-{i}.log")));
                eprintln!("coordinator {i}: {out}\n{}", log.unwrap_or_default());
            }
            panic!("the run budgets were not spent:\n{}", state.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, c) in coordinators.iter().enumerate() {
        if Some(i) != dead {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGINT);
            }
        }
    }
    for (i, c) in coordinators.into_iter().enumerate() {
        if Some(i) != dead {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "coordinator {i}: {}", text(&out));
        }
    }
}

/// Check that every attempt is accounted for exactly once; returns the cancelled runs by
/// program.
fn accounting(env: &Env, programs: &[&str], log: &Path) -> BTreeMap<String, usize> {
    let store = env.store();
    store.integrity_check().unwrap();
    let mut cancelled = BTreeMap::new();
    // Runs whose process started; one interrupted while it waited for a slot never did.
    let mut started: BTreeSet<i64> = BTreeSet::new();
    for p in programs {
        let id = store.program(p).unwrap().id;
        let attempts = store
            .attempts(&AttemptFilter {
                program_id: Some(id),
                ..Default::default()
            })
            .unwrap();
        let mut runs = Vec::new();
        for a in &attempts {
            let of_a = store.runs_of_attempt(a.id).unwrap();
            // A proposal queued ahead when the budget ran out stays queued, never run.
            assert!(
                a.status.is_final() || (a.status == AttemptStatus::Queued && of_a.is_empty()),
                "{p} #{} left {}",
                a.seq,
                a.status
            );
            runs.extend(of_a);
        }
        // The budget (compute spent, so an interrupted run counts) is checked before each
        // attempt; an attempt's verification seeds may take a program past it, never short.
        assert!(
            runs.len() >= RUNS_EACH,
            "{p}: its run budget was spent: {runs:?}"
        );
        for r in &runs {
            if r.started_at.is_some() {
                started.insert(r.id);
            } else {
                assert_eq!(
                    r.status,
                    RunStatus::Cancelled,
                    "{p}: run never started: {r:?}"
                );
            }
        }
        // No seed of an attempt has more than one result.
        let mut results: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for r in &runs {
            assert!(
                r.status.is_terminal(),
                "{p}: run {} left {}",
                r.id,
                r.status
            );
            if r.status == RunStatus::Cancelled {
                *cancelled.entry(p.to_string()).or_default() += 1;
            } else {
                *results.entry((r.attempt_id, r.seed)).or_default() += 1;
            }
        }
        assert!(
            results.values().all(|n| *n == 1),
            "{p}: a seed counted twice: {results:?}"
        );
    }
    // No run id was executed twice, and no run process outlived its coordinator.
    let execs = executions(log);
    let mut seen = BTreeSet::new();
    for (run, pid) in &execs {
        assert!(seen.insert(*run), "run {run} was executed twice: {execs:?}");
        assert!(!pid_alive(*pid), "run process {pid} is still alive");
    }
    assert_eq!(
        seen, started,
        "every run that started executed exactly once, and no other"
    );
    cancelled
}

#[test]
fn three_coordinators_share_programs_and_survive_one_killed() {
    const PROGRAMS: [&str; 3] = ["alpha", "beta", "gamma"];
    let Some(url) = picidae_store::testing::postgres_url() else {
        return;
    };
    // One team at a time: two teams on 2 cores starve coordinators past their leases.
    let _one = common::serial();
    let (env, log) = team_env(&url, &PROGRAMS);
    // Long enough that a coordinator starved of CPU on a busy machine keeps its programs; the
    // killed one's are freed at once anyway, its process being gone.
    let (mut coordinators, names) = start_team(&env, &PROGRAMS, 3, 15);

    // Kill the owner of gamma while one of gamma's runs is in flight.
    let victim_name = lease_owner(&env.store(), "gamma").unwrap();
    let victim = names.iter().position(|n| *n == victim_name).unwrap();
    // Past the baseline: the victim has made commits of its own, which only it holds.
    wait_until(
        Duration::from_secs(30),
        || {
            let store = env.store();
            let p = store.program("gamma").unwrap();
            store.program_commits(p.id).unwrap().len() >= 2
        },
        "gamma's first commit past its base",
    );
    wait_for_a_run(&env, "gamma", &log);
    coordinators[victim].kill().unwrap(); // SIGKILL
    let _ = coordinators[victim].wait();
    let killed_at = Instant::now();
    // Its directory and clone are lost with it: gamma's commits live on in the store only.
    std::fs::remove_dir_all(env.path(&format!("coordinator-{victim}"))).unwrap();

    // Another coordinator takes gamma over and every program spends its budget.
    wait_until(
        Duration::from_secs(30),
        || lease_owner(&env.store(), "gamma").is_some_and(|o| o != victim_name),
        "a live coordinator to take gamma over",
    );
    let takeover = killed_at.elapsed();
    let taker_name = lease_owner(&env.store(), "gamma").unwrap();
    let taker = names.iter().position(|n| *n == taker_name).unwrap();
    finish(&env, &PROGRAMS, coordinators, Some(victim));
    let cancelled = accounting(&env, &PROGRAMS, &log);
    // The taker's own clone holds every commit of gamma, the dead coordinator's included.
    let store = env.store();
    let gamma = store.program("gamma").unwrap();
    let commits = store.program_commits(gamma.id).unwrap();
    assert!(commits.len() > 2, "{commits:?}");
    let clone = env.path(&format!("coordinator-{taker}/bench"));
    for (seq, sha) in &commits {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&clone)
            .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gamma #{seq}: {sha} is not in the taker's clone"
        );
    }
    // The run the kill interrupted was closed once, as cancelled, and nothing else was.
    assert_eq!(
        cancelled,
        BTreeMap::from([("gamma".to_string(), 1)]),
        "exactly the interrupted run is cancelled"
    );
    println!(
        "team: 3 coordinators, gamma taken over {:.1} s after the kill, 1 run cancelled and redone",
        takeover.as_secs_f64()
    );
}

#[test]
fn a_stalled_coordinators_lease_expires_and_its_program_moves() {
    const PROGRAMS: [&str; 2] = ["alpha", "beta"];
    let Some(url) = picidae_store::testing::postgres_url() else {
        return;
    };
    let _one = common::serial();
    let (env, log) = team_env(&url, &PROGRAMS);
    let (coordinators, names) = start_team(&env, &PROGRAMS, 2, 5);

    // Stop the owner of beta (alive, but silent) while one of beta's runs is in flight.
    let victim_name = lease_owner(&env.store(), "beta").unwrap();
    let victim = names.iter().position(|n| *n == victim_name).unwrap();
    let taker_name = names[1 - victim].clone();
    wait_for_a_run(&env, "beta", &log);
    let pid = coordinators[victim].id() as i32;
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let stopped_at = Instant::now();
    // Its lease expires (5 s) and the other coordinator takes beta.
    wait_until(
        Duration::from_secs(30),
        || lease_owner(&env.store(), "beta").as_deref() == Some(taker_name.as_str()),
        "the live coordinator to take beta over",
    );
    let takeover = stopped_at.elapsed();
    assert!(
        takeover >= Duration::from_secs(3),
        "taken after {takeover:?}: before the lease could expire"
    );
    unsafe {
        libc::kill(pid, libc::SIGCONT);
    }
    finish(&env, &PROGRAMS, coordinators, None);
    accounting(&env, &PROGRAMS, &log);
    // The woken coordinator let beta go: it is no longer beta's holder.
    assert_ne!(lease_owner(&env.store(), "beta"), Some(victim_name));
    println!(
        "team: beta taken over {:.1} s after its coordinator stalled",
        takeover.as_secs_f64()
    );
}
