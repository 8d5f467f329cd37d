//! Integration tests of the container executor against real container
//! runtimes: the same suite runs against Docker (module `docker`) and
//! Podman (module `podman`).
//!
//! The runtimes come from [`picidae_exec::testing`]: a private `dockerd`
//! (or the daemon at `PICIDAE_DOCKER_HOST`) and a Podman with private
//! storage, both with a tiny busybox image imported. Docker tests skip
//! (printing why) when Docker cannot be used here, unless
//! `PICIDAE_REQUIRE_CONTAINERS=1`; Podman tests likewise unless
//! `PICIDAE_REQUIRE_PODMAN=1`. Needs (Debian): `docker.io` (and root for the
//! private daemon), `podman runc catatonit` for Podman, `busybox-static`,
//! `tar`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use picidae_exec::testing::{self, ContainerBackend as Backend, BUSYBOX_IMAGE};
use picidae_exec::{
    ContainerExecutor, ContainerSpec, ExecError, Executor, RunRequest, RuntimeKind,
};
use tempfile::TempDir;

const IMAGE: &str = BUSYBOX_IMAGE;

/// `Some(backend)` when the test should run; `None` (after printing why)
/// when it is skipped.
fn backend(kind: RuntimeKind, test: &str) -> Option<&'static Backend> {
    testing::container_backend(kind, test)
}

fn executor(rt: &Backend, edit: impl FnOnce(&mut ContainerSpec)) -> ContainerExecutor {
    let mut spec = ContainerSpec::new(IMAGE);
    edit(&mut spec);
    ContainerExecutor::new(rt.runtime().clone(), spec)
        .with_poll_interval(Duration::from_millis(100))
}

/// `<tmp>/work` is the run's cwd, `<tmp>/logs` holds its logs (outside the
/// cwd, so the log directory mount is exercised).
fn workdir() -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("picidae-container-test")
        .tempdir()
        .unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    (dir, work)
}

fn request(dir: &Path, command: &str) -> RunRequest {
    RunRequest {
        command: command.to_string(),
        cwd: dir.join("work"),
        env: Vec::new(),
        time_budget: Duration::from_secs(60),
        timeout: Duration::from_secs(30),
        grace: Duration::from_secs(2),
        stdout_path: dir.join("logs/stdout.log"),
        stderr_path: dir.join("logs/stderr.log"),
        log_cap_bytes: 1 << 20,
    }
}

fn never() -> AtomicBool {
    AtomicBool::new(false)
}

fn stderr_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("logs/stderr.log")).unwrap()
}

fn success_captures_stdout_env_and_writes_to_cwd(rt: &Backend) {
    let (tmp, work) = workdir();
    let secret = tmp.path().join("not-listed.txt");
    fs::write(&secret, "host only\n").unwrap();
    let mut req = request(
        tmp.path(),
        &format!(
            "echo \"hello $GREETING\"; pwd; echo oops >&2; echo written > result.txt; \
             echo \"cargo vars: $(env | grep -c CARGO_)\"; \
             if [ -e {s} ]; then echo unlisted-visible; else echo unlisted-absent; fi",
            s = secret.display()
        ),
    );
    let greeting = "it's \"quoted\" $HOME `id` and  spaces";
    req.env = vec![("GREETING".into(), greeting.into())];
    let exec = executor(rt, |_| {});
    let handle = Executor::spawn(&exec, &req).unwrap();
    let id = handle.id();
    assert!(id.starts_with(&rt.prefix()), "{id}");
    let out = handle.wait(&never()).unwrap();
    println!("id: {id}\noutcome: {out:?}");

    assert!(out.succeeded(), "{out:?}");
    let cwd = fs::canonicalize(&work).unwrap();
    assert_eq!(
        out.stdout_tail,
        format!(
            "hello {greeting}\n{}\ncargo vars: 0\nunlisted-absent\n",
            cwd.display()
        )
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join("logs/stdout.log")).unwrap(),
        out.stdout_tail
    );
    assert_eq!(stderr_log(tmp.path()), "oops\n");
    assert_eq!(
        fs::read_to_string(work.join("result.txt")).unwrap(),
        "written\n"
    );
    assert!(out.finished_at_unix_ms >= out.started_at_unix_ms);
    assert!(out.wall_secs < 20.0, "{}", out.wall_secs);
    let bare = id.strip_prefix(&rt.prefix()).unwrap();
    assert_eq!(exec.inspect(bare).unwrap(), None, "container not removed");
}

fn exit_code_is_reported(rt: &Backend) {
    let (tmp, _work) = workdir();
    let exec = executor(rt, |_| {});
    let out = Executor::spawn(&exec, &request(tmp.path(), "echo failing; exit 3"))
        .unwrap()
        .wait(&never())
        .unwrap();
    println!("outcome: {out:?}");
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.signal, None);
    assert!(!out.succeeded() && !out.timed_out && !out.cancelled);
    assert_eq!(out.stdout_tail, "failing\n");
}

/// Interface names listed in `/proc/net/dev` output.
fn interfaces(dev: &str) -> Vec<String> {
    dev.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .filter(|n| !n.contains('|'))
        .collect()
}

fn network_is_none_by_default(rt: &Backend) {
    let (tmp, _work) = workdir();
    let req = request(tmp.path(), "cat /proc/net/dev");
    let out = executor(rt, |_| {})
        .spawn_named(&ContainerExecutor::unique_name(), &req)
        .unwrap()
        .wait(&never())
        .unwrap();
    let isolated = interfaces(&out.stdout_tail);
    println!("--network none: {isolated:?}");
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(isolated, ["lo"]);

    // Control: with networking (host network here, as the private daemon
    // has no bridge) the same check sees the host's interfaces.
    let host = fs::read_to_string("/proc/net/dev").unwrap();
    if interfaces(&host).len() > 1 {
        let exec = executor(rt, |s| {
            s.network = true;
            s.extra_args = vec!["--network".into(), "host".into()];
        });
        let out = Executor::spawn(&exec, &req)
            .unwrap()
            .wait(&never())
            .unwrap();
        let seen = interfaces(&out.stdout_tail);
        println!("--network host: {seen:?}");
        assert!(seen.len() > 1, "{seen:?}");
    }
}

fn readonly_mount_cannot_be_written(rt: &Backend) {
    let (tmp, _work) = workdir();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("input.txt"), "original\n").unwrap();
    let data = fs::canonicalize(&data).unwrap();
    let cmd = format!(
        "cat {d}/input.txt; if echo changed > {d}/input.txt; then echo wrote; else echo refused; fi; \
         touch {d}/new.txt; echo done",
        d = data.display()
    );
    let req = request(tmp.path(), &cmd);
    let exec = executor(rt, |s| s.readonly_mounts = vec![data.clone()]);
    let out = Executor::spawn(&exec, &req)
        .unwrap()
        .wait(&never())
        .unwrap();
    let stderr = stderr_log(tmp.path());
    println!("outcome: {out:?}\nstderr: {stderr}");
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(out.stdout_tail, "original\nrefused\ndone\n");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert_eq!(
        fs::read_to_string(data.join("input.txt")).unwrap(),
        "original\n"
    );
    assert!(!data.join("new.txt").exists());
}

/// Runs `command` with a 32 MiB memory limit.
fn run_with_memory_limit(rt: &Backend, command: &str) -> (picidae_exec::ContainerOutcome, String) {
    let (tmp, _work) = workdir();
    let req = request(tmp.path(), command);
    let exec = executor(rt, |s| s.memory_mb = Some(32));
    let name = ContainerExecutor::unique_name();
    let run = exec.spawn_named(&name, &req).unwrap();
    let detail = run.wait_detailed(&never()).unwrap();
    let stderr = stderr_log(tmp.path());
    println!("outcome: {detail:?}\nstderr: {stderr}");
    assert!(detail.removed);
    assert!(!exec.run_state_dir(&name).exists(), "run state left behind");
    // Podman's conmon writes its `oom` file into its working directory,
    // which must not be the caller's.
    assert!(!Path::new("oom").exists(), "`oom` file in the test's cwd");
    (detail, stderr)
}

const OOM_NOTE: &str = "[picidae: container was OOM-killed (memory limit 32 MiB)]";

/// A child process exceeds the limit and is killed; the shell carries on.
fn memory_limit_kills_a_hog(rt: &Backend) {
    // busybox dd allocates and fills a 256 MiB buffer.
    let (detail, stderr) = run_with_memory_limit(
        rt,
        "echo start; dd if=/dev/zero of=/dev/null bs=256M count=1; echo \"dd status $?\"; sleep 1",
    );
    let out = &detail.outcome;
    assert!(
        out.stdout_tail.starts_with("start\n"),
        "{:?}",
        out.stdout_tail
    );
    if !rt.memory_limit() {
        println!("NOTE: the runtime reports no memory limit support (cgroups); only checking the run completes");
        assert!(!detail.oom_killed);
        return;
    }
    assert_eq!(out.stdout_tail, "start\ndd status 137\n");
    assert!(detail.oom_killed, "{detail:?}");
    assert_eq!(out.signal, Some(libc::SIGKILL));
    assert_eq!(out.exit_code, None);
    assert!(!out.succeeded());
    assert!(stderr.contains(OOM_NOTE), "{stderr}");
}

/// As above, but the container exits right after the OOM kill, leaving no
/// time to sample its cgroup.
fn memory_limit_kill_is_reported_when_the_container_exits_at_once(rt: &Backend) {
    let (detail, stderr) = run_with_memory_limit(
        rt,
        "echo start; dd if=/dev/zero of=/dev/null bs=256M count=1; echo \"dd status $?\"",
    );
    if !rt.memory_limit() {
        println!("NOTE: the runtime reports no memory limit support (cgroups)");
        return;
    }
    assert_eq!(detail.outcome.stdout_tail, "start\ndd status 137\n");
    assert!(detail.oom_killed, "{detail:?}");
    assert_eq!(detail.outcome.signal, Some(libc::SIGKILL));
    assert!(stderr.contains(OOM_NOTE), "{stderr}");
}

/// The main process itself is OOM-killed.
fn memory_limit_kill_of_the_main_process_is_a_sigkill(rt: &Backend) {
    let (detail, _stderr) = run_with_memory_limit(
        rt,
        "echo start; exec dd if=/dev/zero of=/dev/null bs=256M count=1",
    );
    if !rt.memory_limit() {
        println!("NOTE: the runtime reports no memory limit support (cgroups)");
        return;
    }
    assert_eq!(detail.outcome.signal, Some(libc::SIGKILL), "{detail:?}");
    assert_eq!(detail.outcome.exit_code, None);
    assert_eq!(detail.outcome.stdout_tail, "start\n");
    assert!(detail.oom_killed, "{detail:?}");
}

fn timeout_sends_sigterm_then_removes_the_container(rt: &Backend) {
    let (tmp, _work) = workdir();
    let mut req = request(
        tmp.path(),
        "trap 'echo got-term; exit 5' TERM; echo started; sleep 600 & wait",
    );
    req.timeout = Duration::from_secs(2);
    req.grace = Duration::from_secs(5);
    let exec = executor(rt, |_| {});
    let run = exec
        .spawn_named(&ContainerExecutor::unique_name(), &req)
        .unwrap();
    let t0 = Instant::now();
    let detail = run.wait_detailed(&never()).unwrap();
    let out = &detail.outcome;
    println!("outcome: {detail:?} after {:?}", t0.elapsed());
    assert!(out.timed_out && !out.cancelled, "{out:?}");
    // --init forwarded SIGTERM: the trap ran well within the grace period.
    assert_eq!(out.stdout_tail, "started\ngot-term\n");
    assert_eq!(out.exit_code, Some(5));
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    assert!(out.wall_secs >= 1.9, "{}", out.wall_secs);
    assert!(
        out.peak_rss_kb.is_some_and(|kb| kb > 0),
        "no RSS sampled from the container's cgroup: {:?}",
        out.peak_rss_kb
    );
    assert!(detail.removed);
    assert_eq!(exec.inspect(&detail.container_id).unwrap(), None);
}

fn timeout_kills_a_container_ignoring_sigterm(rt: &Backend) {
    let (tmp, _work) = workdir();
    let mut req = request(tmp.path(), "trap '' TERM; echo started; sleep 600");
    req.timeout = Duration::from_secs(1);
    req.grace = Duration::from_secs(1);
    let exec = executor(rt, |_| {});
    let t0 = Instant::now();
    let out = Executor::spawn(&exec, &req)
        .unwrap()
        .wait(&never())
        .unwrap();
    println!("outcome: {out:?} after {:?}", t0.elapsed());
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.signal, Some(libc::SIGKILL));
    assert_eq!(out.exit_code, None);
    assert_eq!(out.stdout_tail, "started\n");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

fn cancel_stops_the_container(rt: &Backend) {
    let (tmp, _work) = workdir();
    let req = request(tmp.path(), "echo started; sleep 600");
    let exec = executor(rt, |_| {});
    let handle = Executor::spawn(&exec, &req).unwrap();
    let id = handle.id();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let setter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1500));
        flag.store(true, Ordering::SeqCst);
    });
    let t0 = Instant::now();
    let out = handle.wait(&cancel).unwrap();
    setter.join().unwrap();
    println!("outcome: {out:?} after {:?}", t0.elapsed());
    assert!(out.cancelled && !out.timed_out, "{out:?}");
    assert!(!out.succeeded());
    // The shell runs `sleep` in the foreground and does not forward
    // SIGTERM: it dies with the init process.
    assert!(
        out.signal.is_some() || out.exit_code.is_some_and(|c| c != 0),
        "{out:?}"
    );
    assert_eq!(out.stdout_tail, "started\n");
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    let bare = id.strip_prefix(&rt.prefix()).unwrap();
    assert_eq!(exec.inspect(bare).unwrap(), None);
}

fn reattach_after_the_handle_was_dropped(rt: &Backend) {
    let (tmp, _work) = workdir();
    let req = request(tmp.path(), "echo before; sleep 3; echo after; exit 7");
    let id = {
        let exec = executor(rt, |_| {});
        let handle = Executor::spawn(&exec, &req).unwrap();
        handle.id()
        // Handle and executor dropped here: a "coordinator restart".
    };
    thread::sleep(Duration::from_millis(500));
    let exec = executor(rt, |_| {});
    let bare = id.strip_prefix(&rt.prefix()).unwrap();
    let state = exec
        .inspect(bare)
        .unwrap()
        .expect("container gone after drop");
    println!("after drop: {state:?}");
    assert!(state.running, "dropping the handle stopped the container");

    let out = exec.reattach(&id, &req).unwrap().wait(&never()).unwrap();
    println!("outcome: {out:?}");
    assert_eq!(out.exit_code, Some(7));
    assert_eq!(out.stdout_tail, "before\nafter\n");
    assert_eq!(
        fs::read_to_string(tmp.path().join("logs/stdout.log")).unwrap(),
        "before\nafter\n"
    );
    assert!(
        out.wall_secs >= 2.5 && out.wall_secs < 20.0,
        "{}",
        out.wall_secs
    );
    assert_eq!(exec.inspect(bare).unwrap(), None);

    // The container is gone now: reattaching again means it was lost.
    match exec.reattach(&id, &req) {
        Err(ExecError::ContainerLost { container, reason }) => {
            println!("second reattach: lost {container}: {reason}")
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("reattached to a removed container"),
    }
    assert!(matches!(
        exec.reattach(&format!("{}--rm", rt.prefix()), &req),
        Err(ExecError::InvalidRequest(_))
    ));
}

fn reattach_counts_the_timeout_from_the_container_start(rt: &Backend) {
    let (tmp, _work) = workdir();
    let mut req = request(tmp.path(), "echo started; sleep 600");
    req.timeout = Duration::from_secs(5);
    req.grace = Duration::from_secs(1);
    let exec = executor(rt, |_| {});
    let id = Executor::spawn(&exec, &req).unwrap().id();
    thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    let out = exec.reattach(&id, &req).unwrap().wait(&never()).unwrap();
    println!(
        "outcome: {out:?}; waited {:?} after reattaching",
        t0.elapsed()
    );
    assert!(out.timed_out, "{out:?}");
    // About 2 s were left; counting from the reattach would take 5 s + stop.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(out.wall_secs >= 4.9, "{}", out.wall_secs);
}

fn log_cap_truncates_but_keeps_the_tail(rt: &Backend) {
    let (tmp, _work) = workdir();
    let mut req = request(
        tmp.path(),
        "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done",
    );
    req.log_cap_bytes = 1000;
    let out = Executor::spawn(&executor(rt, |_| {}), &req)
        .unwrap()
        .wait(&never())
        .unwrap();
    let log = fs::read_to_string(tmp.path().join("logs/stdout.log")).unwrap();
    println!(
        "truncated: {}, log {} bytes, ends {:?}, tail ends {:?}",
        out.stdout_truncated,
        log.len(),
        &log[log.len() - 45..],
        &out.stdout_tail[out.stdout_tail.len() - 20..]
    );
    assert!(out.succeeded(), "{out:?}");
    assert!(out.stdout_truncated && !out.stderr_truncated);
    assert!(log.starts_with("line 0\nline 1\n"));
    assert!(
        log.ends_with("\n[picidae: log truncated at 1000 bytes]\n"),
        "{log}"
    );
    assert_eq!(
        log.len(),
        1000 + "\n[picidae: log truncated at 1000 bytes]\n".len()
    );
    assert!(out.stdout_tail.ends_with("line 2999\n"));
}

fn limits_and_mounts_reach_the_container(rt: &Backend) {
    let (tmp, work) = workdir();
    let data = fs::canonicalize(tmp.path()).unwrap().join("data");
    fs::create_dir(&data).unwrap();
    // Forks more sleeps than the pids limit allows; busybox sh gives up at
    // the first failed fork.
    let req = request(
        tmp.path(),
        "echo forking; i=0; while [ $i -lt 40 ]; do sleep 3 & i=$((i+1)); done; echo all-forked",
    );
    let exec = executor(rt, |s| {
        s.cpus = Some(0.5);
        s.pids_limit = Some(16);
        s.memory_mb = Some(64);
        s.readonly_mounts = vec![data.clone()];
    });
    let run = exec
        .spawn_named(&ContainerExecutor::unique_name(), &req)
        .unwrap();
    let fmt = "{{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.Memory}} \
               {{.HostConfig.NetworkMode}} {{.HostConfig.Init}} {{.Config.WorkingDir}} \
               {{range .Mounts}}{{.Source}}={{.Destination}}:{{.RW}},{{end}}";
    let inspected = rt
        .cli_output(&["inspect", "--format", fmt, run.container_id()])
        .unwrap();
    let inspected = String::from_utf8_lossy(&inspected.stdout)
        .trim()
        .to_string();
    let out = run.wait(&never()).unwrap();
    let stderr = stderr_log(tmp.path());
    println!(
        "inspect: {inspected}\noutcome: {out:?}\nstderr (first line): {:?}",
        stderr.lines().next()
    );

    let cwd = fs::canonicalize(&work).unwrap();
    let logs = fs::canonicalize(tmp.path().join("logs")).unwrap();
    let fields: Vec<&str> = inspected.split(' ').collect();
    assert_eq!(
        &fields[..6],
        [
            "500000000",
            "16",
            &(64u64 << 20).to_string(),
            "none",
            "true",
            cwd.to_str().unwrap()
        ]
    );
    let mut mounts: Vec<&str> = fields[6].split(',').filter(|m| !m.is_empty()).collect();
    mounts.sort();
    let mut expected = vec![
        format!("{0}={0}:true", cwd.display()),
        format!("{0}={0}:true", logs.display()),
        format!("{0}={0}:false", data.display()),
    ];
    expected.sort();
    assert_eq!(mounts, expected);
    assert!(
        stderr.contains("can't fork"),
        "pids limit not enforced: {stderr}"
    );
    assert_eq!(out.stdout_tail, "forking\n");
    assert!(!out.succeeded(), "{out:?}");
}

fn spawn_failure_is_an_error_and_leaves_no_container(rt: &Backend) {
    let (tmp, _work) = workdir();
    let req = request(tmp.path(), "echo never");
    let name = ContainerExecutor::unique_name();
    let exec = executor(rt, |s| s.image = "picidae-test-no-such-image:0".into());
    let err = exec.spawn_named(&name, &req).unwrap_err();
    println!("missing image: {err}");
    assert!(matches!(err, ExecError::Container { .. }), "{err}");
    assert_eq!(exec.inspect(&name).unwrap(), None);

    // Here starting fails after the container was created: the image has
    // no passwd file to resolve the user in.
    let exec = executor(rt, |s| s.user = Some("no-such-user".into()));
    let err = exec.spawn_named(&name, &req).unwrap_err();
    println!("bad user: {err}");
    assert!(matches!(err, ExecError::Container { .. }), "{err}");
    assert_eq!(
        exec.inspect(&name).unwrap(),
        None,
        "created container left behind"
    );
}

/// One `#[test]` per suite function, for one runtime.
macro_rules! suite {
    ($module:ident, $kind:expr, [$($name:ident),* $(,)?]) => {
        mod $module {
            use super::*;
            $(
                #[test]
                fn $name() {
                    if let Some(rt) = backend($kind, stringify!($name)) {
                        super::$name(rt);
                    }
                }
            )*
        }
    };
}

/// Calls `$suite!(<args>, [every suite function])`.
macro_rules! with_suite {
    ($suite:ident, $($args:tt)*) => {
        $suite!($($args)*, [
            success_captures_stdout_env_and_writes_to_cwd,
            exit_code_is_reported,
            network_is_none_by_default,
            readonly_mount_cannot_be_written,
            memory_limit_kills_a_hog,
            memory_limit_kill_is_reported_when_the_container_exits_at_once,
            memory_limit_kill_of_the_main_process_is_a_sigkill,
            timeout_sends_sigterm_then_removes_the_container,
            timeout_kills_a_container_ignoring_sigterm,
            cancel_stops_the_container,
            reattach_after_the_handle_was_dropped,
            reattach_counts_the_timeout_from_the_container_start,
            log_cap_truncates_but_keeps_the_tail,
            limits_and_mounts_reach_the_container,
            spawn_failure_is_an_error_and_leaves_no_container,
        ]);
    };
}

with_suite!(suite, docker, RuntimeKind::Docker);
with_suite!(suite, podman, RuntimeKind::Podman);
