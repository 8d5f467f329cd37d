//! The SkyPilot executor through the real binary, with the `sky` CLI played by a scripted
//! stand-in (`picidae_exec::testing::skypilot`: no cloud account exists here; it runs each
//! task on this machine), found through `PICIDAE_SKY`: a program's attempts run as managed
//! jobs with their metrics, and after a `kill -9` of Picidae with a job in flight the restart
//! re-adopts the job instead of running its seed again.

mod common;

use common::remote::kill_9_and_readopt;
use common::{value_contract, Env};
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
