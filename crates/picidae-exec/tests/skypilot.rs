//! The SkyPilot executor. No cloud account exists here, so the `sky` CLI is played by a
//! scripted stand-in (`picidae_exec::testing::skypilot`, which runs each task on this machine) for
//! launch, logs, preemption and recovery, cancel and re-adoption; and every task Picidae
//! generates is loaded with SkyPilot's own parser (`sky.Task.from_yaml`, from the `skypilot`
//! package on PyPI), so the file is known to be one SkyPilot accepts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use picidae_exec::skypilot::{task_json, SkyExecutor, SkyOptions};
use picidae_exec::testing::skypilot::sky_standin;
use picidae_exec::{ExecError, JobSpec, RunHandle, RunRequest};

fn options(dir: &Path, cluster: Option<&str>) -> SkyOptions {
    SkyOptions {
        cluster: cluster.map(str::to_string),
        cli: sky_standin(&dir.join("sky")),
        poll_interval: Duration::from_millis(200),
        query_failure_limit: Duration::from_secs(30),
        call_limit: Duration::from_secs(30),
        ..SkyOptions::default()
    }
}

fn request(dir: &Path, command: &str, timeout: Duration) -> RunRequest {
    let checkout = dir.join("checkout");
    fs::create_dir_all(&checkout).unwrap();
    fs::write(checkout.join("value.txt"), "0.5\n").unwrap();
    fs::write(checkout.join(".secret"), "token\n").unwrap();
    RunRequest {
        command: command.into(),
        cwd: checkout,
        env: vec![
            ("PICIDAE_SEED".into(), "4".into()),
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

fn spec(dir: &Path) -> JobSpec {
    JobSpec {
        name: "picidae-p-run-1".into(),
        cpus: 2,
        gpus: 0,
        memory_mb: Some(4096),
        metrics_path: Some(dir.join("run/metrics.jsonl")),
    }
}

const SCORE: &str = "cat value.txt; ls -a; echo \"seed=$PICIDAE_SEED\"; \
    printf '{\"score\": 0.5}\\n' > \"$PICIDAE_METRICS\"; echo 'score: 0.5'";

#[test]
fn a_managed_job_runs_and_brings_its_log_and_metrics_home() {
    let d = tempfile::tempdir().unwrap();
    let ex = SkyExecutor::new(options(d.path(), None));
    let req = request(d.path(), SCORE, Duration::from_secs(60));
    let run = ex.spawn_with(&req, &spec(d.path())).unwrap();
    assert!(
        run.id().starts_with("skypilot:managed:1:picidae-p-run-1-"),
        "{}",
        run.id()
    );
    let out = run.wait(&AtomicBool::new(false)).unwrap();
    let log = fs::read_to_string(&req.stdout_path).unwrap();
    assert!(out.succeeded(), "{out:?}\n{log}");
    assert!(log.contains("0.5") && log.contains("seed=4"), "{log}");
    assert!(!log.contains(".secret"), "a hidden file was sent: {log}");
    assert!(!log.contains("@@picidae"), "{log}");
    assert_eq!(
        fs::read_to_string(d.path().join("run/metrics.jsonl")).unwrap(),
        "{\"score\": 0.5}\n"
    );
    assert_eq!(out.restarts, 0);
    // The task Picidae wrote sits beside the logs.
    let task = fs::read_to_string(d.path().join("run/skypilot-task.yaml")).unwrap();
    assert!(
        task.contains("\"cpus\": \"2+\"") && task.contains("\"memory\": \"4+\""),
        "{task}"
    );
}

#[test]
fn a_failing_command_keeps_its_status_on_a_named_cluster() {
    let d = tempfile::tempdir().unwrap();
    let ex = SkyExecutor::new(options(d.path(), Some("warm")));
    let req = request(d.path(), "echo oops; exit 4", Duration::from_secs(60));
    let run = ex.spawn_with(&req, &spec(d.path())).unwrap();
    assert!(
        run.id().starts_with("skypilot:cluster:warm:1:"),
        "{}",
        run.id()
    );
    let out = run.wait(&AtomicBool::new(false)).unwrap();
    assert_eq!(out.exit_code, Some(4), "{out:?}");
    assert!(fs::read_to_string(&req.stdout_path)
        .unwrap()
        .contains("oops"));
}

#[test]
fn a_preempted_spot_job_is_recovered_and_the_run_starts_over() {
    let d = tempfile::tempdir().unwrap();
    let opts = options(d.path(), None);
    let cli = opts.cli.clone();
    let ex = SkyExecutor::new(SkyOptions {
        use_spot: true,
        ..opts
    });
    let req = request(
        d.path(),
        "echo \"instance $(date +%s%N)\"; sleep 3; echo 'score: 0.25'",
        Duration::from_secs(60),
    );
    let run = ex.spawn_with(&req, &spec(d.path())).unwrap();
    let id = run.job_id().to_string();
    let log_path = req.stdout_path.clone();
    let preempter = std::thread::spawn(move || {
        let t0 = Instant::now();
        while !fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("instance")
        {
            assert!(t0.elapsed() < Duration::from_secs(30), "the job never ran");
            std::thread::sleep(Duration::from_millis(100));
        }
        let o = Command::new(&cli).args(["preempt", &id]).output().unwrap();
        assert!(o.status.success(), "{o:?}");
    });
    let out = run.wait(&AtomicBool::new(false)).unwrap();
    preempter.join().unwrap();
    assert!(out.succeeded(), "a recovered job is not a failure: {out:?}");
    assert_eq!(out.restarts, 1, "{out:?}");
    assert!(
        out.stdout_tail.trim_end().ends_with("score: 0.25"),
        "{out:?}"
    );
    let err = fs::read_to_string(&req.stderr_path).unwrap();
    assert!(
        err.contains("preempted") && err.contains("recovery 1"),
        "{err}"
    );
    // The timeout counts from the new instance's start: the wall time is its run alone.
    assert!(out.wall_secs < 10.0, "{out:?}");
}

#[test]
fn cancel_and_timeout_stop_the_job_and_a_handle_is_readopted() {
    let d = tempfile::tempdir().unwrap();
    let ex = SkyExecutor::new(options(d.path(), None));
    // Timeout.
    let req = request(d.path(), "echo up; sleep 300", Duration::from_secs(2));
    let t0 = Instant::now();
    let out = ex
        .spawn_with(&req, &spec(d.path()))
        .unwrap()
        .wait(&AtomicBool::new(false))
        .unwrap();
    assert!(out.timed_out && !out.succeeded(), "{out:?}");
    assert!(t0.elapsed() < Duration::from_secs(30));
    // Cancel.
    let d2 = tempfile::tempdir().unwrap();
    let ex2 = SkyExecutor::new(options(d2.path(), Some("warm")));
    let req = request(d2.path(), "sleep 300", Duration::from_secs(600));
    let out = ex2
        .spawn_with(&req, &spec(d2.path()))
        .unwrap()
        .wait(&AtomicBool::new(true))
        .unwrap();
    assert!(out.cancelled, "{out:?}");
    // Re-adoption from the stored handle.
    let d3 = tempfile::tempdir().unwrap();
    let ex3 = SkyExecutor::new(options(d3.path(), None));
    let req = request(d3.path(), SCORE, Duration::from_secs(60));
    let handle = ex3.spawn_with(&req, &spec(d3.path())).unwrap().id();
    let out = ex3
        .reattach(&handle, &req, Some(d3.path().join("run/metrics.jsonl")))
        .unwrap()
        .wait(&AtomicBool::new(false))
        .unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert!(fs::read_to_string(&req.stdout_path)
        .unwrap()
        .contains("seed=4"));
}

#[test]
fn gpus_without_a_gpu_type_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let ex = SkyExecutor::new(options(d.path(), None));
    let req = request(d.path(), "true", Duration::from_secs(60));
    let mut s = spec(d.path());
    s.gpus = 2;
    match ex.spawn_with(&req, &s) {
        Err(ExecError::Refused { reason, .. }) => assert!(reason.contains("GPU type"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Executor options, the run's resources and its extra variables.
type Case = (SkyOptions, JobSpec, Vec<(String, String)>);

/// The tasks of several contracts, loaded by SkyPilot's own parser.
#[test]
fn generated_tasks_pass_skypilots_parser() {
    let probe = Command::new("python3").args(["-c", "import sky"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("PICIDAE_REQUIRE_SKYPILOT").as_deref() != Ok("1"),
            "PICIDAE_REQUIRE_SKYPILOT=1 but `import sky` fails (pip install skypilot)"
        );
        eprintln!("skipping: SkyPilot is not installed (pip install skypilot)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut cases: Vec<Case> = Vec::new();
    let base = SkyOptions::default();
    cases.push((
        SkyOptions {
            gpu: Some("H100".into()),
            use_spot: true,
            cloud: Some("aws".into()),
            region: Some("us-east-1".into()),
            ..base.clone()
        },
        JobSpec {
            name: "gpu-spot".into(),
            gpus: 8,
            cpus: 16,
            memory_mb: Some(65536),
            ..JobSpec::default()
        },
        vec![],
    ));
    cases.push((
        base.clone(),
        JobSpec {
            name: "cpu".into(),
            ..JobSpec::default()
        },
        vec![],
    ));
    cases.push((
        SkyOptions {
            gpu: Some("A100-80GB".into()),
            cluster: Some("warm".into()),
            ..base
        },
        JobSpec {
            name: "params".into(),
            gpus: 1,
            ..JobSpec::default()
        },
        vec![
            ("PICIDAE_PARAM_LR".into(), "3e-4".into()),
            (
                "PICIDAE_PARAM_NOTE".into(),
                "a \"quoted\" value: with colon\nand a newline".into(),
            ),
        ],
    ));
    for (i, (opts, spec, env)) in cases.into_iter().enumerate() {
        let dir = d.path().join(format!("case{i}"));
        let mut req = request(
            &dir,
            "python3 train.py --steps 10 && echo 'score: 1'",
            Duration::from_secs(60),
        );
        req.env.extend(env.clone());
        let task = task_json(&req, &spec, &opts, "n-1").unwrap();
        let path: PathBuf = dir.join("task.yaml");
        fs::write(&path, serde_json::to_string_pretty(&task).unwrap()).unwrap();
        let script = "import json, sys, sky\n\
t = sky.Task.from_yaml(sys.argv[1])\n\
r = list(t.resources)[0]\n\
print(json.dumps({'name': t.name, 'run': t.run, 'envs': t.envs, 'workdir': t.workdir,\n\
  'acc': r.accelerators, 'spot': r.use_spot, 'cloud': str(r.cloud) if r.cloud else None,\n\
  'region': r.region, 'cpus': r.cpus, 'memory': r.memory}))\n";
        let o = Command::new("python3")
            .args(["-c", script, path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "SkyPilot refused case {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let stdout = String::from_utf8_lossy(&o.stdout);
        let got: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(got["name"], spec.name);
        assert_eq!(got["run"], task["run"], "case {i}");
        for (k, v) in &env {
            assert_eq!(got["envs"][k], v.as_str(), "case {i}: {k}");
        }
        assert!(got["envs"].get("PICIDAE_METRICS").is_none());
        match (&opts.gpu, spec.gpus) {
            (Some(kind), n) if n > 0 => assert_eq!(got["acc"][kind], n, "case {i}: {got}"),
            _ => assert!(got["acc"].is_null(), "case {i}: {got}"),
        }
        assert_eq!(got["spot"], opts.use_spot, "case {i}");
        if opts.cloud.is_some() {
            assert_eq!(got["cloud"], "AWS", "case {i}: {got}");
            assert_eq!(got["region"], "us-east-1");
        }
    }
}
