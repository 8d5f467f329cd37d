//! Integration tests of the Slurm executor against a real Slurm cluster.
//!
//! Each test skips (with a message) when the Slurm client commands are
//! missing or `sinfo` fails, unless `PICIDAE_REQUIRE_SLURM=1` is set, in
//! which case it fails instead.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};
use std::thread;
use std::time::{Duration, Instant};

use picidae_exec::{
    ExecError, Executor, RunRequest, SlurmDisposition, SlurmExecutor, SlurmJobSpec, SlurmJobState,
    SlurmOptions,
};
use tempfile::TempDir;

/// Why Slurm cannot be used here, or `None` when it can. Checked once per
/// test binary; `sinfo` gets 10 s (it retries for a minute when no
/// configuration is found).
fn slurm_unavailable() -> Option<String> {
    static CHECK: OnceLock<Option<String>> = OnceLock::new();
    CHECK.get_or_init(check_slurm).clone()
}

fn check_slurm() -> Option<String> {
    for tool in ["sbatch", "squeue", "scontrol", "scancel", "sinfo"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
        if !found {
            return Some(format!("`{tool}` is not on PATH"));
        }
    }
    let mut child = match Command::new("sinfo")
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Some(format!("cannot run `sinfo`: {e}")),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return None,
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut err);
                }
                let first = err.lines().next().unwrap_or("").to_string();
                return Some(format!("`sinfo` failed ({status}): {first}"));
            }
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Some("`sinfo` did not answer within 10 s".to_string());
            }
            Err(e) => return Some(format!("cannot wait for `sinfo`: {e}")),
        }
    }
}

/// Held shared by every test, exclusively by the test that takes the node
/// down.
static NODE: RwLock<()> = RwLock::new(());

/// `Some(guard)` when the test should run; prints why and returns `None`
/// when it should be skipped; panics when Slurm is required but unusable.
fn slurm_ready(test: &str) -> Option<RwLockReadGuard<'static, ()>> {
    let Some(why) = slurm_unavailable() else {
        return Some(NODE.read().unwrap_or_else(|e| e.into_inner()));
    };
    if std::env::var("PICIDAE_REQUIRE_SLURM").as_deref() == Ok("1") {
        panic!("{test}: Slurm is required (PICIDAE_REQUIRE_SLURM=1) but unusable: {why}");
    }
    eprintln!("skipping {test}: {why} (set PICIDAE_REQUIRE_SLURM=1 to make this fail)");
    None
}

fn executor() -> SlurmExecutor {
    SlurmExecutor::new(SlurmOptions {
        poll_interval: Duration::from_millis(200),
        ..SlurmOptions::default()
    })
}

fn workdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("picidae-slurm-test")
        .tempdir()
        .unwrap()
}

fn request(dir: &Path, command: &str) -> RunRequest {
    RunRequest {
        command: command.to_string(),
        cwd: dir.to_path_buf(),
        env: Vec::new(),
        time_budget: Duration::from_secs(60),
        timeout: Duration::from_secs(25),
        grace: Duration::from_secs(1),
        stdout_path: dir.join("logs/stdout.log"),
        stderr_path: dir.join("logs/stderr.log"),
        log_cap_bytes: 1 << 20,
    }
}

fn spec(name: &str) -> SlurmJobSpec {
    SlurmJobSpec {
        name: Some(name.to_string()),
        ..SlurmJobSpec::default()
    }
}

fn never() -> AtomicBool {
    AtomicBool::new(false)
}

fn job_state(exec: &SlurmExecutor, id: &str) -> Option<SlurmJobState> {
    exec.poll(&[id]).unwrap().remove(id)
}

/// Waits until the job is running (or over), so signals reach real processes.
fn wait_running(exec: &SlurmExecutor, id: &str) -> SlurmJobState {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state = job_state(exec, id);
        if let Some(s) = &state {
            if s.has_started() {
                return s.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never started: {state:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn success_captures_stdout_and_env() {
    let Some(_node) = slurm_ready("success_captures_stdout_and_env") else {
        return;
    };
    let dir = workdir();
    let mut req = request(
        dir.path(),
        "echo \"hello $GREETING from $(pwd)\"; echo oops >&2; echo \"job=$SLURM_JOB_ID\"",
    );
    req.env = vec![("GREETING".into(), "it's \"quoted\" $HOME".into())];
    let exec = executor();
    let run = exec
        .spawn_with(&req, &spec("picidae-test-success"))
        .unwrap();
    let job_id = run.job_id().to_string();
    let out = run.wait(&never()).unwrap();
    println!("outcome: {out:?}");

    assert!(out.succeeded(), "{out:?}");
    assert_eq!(out.exit_code, Some(0));
    assert!(!out.timed_out && !out.cancelled);
    let cwd = fs::canonicalize(dir.path()).unwrap();
    let expected = format!("hello it's \"quoted\" $HOME from {}\n", cwd.display());
    assert!(
        out.stdout_tail.starts_with(&expected),
        "{:?}",
        out.stdout_tail
    );
    assert!(out.stdout_tail.contains(&format!("job={job_id}\n")));
    let stderr = fs::read_to_string(dir.path().join("logs/stderr.log")).unwrap();
    assert_eq!(stderr, "oops\n");
    assert!(dir.path().join("logs/stdout.log.sbatch").is_file());
    assert!(out.finished_at_unix_ms >= out.started_at_unix_ms);
    assert!(out.wall_secs < 30.0);
    assert_eq!(
        job_state(&exec, &job_id).map(|s| s.disposition()),
        Some(SlurmDisposition::Succeeded)
    );
}

#[test]
fn failure_reports_exit_code_through_trait() {
    let Some(_node) = slurm_ready("failure_reports_exit_code_through_trait") else {
        return;
    };
    let dir = workdir();
    let req = request(dir.path(), "echo failing; exit 3");
    let exec = executor();
    let handle = Executor::spawn(&exec, &req).unwrap();
    let id = handle.id();
    assert!(id.starts_with("slurm:"), "{id}");
    let out = handle.wait(&never()).unwrap();
    println!("outcome: {out:?}");
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.signal, None);
    assert!(!out.succeeded() && !out.timed_out && !out.cancelled);
    assert_eq!(out.stdout_tail, "failing\n");
    assert_eq!(job_state(&exec, &id), Some(SlurmJobState::Failed));
}

#[test]
fn timeout_kills_the_job() {
    let Some(_node) = slurm_ready("timeout_kills_the_job") else {
        return;
    };
    let dir = workdir();
    let mut req = request(dir.path(), "echo started; sleep 600");
    req.timeout = Duration::from_secs(2);
    req.grace = Duration::from_secs(1);
    let exec = executor();
    let run = exec
        .spawn_with(&req, &spec("picidae-test-timeout"))
        .unwrap();
    let job_id = run.job_id().to_string();
    let t0 = Instant::now();
    let out = run.wait(&never()).unwrap();
    println!("outcome: {out:?} after {:?}", t0.elapsed());
    assert!(out.timed_out, "{out:?}");
    assert!(!out.cancelled && !out.succeeded());
    assert!(
        out.stdout_tail.starts_with("started\n"),
        "{:?}",
        out.stdout_tail
    );
    assert!(t0.elapsed() < Duration::from_secs(25), "{:?}", t0.elapsed());
    assert!(out.wall_secs >= 1.0, "{out:?}");
    let state = job_state(&exec, &job_id).expect("job known");
    assert!(state.is_terminal(), "{state}");
}

#[test]
fn timeout_escalates_to_kill_when_term_is_ignored() {
    let Some(_node) = slurm_ready("timeout_escalates_to_kill_when_term_is_ignored") else {
        return;
    };
    let dir = workdir();
    // An ignored signal stays ignored across exec, so `sleep` ignores TERM too.
    let mut req = request(dir.path(), "trap '' TERM; echo started; sleep 600");
    req.timeout = Duration::from_secs(2);
    req.grace = Duration::from_secs(1);
    let exec = executor();
    let t0 = Instant::now();
    let out = exec
        .spawn_with(&req, &spec("picidae-test-kill"))
        .unwrap()
        .wait(&never())
        .unwrap();
    println!("outcome: {out:?} after {:?}", t0.elapsed());
    assert!(out.timed_out, "{out:?}");
    assert!(t0.elapsed() < Duration::from_secs(25), "{:?}", t0.elapsed());
}

#[test]
fn cancel_flag_scancels_the_job() {
    let Some(_node) = slurm_ready("cancel_flag_scancels_the_job") else {
        return;
    };
    let dir = workdir();
    let req = request(dir.path(), "sleep 600");
    let exec = executor();
    let run = exec.spawn_with(&req, &spec("picidae-test-cancel")).unwrap();
    let job_id = run.job_id().to_string();
    wait_running(&exec, &job_id);
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let setter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(500));
        flag.store(true, Ordering::SeqCst);
    });
    let t0 = Instant::now();
    let out = run.wait(&cancel).unwrap();
    setter.join().unwrap();
    println!("outcome: {out:?} after {:?}", t0.elapsed());
    assert!(out.cancelled, "{out:?}");
    assert!(!out.timed_out && !out.succeeded());
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let state = job_state(&exec, &job_id).expect("job known");
    assert!(state.is_terminal(), "{state}");
}

#[test]
fn reattach_after_dropping_the_handle() {
    let Some(_node) = slurm_ready("reattach_after_dropping_the_handle") else {
        return;
    };
    let dir = workdir();
    let req = request(dir.path(), "sleep 3; echo survived; exit 5");
    let exec = executor();
    let handle = Executor::spawn(&exec, &req).unwrap();
    let persisted = handle.id();
    let job_id = persisted.trim_start_matches("slurm:").to_string();
    // A coordinator crash: the handle goes away without waiting.
    drop(handle);
    let state = wait_running(&exec, &job_id);
    assert!(
        !state.is_terminal(),
        "dropping the handle ended the job: {state}"
    );
    thread::sleep(Duration::from_millis(500));
    let state = job_state(&exec, &job_id).expect("job known");
    assert_eq!(state.disposition(), SlurmDisposition::Active, "{state}");

    // A new coordinator (new executor) resumes from the persisted id.
    let restarted = executor();
    let handle = restarted.reattach(&persisted, &req).unwrap();
    assert_eq!(handle.id(), persisted);
    let out = handle.wait(&never()).unwrap();
    println!("outcome: {out:?}");
    assert_eq!(out.exit_code, Some(5), "{out:?}");
    assert!(!out.timed_out && !out.cancelled);
    assert_eq!(out.stdout_tail, "survived\n");
    assert!(out.wall_secs >= 2.0, "{out:?}");

    // Reattaching to the finished job gives the same answer.
    let again = restarted
        .reattach(&job_id, &req)
        .unwrap()
        .wait(&never())
        .unwrap();
    assert_eq!(again.exit_code, Some(5));
}

#[test]
fn batch_poll_and_log_cap() {
    let Some(_node) = slurm_ready("batch_poll_and_log_cap") else {
        return;
    };
    let dir = workdir();
    let exec = executor();
    let mut req = request(
        dir.path(),
        "i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done",
    );
    req.log_cap_bytes = 100;
    let a = exec.spawn_with(&req, &spec("picidae-test-cap")).unwrap();
    let a_id = a.job_id().to_string();
    let other = dir.path().join("b");
    fs::create_dir(&other).unwrap();
    let mut req_b = request(&other, "sleep 1");
    req_b.stdout_path = other.join("out.log");
    req_b.stderr_path = other.join("out.log");
    let b = exec.spawn_with(&req_b, &spec("picidae-test-poll")).unwrap();
    let b_id = format!("slurm:{}", b.job_id());

    let states = exec
        .poll(&[a_id.as_str(), b_id.as_str(), "999999"])
        .unwrap();
    println!("poll: {states:?}");
    assert!(
        states.contains_key(&a_id) && states.contains_key(&b_id),
        "{states:?}"
    );
    assert!(!states.contains_key("999999"));

    let out = a.wait(&never()).unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert!(out.stdout_truncated && !out.stderr_truncated, "{out:?}");
    assert!(
        out.stdout_tail.ends_with("line-499\n"),
        "tail is independent of the cap"
    );
    let log = fs::read_to_string(dir.path().join("logs/stdout.log")).unwrap();
    assert!(log.starts_with("line-0\nline-1\n"));
    assert!(
        log.ends_with("[picidae: log truncated at 100 bytes]\n"),
        "{log:?}"
    );
    assert!(log.len() < 200);

    let out_b = b.wait(&never()).unwrap();
    assert!(out_b.succeeded(), "{out_b:?}");
    let states = exec.poll(&[a_id.as_str(), b_id.as_str()]).unwrap();
    assert_eq!(states[&a_id], SlurmJobState::Completed);
    assert_eq!(states[&b_id], SlurmJobState::Completed);
}

#[test]
fn bad_requests_are_rejected_before_submission() {
    let Some(_node) = slurm_ready("bad_requests_are_rejected_before_submission") else {
        return;
    };
    let dir = workdir();
    let exec = executor();
    let mut req = request(dir.path(), "true");
    req.env = vec![("NOT-A-NAME".into(), "x".into())];
    assert!(matches!(
        exec.spawn_with(&req, &SlurmJobSpec::default()),
        Err(ExecError::InvalidRequest(_))
    ));
    let mut req = request(dir.path(), "true");
    req.cwd = PathBuf::from("/nonexistent/picidae");
    assert!(matches!(
        Executor::spawn(&exec, &req),
        Err(ExecError::InvalidRequest(_))
    ));
    assert!(matches!(
        exec.reattach("not-a-job", &request(dir.path(), "true")),
        Err(ExecError::InvalidRequest(_))
    ));
}

#[test]
fn cancel_while_pending_removes_the_job() {
    let Some(_node) = slurm_ready("cancel_while_pending_removes_the_job") else {
        return;
    };
    let dir = workdir();
    let req = request(dir.path(), "echo never");
    // `--begin` keeps the job pending for a minute.
    let exec = SlurmExecutor::new(SlurmOptions {
        extra_args: vec!["--begin=now+60".into()],
        ..executor().options().clone()
    });
    let run = exec
        .spawn_with(&req, &spec("picidae-test-pending"))
        .unwrap();
    let job_id = run.job_id().to_string();
    assert_eq!(job_state(&exec, &job_id), Some(SlurmJobState::Pending));
    let out = run.wait(&AtomicBool::new(true)).unwrap();
    println!("outcome: {out:?}");
    assert!(out.cancelled && !out.timed_out, "{out:?}");
    assert_eq!((out.exit_code, out.signal), (None, None));
    assert_eq!(out.stdout_tail, "");
    assert_eq!(job_state(&exec, &job_id), Some(SlurmJobState::Cancelled));
}

/// Takes the node down under a running job, so only runs when
/// `PICIDAE_SLURM_ADMIN_TESTS=1` (it needs Slurm admin rights and briefly
/// disturbs every job on the node).
#[test]
fn node_failure_is_reported_as_lost() {
    if std::env::var("PICIDAE_SLURM_ADMIN_TESTS").as_deref() != Ok("1") {
        eprintln!("skipping node_failure_is_reported_as_lost: set PICIDAE_SLURM_ADMIN_TESTS=1");
        return;
    }
    let Some(shared) = slurm_ready("node_failure_is_reported_as_lost") else {
        return;
    };
    drop(shared);
    let _exclusive = NODE.write().unwrap_or_else(|e| e.into_inner());

    struct Resume(String);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = Command::new("scontrol")
                .args(["update", &format!("nodename={}", self.0), "state=resume"])
                .output();
        }
    }

    let dir = workdir();
    let exec = executor();
    let run = exec
        .spawn_with(
            &request(dir.path(), "sleep 60"),
            &spec("picidae-test-nodefail"),
        )
        .unwrap();
    let job_id = run.job_id().to_string();
    wait_running(&exec, &job_id);
    let out = Command::new("squeue")
        .args(["-h", "-j", &job_id, "-o", "%N"])
        .output()
        .unwrap();
    let node = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!node.is_empty());
    let _resume = Resume(node.clone());
    let down = Command::new("scontrol")
        .args([
            "update",
            &format!("nodename={node}"),
            "state=down",
            "reason=picidae-test",
        ])
        .output()
        .unwrap();
    assert!(down.status.success(), "{down:?}");

    match run.wait(&never()) {
        Err(ExecError::SlurmJobLost { job_id: id, state }) => {
            println!("lost: job {id} state {state}");
            assert_eq!(id, job_id);
            assert_eq!(state, "NODE_FAIL");
        }
        other => panic!("expected SlurmJobLost, got {other:?}"),
    }
}
