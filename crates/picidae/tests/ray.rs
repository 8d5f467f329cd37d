//! The Ray executor through the real binary, against a real Ray cluster (see
//! `picidae_exec::testing::ray`; `.ci/ray-up` starts one): a program's attempts run as Ray
//! jobs with their metrics; after a `kill -9` of Picidae with a job in flight, the restart
//! re-adopts the job instead of running its seed again; a cancel request (what the cockpit's
//! Cancel button writes) stops the job on the cluster.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::remote::{kill_9_and_readopt, wait_for_running_job};
use common::{bin, value_contract, Env};
use picidae_core::RunStatus;
use picidae_exec::testing::ray::{ray_address, ray_cluster};

#[test]
fn ray_runs_the_contract_and_a_restart_readopts_the_job_in_flight() {
    if ray_cluster("ray_runs_the_contract").is_none() {
        return;
    }
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 120.0)),
        (
            "run.sh",
            "echo \"node=$(hostname) seed=$PICIDAE_SEED\"; sleep 3; echo \"score: $(cat value.txt)\"\n",
        ),
        ("value.txt", "10\n"),
    ]);
    env.queue_program("p", &["5", "7", "3"], &["--executor", &ray_address()]);
    let (job, runs) = kill_9_and_readopt(&env, "ray", "ray:", &[]);
    // Recorded on the node that ran it, with that node's fingerprint.
    assert!(
        job.host.as_deref().is_some_and(|h| !h.is_empty()),
        "{job:?}"
    );
    assert!(job.fingerprint.is_some(), "{job:?}");
    let readopted = runs.iter().find(|r| r.id == job.id).unwrap();
    let log = std::fs::read_to_string(
        std::path::Path::new(readopted.log_dir.as_ref().unwrap()).join("stdout.log"),
    )
    .unwrap();
    assert!(log.contains("node=") && log.contains("score: "), "{log}");
}

#[test]
fn a_cancel_request_stops_the_ray_job() {
    let Some(ray) = ray_cluster("a_cancel_request_stops_the_ray_job") else {
        return;
    };
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 600.0)),
        (
            "run.sh",
            "if [ \"$(cat value.txt)\" = 10 ]; then echo 'score: 10'; else sleep 300; fi\n",
        ),
        ("value.txt", "10\n"),
    ]);
    env.queue_program("p", &["5"], &["--executor", &ray_address()]);
    let mut child = bin()
        .arg("--project")
        .arg(&env.project)
        .args(["run", "p", "-n", "1", "--plain"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = wait_for_running_job(&env, "ray", "ray:", 2);
    let asked = Instant::now();
    let out = env.ok(&["cancel", &run.id.to_string()]);
    assert!(out.contains("cancel requested"), "{out}");
    let start = Instant::now();
    while env.store().run(run.id).unwrap().status != RunStatus::Cancelled {
        assert!(start.elapsed() < Duration::from_secs(60), "not cancelled");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "ray run {} cancelled {:?} after the request",
        run.id,
        asked.elapsed()
    );
    let r = env.store().run(run.id).unwrap();
    assert_eq!(r.error.as_deref(), Some("cancelled by user"), "{r:?}");
    // The job is over on the cluster, not merely forgotten.
    let job = run.executor_ref.unwrap();
    let id = job.trim_start_matches("ray:");
    let status = ray.job_status(id).unwrap();
    assert_eq!(status.as_deref(), Some("STOPPED"), "{job}");
    let _ = child.wait();
}
