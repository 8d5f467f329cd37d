//! The SkyPilot executor through the real binary, with the `sky` CLI played by a scripted
//! stand-in (`picidae_exec::testing::skypilot`: no cloud account exists here; it runs each
//! task on this machine), found through `PICIDAE_SKY`: a program's attempts run as managed
//! jobs with their metrics, and after a `kill -9` of Picidae with a job in flight the restart
//! re-adopts the job instead of running its seed again.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bin, text, value_contract, Env};
use picidae_core::RunStatus;
use picidae_exec::testing::skypilot::sky_standin;
use picidae_store::{AttemptFilter, Run};

fn all_runs(env: &Env) -> Vec<Run> {
    let store = env.store();
    let p = store.program("p").unwrap();
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

#[test]
fn skypilot_runs_the_contract_and_a_restart_readopts_the_job_in_flight() {
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 120.0)),
        (
            "run.sh",
            "echo \"seed=$PICIDAE_SEED\"; sleep 2; echo \"score: $(cat value.txt)\"\n",
        ),
        ("value.txt", "10\n"),
    ]);
    let sky = sky_standin(&env.project.parent().unwrap().join("sky"));
    env.queue_program("p", &["5", "7", "3"], &["--executor", "skypilot?spot=1"]);
    let run = |n: &str| {
        let mut c = bin();
        c.arg("--project")
            .arg(&env.project)
            .args(["run", "p", "-n", n, "--plain"])
            .env("PICIDAE_SKY", &sky);
        c
    };
    let mut child = run("3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let job = loop {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no SkyPilot job started: {:?}",
            all_runs(&env)
        );
        let runs = all_runs(&env);
        if let Some(r) = runs.iter().find(|r| {
            r.status == RunStatus::Running
                && r.executor_ref
                    .as_deref()
                    .is_some_and(|h| h.starts_with("skypilot:managed:"))
                && runs.len() >= 3
        }) {
            break r.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(job.executor, "skypilot");
    assert!(job.fingerprint.is_some(), "{job:?}");

    let o = run("1").output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("1 remote run(s) re-adopted"), "{out}");
    let runs = all_runs(&env);
    let readopted = runs.iter().find(|r| r.id == job.id).unwrap();
    assert_eq!(readopted.status, RunStatus::Succeeded, "{readopted:?}");
    let mut per_seed: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for r in &runs {
        if r.status != RunStatus::Cancelled {
            *per_seed.entry((r.attempt_id, r.seed)).or_default() += 1;
        }
        assert!(r.status.is_terminal(), "{r:?}");
    }
    assert!(
        per_seed.values().all(|n| *n == 1),
        "a seed ran twice: {per_seed:?}"
    );
    let p = env.store().program("p").unwrap();
    assert_eq!(p.frontier_value, Some(3.0));
    // The task Picidae wrote asked for a spot instance.
    let first = runs.iter().find(|r| r.id != job.id).unwrap();
    let first_task = std::fs::read_to_string(
        std::path::Path::new(first.log_dir.as_ref().unwrap()).join("skypilot-task.yaml"),
    )
    .unwrap();
    assert!(first_task.contains("\"use_spot\": true"), "{first_task}");
}
