//! Integration tests of the container executor against a real Docker daemon.
//!
//! The first test that needs Docker starts a private `dockerd` for this test
//! binary (data root, exec root, socket and pid file in a temporary
//! directory; `--bridge=none --iptables=false --ip-forward=false`, so it
//! creates no `docker0` bridge and leaves the host firewall alone), and
//! imports a tiny image from the static `busybox` binary. The daemon is
//! stopped when the test binary exits (and gets SIGTERM should the binary
//! die). With `PICIDAE_DOCKER_HOST` set, that daemon is used instead and no
//! private one is started.
//!
//! Every test skips (printing why) when Docker cannot be used here, unless
//! `PICIDAE_REQUIRE_CONTAINERS=1` is set, in which case it fails.
//! Needs: `docker`, `dockerd` (Debian: `docker.io`), `busybox` built
//! statically (Debian: `busybox-static`), `tar`, and root for the private
//! daemon.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use picidae_exec::{
    ContainerExecutor, ContainerRuntime, ContainerSpec, ExecError, Executor, RunRequest,
};
use tempfile::TempDir;

const IMAGE: &str = "picidae-test-busybox:1";

/// A usable Docker daemon with the test image imported.
struct Docker {
    runtime: ContainerRuntime,
    /// The daemon enforces `--memory`.
    memory_limit: bool,
}

static DOCKER: OnceLock<Result<Docker, String>> = OnceLock::new();
/// Pid of the private dockerd (0: none).
static DAEMON_PID: AtomicI32 = AtomicI32::new(0);
/// Directory of the private dockerd.
static DAEMON_DIR: OnceLock<PathBuf> = OnceLock::new();

/// `Some(docker)` when the test should run; prints why and returns `None`
/// when it should be skipped; panics when containers are required.
fn docker(test: &str) -> Option<&'static Docker> {
    match DOCKER.get_or_init(set_up) {
        Ok(d) => Some(d),
        Err(why) => {
            if std::env::var("PICIDAE_REQUIRE_CONTAINERS").as_deref() == Ok("1") {
                panic!("{test}: containers are required (PICIDAE_REQUIRE_CONTAINERS=1) but Docker is unusable: {why}");
            }
            eprintln!(
                "skipping {test}: Docker is unusable: {why} (set PICIDAE_REQUIRE_CONTAINERS=1 to make this fail)"
            );
            None
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn set_up() -> Result<Docker, String> {
    let cli = match std::env::var_os("PICIDAE_DOCKER") {
        Some(p) => PathBuf::from(p),
        None => {
            on_path("docker").ok_or("`docker` is not on PATH (apt-get install -y docker.io)")?
        }
    };
    let busybox =
        on_path("busybox").ok_or("`busybox` is not on PATH (apt-get install -y busybox-static)")?;
    let runtime = match std::env::var("PICIDAE_DOCKER_HOST") {
        Ok(host) if !host.is_empty() => ContainerRuntime::docker()
            .with_program(&cli)
            .with_host(host),
        _ => start_private_daemon(&cli)?,
    };
    let work = tempfile::Builder::new()
        .prefix("picidae-image")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    import_busybox_image(&runtime, &busybox, work.path())?;
    let smoke = cli_output(
        &runtime,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            IMAGE,
            "/bin/sh",
            "-c",
            "echo ok",
        ],
    )?;
    if !smoke.status.success() || smoke.stdout != b"ok\n" {
        return Err(format!(
            "a container from the busybox image does not run (is {} statically linked?): {}",
            busybox.display(),
            String::from_utf8_lossy(&smoke.stderr).trim()
        ));
    }
    let info = cli_output(&runtime, &["info", "--format", "{{.MemoryLimit}}"])?;
    let memory_limit = String::from_utf8_lossy(&info.stdout).trim() == "true";
    Ok(Docker {
        runtime,
        memory_limit,
    })
}

/// Runs the CLI with the runtime's global arguments.
fn cli_output(runtime: &ContainerRuntime, args: &[&str]) -> Result<Output, String> {
    Command::new(&runtime.program)
        .args(runtime.global_cli_args())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", runtime.program.display()))
}

fn start_private_daemon(cli: &Path) -> Result<ContainerRuntime, String> {
    let dockerd = match std::env::var_os("PICIDAE_DOCKERD") {
        Some(p) => PathBuf::from(p),
        None => on_path("dockerd")
            .ok_or("`dockerd` is not on PATH (apt-get install -y docker.io), and PICIDAE_DOCKER_HOST is not set")?,
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!(
            "a private dockerd needs root (euid is {euid}); set PICIDAE_DOCKER_HOST to use a running daemon"
        ));
    }
    remove_stale_daemon_dirs();
    let dir = std::env::temp_dir().join(format!("picidae-dockerd-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = DAEMON_DIR.set(dir.clone());
    let config = dir.join("daemon.json");
    fs::write(&config, "{}\n").map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let log_path = dir.join("dockerd.log");
    let log = fs::File::create(&log_path).map_err(|e| format!("cannot create dockerd log: {e}"))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot clone dockerd log: {e}"))?;
    let socket = dir.join("docker.sock");
    let mut cmd = Command::new(&dockerd);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .args([
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
            "--log-level=warn",
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: prctl is async-signal-safe. The daemon gets SIGTERM when the
    // thread that started it (a keeper thread living as long as this test
    // binary) goes away, so a killed test binary does not leak it.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let exited = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    {
        let exited = exited.clone();
        thread::Builder::new()
            .name("dockerd-keeper".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id() as i32));
                    let _ = child.wait();
                    exited.store(true, Ordering::SeqCst);
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start {}: {e}", dockerd.display())));
                }
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
    }
    let pid = rx
        .recv()
        .map_err(|_| "dockerd keeper thread died".to_string())??;
    DAEMON_PID.store(pid, Ordering::SeqCst);
    // SAFETY: registers a plain `extern "C" fn()` once.
    unsafe {
        libc::atexit(stop_private_daemon);
    }
    let runtime = ContainerRuntime::docker()
        .with_program(cli)
        .with_host(format!("unix://{}", socket.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let why = match runtime.check() {
            Ok(version) => {
                eprintln!(
                    "private dockerd {version} (pid {pid}) at {}",
                    socket.display()
                );
                return Ok(runtime);
            }
            Err(e) => e.to_string(),
        };
        if exited.load(Ordering::SeqCst) || Instant::now() >= deadline {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            return Err(format!(
                "dockerd did not come up ({why}); its log ends with: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `atexit` handler: SIGTERM the private daemon, wait for it, remove its
/// directory.
extern "C" fn stop_private_daemon() {
    let pid = DAEMON_PID.swap(0, Ordering::SeqCst);
    if pid <= 0 {
        return;
    }
    // SAFETY: plain signal sends to the daemon we started.
    let alive = || unsafe { libc::kill(pid, 0) } == 0;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        eprintln!("private dockerd {pid} ignored SIGTERM; killing it");
        unsafe { libc::kill(pid, libc::SIGKILL) };
        thread::sleep(Duration::from_millis(500));
    }
    if let Some(dir) = DAEMON_DIR.get() {
        if let Err(e) = remove_daemon_dir(dir) {
            eprintln!("cannot remove {}: {e}", dir.display());
        }
    }
}

/// Unmounts what a stopped dockerd left under `dir` (e.g.
/// `<exec-root>/netns/default`), then removes `dir`.
fn remove_daemon_dir(dir: &Path) -> std::io::Result<()> {
    let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        if let Ok(c) = std::ffi::CString::new(m) {
            // SAFETY: c is a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    fs::remove_dir_all(dir)
}

/// Removes the directories of private daemons whose test binary died
/// without cleaning up (killed before its `atexit` handler ran).
fn remove_stale_daemon_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix("picidae-dockerd-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let daemon = fs::read_to_string(entry.path().join("docker.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        // SAFETY: signal 0 only checks for existence.
        let alive = |pid: i32| pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
        if alive(owner) || daemon.is_some_and(alive) {
            continue;
        }
        match remove_daemon_dir(&entry.path()) {
            Ok(()) => eprintln!("removed stale {}", entry.path().display()),
            Err(e) => eprintln!("cannot remove stale {}: {e}", entry.path().display()),
        }
    }
}

/// Imports a rootfs holding only the static busybox and its applet links.
fn import_busybox_image(
    runtime: &ContainerRuntime,
    busybox: &Path,
    work: &Path,
) -> Result<(), String> {
    let root = work.join("rootfs");
    let bin = root.join("bin");
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    fs::create_dir_all(&bin).map_err(|e| io("mkdir rootfs", e))?;
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        fs::create_dir_all(root.join(d)).map_err(|e| io("mkdir rootfs", e))?;
    }
    fs::copy(busybox, bin.join("busybox")).map_err(|e| io("copy busybox", e))?;
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| io("busybox --list", e))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .map_err(|e| io("symlink applet", e))?;
        }
    }
    let tar = work.join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .map_err(|e| io("tar", e))?;
    if !status.success() {
        return Err(format!("tar failed: {status}"));
    }
    let tar_arg = tar.to_string_lossy().into_owned();
    let out = cli_output(runtime, &["import", &tar_arg, IMAGE])?;
    if !out.status.success() {
        return Err(format!(
            "docker import failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn executor(docker: &Docker, edit: impl FnOnce(&mut ContainerSpec)) -> ContainerExecutor {
    let mut spec = ContainerSpec::new(IMAGE);
    edit(&mut spec);
    ContainerExecutor::new(docker.runtime.clone(), spec)
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

#[test]
fn success_captures_stdout_env_and_writes_to_cwd() {
    let Some(docker) = docker("success_captures_stdout_env_and_writes_to_cwd") else {
        return;
    };
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
    let exec = executor(docker, |_| {});
    let handle = Executor::spawn(&exec, &req).unwrap();
    let id = handle.id();
    assert!(id.starts_with("docker:"), "{id}");
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
    let bare = id.strip_prefix("docker:").unwrap();
    assert_eq!(exec.inspect(bare).unwrap(), None, "container not removed");
}

#[test]
fn exit_code_is_reported() {
    let Some(docker) = docker("exit_code_is_reported") else {
        return;
    };
    let (tmp, _work) = workdir();
    let exec = executor(docker, |_| {});
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

#[test]
fn network_is_none_by_default() {
    let Some(docker) = docker("network_is_none_by_default") else {
        return;
    };
    let (tmp, _work) = workdir();
    let req = request(tmp.path(), "cat /proc/net/dev");
    let out = executor(docker, |_| {})
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
        let exec = executor(docker, |s| {
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

#[test]
fn readonly_mount_cannot_be_written() {
    let Some(docker) = docker("readonly_mount_cannot_be_written") else {
        return;
    };
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
    let exec = executor(docker, |s| s.readonly_mounts = vec![data.clone()]);
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

#[test]
fn memory_limit_kills_a_hog() {
    let Some(docker) = docker("memory_limit_kills_a_hog") else {
        return;
    };
    let (tmp, _work) = workdir();
    // busybox dd allocates and fills a 256 MiB buffer.
    let req = request(
        tmp.path(),
        "echo start; dd if=/dev/zero of=/dev/null bs=256M count=1; echo \"dd status $?\"",
    );
    let exec = executor(docker, |s| s.memory_mb = Some(32));
    let run = exec
        .spawn_named(&ContainerExecutor::unique_name(), &req)
        .unwrap();
    let detail = run.wait_detailed(&never()).unwrap();
    let out = &detail.outcome;
    let stderr = stderr_log(tmp.path());
    println!("outcome: {detail:?}\nstderr: {stderr}");
    if !docker.memory_limit {
        println!("NOTE: this daemon reports no memory limit support (cgroups); only checking the run completes");
        assert!(!detail.oom_killed);
        return;
    }
    assert!(detail.oom_killed, "{detail:?}");
    assert_eq!(out.signal, Some(libc::SIGKILL));
    assert_eq!(out.exit_code, None);
    assert!(!out.succeeded());
    assert!(
        out.stdout_tail.starts_with("start\n"),
        "{:?}",
        out.stdout_tail
    );
    assert!(stderr.contains("[picidae: container was OOM-killed (memory limit 32 MiB)]"));
    assert!(detail.removed);
}

#[test]
fn timeout_sends_sigterm_then_removes_the_container() {
    let Some(docker) = docker("timeout_sends_sigterm_then_removes_the_container") else {
        return;
    };
    let (tmp, _work) = workdir();
    let mut req = request(
        tmp.path(),
        "trap 'echo got-term; exit 5' TERM; echo started; sleep 600 & wait",
    );
    req.timeout = Duration::from_secs(2);
    req.grace = Duration::from_secs(5);
    let exec = executor(docker, |_| {});
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

#[test]
fn timeout_kills_a_container_ignoring_sigterm() {
    let Some(docker) = docker("timeout_kills_a_container_ignoring_sigterm") else {
        return;
    };
    let (tmp, _work) = workdir();
    let mut req = request(tmp.path(), "trap '' TERM; echo started; sleep 600");
    req.timeout = Duration::from_secs(1);
    req.grace = Duration::from_secs(1);
    let exec = executor(docker, |_| {});
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

#[test]
fn cancel_stops_the_container() {
    let Some(docker) = docker("cancel_stops_the_container") else {
        return;
    };
    let (tmp, _work) = workdir();
    let req = request(tmp.path(), "echo started; sleep 600");
    let exec = executor(docker, |_| {});
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
    let bare = id.strip_prefix("docker:").unwrap();
    assert_eq!(exec.inspect(bare).unwrap(), None);
}

#[test]
fn reattach_after_the_handle_was_dropped() {
    let Some(docker) = docker("reattach_after_the_handle_was_dropped") else {
        return;
    };
    let (tmp, _work) = workdir();
    let req = request(tmp.path(), "echo before; sleep 3; echo after; exit 7");
    let id = {
        let exec = executor(docker, |_| {});
        let handle = Executor::spawn(&exec, &req).unwrap();
        handle.id()
        // Handle and executor dropped here: a "coordinator restart".
    };
    thread::sleep(Duration::from_millis(500));
    let exec = executor(docker, |_| {});
    let bare = id.strip_prefix("docker:").unwrap();
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
        exec.reattach("docker:--rm", &req),
        Err(ExecError::InvalidRequest(_))
    ));
}

#[test]
fn reattach_counts_the_timeout_from_the_container_start() {
    let Some(docker) = docker("reattach_counts_the_timeout_from_the_container_start") else {
        return;
    };
    let (tmp, _work) = workdir();
    let mut req = request(tmp.path(), "echo started; sleep 600");
    req.timeout = Duration::from_secs(3);
    req.grace = Duration::from_secs(1);
    let exec = executor(docker, |_| {});
    let id = Executor::spawn(&exec, &req).unwrap().id();
    thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let out = exec.reattach(&id, &req).unwrap().wait(&never()).unwrap();
    println!(
        "outcome: {out:?}; waited {:?} after reattaching",
        t0.elapsed()
    );
    assert!(out.timed_out, "{out:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(out.wall_secs >= 2.9, "{}", out.wall_secs);
}

#[test]
fn log_cap_truncates_but_keeps_the_tail() {
    let Some(docker) = docker("log_cap_truncates_but_keeps_the_tail") else {
        return;
    };
    let (tmp, _work) = workdir();
    let mut req = request(
        tmp.path(),
        "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done",
    );
    req.log_cap_bytes = 1000;
    let out = Executor::spawn(&executor(docker, |_| {}), &req)
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

#[test]
fn limits_and_mounts_reach_the_container() {
    let Some(docker) = docker("limits_and_mounts_reach_the_container") else {
        return;
    };
    let (tmp, work) = workdir();
    let data = fs::canonicalize(tmp.path()).unwrap().join("data");
    fs::create_dir(&data).unwrap();
    // Forks more sleeps than the pids limit allows; busybox sh gives up at
    // the first failed fork.
    let req = request(
        tmp.path(),
        "echo forking; i=0; while [ $i -lt 40 ]; do sleep 3 & i=$((i+1)); done; echo all-forked",
    );
    let exec = executor(docker, |s| {
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
    let inspected = cli_output(
        &docker.runtime,
        &["inspect", "--format", fmt, run.container_id()],
    )
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

#[test]
fn spawn_failure_is_an_error_and_leaves_no_container() {
    let Some(docker) = docker("spawn_failure_is_an_error_and_leaves_no_container") else {
        return;
    };
    let (tmp, _work) = workdir();
    let req = request(tmp.path(), "echo never");
    let name = ContainerExecutor::unique_name();
    let exec = executor(docker, |s| s.image = "picidae-test-no-such-image:0".into());
    let err = exec.spawn_named(&name, &req).unwrap_err();
    println!("missing image: {err}");
    assert!(matches!(err, ExecError::Container { .. }), "{err}");
    assert_eq!(exec.inspect(&name).unwrap(), None);

    // Here starting fails after the container was created: the image has
    // no passwd file to resolve the user in.
    let exec = executor(docker, |s| s.user = Some("no-such-user".into()));
    let err = exec.spawn_named(&name, &req).unwrap_err();
    println!("bad user: {err}");
    assert!(matches!(err, ExecError::Container { .. }), "{err}");
    assert_eq!(
        exec.inspect(&name).unwrap(),
        None,
        "created container left behind"
    );
}
