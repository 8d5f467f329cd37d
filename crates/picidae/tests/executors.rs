//! The same contract on another executor, through the real binary: a real single-node Slurm
//! runs a program's attempts, and after a `kill -9` of Picidae with a job in flight, the restart
//! re-adopts the job (waits for it) instead of running its seed again.

mod common;

use common::remote::{kill_9_and_readopt, program_runs, slurm_works};
use common::{value_contract, Env};
use picidae_core::RunStatus;

#[test]
fn slurm_runs_the_contract_and_a_restart_readopts_the_job_in_flight() {
    if !slurm_works() {
        return;
    }
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 120.0)),
        (
            "run.sh",
            "echo \"host=$(hostname) job=$SLURM_JOB_ID\"; sleep 2; echo \"score: $(cat value.txt)\"\n",
        ),
        ("value.txt", "10\n"),
    ]);
    env.queue_program("p", &["5", "7", "3"], &["--executor", "slurm"]);
    let (job, runs) = kill_9_and_readopt(&env, "slurm", "slurm:", &[]);
    let job_id = job.executor_ref.clone().unwrap();
    let readopted = runs.iter().find(|r| r.id == job.id).unwrap();
    let log = std::fs::read_to_string(
        std::path::Path::new(readopted.log_dir.as_ref().unwrap()).join("stdout.log"),
    )
    .unwrap();
    assert!(
        log.contains(&format!("job={}", &job_id["slurm:".len()..])),
        "the run's output is the Slurm job's: {log}"
    );
}

/// The same contract on a host reached over SSH (a private sshd on loopback): checkouts are
/// synced, runs execute remotely, logs and metrics come back, the fingerprint is the remote
/// machine's.
#[test]
fn ssh_runs_the_contract_on_a_remote_host() {
    if !picidae_exec::testing::ssh_usable() {
        return;
    }
    let sshd = picidae_exec::testing::Sshd::start();
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 60.0)),
        (
            "run.sh",
            "echo \"cwd=$(pwd)\"; echo \"{\\\"score\\\": $(cat value.txt)}\" > \"$PICIDAE_METRICS.side\"; echo \"score: $(cat value.txt)\"\n",
        ),
        ("value.txt", "10\n"),
    ]);
    let remote = env.path("remote-root");
    std::fs::create_dir_all(&remote).unwrap();
    let remote = std::fs::canonicalize(remote).unwrap();
    let url = sshd.executor_url(&remote);
    env.queue_program("p", &["5", "7"], &["--executor", &url]);
    let out = env.ok(&["run", "p", "-n", "2", "--plain"]);
    assert!(out.contains("2 attempts: 1 kept, 1 discarded"), "{out}");
    let runs = program_runs(&env, "p");
    assert_eq!(runs.len(), 3, "{runs:?}");
    for r in &runs {
        assert_eq!(r.executor, "ssh", "{r:?}");
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        let handle = r.executor_ref.as_deref().unwrap();
        assert!(handle.starts_with("ssh:127.0.0.1:"), "{handle}");
        let dir = &handle["ssh:127.0.0.1:".len()..];
        assert!(dir.starts_with(remote.to_str().unwrap()), "{dir}");
        // The run executed in the remote checkout, and its side file came home with out/.
        let local = std::path::Path::new(r.log_dir.as_ref().unwrap());
        let log = std::fs::read_to_string(local.join("stdout.log")).unwrap();
        assert!(log.contains(&format!("cwd={dir}/checkout")), "{log}");
        assert!(
            local.join("metrics.jsonl.side").is_file(),
            "outputs fetched back"
        );
    }
    assert_eq!(env.store().program("p").unwrap().frontier_value, Some(5.0));
    eprintln!("3 runs over ssh to 127.0.0.1:{} ({url})", sshd.port);
}
