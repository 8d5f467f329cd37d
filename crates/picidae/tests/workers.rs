//! Remote workers (`picidae worker`) that cannot see the project: each runs in a directory of
//! its own inside a mount namespace (bubblewrap) where the project's directory and the
//! benchmark's repository are empty, and talks to `picidae serve` over loopback HTTP only.
//! A program's runs spread over two of them; a worker killed with SIGKILL mid-run, and one
//! stopped (SIGSTOP) past its lease, lose their runs to another worker; the stopped one's late
//! report is refused and recorded; every run is counted once, checked in the store.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{bin, bwrap_works, serve_address, two_file_env, wait_until, Env};
use picidae_core::{AttemptStatus, RunStatus, WorkState};
use picidae_store::{Run, Store};

/// A child process (group) killed when dropped.
struct Proc(Child);

impl Proc {
    fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(-(self.0.id() as i32), sig);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGKILL);
        let _ = self.0.wait();
    }
}

fn serve(env: &Env, lease_secs: &str) -> (Proc, String) {
    serve_on(env, lease_secs, "127.0.0.1:0")
}

fn serve_on(env: &Env, lease_secs: &str, listen: &str) -> (Proc, String) {
    let mut child = bin()
        .arg("--project")
        .arg(&env.project)
        .args(["serve", "--slots", "4", "--listen", listen])
        .args(["--worker-lease", lease_secs])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(env.path("serve.log")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let url = format!("http://{}", serve_address(&mut child));
    (Proc(child), url)
}

fn worker_token(env: &Env, name: &str) -> String {
    let out = env.ok(&["token", "create", name, "--worker"]);
    assert!(out.contains("worker"), "{out}");
    out.lines().nth(1).unwrap().trim().to_string()
}

/// `bwrap` arguments that hide the project and the benchmark from what runs inside.
fn hidden(env: &Env) -> Vec<String> {
    let mut args: Vec<String> = ["--dev-bind", "/", "/"].map(String::from).to_vec();
    for p in [&env.project, &env.bench] {
        args.extend(["--tmpfs".to_string(), p.display().to_string()]);
    }
    args
}

/// A worker named `name`, in its own directory, unable to see the project.
fn worker(env: &Env, url: &str, token: &str, name: &str) -> Proc {
    let dir = env.path(&format!("workers/{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let child = std::process::Command::new("bwrap")
        .args(hidden(env))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_picidae"))
        .args([
            "worker",
            "--coordinator",
            url,
            "--token",
            token,
            "--name",
            name,
        ])
        .arg("--dir")
        .arg(&dir)
        .args(["--poll-ms", "100"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.path(&format!("{name}.log"))).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    Proc(child)
}

fn create(env: &Env, turns: &[&str], concurrency: &str) {
    let agent = env.pair_agent(turns);
    env.ok(&[
        "program",
        "create",
        "p",
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--agent",
        "command",
        "--agent-command",
        &agent,
        "--concurrency",
        concurrency,
        "--executor",
        "workers",
    ]);
}

fn runs(store: &Store) -> Vec<Run> {
    let p = store.program("p").unwrap();
    store.runs(Some(p.id)).unwrap()
}

/// Every attempt decided, `n` of them besides the baseline.
fn all_decided(env: &Env, n: usize) -> bool {
    let all = common::attempts(&env.store(), "p");
    all.len() > n && all.iter().all(|a| a.status.is_final())
}

/// Wait until every attempt is decided, `n` besides the baseline; after `secs`, fail with
/// what the store and the first worker's log say.
fn wait_decided(env: &Env, n: usize, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !all_decided(env, n) {
        if std::time::Instant::now() > deadline {
            let store = env.store();
            let all = common::attempts(&store, "p");
            let runs = runs(&store);
            let items: Vec<_> = runs
                .iter()
                .map(|r| store.work_item(r.id).unwrap())
                .collect();
            panic!(
                "not decided: {all:#?}\n{runs:#?}\n{items:#?}\nw1's log:\n{}",
                std::fs::read_to_string(env.path("w1.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each attempt's runs: one per seed, each finished once.
fn counted_once(store: &Store) {
    let runs = runs(store);
    let mut seen = std::collections::HashSet::new();
    for r in &runs {
        assert!(
            seen.insert((r.attempt_id, r.seed)),
            "a seed ran twice: {runs:#?}"
        );
        assert!(r.status.is_terminal(), "unfinished run {r:?}");
    }
}

#[test]
fn runs_spread_over_two_workers_that_cannot_see_the_project() {
    if !bwrap_works() {
        return;
    }
    let env = two_file_env(1.0);
    // Proof of the premise: inside the namespace the project's store does not exist.
    let store_file = env.project.join(".picidae/store.sqlite");
    assert!(store_file.exists());
    let seen = std::process::Command::new("bwrap")
        .args(hidden(&env))
        .args(["--", "test", "-e"])
        .arg(&store_file)
        .status()
        .unwrap();
    assert!(!seen.success(), "a worker could see the project's store");
    create(&env, &["a.txt 4", "b.txt 4", "a.txt 3", "b.txt 3"], "2");
    let (_serve, url) = serve(&env, "10");
    let token = worker_token(&env, "pool");
    let _w1 = worker(&env, &url, &token, "w1");
    let _w2 = worker(&env, &url, &token, "w2");
    wait_decided(&env, 4, 150);
    let store = env.store();
    counted_once(&store);
    let runs = runs(&store);
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{runs:#?}"
    );
    let hosts: std::collections::BTreeSet<String> =
        runs.iter().filter_map(|r| r.host.clone()).collect();
    assert_eq!(
        hosts,
        ["w1", "w2"].map(String::from).into(),
        "the runs spread over both workers"
    );
    for r in &runs {
        let item = store
            .work_item(r.id)
            .unwrap()
            .expect("each run went to a worker");
        assert_eq!(
            (item.state, item.claims),
            (WorkState::Reported, 1),
            "{item:?}"
        );
    }
    assert!(store.work_refusals(None).unwrap().is_empty());
    // The runs were graded as local ones are: the frontier went down from the baseline's 10
    // (which wins land depends on how the parallel wins merged).
    let all = common::attempts(&store, "p");
    let kept: Vec<f64> = all
        .iter()
        .filter(|a| a.status == AttemptStatus::Kept)
        .filter_map(|a| a.primary_value)
        .collect();
    assert!(kept.len() >= 2, "{all:#?}");
    let frontier = store.program("p").unwrap().frontier_value.unwrap();
    assert!(frontier < 10.0 && kept.contains(&frontier), "{all:#?}");
}

/// Wait until worker `name` holds a run; its id.
fn held_by(env: &Env, name: &str) -> i64 {
    let mut held = 0;
    wait_until(
        Duration::from_secs(60),
        || {
            held = env
                .store()
                .workers()
                .unwrap()
                .into_iter()
                .find(|(w, _)| w.name == name)
                .and_then(|(_, runs)| runs.first().copied())
                .unwrap_or(0);
            held != 0
        },
        &format!("{name} to claim a run"),
    );
    held
}

#[test]
fn a_worker_killed_or_stopped_past_its_lease_loses_its_run_and_it_counts_once() {
    if !bwrap_works() {
        return;
    }
    let env = two_file_env(3.0);
    create(&env, &["a.txt 4", "b.txt 4"], "1");
    let (_serve, url) = serve(&env, "2");
    let token = worker_token(&env, "pool");
    // The first worker takes a run (the baseline's) and is killed in the middle of it.
    let w1 = worker(&env, &url, &token, "w1");
    let lost = held_by(&env, "w1");
    std::thread::sleep(Duration::from_millis(500));
    w1.signal(libc::SIGKILL);
    drop(w1);
    // The second takes it over once the lease has lapsed, and then the next run, during which
    // it is stopped past its lease.
    let w2 = worker(&env, &url, &token, "w2");
    wait_until(
        Duration::from_secs(60),
        || {
            env.store()
                .work_item(lost)
                .unwrap()
                .is_some_and(|i| i.state == WorkState::Reported)
        },
        "the killed worker's run to be finished by another",
    );
    let stolen = {
        let mut id = 0;
        wait_until(
            Duration::from_secs(60),
            || {
                id = env
                    .store()
                    .workers()
                    .unwrap()
                    .into_iter()
                    .find(|(w, _)| w.name == "w2")
                    .and_then(|(_, runs)| runs.into_iter().find(|r| *r != lost))
                    .unwrap_or(0);
                id != 0
            },
            "w2 to claim a second run",
        );
        id
    };
    // Stopped once its run has started (not while it fetches the tree, when it would lose
    // the run before running it and have nothing to report).
    wait_until(
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(env.path("w2.log"))
                .unwrap_or_default()
                .contains(&format!("run {stolen} ("))
        },
        "w2 to start its second run",
    );
    w2.signal(libc::SIGSTOP);
    let _w3 = worker(&env, &url, &token, "w3");
    wait_until(
        Duration::from_secs(60),
        || {
            env.store()
                .work_item(stolen)
                .unwrap()
                .is_some_and(|i| i.state == WorkState::Reported && i.claims == 2)
        },
        "the stopped worker's run to be finished by another",
    );
    // Woken, the stopped worker reports under the lease it lost: refused, and recorded.
    w2.signal(libc::SIGCONT);
    wait_until(
        Duration::from_secs(30),
        || !env.store().work_refusals(Some(stolen)).unwrap().is_empty(),
        "the late report to be refused",
    );
    wait_decided(&env, 2, 120);
    let store = env.store();
    counted_once(&store);
    for (run, finisher) in [(lost, "w2"), (stolen, "w3")] {
        let item = store.work_item(run).unwrap().unwrap();
        assert_eq!(item.claims, 2, "{item:?}");
        let r = store.run(run).unwrap();
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        assert_eq!(r.host.as_deref(), Some(finisher), "{r:?}");
    }
    let refused = store.work_refusals(None).unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].reason.contains("no longer holds"), "{refused:?}");
    drop(w2);
}

#[test]
fn the_hidden_evaluator_scores_uploaded_artifacts_and_its_files_never_leave() {
    if !bwrap_works() {
        return;
    }
    let env = Env::truth(common::GOOD_EVALUATOR, "seeds = 1");
    env.queue_program("p", &["7 4 a", "6 9 b", "DONE"], &["--executor", "workers"]);
    let (_serve, url) = serve(&env, "10");
    let token = worker_token(&env, "pool");
    let _w1 = worker(&env, &url, &token, "w1");
    wait_until(
        Duration::from_secs(120),
        || {
            let all = common::attempts(&env.store(), "p");
            all.len() >= 3 && all.iter().all(|a| a.status.is_final())
        },
        "the attempts decided",
    );
    let store = env.store();
    counted_once(&store);
    let runs = runs(&store);
    assert!(
        runs.iter().all(|r| r.host.as_deref() == Some("w1")),
        "{runs:#?}"
    );
    // Each run's artifact reached the coordinator, and the hidden evaluator read it there.
    for r in &runs {
        let artifact = env.project.join(format!(
            ".picidae/runs/p/{}/artifacts/hidden_true.txt",
            r.id
        ));
        assert!(artifact.is_file(), "run {}: no uploaded artifact", r.id);
    }
    let scored: Vec<i64> = runs
        .iter()
        .filter(|r| store.hidden_result(r.id).unwrap().is_some())
        .map(|r| r.id)
        .collect();
    assert!(
        !scored.is_empty(),
        "no run was scored by the hidden evaluator"
    );
    // The hidden files never reached the worker: its cache holds no path under gold/.
    let cache = env.path("workers/w1/cache.git");
    let out = std::process::Command::new("git")
        .arg(format!("--git-dir={}", cache.display()))
        .args(["rev-list", "--all", "--objects"])
        .output()
        .unwrap();
    let objects = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && objects.contains("run.sh"),
        "{objects}"
    );
    assert!(
        !objects.contains("gold"),
        "hidden files in the worker's cache: {objects}"
    );
}

#[test]
fn the_setup_step_runs_once_on_the_worker_and_its_data_reaches_the_runs() {
    if !bwrap_works() {
        return;
    }
    let env = Env::new(&[
        (
            "picidae.toml",
            r#"[setup]
command = "echo 40 > \"$PICIDAE_DATA/base.txt\"; date +%s%N >> \"$PICIDAE_DATA/stamps\""

[boundary]
editable = ["a.txt"]

[run]
command = "echo \"score: $(( $(cat \"$PICIDAE_DATA/base.txt\") + $(cat a.txt) ))\""
time_budget = 30

[metrics.score]
goal = "minimize"
"#,
        ),
        ("a.txt", "5\n"),
    ]);
    create(&env, &["a.txt 4", "a.txt 3"], "1");
    let (_serve, url) = serve(&env, "10");
    let token = worker_token(&env, "pool");
    let _w1 = worker(&env, &url, &token, "w1");
    wait_decided(&env, 2, 120);
    let store = env.store();
    counted_once(&store);
    let values: Vec<Option<f64>> = common::attempts(&store, "p")
        .iter()
        .map(|a| a.primary_value)
        .collect();
    let notes: Vec<_> = common::attempts(&store, "p")
        .iter()
        .map(|a| (a.hypothesis.clone(), a.status, a.note.clone()))
        .collect();
    // 40 from the data plus a.txt: the baseline's 5, then 4 (the proposal of 3, made ahead
    // on the baseline, is stale by then and conflicts).
    assert_eq!(
        values[..2],
        [Some(45.0), Some(44.0)],
        "the runs read the data: {notes:#?}"
    );
    let data = std::fs::read_dir(env.path("workers/w1/data"))
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    let stamps = std::fs::read_to_string(data.join("stamps")).unwrap();
    assert_eq!(
        stamps.lines().count(),
        1,
        "the setup ran once for three runs"
    );
}

#[test]
fn a_coordinator_killed_and_restarted_waits_for_its_workers_run_again() {
    if !bwrap_works() {
        return;
    }
    let env = two_file_env(4.0);
    create(&env, &["a.txt 4"], "1");
    // A fixed port, so the worker finds the restarted coordinator where it left it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let (first, url) = serve_on(&env, "10", &listen);
    let token = worker_token(&env, "pool");
    let _w1 = worker(&env, &url, &token, "w1");
    let run = held_by(&env, "w1");
    first.signal(libc::SIGKILL);
    drop(first);
    // The worker keeps running its run and cannot report it until the coordinator is back.
    std::thread::sleep(Duration::from_millis(500));
    let (_second, again) = serve_on(&env, "10", &listen);
    assert_eq!(again, url);
    wait_decided(&env, 1, 60);
    let store = env.store();
    counted_once(&store);
    let r = store.run(run).unwrap();
    assert_eq!(
        (r.status, r.host.as_deref()),
        (RunStatus::Succeeded, Some("w1")),
        "{r:?}"
    );
    let item = store.work_item(run).unwrap().unwrap();
    assert_eq!(
        (item.state, item.claims),
        (WorkState::Reported, 1),
        "{item:?}"
    );
    assert!(store.work_refusals(None).unwrap().is_empty());
}

/// A loopback TCP proxy to `target` that can cut every connection and refuse new ones for a
/// while: the network between a worker and its coordinator, dropped.
struct Proxy {
    addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Bumped on every cut: connections of an older generation end.
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    fn start(target: &str) -> Proxy {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let target = target.trim_start_matches("http://").to_string();
        let down = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (d, g) = (down.clone(), generation.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    drop(conn);
                    continue;
                }
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let born = g.load(Ordering::SeqCst);
                for (from, to) in [
                    (conn.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, conn),
                ] {
                    let g = g.clone();
                    std::thread::spawn(move || pipe(from, to, &g, born));
                }
            }
        });
        fn pipe(
            mut from: std::net::TcpStream,
            mut to: std::net::TcpStream,
            g: &AtomicU64,
            born: u64,
        ) {
            use std::io::{Read, Write};
            let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
            let mut buf = [0u8; 16384];
            loop {
                if g.load(Ordering::SeqCst) != born {
                    break;
                }
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
        }
        Proxy {
            addr,
            down,
            generation,
        }
    }

    /// Cut every connection and refuse new ones for `d`.
    fn cut_for(&self, d: Duration) {
        use std::sync::atomic::Ordering;
        self.down.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(d);
        self.down.store(false, Ordering::SeqCst);
    }
}

#[test]
fn a_dropped_connection_mid_run_loses_nothing_and_counts_nothing_twice() {
    if !bwrap_works() {
        return;
    }
    let env = two_file_env(3.0);
    create(&env, &["a.txt 4"], "1");
    let (_serve, url) = serve(&env, "10");
    let proxy = Proxy::start(&url);
    let token = worker_token(&env, "pool");
    let _w1 = worker(&env, &format!("http://{}", proxy.addr), &token, "w1");
    // The network drops while the baseline's run executes, and comes back after it ended:
    // the worker's heartbeats and its first report fail, and the report is sent again.
    let run = held_by(&env, "w1");
    proxy.cut_for(Duration::from_secs(5));
    wait_decided(&env, 1, 120);
    let store = env.store();
    counted_once(&store);
    let r = store.run(run).unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let item = store.work_item(run).unwrap().unwrap();
    assert_eq!(
        (item.state, item.claims),
        (WorkState::Reported, 1),
        "{item:?}"
    );
    assert!(store.work_refusals(None).unwrap().is_empty());
    let log = std::fs::read_to_string(env.path("w1.log")).unwrap();
    assert!(
        log.contains("trying again"),
        "the worker saw the network drop: {log}"
    );
}

#[test]
fn a_remote_runs_logs_reach_the_coordinator_while_it_runs() {
    if !bwrap_works() {
        return;
    }
    let env = Env::new(&[
        (
            "picidae.toml",
            r#"[boundary]
editable = ["a.txt"]

[run]
command = "sh run.sh"
time_budget = 30

[metrics.score]
goal = "minimize"
"#,
        ),
        (
            "run.sh",
            "echo \"epoch 1 of 2\"\necho \"warming up\" >&2\nsleep 5\necho \"score: $(cat a.txt)\"\n",
        ),
        ("a.txt", "5\n"),
    ]);
    create(&env, &[], "1");
    let (_serve, url) = serve(&env, "10");
    let token = worker_token(&env, "pool");
    let _w1 = worker(&env, &url, &token, "w1");
    let run = held_by(&env, "w1");
    let dir = env.project.join(format!(".picidae/runs/p/{run}"));
    wait_until(
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(dir.join("stdout.log"))
                .unwrap_or_default()
                .contains("epoch 1 of 2")
        },
        "the run's first line on the coordinator",
    );
    // Seen while the run was still running, with its stderr.
    assert_eq!(env.store().run(run).unwrap().status, RunStatus::Running);
    assert!(std::fs::read_to_string(dir.join("stderr.log"))
        .unwrap()
        .contains("warming up"));
    wait_decided(&env, 0, 60);
    let log = std::fs::read_to_string(dir.join("stdout.log")).unwrap();
    assert!(
        log.contains("epoch 1 of 2") && log.contains("score: 5"),
        "{log}"
    );
}
