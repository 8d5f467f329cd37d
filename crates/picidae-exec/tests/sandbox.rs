//! Integration tests of the bubblewrap sandbox with the real `bwrap` and the
//! local executor. Skipped (with a printed reason) when `bwrap` cannot run
//! here, unless `PICIDAE_REQUIRE_SANDBOX=1`.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};

use picidae_exec::{group_alive, LocalExecutor, RunOutcome, RunRequest, Sandbox, SandboxSpec};
use tempfile::TempDir;

fn sandbox_usable() -> bool {
    if Sandbox::available() {
        return true;
    }
    let reason = "bwrap is not installed or cannot create a sandbox here";
    if std::env::var("PICIDAE_REQUIRE_SANDBOX").as_deref() == Ok("1") {
        panic!("PICIDAE_REQUIRE_SANDBOX=1 but {reason}");
    }
    println!("SKIPPED: {reason}");
    false
}

/// A host layout: `checkout/` (writable), `run/` (writable), `data/`
/// (read-only) with `data/secret/` and `data/key.txt` hidden, and `store/`
/// (not bound at all).
struct Layout {
    _root: TempDir,
    base: PathBuf,
    checkout: PathBuf,
    run: PathBuf,
    data: PathBuf,
    store: PathBuf,
}

impl Layout {
    fn new() -> Layout {
        // Not under /tmp: the sandbox's /tmp is a private writable tmpfs.
        let root = TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let base = fs::canonicalize(root.path()).unwrap();
        let checkout = base.join("checkout");
        let run = base.join("run");
        let data = base.join("data");
        let store = base.join("store");
        for d in [&checkout, &run, &data.join("secret"), &store] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(data.join("public.txt"), "public-data\n").unwrap();
        fs::write(data.join("secret/answers.txt"), "SECRET-ANSWERS\n").unwrap();
        fs::write(data.join("key.txt"), "SECRET-KEY\n").unwrap();
        fs::write(store.join("db.txt"), "STORE-CONTENT\n").unwrap();
        Layout {
            _root: root,
            base,
            checkout,
            run,
            data,
            store,
        }
    }

    fn spec(&self, network: bool) -> SandboxSpec {
        SandboxSpec {
            writable: vec![self.checkout.clone(), self.run.clone()],
            readonly: vec![self.data.clone()],
            hidden: vec![self.data.join("secret"), self.data.join("key.txt")],
            devices: vec![],
            network,
        }
    }

    fn request(&self, command: &str) -> RunRequest {
        RunRequest {
            command: command.to_string(),
            cwd: self.checkout.clone(),
            env: vec![("DATA".into(), self.data.display().to_string())],
            time_budget: Duration::from_secs(30),
            timeout: Duration::from_secs(20),
            grace: Duration::from_millis(500),
            stdout_path: self.run.join("stdout.log"),
            stderr_path: self.run.join("stderr.log"),
            log_cap_bytes: 1 << 20,
        }
    }

    /// Runs `command` sandboxed; returns the outcome and stdout.
    fn run(&self, command: &str, network: bool) -> (RunOutcome, String) {
        let req = self.request(command);
        let wrapped = Sandbox::new(self.spec(network)).wrap(&req).unwrap();
        println!("tried: {command}  (network: {network})");
        let out = LocalExecutor::new()
            .spawn(&wrapped)
            .unwrap()
            .wait(&AtomicBool::new(false))
            .unwrap();
        let stdout = fs::read_to_string(&req.stdout_path).unwrap();
        let stderr = fs::read_to_string(&req.stderr_path).unwrap();
        println!(
            "  exit {:?} signal {:?}\n  stdout: {}\n  stderr: {}",
            out.exit_code,
            out.signal,
            stdout.trim_end().replace('\n', "\n          "),
            stderr.trim_end().replace('\n', "\n          ")
        );
        (out, stdout)
    }
}

#[test]
fn hidden_and_unbound_paths_are_unreachable() {
    if !sandbox_usable() {
        return;
    }
    let l = Layout::new();
    let script = format!(
        "cat \"$DATA/public.txt\"; \
         cat \"$DATA/secret/answers.txt\" 2>/dev/null || echo secret-dir-unreadable; \
         echo \"secret dir entries: $(ls -A \"$DATA/secret\" | wc -l)\"; \
         echo \"key bytes: $(cat \"$DATA/key.txt\" 2>/dev/null | wc -c)\"; \
         cat {store}/db.txt 2>/dev/null || echo store-unreachable; \
         ls /root >/dev/null 2>&1 || echo root-home-absent; \
         cat /etc/shadow 2>/dev/null | wc -c | sed 's/^/shadow bytes: /'",
        store = l.store.display()
    );
    let (out, stdout) = l.run(&script, false);
    assert_eq!(out.exit_code, Some(0));
    assert!(stdout.contains("public-data"), "{stdout}");
    assert!(stdout.contains("secret-dir-unreadable"), "{stdout}");
    assert!(stdout.contains("secret dir entries: 0"), "{stdout}");
    assert!(stdout.contains("key bytes: 0"), "{stdout}");
    assert!(stdout.contains("store-unreachable"), "{stdout}");
    assert!(stdout.contains("root-home-absent"), "{stdout}");
    assert!(stdout.contains("shadow bytes: 0"), "{stdout}");
    assert!(!stdout.contains("SECRET") && !stdout.contains("STORE-CONTENT"));
    // The host files are untouched.
    assert_eq!(
        fs::read_to_string(l.data.join("secret/answers.txt")).unwrap(),
        "SECRET-ANSWERS\n"
    );
}

#[test]
fn writes_succeed_only_in_writable_dirs() {
    if !sandbox_usable() {
        return;
    }
    let l = Layout::new();
    let marker = format!("host-tmp-marker-{}", std::process::id());
    let script = format!(
        "echo ok > inside.txt && echo wrote-checkout; \
         echo x > {run}/metrics.jsonl && echo wrote-run-dir; \
         echo x > {parent}/escape.txt 2>/dev/null || echo parent-write-denied; \
         echo x > \"$DATA/new.txt\" 2>/dev/null || echo data-write-denied; \
         echo x > {store}/new.txt 2>/dev/null || echo store-write-denied; \
         echo x > /usr/escape.txt 2>/dev/null || echo usr-write-denied; \
         echo x > /tmp/{marker} && echo wrote-private-tmp",
        run = l.run.display(),
        parent = l.base.display(),
        store = l.store.display(),
    );
    let (out, stdout) = l.run(&script, false);
    assert_eq!(out.exit_code, Some(0));
    for expected in [
        "wrote-checkout",
        "wrote-run-dir",
        "parent-write-denied",
        "data-write-denied",
        "store-write-denied",
        "usr-write-denied",
        "wrote-private-tmp",
    ] {
        assert!(stdout.contains(expected), "missing {expected}: {stdout}");
    }
    assert_eq!(
        fs::read_to_string(l.checkout.join("inside.txt")).unwrap(),
        "ok\n"
    );
    assert!(l.run.join("metrics.jsonl").exists());
    assert!(!l.base.join("escape.txt").exists());
    assert!(!l.data.join("new.txt").exists());
    assert!(!l.store.join("new.txt").exists());
    assert!(!Path::new("/tmp").join(&marker).exists(), "tmp leaked");
}

#[test]
fn network_is_cut_unless_allowed() {
    if !sandbox_usable() {
        return;
    }
    let l = Layout::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let script = format!("echo hello-from-sandbox > /dev/tcp/127.0.0.1/{port} && echo connected");
    let command = format!("bash -c '{script}'");

    let (out, stdout) = l.run(&command, false);
    assert_ne!(out.exit_code, Some(0), "connected without network");
    assert!(!stdout.contains("connected"));
    assert!(listener.accept().is_err(), "listener saw a connection");

    let (out, stdout) = l.run(&command, true);
    assert_eq!(out.exit_code, Some(0));
    assert!(stdout.contains("connected"), "{stdout}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut conn, _) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("no connection: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    println!("  listener received: {got:?}");
    assert_eq!(got, "hello-from-sandbox\n");
}

#[test]
fn exit_codes_pass_through() {
    if !sandbox_usable() {
        return;
    }
    let l = Layout::new();
    let (out, _) = l.run("exit 3", false);
    assert_eq!(out.exit_code, Some(3));
    assert!(!out.succeeded());
    let (out, _) = l.run("true", false);
    assert_eq!(out.exit_code, Some(0));
    assert!(out.succeeded());
    // bwrap reports a command killed by signal N as exit code 128 + N.
    let (out, _) = l.run("kill -KILL $$", false);
    assert_eq!(out.exit_code, Some(128 + 9));
    assert!(!out.succeeded());
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && !cmd.contains("bwrap") {
                found.push(pid);
            }
        }
    }
    found
}

#[test]
fn timeout_kills_the_whole_sandboxed_group() {
    if !sandbox_usable() {
        return;
    }
    let l = Layout::new();
    let needle = "sleep 37.0625";
    let script = format!(
        "trap 'echo got-term; sleep 0.3; echo cleaned-up; exit 9' TERM; \
         {needle} & {needle} & echo started; wait"
    );
    let mut req = l.request(&script);
    req.timeout = Duration::from_millis(1500);
    req.grace = Duration::from_millis(1000);
    let wrapped = Sandbox::new(l.spec(false)).wrap(&req).unwrap();
    println!("tried: {script}  (timeout 1.5 s, grace 1 s)");
    let child = LocalExecutor::new().spawn(&wrapped).unwrap();
    let pgid = child.pgid();
    let deadline = Instant::now() + Duration::from_secs(5);
    while processes_with(needle).len() < 2 {
        assert!(Instant::now() < deadline, "sleeps never started");
        thread::sleep(Duration::from_millis(20));
    }
    println!("  running sleeps: {:?}", processes_with(needle));
    let out = child.wait(&AtomicBool::new(false)).unwrap();
    let stdout = fs::read_to_string(&req.stdout_path).unwrap();
    println!(
        "  timed_out {} exit {:?} signal {:?} wall {:.2}s stdout {:?}",
        out.timed_out, out.exit_code, out.signal, out.wall_secs, stdout
    );
    assert!(out.timed_out);
    assert!(out.wall_secs < 5.0, "wall {}", out.wall_secs);
    assert!(
        stdout.contains("got-term"),
        "SIGTERM did not reach the command"
    );
    // The trap's own exit status: the command used its grace period.
    assert!(stdout.contains("cleaned-up"), "grace period cut short");
    assert_eq!(out.exit_code, Some(9));
    assert!(!group_alive(pgid));
    let left = processes_with(needle);
    println!("  sleeps left after wait: {left:?}");
    assert!(left.is_empty());
}

#[test]
fn run_ignoring_sigterm_is_killed_after_grace() {
    if !sandbox_usable() {
        return;
    }
    let l = Layout::new();
    let needle = "sleep 37.1875";
    let script = format!("trap '' TERM; {needle} & echo started; wait");
    let mut req = l.request(&script);
    req.timeout = Duration::from_millis(1000);
    req.grace = Duration::from_millis(700);
    let wrapped = Sandbox::new(l.spec(false)).wrap(&req).unwrap();
    println!("tried: {script}  (timeout 1 s, grace 0.7 s)");
    let child = LocalExecutor::new().spawn(&wrapped).unwrap();
    let pgid = child.pgid();
    let out = child.wait(&AtomicBool::new(false)).unwrap();
    println!(
        "  timed_out {} exit {:?} signal {:?} wall {:.2}s",
        out.timed_out, out.exit_code, out.signal, out.wall_secs
    );
    assert!(out.timed_out);
    assert_eq!(out.signal, Some(9), "bwrap itself must have been SIGKILLed");
    assert!(
        out.wall_secs >= 1.6 && out.wall_secs < 5.0,
        "wall {}",
        out.wall_secs
    );
    assert!(!group_alive(pgid));
    let left = processes_with(needle);
    println!("  sleeps left after wait: {left:?}");
    assert!(left.is_empty());
}
