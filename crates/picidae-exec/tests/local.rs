//! Integration tests of the local executor against real processes.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use picidae_exec::{
    kill_group, process_alive, ExecError, Executor, Limits, LocalExecutor, RunRequest,
};
use tempfile::TempDir;

fn request(dir: &Path, command: &str) -> RunRequest {
    RunRequest {
        command: command.to_string(),
        cwd: dir.to_path_buf(),
        env: Vec::new(),
        time_budget: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        grace: Duration::from_millis(500),
        stdout_path: dir.join("logs/stdout.log"),
        stderr_path: dir.join("logs/stderr.log"),
        log_cap_bytes: 1 << 20,
    }
}

const SIGKILL: i32 = 9;

fn never() -> AtomicBool {
    AtomicBool::new(false)
}

/// Reads a pid the script wrote, waiting briefly for the file to appear.
fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pid file {} never appeared",
            path.display()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn normal_run_streams_logs_and_tail() {
    let dir = TempDir::new().unwrap();
    let mut req = request(
        dir.path(),
        "echo \"var=$PICIDAE_TEST_VAR\"; pwd; echo oops >&2; echo 'metric val_loss=0.123'",
    );
    req.env.push(("PICIDAE_TEST_VAR".into(), "hello".into()));
    let child = LocalExecutor::new().spawn(&req).unwrap();
    assert!(child.pid() > 1);
    assert_eq!(child.pid(), child.pgid());
    let out = child.wait(&never()).unwrap();

    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.signal, None);
    assert!(out.succeeded());
    assert!(!out.timed_out && !out.cancelled && !out.over_budget);
    assert!(!out.stdout_truncated && !out.stderr_truncated);
    assert!(
        out.wall_secs >= 0.0 && out.wall_secs < 5.0,
        "wall {}",
        out.wall_secs
    );
    assert!(out.started_at_unix_ms > 0 && out.finished_at_unix_ms >= out.started_at_unix_ms);

    let stdout = fs::read_to_string(&req.stdout_path).unwrap();
    let stderr = fs::read_to_string(&req.stderr_path).unwrap();
    assert!(stdout.contains("var=hello"), "stdout: {stdout}");
    let cwd = fs::canonicalize(dir.path()).unwrap();
    assert!(stdout.contains(cwd.to_str().unwrap()), "stdout: {stdout}");
    assert_eq!(stderr, "oops\n");
    assert!(
        out.stdout_tail.ends_with("metric val_loss=0.123\n"),
        "tail: {:?}",
        out.stdout_tail
    );
    assert_eq!(out.stdout_tail, stdout);

    // The outcome round-trips through serde.
    let json = serde_json::to_string(&out).unwrap();
    let back: picidae_exec::RunOutcome = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out);
}

#[test]
fn nonzero_exit_is_recorded() {
    let dir = TempDir::new().unwrap();
    let out = LocalExecutor::new()
        .spawn(&request(dir.path(), "echo bye; exit 3"))
        .unwrap()
        .wait(&never())
        .unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.signal, None);
    assert!(!out.succeeded());
    assert!(!out.timed_out);
}

#[test]
fn death_by_signal_is_recorded() {
    let dir = TempDir::new().unwrap();
    let out = LocalExecutor::new()
        .spawn(&request(dir.path(), "kill -KILL $$"))
        .unwrap()
        .wait(&never())
        .unwrap();
    assert_eq!(out.exit_code, None);
    assert_eq!(out.signal, Some(SIGKILL));
    assert!(!out.succeeded());
    assert!(!out.timed_out && !out.cancelled);
}

#[test]
fn timeout_kills_term_ignoring_child_and_grandchildren() {
    let dir = TempDir::new().unwrap();
    let mut req = request(
        dir.path(),
        "trap '' TERM; sleep 100 & echo $! > bg.pid; echo $$ > sh.pid; \
         sh -c 'echo $$ > inner.pid; sleep 100'; wait",
    );
    req.timeout = Duration::from_secs(1);
    req.grace = Duration::from_millis(500);
    req.time_budget = Duration::from_millis(200);
    let child = LocalExecutor::new().spawn(&req).unwrap();
    let leader = child.pid();
    let sh_pid = read_pid(&dir.path().join("sh.pid"));
    let bg_pid = read_pid(&dir.path().join("bg.pid"));
    let inner_pid = read_pid(&dir.path().join("inner.pid"));
    assert_eq!(sh_pid, leader);
    assert!(process_alive(bg_pid) && process_alive(inner_pid));

    let out = child.wait(&never()).unwrap();
    assert!(out.timed_out);
    assert!(!out.cancelled);
    assert!(out.over_budget);
    assert!(!out.succeeded());
    // SIGTERM was ignored, so the leader died of SIGKILL after the grace.
    assert_eq!(out.signal, Some(SIGKILL));
    assert!(out.wall_secs >= 1.45, "wall {}", out.wall_secs);
    assert!(out.wall_secs < 1.0 + 0.5 + 2.0, "wall {}", out.wall_secs);
    for pid in [sh_pid, bg_pid, inner_pid] {
        assert!(!process_alive(pid), "pid {pid} survived the timeout");
    }
}

#[test]
fn timeout_with_cooperative_child_stops_at_sigterm() {
    let dir = TempDir::new().unwrap();
    let mut req = request(dir.path(), "sleep 100");
    req.timeout = Duration::from_millis(300);
    req.grace = Duration::from_secs(5);
    let out = LocalExecutor::new()
        .spawn(&req)
        .unwrap()
        .wait(&never())
        .unwrap();
    assert!(out.timed_out);
    // The group vanished on SIGTERM; we did not sit out the 5 s grace.
    assert!(out.wall_secs < 2.0, "wall {}", out.wall_secs);
    assert_eq!(out.signal, Some(15));
}

#[test]
fn background_children_do_not_outlive_a_normal_exit() {
    let dir = TempDir::new().unwrap();
    let req = request(dir.path(), "sleep 100 & echo $! > bg.pid; echo done");
    let out = LocalExecutor::new()
        .spawn(&req)
        .unwrap()
        .wait(&never())
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert!(out.succeeded());
    let bg = read_pid(&dir.path().join("bg.pid"));
    assert!(!process_alive(bg), "background child {bg} outlived the run");
    assert!(out.wall_secs < 5.0, "wall {}", out.wall_secs);
}

#[test]
fn log_cap_truncates_file_but_keeps_draining_and_tail() {
    let dir = TempDir::new().unwrap();
    let cap = 10_000u64;
    let mut req = request(
        dir.path(),
        "head -c 3000000 /dev/zero | tr '\\0' x; echo; \
         head -c 3000000 /dev/zero | tr '\\0' y >&2; echo 'final score=42'",
    );
    req.log_cap_bytes = cap;
    req.timeout = Duration::from_secs(8);
    let out = LocalExecutor::new()
        .spawn(&req)
        .unwrap()
        .wait(&never())
        .unwrap();
    assert_eq!(
        out.exit_code,
        Some(0),
        "child must finish normally, not block"
    );
    assert!(!out.timed_out);
    assert!(out.stdout_truncated && out.stderr_truncated);

    let marker = format!("\n[picidae: log truncated at {cap} bytes]\n");
    for path in [&req.stdout_path, &req.stderr_path] {
        let bytes = fs::read(path).unwrap();
        assert!(
            bytes.len() as u64 <= cap + marker.len() as u64,
            "{} bytes",
            bytes.len()
        );
        assert!(bytes.ends_with(marker.as_bytes()));
    }
    assert!(out.stdout_tail.ends_with("final score=42\n"));
    assert!(out.stdout_tail.len() <= 64 * 1024);
    assert!(out.stdout_tail.len() > 60 * 1024);
}

#[test]
fn cancel_flag_stops_running_child_and_logs_stream_live() {
    let dir = TempDir::new().unwrap();
    let req = request(dir.path(), "echo started; sleep 100");
    let child = LocalExecutor::new().spawn(&req).unwrap();

    // The log is written while the child is still running.
    let deadline = Instant::now() + Duration::from_secs(3);
    while fs::read_to_string(&req.stdout_path).unwrap_or_default() != "started\n" {
        assert!(Instant::now() < deadline, "stdout was not streamed live");
        thread::sleep(Duration::from_millis(10));
    }

    let cancel = Arc::new(AtomicBool::new(false));
    let setter = {
        let cancel = cancel.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            cancel.store(true, Ordering::SeqCst);
        })
    };
    let pid = child.pid();
    let started = Instant::now();
    let out = child.wait(&cancel).unwrap();
    setter.join().unwrap();
    assert!(out.cancelled);
    assert!(!out.timed_out);
    assert!(!out.succeeded());
    assert!(out.signal.is_some());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!process_alive(pid));
}

#[test]
fn peak_rss_of_python_child() {
    let dir = TempDir::new().unwrap();
    let req = request(
        dir.path(),
        "python3 -c 'import time; b = b\"x\" * (100 * 1024 * 1024); time.sleep(0.3); print(len(b))'",
    );
    let out = LocalExecutor::new()
        .spawn(&req)
        .unwrap()
        .wait(&never())
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "tail: {}", out.stdout_tail);
    let rss = out.peak_rss_kb.expect("peak rss measured");
    assert!(rss > 80_000, "peak_rss_kb = {rss}");
}

#[test]
fn invalid_requests_are_errors_not_panics() {
    let dir = TempDir::new().unwrap();
    let exec = LocalExecutor::new();

    let mut req = request(dir.path(), "true");
    req.cwd = dir.path().join("missing");
    assert!(matches!(
        exec.spawn(&req),
        Err(ExecError::InvalidRequest(_))
    ));

    let mut req = request(dir.path(), "true");
    req.env.push(("BAD=NAME".into(), "x".into()));
    assert!(matches!(
        exec.spawn(&req),
        Err(ExecError::InvalidRequest(_))
    ));

    let req = request(dir.path(), "  ");
    assert!(matches!(
        exec.spawn(&req),
        Err(ExecError::InvalidRequest(_))
    ));

    let mut req = request(dir.path(), "true");
    fs::write(dir.path().join("file"), "").unwrap();
    req.stdout_path = dir.path().join("file/stdout.log");
    assert!(matches!(exec.spawn(&req), Err(ExecError::LogFile { .. })));
}

#[test]
fn executor_trait_object_runs() {
    let dir = TempDir::new().unwrap();
    let exec: Box<dyn Executor> = Box::new(LocalExecutor::new());
    assert_eq!(exec.name(), "local");
    let handle = exec.spawn(&request(dir.path(), "echo via-trait")).unwrap();
    assert!(handle.id().starts_with("local:"));
    let out = handle.wait(&never()).unwrap();
    assert!(out.succeeded());
    assert_eq!(out.stdout_tail, "via-trait\n");
}

#[test]
fn dropping_a_running_child_kills_its_group() {
    let dir = TempDir::new().unwrap();
    let req = request(dir.path(), "sleep 100 & echo $! > bg.pid; sleep 100");
    let child = LocalExecutor::new().spawn(&req).unwrap();
    let bg = read_pid(&dir.path().join("bg.pid"));
    let leader = child.pid();
    drop(child);
    thread::sleep(Duration::from_millis(100));
    assert!(!process_alive(leader));
    assert!(!process_alive(bg));
}

#[test]
fn kill_group_cleans_up_an_orphaned_group() {
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new().unwrap();
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("trap '' TERM; sleep 100 & echo $! > bg.pid; sleep 100")
        .current_dir(dir.path())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    let bg = read_pid(&dir.path().join("bg.pid"));
    assert!(process_alive(pgid) && process_alive(bg));

    let started = Instant::now();
    kill_group(pgid, Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(3));
    // Unreaped zombies do not count as alive.
    assert!(!process_alive(pgid));
    assert!(!process_alive(bg));
    let _ = child.wait();

    // Bogus pgids are refused rather than signalling everything.
    kill_group(0, Duration::ZERO);
    kill_group(1, Duration::ZERO);
    kill_group(-5, Duration::ZERO);
    assert!(!process_alive(-1));
}

#[test]
fn daemons_that_leave_the_session_do_not_outlive_the_run() {
    let dir = TempDir::new().unwrap();
    // Three ways out: setsid directly; setsid in a child that exits at once (the daemon is
    // re-parented to init); setsid with an emptied environment while the run still lives.
    let req = request(
        dir.path(),
        "setsid sh -c 'echo $$ > d1.pid; exec sleep 100' & \
         setsid sh -c 'sleep 100 & echo $! > d2.pid' & \
         env -i setsid sleep 100 & echo $! > d3.pid; sleep 0.5; echo done",
    );
    let out = LocalExecutor::new()
        .spawn(&req)
        .unwrap()
        .wait(&never())
        .unwrap();
    assert!(out.succeeded(), "{out:?}");
    for f in ["d1.pid", "d2.pid", "d3.pid"] {
        let pid = read_pid(&dir.path().join(f));
        assert!(!process_alive(pid), "daemon {pid} ({f}) outlived the run");
    }
}

#[test]
fn memory_limit_stops_a_large_allocation() {
    let dir = TempDir::new().unwrap();
    let mut req = request(
        dir.path(),
        "python3 -c 'b = bytearray(1024 * 1024 * 1024); print(len(b))'",
    );
    req.timeout = Duration::from_secs(30);
    let ex = LocalExecutor::with_limits(Limits {
        memory_mb: Some(200),
        max_processes: None,
    });
    let out = ex.spawn(&req).unwrap().wait(&never()).unwrap();
    assert!(
        !out.succeeded(),
        "a 1 GiB allocation under a 200 MiB limit: {out:?}"
    );
    let err = fs::read_to_string(dir.path().join("logs/stderr.log")).unwrap();
    assert!(err.contains("MemoryError"), "stderr: {err}");
    // Without the limit the same allocation works.
    let out = LocalExecutor::new()
        .spawn(&req)
        .unwrap()
        .wait(&never())
        .unwrap();
    assert!(out.succeeded(), "{out:?}");
}

#[test]
fn process_limit_contains_a_fork_bomb() {
    let dir = TempDir::new().unwrap();
    let mut req = request(
        dir.path(),
        "echo $$ > leader.pid; b() { b | b & }; b; sleep 1; exit 3",
    );
    req.timeout = Duration::from_secs(20);
    let ex = LocalExecutor::with_limits(Limits {
        memory_mb: None,
        max_processes: Some(32),
    });
    let started = Instant::now();
    let out = ex.spawn(&req).unwrap().wait(&never()).unwrap();
    assert!(!out.succeeded(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "{out:?}");
    let token_left = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_link(e.path().join("cwd")).ok())
        .filter(|cwd| cwd.starts_with(dir.path()))
        .count();
    assert_eq!(token_left, 0, "processes of the fork bomb survived");
}
