//! The SkyPilot executor through the real binary, with the `sky` CLI played by a scripted
//! stand-in (`picidae_exec::testing::skypilot`: no cloud account exists here; it runs each
//! task on this machine), found through `PICIDAE_SKY`: a program's attempts run as managed
//! jobs with their metrics, and after a `kill -9` of Picidae with a job in flight the restart
//! re-adopts the job instead of running its seed again.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::remote::{kill_9_and_readopt, program_runs};
use common::{bin, value_contract, Env};
use picidae_core::RunStatus;
use picidae_exec::testing::skypilot::sky_standin;

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
    let (job, runs) = kill_9_and_readopt(
        &env,
        "skypilot",
        "skypilot:managed:",
        &[("PICIDAE_SKY", &sky)],
    );
    assert!(job.fingerprint.is_some(), "{job:?}");
    // The task Picidae wrote asked for a spot instance.
    let first = runs.iter().find(|r| r.id != job.id).unwrap();
    let first_task = std::fs::read_to_string(
        std::path::Path::new(first.log_dir.as_ref().unwrap()).join("skypilot-task.yaml"),
    )
    .unwrap();
    assert!(first_task.contains("\"use_spot\": true"), "{first_task}");
}

/// A spot instance preempted mid-run: SkyPilot (the stand-in) recovers the managed job on a
/// new instance, and Picidae records one run that succeeded and was restarted once, not a
/// failed run and not a second run of the seed.
#[test]
fn a_recovered_spot_preemption_is_one_restarted_run() {
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 120.0)),
        (
            "run.sh",
            "echo \"instance up\"; sleep 3; echo \"score: $(cat value.txt)\"\n",
        ),
        ("value.txt", "10\n"),
    ]);
    let sky = sky_standin(&env.project.parent().unwrap().join("sky"));
    env.queue_program("p", &[], &["--executor", "skypilot?spot=1"]);
    let mut child = bin()
        .arg("--project")
        .arg(&env.project)
        .args(["run", "p", "-n", "0", "--plain"])
        .env("PICIDAE_SKY", &sky)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The baseline's job prints its first line: preempt its instance.
    let t0 = Instant::now();
    let run = loop {
        assert!(t0.elapsed() < Duration::from_secs(60), "the job never ran");
        let runs = program_runs(&env, "p");
        if let Some(r) = runs.iter().find(|r| {
            r.status == RunStatus::Running
                && r.log_dir.as_ref().is_some_and(|d| {
                    std::fs::read_to_string(std::path::Path::new(d).join("stdout.log"))
                        .is_ok_and(|l| l.contains("instance up"))
                })
        }) {
            break r.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let handle = run.executor_ref.clone().unwrap();
    let job = handle.split(':').nth(2).unwrap();
    let o = Command::new(&sky).args(["preempt", job]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(child.wait().unwrap().success());
    let runs = program_runs(&env, "p");
    assert_eq!(runs.len(), 1, "one run, not one per instance: {runs:?}");
    let r = &runs[0];
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.restarts, 1, "{r:?}");
    assert_eq!(r.primary_value, Some(10.0));
    let err = std::fs::read_to_string(
        std::path::Path::new(r.log_dir.as_ref().unwrap()).join("stderr.log"),
    )
    .unwrap();
    assert!(err.contains("preempted"), "{err}");
}
