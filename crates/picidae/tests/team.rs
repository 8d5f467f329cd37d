//! Team mode: three `picidae serve` coordinators share one project and one real PostgreSQL
//! store (a private server started by the store's `testing` fixture). Each takes a fair share
//! of the programs through leases in the store; one is killed with SIGKILL while its run is in
//! flight, and the others take its program over. In the end every attempt is accounted for
//! exactly once: every attempt decided, each program spent its run budget, no seed of an
//! attempt counted twice, every run executed exactly once (the interrupted one closed as
//! cancelled and its seed run again), and nothing left running.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{bin, pid_alive, text, value_contract, Env};
use picidae_core::{AttemptStatus, RunStatus};
use picidae_store::{AttemptFilter, Store};

const PROGRAMS: [&str; 3] = ["alpha", "beta", "gamma"];
const RUNS_EACH: usize = 12;

fn spawn_serve(env: &Env, i: usize) -> Child {
    let out = std::fs::File::create(env.path(&format!("coordinator-{i}.log"))).unwrap();
    bin()
        .arg("--project")
        .arg(&env.project)
        .args(["serve", "--slots", "1", "--no-api"])
        // Short enough for a test, long enough that a coordinator starved of CPU on a busy
        // machine does not lose its programs; the killed one's are freed at once anyway, its
        // process being gone.
        .env("PICIDAE_LEASE_EXPIRY_SECS", "15")
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
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

trait StderrOf {
    fn wait_with_output_ref(&mut self) -> String;
}

impl StderrOf for Child {
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let _ = self.wait();
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

fn lease_owner(store: &Store, program: &str) -> Option<String> {
    let id = store.program(program).unwrap().id;
    store.program_lease(id).unwrap().map(|(o, _)| o)
}

#[test]
fn three_coordinators_share_programs_and_survive_one_killed() {
    let Some(url) = picidae_store::testing::postgres_url() else {
        return;
    };
    let log = tempfile::tempdir().unwrap().keep().join("executions");
    // Each execution records its run id and pid, then takes long enough to be killed in flight.
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
        Some(&url),
    );
    assert!(
        !env.project.join(".picidae/store.sqlite").exists(),
        "the project must not fall back to SQLite"
    );
    for (k, p) in PROGRAMS.iter().enumerate() {
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

    // The programs wait, paused, until all three coordinators have said they are here.
    for p in PROGRAMS {
        env.ok(&["program", "pause", p]);
    }
    let mut coordinators: Vec<Child> = (0..3).map(|i| spawn_serve(&env, i)).collect();
    wait_until(
        Duration::from_secs(30),
        || env.store().live_coordinators(15_000).unwrap().len() == 3,
        "three coordinators to register",
    );
    for p in PROGRAMS {
        env.ok(&["program", "resume", p]);
    }
    let names: Vec<String> = coordinators
        .iter()
        .map(|c| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
            format!("{}:{}", host.trim(), c.id())
        })
        .collect();

    // Fair share: each coordinator drives one program.
    wait_until(
        Duration::from_secs(30),
        || {
            let store = env.store();
            let owners: BTreeSet<Option<String>> =
                PROGRAMS.iter().map(|p| lease_owner(&store, p)).collect();
            owners.len() == 3 && owners.iter().all(|o| o.is_some())
        },
        "each coordinator to take one program",
    );

    // Kill the owner of gamma while one of gamma's runs is in flight.
    let victim_name = lease_owner(&env.store(), "gamma").unwrap();
    let victim = names.iter().position(|n| *n == victim_name).unwrap();
    wait_until(
        Duration::from_secs(30),
        || {
            let store = env.store();
            let g = store.program("gamma").unwrap().id;
            store
                .unfinished_runs(Some(g))
                .unwrap()
                .iter()
                .any(|r| r.status == RunStatus::Running)
        },
        "a run of gamma to be in flight",
    );
    coordinators[victim].kill().unwrap(); // SIGKILL
    let _ = coordinators[victim].wait();
    let killed_at = Instant::now();

    // Another coordinator takes gamma over and every program spends its budget.
    wait_until(
        Duration::from_secs(30),
        || lease_owner(&env.store(), "gamma").is_some_and(|o| o != victim_name),
        "a live coordinator to take gamma over",
    );
    let takeover = killed_at.elapsed();
    let spent = || {
        let store = env.store();
        PROGRAMS.iter().all(|p| {
            let id = store.program(p).unwrap().id;
            store.run_count(Some(id)).unwrap() >= RUNS_EACH as i64
                && store.unfinished_runs(Some(id)).unwrap().is_empty()
        })
    };
    let start = Instant::now();
    while !spent() {
        if start.elapsed() > Duration::from_secs(120) {
            let store = env.store();
            let state: Vec<String> = PROGRAMS
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
                let _ = c.kill();
                let out = c.wait_with_output_ref();
                let log = std::fs::read_to_string(env.path(&format!("coordinator-{i}.log")));
                eprintln!("coordinator {i}: {out}\n{}", log.unwrap_or_default());
            }
            panic!("the run budgets were not spent:\n{}", state.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, c) in coordinators.iter_mut().enumerate() {
        if i != victim {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGINT);
            }
        }
    }
    for (i, c) in coordinators.into_iter().enumerate() {
        if i != victim {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "coordinator {i}: {}", text(&out));
        }
    }

    let store = env.store();
    store.integrity_check().unwrap();
    let mut cancelled = 0;
    let mut total_runs = 0;
    for p in PROGRAMS {
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
        total_runs += runs.len();
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
                assert_eq!(p, "gamma", "only the killed coordinator's run is cancelled");
                cancelled += 1;
            } else {
                *results.entry((r.attempt_id, r.seed)).or_default() += 1;
            }
        }
        assert!(
            results.values().all(|n| *n == 1),
            "{p}: a seed counted twice: {results:?}"
        );
        // Each program's runs were leased by coordinators, and gamma's by two of them.
        let owners: BTreeSet<String> = runs.iter().filter_map(|r| r.host.clone()).collect();
        assert!(!owners.is_empty());
    }
    // The run the kill interrupted was closed once, as cancelled.
    assert_eq!(cancelled, 1, "exactly the interrupted run is cancelled");
    // No run id was executed twice, and no run process outlived its coordinator.
    let execs = executions(&log);
    let mut seen = BTreeSet::new();
    for (run, pid) in &execs {
        assert!(seen.insert(*run), "run {run} was executed twice: {execs:?}");
        assert!(!pid_alive(*pid), "run process {pid} is still alive");
    }
    assert_eq!(execs.len(), total_runs, "every run executed exactly once");
    println!(
        "team: 3 coordinators, {} runs, gamma taken over {:.1} s after the kill, {cancelled} run cancelled and redone",
        execs.len(),
        takeover.as_secs_f64()
    );
}
