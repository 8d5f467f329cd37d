//! What every remote executor's end-to-end test checks the same way: a program's runs, and
//! re-adoption after a `kill -9` of Picidae with a job in flight.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use picidae_core::RunStatus;
use picidae_store::{AttemptFilter, Run};

use super::{bin, text, Env};

/// Every run of the program `name`.
pub fn program_runs(env: &Env, name: &str) -> Vec<Run> {
    let store = env.store();
    let p = store.program(name).unwrap();
    store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .flat_map(|a| store.runs_of_attempt(a.id).unwrap())
        .collect()
}

/// `picidae run p -n N` in `env`'s project with `vars` set.
fn run_loop(env: &Env, n: &str, vars: &[(&str, &str)]) -> Command {
    let mut c = bin();
    c.arg("--project")
        .arg(&env.project)
        .args(["run", "p", "-n", n, "--plain"]);
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

/// The first run of program `p` running remotely (its handle starts with `prefix`) once the
/// program has at least `min_runs` runs; fails after two minutes.
pub fn wait_for_running_job(env: &Env, executor: &str, prefix: &str, min_runs: usize) -> Run {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no {executor} job started: {:?}",
            program_runs(env, "p")
        );
        let runs = program_runs(env, "p");
        if let Some(r) = runs.iter().find(|r| {
            r.status == RunStatus::Running
                && r.executor_ref
                    .as_deref()
                    .is_some_and(|h| h.starts_with(prefix))
                && runs.len() >= min_runs
        }) {
            return r.clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Program `p` (queued on `executor`, values 5, 7, 3 after a baseline of 10) runs until its
/// second explore attempt's job runs remotely (its handle starts with `prefix`); Picidae is
/// SIGKILLed, then started again: the job is re-adopted and recorded once, no seed runs
/// twice, every run is `executor`'s and the frontier is the last keep (3). Returns the
/// re-adopted run as it was when Picidae died, and all runs at the end.
pub fn kill_9_and_readopt(
    env: &Env,
    executor: &str,
    prefix: &str,
    vars: &[(&str, &str)],
) -> (Run, Vec<Run>) {
    let mut child = run_loop(env, "3", vars)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let job = wait_for_running_job(env, executor, prefix, 3);
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(job.executor, executor);

    let o = run_loop(env, "1", vars).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("1 remote run(s) re-adopted"), "{out}");
    let runs = program_runs(env, "p");
    let readopted = runs.iter().find(|r| r.id == job.id).unwrap();
    assert_eq!(readopted.status, RunStatus::Succeeded, "{readopted:?}");
    let mut per_seed: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for r in &runs {
        if r.status != RunStatus::Cancelled {
            *per_seed.entry((r.attempt_id, r.seed)).or_default() += 1;
        }
        assert!(r.status.is_terminal(), "{r:?}");
        assert_eq!(r.executor, executor);
    }
    assert!(
        per_seed.values().all(|n| *n == 1),
        "a seed ran twice: {per_seed:?}"
    );
    let p = env.store().program("p").unwrap();
    eprintln!(
        "{} runs on {executor}, {} re-adopted after kill -9; frontier {:?}",
        runs.len(),
        job.executor_ref.as_deref().unwrap_or("?"),
        p.frontier_value
    );
    // Baseline 10, then 5 (kept), 7 (discarded), 3 (kept): the frontier is the last keep.
    assert_eq!(p.frontier_value, Some(3.0));
    (job, runs)
}

/// Whether a Slurm controller answers `sinfo` here; `false` (the test skips, saying why)
/// unless `PICIDAE_REQUIRE_SLURM=1`, then the test fails.
#[allow(dead_code)]
pub fn slurm_works() -> bool {
    let ok = std::process::Command::new("sinfo")
        .arg("-h")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("PICIDAE_REQUIRE_SLURM").as_deref() != Ok("1"),
            "PICIDAE_REQUIRE_SLURM=1 but no Slurm controller answers `sinfo`"
        );
        eprintln!("skipping: no Slurm cluster here (sinfo fails)");
    }
    ok
}
