//! Crash consistency at random moments: `picidae serve` drives a program of about 200 quick
//! attempts and is killed with SIGKILL 20 times at seeded random moments, restarting each time.
//! After every kill and restart the store must be sound, every finished run unchanged, no seed
//! of an attempt counted twice, and no run process of an earlier incarnation left alive.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{bin, pid_alive, read_pids, text, value_contract, wait_until, Env};
use picidae_core::{AttemptStatus, RunStatus};
use picidae_store::{Attempt, AttemptFilter, Run, Store};

const KILLS: usize = 20;
const ATTEMPTS: usize = 200;

/// A small deterministic generator (xorshift64*), so a failing schedule can be replayed.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn spawn_serve(env: &Env) -> Child {
    bin()
        .arg("--project")
        .arg(&env.project)
        .args(["serve", "--slots", "2", "--no-api"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn state(store: &Store) -> (Vec<Attempt>, Vec<Run>) {
    let p = store.program("p").unwrap();
    let attempts = store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap();
    let mut runs = Vec::new();
    for a in &attempts {
        runs.extend(store.runs_of_attempt(a.id).unwrap());
    }
    (attempts, runs)
}

/// Finished runs: id → (status, primary value).
type Snapshot = BTreeMap<i64, (RunStatus, Option<f64>)>;

fn terminal(runs: &[Run]) -> Snapshot {
    runs.iter()
        .filter(|r| r.status.is_terminal())
        .map(|r| (r.id, (r.status, r.primary_value)))
        .collect()
}

/// The invariants that hold at any moment, with the coordinator running or not. Returns the
/// number of runs that changed or vanished since `before`, and of double-counted seeds.
fn check(store_path: &Path, before: &Snapshot, when: &str) -> (usize, usize, Snapshot) {
    let store = Store::open(store_path).unwrap_or_else(|e| panic!("{when}: store opens: {e}"));
    store
        .integrity_check()
        .unwrap_or_else(|e| panic!("{when}: integrity_check: {e}"));
    let (attempts, runs) = state(&store);
    let seqs: Vec<i64> = attempts.iter().map(|a| a.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=attempts.len() as i64).collect::<Vec<_>>(),
        "{when}: attempt numbers are unique and contiguous"
    );
    let ids: BTreeSet<i64> = attempts.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), attempts.len(), "{when}: an attempt listed twice");
    let mut seeds: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.status != RunStatus::Cancelled) {
        *seeds.entry((r.attempt_id, r.seed)).or_default() += 1;
    }
    let doubled = seeds.values().filter(|&&n| n > 1).count();
    let now = terminal(&runs);
    let lost = before
        .iter()
        .filter(|(id, was)| now.get(id) != Some(was))
        .count();
    (lost, doubled, now)
}

/// Each attempt is in exactly one state, consistent with its runs: a decided attempt has no run
/// still open. Only meaningful while no coordinator is running.
fn check_quiescent(store_path: &Path, when: &str) -> (Vec<Attempt>, Vec<Run>) {
    let store = Store::open(store_path).unwrap();
    let (attempts, runs) = state(&store);
    for a in &attempts {
        if a.status.is_final() {
            let open: Vec<&Run> = runs
                .iter()
                .filter(|r| r.attempt_id == a.id && !r.status.is_terminal())
                .collect();
            assert!(
                open.is_empty(),
                "{when}: attempt {} is {} with open runs {open:?}",
                a.seq,
                a.status
            );
        }
    }
    (attempts, runs)
}

#[test]
fn twenty_random_sigkills_lose_nothing_and_count_nothing_twice() {
    let started = Instant::now();
    let pids: PathBuf = tempfile::tempdir().unwrap().keep().join("pids");
    let run = format!(
        "echo $$ >> '{p}'\nsleep 0.05\necho \"score: $(cat value.txt)\"\n",
        p = pids.display()
    );
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 20.0)),
        ("run.sh", &run),
        ("value.txt", "100000\n"),
    ]);
    let cmd = env.down_agent("down.sh");
    env.command_program("p", &env.bench.clone(), &cmd);
    env.ok(&["program", "set", "p", "--max-runs", &ATTEMPTS.to_string()]);
    let store_path = env.project.join(".picidae/store.sqlite");

    let mut rng = Rng(0x5eed_c0ff_ee15_u64);
    let mut snapshot = Snapshot::new();
    let (mut lost, mut doubled) = (0, 0);
    let mut child = spawn_serve(&env);
    for k in 1..=KILLS {
        let delay = 0.2 + 1.3 * rng.next_f64();
        std::thread::sleep(Duration::from_secs_f64(delay));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let when = format!("kill {k} (after {delay:.2} s)");
        let earlier = read_pids(&pids);
        // At rest: everything finished so far is recorded and must survive the restart.
        let (l, d, now) = check(&store_path, &snapshot, &when);
        check_quiescent(&store_path, &when);
        lost += l;
        doubled += d;
        snapshot = now;
        let open: Vec<i64> = state(&env.store())
            .1
            .iter()
            .filter(|r| !r.status.is_terminal())
            .map(|r| r.id)
            .collect();

        child = spawn_serve(&env);
        // Recovery closes the runs the kill interrupted and kills what they left running.
        wait_until(
            Duration::from_secs(20),
            || {
                let runs = state(&env.store()).1;
                open.iter().all(|id| {
                    runs.iter()
                        .find(|r| r.id == *id)
                        .is_none_or(|r| r.status.is_terminal())
                })
            },
            "recovery of the interrupted runs",
        );
        wait_until(
            Duration::from_secs(10),
            || earlier.iter().all(|&p| !pid_alive(p)),
            "the run processes of the killed coordinator to be gone",
        );
        let when = format!("restart {k}");
        let (l, d, now) = check(&store_path, &snapshot, &when);
        lost += l;
        doubled += d;
        snapshot = now;
    }

    // Let it finish its run budget, then stop it with Ctrl-C.
    wait_until(
        Duration::from_secs(60),
        || state(&env.store()).1.len() >= ATTEMPTS,
        "the run budget to be spent",
    );
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (l, d, _) = check(&store_path, &snapshot, "the end");
    lost += l;
    doubled += d;
    let (attempts, runs) = check_quiescent(&store_path, "the end");
    for a in &attempts {
        assert!(
            a.status.is_final() || a.status == AttemptStatus::Queued,
            "attempt {} left {}",
            a.seq,
            a.status
        );
    }
    assert!(runs.iter().all(|r| r.status.is_terminal()), "{runs:?}");
    for pid in read_pids(&pids) {
        assert!(
            !pid_alive(pid),
            "run process {pid} outlived the coordinator"
        );
    }
    let cancelled = runs
        .iter()
        .filter(|r| r.status == RunStatus::Cancelled)
        .count();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for a in &attempts {
        *by_status.entry(a.status.to_string()).or_default() += 1;
    }
    println!(
        "crash loop: kills {KILLS}, attempts {} {by_status:?}, runs {} ({cancelled} interrupted), \
         lost {lost}, double-counted {doubled}, {:.1} s",
        attempts.len(),
        runs.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0, "finished runs changed or vanished");
    assert_eq!(doubled, 0, "seeds counted twice");
}
