//! The Ray executor against a real Ray cluster (see `picidae_exec::testing::ray`): a job runs
//! the command in an uploaded copy of the checkout with the run's environment, its log and
//! metrics file come home, a timeout and a cancel stop it, a dropped handle is re-adopted, and
//! a job no node could hold is refused with the reason.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use picidae_exec::ray::RayExecutor;
use picidae_exec::testing::ray::ray_cluster;
use picidae_exec::{ExecError, JobSpec, RunHandle, RunRequest};

fn request(dir: &Path, command: &str, timeout: Duration) -> RunRequest {
    let checkout = dir.join("checkout");
    fs::create_dir_all(&checkout).unwrap();
    fs::write(checkout.join("train.sh"), "echo training\n").unwrap();
    RunRequest {
        command: command.into(),
        cwd: checkout,
        env: vec![
            ("SEED".into(), "7".into()),
            (
                "PICIDAE_METRICS".into(),
                dir.join("run/metrics.jsonl").display().to_string(),
            ),
        ],
        time_budget: Duration::from_secs(60),
        timeout,
        grace: Duration::from_secs(1),
        stdout_path: dir.join("run/stdout.log"),
        stderr_path: dir.join("run/stderr.log"),
        log_cap_bytes: 1 << 20,
    }
}

fn spec(dir: &Path, name: &str) -> JobSpec {
    JobSpec {
        name: format!("picidae-test-{name}"),
        cpus: 1,
        gpus: 0,
        memory_mb: None,
        metrics_path: Some(dir.join("run/metrics.jsonl")),
    }
}

fn fast(mut ex: RayExecutor) -> RayExecutor {
    let mut opts = ex.options().clone();
    opts.poll_interval = Duration::from_millis(250);
    ex = RayExecutor::new(opts);
    ex
}

#[test]
fn a_job_runs_the_checkout_and_brings_its_log_and_metrics_home() {
    let Some(ex) = ray_cluster("ray::a_job_runs") else {
        return;
    };
    let ex = fast(ex);
    let d = tempfile::tempdir().unwrap();
    let req = request(
        d.path(),
        "ls -a; echo \"seed=$SEED\"; cat value.txt; \
         test -f \"$(dirname \"$(dirname \"$PICIDAE_METRICS\")\")/.picidae-package\" && echo in-package; \
         printf '{\"score\": 0.25}\\n' > \"$PICIDAE_METRICS\"; echo 'score: 0.25'",
        Duration::from_secs(120),
    );
    fs::write(req.cwd.join("value.txt"), "forty-two\n").unwrap();
    fs::write(req.cwd.join(".secret"), "token\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", req.cwd.join("link")).unwrap();
    let run = ex.spawn_with(&req, &spec(d.path(), "ok")).unwrap();
    assert!(run.id().starts_with("ray:picidae-test-ok-"), "{}", run.id());
    let fp = run
        .node_fingerprint(None, &AtomicBool::new(false), Duration::from_secs(120))
        .unwrap()
        .expect("the node's identity");
    assert!(!fp.hostname.is_empty() && fp.cpu_count > 0, "{fp:?}");
    let out = run.wait(&AtomicBool::new(false)).unwrap();
    let log = fs::read_to_string(&req.stdout_path).unwrap();
    assert!(out.succeeded(), "{out:?}\n{log}");
    assert!(log.contains("seed=7") && log.contains("forty-two"), "{log}");
    // Its metrics file is in its own working directory, whatever PWD the engine handed it.
    assert!(log.contains("in-package"), "{log}");
    assert!(
        !log.contains(".secret"),
        "a hidden file was uploaded: {log}"
    );
    assert!(!log.contains("link"), "a link was uploaded: {log}");
    assert!(
        !log.contains("@@picidae"),
        "frames stay out of the log: {log}"
    );
    assert!(
        out.stdout_tail.trim_end().ends_with("score: 0.25"),
        "{out:?}"
    );
    let metrics = fs::read_to_string(d.path().join("run/metrics.jsonl")).unwrap();
    assert_eq!(metrics, "{\"score\": 0.25}\n");
    let err = fs::read_to_string(&req.stderr_path).unwrap();
    assert!(err.contains("1 link(s)"), "{err}");
    assert!(out.wall_secs > 0.0 && out.wall_secs < 120.0, "{out:?}");
}

#[test]
fn a_failing_command_reports_its_exit_status() {
    let Some(ex) = ray_cluster("ray::exit_status") else {
        return;
    };
    let ex = fast(ex);
    let d = tempfile::tempdir().unwrap();
    let req = request(d.path(), "echo bad >&2; exit 3", Duration::from_secs(120));
    let out = ex
        .spawn_with(&req, &spec(d.path(), "exit"))
        .unwrap()
        .wait(&AtomicBool::new(false))
        .unwrap();
    assert_eq!(out.exit_code, Some(3), "{out:?}");
    assert!(!out.timed_out && !out.cancelled);
    assert!(fs::read_to_string(&req.stdout_path)
        .unwrap()
        .contains("bad"));
}

#[test]
fn the_timeout_stops_the_job() {
    let Some(ex) = ray_cluster("ray::timeout") else {
        return;
    };
    let ex = fast(ex);
    let d = tempfile::tempdir().unwrap();
    let req = request(
        d.path(),
        "echo started; sleep 300; echo never",
        Duration::from_secs(3),
    );
    let t0 = Instant::now();
    let out = ex
        .spawn_with(&req, &spec(d.path(), "timeout"))
        .unwrap()
        .wait(&AtomicBool::new(false))
        .unwrap();
    assert!(out.timed_out && !out.succeeded(), "{out:?}");
    assert!(t0.elapsed() < Duration::from_secs(90), "{:?}", t0.elapsed());
    let log = fs::read_to_string(&req.stdout_path).unwrap();
    assert!(log.contains("started") && !log.contains("never"), "{log}");
}

#[test]
fn cancel_stops_the_job_and_a_dropped_handle_is_readopted() {
    let Some(ex) = ray_cluster("ray::cancel_and_reattach") else {
        return;
    };
    let ex = fast(ex);
    let d = tempfile::tempdir().unwrap();
    // Cancel.
    let req = request(d.path(), "sleep 300", Duration::from_secs(600));
    let run = ex.spawn_with(&req, &spec(d.path(), "cancel")).unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        f.store(true, Ordering::SeqCst);
    });
    let t0 = Instant::now();
    let out = run.wait(&flag).unwrap();
    assert!(out.cancelled && !out.succeeded(), "{out:?}");
    assert!(t0.elapsed() < Duration::from_secs(90));

    // Re-adoption: the first handle is dropped while the job runs.
    let d2 = tempfile::tempdir().unwrap();
    let req = request(
        d2.path(),
        "sleep 3; echo done-$SEED; printf '{\"v\": 1}\\n' > \"$PICIDAE_METRICS\"",
        Duration::from_secs(120),
    );
    let id = ex
        .spawn_with(&req, &spec(d2.path(), "readopt"))
        .unwrap()
        .id();
    let again = ex
        .reattach(&id, &req, Some(d2.path().join("run/metrics.jsonl")))
        .unwrap();
    let out = again.wait(&AtomicBool::new(false)).unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert!(fs::read_to_string(&req.stdout_path)
        .unwrap()
        .contains("done-7"));
    assert_eq!(
        fs::read_to_string(d2.path().join("run/metrics.jsonl")).unwrap(),
        "{\"v\": 1}\n"
    );
}

#[test]
fn an_empty_checkout_is_refused_before_submission() {
    let Some(ex) = ray_cluster("ray::empty_checkout") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let req = request(d.path(), "true", Duration::from_secs(60));
    fs::remove_file(req.cwd.join("train.sh")).unwrap();
    match ex.spawn_with(&req, &spec(d.path(), "empty")) {
        Err(ExecError::InvalidRequest(m)) => assert!(m.contains("no file to send"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_job_no_node_can_hold_is_refused_with_the_reason() {
    let Some(ex) = ray_cluster("ray::refused") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let req = request(d.path(), "true", Duration::from_secs(60));
    let mut s = spec(d.path(), "refused");
    s.gpus = 64;
    match ex.spawn_with(&req, &s) {
        Err(ExecError::Refused { reason, .. }) => {
            assert!(reason.contains("64 GPU(s) asked"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
