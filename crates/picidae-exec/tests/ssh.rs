//! Integration tests of the SSH executor against a real `sshd` that each
//! test starts on 127.0.0.1 with a private configuration and keys. Skipped
//! (with a printed reason) when `sshd`, `ssh` or `ssh-keygen` are missing,
//! unless `PICIDAE_REQUIRE_SSH=1`.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use picidae_exec::{Executor, Fingerprint, RunOutcome, RunRequest, SshRun, SshSettings};
use tempfile::TempDir;

use picidae_exec::testing::{ssh_usable, Sshd};

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(pid);
            }
        }
    }
    found
}

fn fast_settings() -> SshSettings {
    SshSettings {
        poll_interval: Duration::from_millis(200),
        reconnect_limit: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(5),
        ..SshSettings::default()
    }
}

/// Local side of a test: `checkout/` (synced), `logs/`, `remote/` (the
/// executor's remote root, on this same machine).
struct Local {
    _dir: TempDir,
    base: PathBuf,
    checkout: PathBuf,
    remote: PathBuf,
}

impl Local {
    fn new() -> Local {
        let dir = TempDir::new().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        let checkout = base.join("checkout");
        let remote = base.join("remote");
        fs::create_dir_all(checkout.join("sub")).unwrap();
        fs::create_dir_all(&remote).unwrap();
        fs::write(checkout.join("input.txt"), "input-from-checkout\n").unwrap();
        fs::write(checkout.join("sub/nested.txt"), "nested\n").unwrap();
        Local {
            _dir: dir,
            base,
            checkout,
            remote,
        }
    }

    fn request(&self, command: &str) -> RunRequest {
        RunRequest {
            command: command.to_string(),
            cwd: self.checkout.clone(),
            env: Vec::new(),
            time_budget: Duration::from_secs(30),
            timeout: Duration::from_secs(20),
            grace: Duration::from_secs(1),
            stdout_path: self.base.join("logs/stdout.log"),
            stderr_path: self.base.join("logs/stderr.log"),
            log_cap_bytes: 1 << 20,
        }
    }
}

fn never() -> AtomicBool {
    AtomicBool::new(false)
}

fn show(out: &RunOutcome, req: &RunRequest) {
    let stdout = fs::read_to_string(&req.stdout_path).unwrap_or_default();
    let stderr = fs::read_to_string(&req.stderr_path).unwrap_or_default();
    println!(
        "  exit {:?} signal {:?} timed_out {} cancelled {} wall {:.2}s rss {:?}\n  stdout: {:?}\n  stderr: {:?}",
        out.exit_code,
        out.signal,
        out.timed_out,
        out.cancelled,
        out.wall_secs,
        out.peak_rss_kb,
        stdout,
        stderr
    );
}

#[test]
fn success_with_env_stdout_and_artifacts() {
    if !ssh_usable() {
        return;
    }
    let sshd = Sshd::start();
    let local = Local::new();
    let exec = sshd.executor(&local.remote, fast_settings());
    let command = "echo \"var=$PICIDAE_TEST_VAR\"; pwd; cat input.txt sub/nested.txt; \
                   echo oops >&2; mkdir -p artifacts && echo weights > artifacts/model.txt; \
                   grep SigIgn /proc/self/status; echo 'metric val_loss=0.5'";
    let mut req = local.request(command);
    req.env
        .push(("PICIDAE_TEST_VAR".into(), "it's a \"test\" $HOME".into()));
    println!("tried: {command}");
    let handle = Executor::spawn(&exec, &req).unwrap();
    let id = handle.id();
    println!("  handle id: {id}");
    assert!(id.starts_with("ssh:127.0.0.1:"), "{id}");
    let remote_dir = id.trim_start_matches("ssh:127.0.0.1:").to_string();
    assert!(remote_dir.starts_with(local.remote.to_str().unwrap()));
    let out = handle.wait(&never()).unwrap();
    show(&out, &req);

    assert_eq!(out.exit_code, Some(0));
    assert!(out.succeeded());
    assert!(!out.stdout_truncated && !out.stderr_truncated);
    assert!(out.wall_secs > 0.0 && out.wall_secs < 10.0);
    assert!(out.finished_at_unix_ms >= out.started_at_unix_ms);
    let stdout = fs::read_to_string(&req.stdout_path).unwrap();
    let stderr = fs::read_to_string(&req.stderr_path).unwrap();
    assert!(stdout.contains("var=it's a \"test\" $HOME"), "{stdout}");
    assert!(
        stdout.contains(&format!("{remote_dir}/checkout\n")),
        "{stdout}"
    );
    assert!(stdout.contains("input-from-checkout\nnested\n"), "{stdout}");
    assert_eq!(stderr, "oops\n");
    // Only SIGHUP (nohup) is ignored; SIGINT/SIGQUIT keep their defaults.
    let ignored = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(ignored & 0b110, 0, "SIGINT/SIGQUIT ignored: {ignored:#x}");
    assert!(out.stdout_tail.ends_with("metric val_loss=0.5\n"));

    let fetched = local.base.join("fetched");
    exec.fetch_artifacts(&remote_dir, "artifacts", &fetched)
        .unwrap();
    let model = fs::read_to_string(fetched.join("model.txt")).unwrap();
    println!("  fetched artifacts/model.txt: {model:?}");
    assert_eq!(model, "weights\n");
    exec.remove_run(&remote_dir).unwrap();
    assert!(!Path::new(&remote_dir).exists());
}

#[test]
fn failure_exit_code_and_log_cap() {
    if !ssh_usable() {
        return;
    }
    let sshd = Sshd::start();
    let local = Local::new();
    let exec = sshd.executor(&local.remote, fast_settings());

    let req = local.request("echo before; exit 3");
    println!("tried: {}", req.command);
    let out = exec
        .spawn_named("fail", &req)
        .unwrap()
        .wait(&never())
        .unwrap();
    show(&out, &req);
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.signal, None);
    assert!(!out.succeeded());

    let mut req = local.request("head -c 300000 /dev/zero | tr '\\0' a; echo; echo last-line");
    req.log_cap_bytes = 1000;
    println!("tried: {} (log cap 1000 bytes)", req.command);
    let out = exec
        .spawn_named("big", &req)
        .unwrap()
        .wait(&never())
        .unwrap();
    let size = fs::metadata(&req.stdout_path).unwrap().len();
    println!(
        "  exit {:?} stdout_truncated {} local log {} bytes, tail {} bytes ending {:?}",
        out.exit_code,
        out.stdout_truncated,
        size,
        out.stdout_tail.len(),
        &out.stdout_tail[out.stdout_tail.len() - 10..]
    );
    assert_eq!(out.exit_code, Some(0));
    assert!(out.stdout_truncated);
    assert!(size > 1000 && size < 1100, "{size}");
    assert!(out.stdout_tail.ends_with("a\nlast-line\n"));
    assert!(out.stdout_tail.len() <= picidae_exec::STDOUT_TAIL_BYTES);
}

#[test]
fn timeout_kills_the_remote_group() {
    if !ssh_usable() {
        return;
    }
    let sshd = Sshd::start();
    let local = Local::new();
    let exec = sshd.executor(&local.remote, fast_settings());
    let needle = "sleep 41.3125";
    let survivor = local.base.join("survivor.txt");
    let command = format!(
        "trap 'echo got-term; exit 7' TERM; \
         (sleep 2.5; echo survived > {s}) & {needle} & echo started; wait",
        s = survivor.display()
    );
    let mut req = local.request(&command);
    req.timeout = Duration::from_millis(1500);
    req.grace = Duration::from_secs(1);
    println!("tried: {command}  (timeout 1.5 s, grace 1 s)");
    let started = Instant::now();
    let run = exec.spawn_named("timeout", &req).unwrap();
    let out = run.wait(&never()).unwrap();
    show(&out, &req);
    assert!(out.timed_out);
    assert!(!out.cancelled);
    assert_eq!(out.exit_code, Some(7), "the TERM trap's status");
    let stdout = fs::read_to_string(&req.stdout_path).unwrap();
    assert!(stdout.contains("started") && stdout.contains("got-term"));
    let left = processes_with(needle);
    println!("  '{needle}' processes after wait: {left:?}");
    assert!(left.is_empty());
    // The background subshell would write its marker at 2.5 s.
    thread::sleep(Duration::from_millis(3200).saturating_sub(started.elapsed()));
    println!("  survivor marker exists: {}", survivor.exists());
    assert!(
        !survivor.exists(),
        "a background process survived the timeout"
    );
}

#[test]
fn cancellation_stops_the_remote_run() {
    if !ssh_usable() {
        return;
    }
    let sshd = Sshd::start();
    let local = Local::new();
    let exec = sshd.executor(&local.remote, fast_settings());
    let needle = "sleep 41.4375";
    let req = local.request(&format!("echo running; {needle}; echo never"));
    println!("tried: {} (cancel after 1 s)", req.command);
    let run = exec.spawn_named("cancel", &req).unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let setter = thread::spawn(move || {
        thread::sleep(Duration::from_secs(1));
        flag.store(true, Ordering::SeqCst);
    });
    let out = run.wait(&cancel).unwrap();
    setter.join().unwrap();
    show(&out, &req);
    assert!(out.cancelled);
    assert!(!out.timed_out);
    assert_eq!(out.signal, Some(15));
    assert!(out.wall_secs < 6.0);
    let stdout = fs::read_to_string(&req.stdout_path).unwrap();
    assert!(stdout.contains("running") && !stdout.contains("never"));
    let left = processes_with(needle);
    println!("  '{needle}' processes after wait: {left:?}");
    assert!(left.is_empty());
}

#[test]
fn dropped_connection_does_not_rerun_the_job() {
    if !ssh_usable() {
        return;
    }
    let mut sshd = Sshd::start();
    let local = Local::new();
    let exec = sshd.executor(&local.remote, fast_settings());
    let counter = local.base.join("counter.txt");
    let command = format!(
        "echo run >> {c}; echo begin; sleep 3; echo done; exit 5",
        c = counter.display()
    );
    let req = local.request(&command);
    println!("tried: {command}  (sshd killed at 0.8 s, restarted at 2.3 s)");
    let run: SshRun = exec.spawn_named("dropped", &req).unwrap();
    let waiter = thread::spawn(move || run.wait(&AtomicBool::new(false)));
    thread::sleep(Duration::from_millis(800));
    let sessions = sshd.sessions();
    sshd.kill_all();
    println!("  killed sshd and its sessions {sessions:?}");
    assert!(TcpStream::connect(("127.0.0.1", sshd.port)).is_err());
    thread::sleep(Duration::from_millis(1500));
    sshd.launch();
    println!("  restarted sshd on port {}", sshd.port);
    let out = waiter.join().unwrap().unwrap();
    show(&out, &req);
    assert_eq!(out.exit_code, Some(5));
    let stdout = fs::read_to_string(&req.stdout_path).unwrap();
    assert_eq!(stdout, "begin\ndone\n");
    let runs = fs::read_to_string(&counter).unwrap();
    println!("  counter file: {runs:?}");
    assert_eq!(runs, "run\n", "the job must run exactly once");
}

#[test]
fn reattach_after_the_handle_is_dropped() {
    if !ssh_usable() {
        return;
    }
    let sshd = Sshd::start();
    let local = Local::new();
    let counter = local.base.join("counter.txt");
    let command = format!(
        "echo run >> {c}; sleep 1.5; echo reattached-output; exit 4",
        c = counter.display()
    );
    let req = local.request(&command);
    println!("tried: {command}");
    let remote_dir = {
        let exec = sshd.executor(&local.remote, fast_settings());
        let run = exec.spawn_named("reattach", &req).unwrap();
        let dir = run.remote_dir().to_string();
        println!(
            "  spawned in {dir}, pgid {}; dropping handle and executor",
            run.pgid()
        );
        dir
    };
    // A new executor, as after a coordinator restart.
    let exec = sshd.executor(&local.remote, fast_settings());
    let err = exec.spawn_named("reattach", &req).unwrap_err();
    println!("  spawning the same name again: {err}");
    let out = exec
        .reattach(&remote_dir, &req)
        .unwrap()
        .wait(&never())
        .unwrap();
    show(&out, &req);
    assert_eq!(out.exit_code, Some(4));
    assert!(out.wall_secs >= 1.4, "wall counts from the remote start");
    let stdout = fs::read_to_string(&req.stdout_path).unwrap();
    assert_eq!(stdout, "reattached-output\n");

    // Reattaching to a finished run just collects it again.
    let again = exec
        .reattach(&remote_dir, &req)
        .unwrap()
        .wait(&never())
        .unwrap();
    println!("  reattached after the end: exit {:?}", again.exit_code);
    assert_eq!(again.exit_code, Some(4));
    assert_eq!(fs::read_to_string(&counter).unwrap(), "run\n");
}

#[test]
fn fingerprint_describes_the_remote_machine() {
    if !ssh_usable() {
        return;
    }
    let sshd = Sshd::start();
    let local = Local::new();
    let exec = sshd.executor(&local.remote, fast_settings());
    println!("tried: fingerprint() and machine_fingerprint() of 127.0.0.1");
    let map = exec.fingerprint().unwrap();
    for (k, v) in &map {
        println!("  {k}: {v}");
    }
    for key in ["uname", "nproc", "hostname", "cpu_model", "mem_total_kb"] {
        assert!(map.contains_key(key), "missing {key}");
    }
    assert!(map["uname"].starts_with("Linux"));
    let remote = exec.machine_fingerprint(Some("abc")).unwrap();
    let here = Fingerprint::collect(Some("abc")).unwrap();
    println!(
        "  remote fingerprint {} / local {}",
        remote.hash(),
        here.hash()
    );
    assert_eq!(remote.kernel, here.kernel);
    assert_eq!(remote.arch, here.arch);
    assert_eq!(remote.os, here.os);
    assert_eq!(remote.os_version, here.os_version);
    assert_eq!(remote.cpu_model, here.cpu_model);
    assert_eq!(remote.mem_total_mb, here.mem_total_mb);
    assert_eq!(remote.gpus, here.gpus);
    assert_eq!(remote.hostname, here.hostname);
}

#[test]
fn tar_transfer_without_rsync() {
    if !ssh_usable() {
        return;
    }
    let sshd = Sshd::start();
    let local = Local::new();
    let exec = sshd.executor(
        &local.remote,
        SshSettings {
            use_rsync: false,
            control_master: false,
            ..fast_settings()
        },
    );
    let command = "cat input.txt sub/nested.txt; mkdir -p out/deep && echo result > out/deep/r.txt";
    let req = local.request(command);
    println!("tried: {command}  (tar instead of rsync, no ControlMaster)");
    let run = exec.spawn_named("tar", &req).unwrap();
    let dir = run.remote_dir().to_string();
    let out = run.wait(&never()).unwrap();
    show(&out, &req);
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout_tail, "input-from-checkout\nnested\n");
    let fetched = local.base.join("fetched");
    exec.fetch_artifacts(&dir, "out", &fetched).unwrap();
    let r = fs::read_to_string(fetched.join("deep/r.txt")).unwrap();
    println!("  fetched out/deep/r.txt: {r:?}");
    assert_eq!(r, "result\n");
}
