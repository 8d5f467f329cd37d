//! Shared helpers for the CLI's end-to-end tests: a scripted benchmark in a real git repository,
//! a scripted command agent, and a way to run the real `picidae` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

pub mod browser;
pub mod docs;
pub mod hub;
pub mod remote;

use picidae_git::{Identity, Repo};
use picidae_store::Store;

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub project: PathBuf,
    pub bench: PathBuf,
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_picidae"));
    c.env_remove("PICIDAE_PROJECT");
    c
}

impl Env {
    /// A project plus a benchmark repository holding `files`.
    pub fn new(files: &[(&str, &str)]) -> Env {
        Env::with_store(files, None)
    }

    /// Like [`new`](Env::new), with the store in the PostgreSQL database at `url` when given.
    pub fn with_store(files: &[(&str, &str)], url: Option<&str>) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("project");
        let bench = tmp.path().join("bench");
        std::fs::create_dir_all(&bench).unwrap();
        for (name, text) in files {
            let p = bench.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Repo::init(&bench, "benchmark", Identity::default()).unwrap();
        let mut init = bin();
        init.arg("init").arg(&project);
        if let Some(url) = url {
            init.args(["--store", url]);
        }
        let out = init.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        Env {
            tmp,
            project,
            bench,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Run `picidae --project <project> args...`.
    pub fn picidae(&self, args: &[&str]) -> Output {
        bin()
            .arg("--project")
            .arg(&self.project)
            .args(args)
            .output()
            .unwrap()
    }

    /// Like [`picidae`](Env::picidae) but the command must succeed.
    /// `picidae arena create NAME` on this benchmark with a command agent running
    /// `agent_command`: one entry per `(label, program.md file)`, then `extra` options.
    pub fn arena_create(
        &self,
        name: &str,
        entries: &[(&str, &Path)],
        agent_command: &str,
        extra: &[&str],
    ) -> String {
        let bench = self.bench.display().to_string();
        let entries: Vec<String> = entries
            .iter()
            .map(|(label, path)| format!("{label}={}", path.display()))
            .collect();
        let mut args = vec!["arena", "create", name, "--benchmark", &bench];
        for e in &entries {
            args.extend(["--entry", e.as_str()]);
        }
        args.extend(["--agent", "command", "--agent-command", agent_command]);
        args.extend(extra);
        self.ok(&args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.picidae(args);
        assert!(
            out.status.success(),
            "picidae {args:?} failed:\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn store(&self) -> Store {
        let location =
            picidae_sched::project::store_location(&self.project.join(".picidae")).unwrap();
        Store::open_location(&location).unwrap()
    }

    /// Write a command agent that takes its next action from a queue file: a number is written
    /// into value.txt; `OUT` edits run.sh (outside the boundary); `NOTHING` changes nothing;
    /// `DONE` says it has nothing left; `FAIL` exits 1; `STRAY n` writes n and leaves new files
    /// outside the boundary; `COMMIT n` writes n and commits it in the checkout.
    /// Write `text` to `file` in the benchmark and commit it (for files whose text is known
    /// only once the test's paths exist).
    #[allow(dead_code)]
    pub fn commit_file(&self, file: &str, text: &str, message: &str) {
        std::fs::write(self.bench.join(file), text).unwrap();
        git(&self.bench, &["add", "--", file]);
        git(&self.bench, &["commit", "-q", "-m", message]);
    }

    /// Create a program on `bench` whose agent is the command `agent` (a command line).
    #[allow(dead_code)]
    pub fn command_program(&self, name: &str, bench: &std::path::Path, agent: &str) {
        self.ok(&[
            "program",
            "create",
            name,
            "--benchmark",
            bench.to_str().unwrap(),
            "--agent",
            "command",
            "--agent-command",
            agent,
        ]);
    }

    /// An agent script at `file` (in the test's directory) that lowers `value.txt` by one
    /// each turn; returns its command line.
    #[allow(dead_code)]
    pub fn down_agent(&self, file: &str) -> String {
        let agent = self.path(file);
        std::fs::write(
            &agent,
            "v=$(cat value.txt); v=$((v - 1)); echo $v > value.txt; echo \"HYPOTHESIS: value $v\"\n",
        )
        .unwrap();
        format!("sh {}", agent.display())
    }

    /// A command agent taking `file value` pairs from a queue, one a turn; done when it is empty.
    /// Several may run at once (one per attempt in flight): the queue is taken under a lock.
    pub fn pair_agent(&self, turns: &[&str]) -> String {
        let queue = self.path("turns.txt");
        std::fs::write(&queue, turns.join("\n") + "\n").unwrap();
        let script = self.path("agent.sh");
        std::fs::write(
            &script,
            format!(
                "cat > /dev/null\nexec 9> '{q}.lock'\nflock 9\n\
                 [ -s '{q}' ] || {{ echo 'PICIDAE: DONE'; exit 0; }}\n\
                 set -- $(head -n 1 '{q}')\nsed -i 1d '{q}'\nflock -u 9\n\
                 echo \"$2\" > \"$1\"\necho \"HYPOTHESIS: $1 = $2\"\n",
                q = queue.display()
            ),
        )
        .unwrap();
        format!("sh {}", script.display())
    }

    pub fn queue_agent(&self, actions: &[&str]) -> String {
        let queue = self.path("queue.txt");
        std::fs::write(&queue, actions.join("\n") + "\n").unwrap();
        let script = self.path("agent.sh");
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
set -e
q='{q}'
exec 9> "$q.lock"  # several turns may run at once (concurrency): one takes the queue at a time
flock 9
n=$(head -n 1 "$q")
sed -i 1d "$q"
flock -u 9
cat > /dev/null   # the prompt arrives on stdin
ls -a >&2         # what the agent can see, into its transcript
case "$n" in
  OUT) echo hacked >> run.sh; echo "HYPOTHESIS: edit a file outside the boundary" ;;
  NOTHING) echo "HYPOTHESIS: change nothing" ;;
  DONE) echo "nothing left to try"; echo "PICIDAE: DONE" ;;
  FAIL) echo "out of credit" >&2; exit 1 ;;
  STRAY\ *) v=${{n#STRAY }}; echo "$v" > value.txt; echo scratch > notes.txt; mkdir -p tmp; echo log > tmp/run.log
     echo "HYPOTHESIS: value $v, with scratch files left behind" ;;
  COMMIT\ *) v=${{n#COMMIT }}; echo "$v" > value.txt
     git add -A && git -c user.name=agent -c user.email=agent@example.invalid commit -q -m "value $v"
     echo "HYPOTHESIS: value $v, committed" ;;
  *) echo "$n" > value.txt; echo "thinking about it"; echo "HYPOTHESIS: value $n" ;;
esac
"#,
                q = queue.display()
            ),
        )
        .unwrap();
        format!("sh {}", script.display())
    }
}

/// Run git in `dir` as a person would (the repository's own config, a fixed identity, none of
/// the caller's repository-selecting variables); it must succeed. Its trimmed stdout. A git
/// lock held by a loop still running is waited out.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let mut tries = 0;
    loop {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_WORK_TREE")
            .args([
                "-c",
                "user.name=test",
                "-c",
                "user.email=test@example.invalid",
            ])
            .args(args)
            .output()
            .unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        tries += 1;
        let locked = String::from_utf8_lossy(&out.stderr).contains(".lock");
        assert!(locked && tries < 50, "git {args:?}: {out:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Two editable files; a run sleeps `secs` and reports `score` = a + b (lower is better).
pub fn two_file_env(secs: f64) -> Env {
    Env::new(&[
        (
            "picidae.toml",
            r#"[boundary]
editable = ["a.txt", "b.txt"]

[run]
command = "sh run.sh"
time_budget = 30

[metrics.score]
goal = "minimize"
"#,
        ),
        (
            "run.sh",
            &format!("sleep {secs}\necho \"score: $(( $(cat a.txt) + $(cat b.txt) ))\"\n"),
        ),
        ("a.txt", "5\n"),
        ("b.txt", "5\n"),
    ])
}

/// The `value` benchmark (`score` is the number in value.txt), starting at `initial`.
pub fn value_env(initial: &str) -> Env {
    Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 10.0)),
        ("run.sh", VALUE_RUN),
        ("value.txt", initial),
    ])
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A contract for a benchmark whose score is the number in value.txt (lower is better).
pub fn value_contract(run_command: &str, timeout: f64) -> String {
    format!(
        r#"[benchmark]
name = "value"

[boundary]
editable = ["value.txt"]

[run]
command = "{run_command}"
time_budget = {timeout}
timeout = {timeout}
grace = 0.5

[metrics.score]
goal = "minimize"
min = 0.0
"#
    )
}

pub const VALUE_RUN: &str = "echo \"score: $(cat value.txt)\"\n";

pub fn pid_alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; treat it as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .map(|rest| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

pub fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A benchmark with known ground truth. `value.txt` holds `visible hidden tag`: a run reports
/// `score` = visible + N(0, 0.5²) noise (independent per attempt and seed) and leaves the hidden
/// value as its artifact; the hidden evaluator reports it as `hidden_score`. Lower is better.
pub fn truth_files(evaluator: &str, policy: &str) -> Vec<(&'static str, String)> {
    let contract = format!(
        r#"[benchmark]
name = "truth"

[boundary]
editable = ["value.txt"]
# The scripted agents live outside the benchmark, where a sandboxed agent cannot see them;
# runs keep the default (sandboxed where bubblewrap works, as there is a hidden evaluator).
sandbox_agents = false

[run]
command = "sh run.sh"
time_budget = 10
timeout = 10
grace = 0.5
artifacts = ["hidden_true.txt"]

[metrics.score]
goal = "minimize"

[policy]
{policy}

[hidden]
command = "sh evaluate.sh"
metrics = ["hidden_score"]
files = ["gold"]

[[gold]]
name = "low"
path = "gold/low"
score = 3.0

[[gold]]
name = "mid"
path = "gold/mid"
score = 5.0

[[gold]]
name = "high"
path = "gold/high"
score = 8.0
"#
    );
    let run = r#"set -e
read v h tag < value.txt
awk -v v="$v" -v s="$PICIDAE_SEED" -v a="$PICIDAE_ATTEMPT" 'BEGIN {
  srand(s * 7919 + a * 104729 + 17)
  u1 = rand(); if (u1 < 1e-12) u1 = 1e-12
  u2 = rand()
  z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2)
  printf "score: %.6f\n", v + 0.5 * z
}'
echo "$h" > "$PICIDAE_ARTIFACTS/hidden_true.txt"
"#;
    vec![
        ("picidae.toml", contract),
        ("run.sh", run.to_string()),
        ("evaluate.sh", evaluator.to_string()),
        ("value.txt", "10 10 base\n".to_string()),
        ("gold/low/hidden_true.txt", "3\n".to_string()),
        ("gold/mid/hidden_true.txt", "5\n".to_string()),
        ("gold/high/hidden_true.txt", "8\n".to_string()),
    ]
}

pub const GOOD_EVALUATOR: &str =
    "echo \"hidden_score: $(cat \"$PICIDAE_ARTIFACTS/hidden_true.txt\")\"\n";
pub const BROKEN_EVALUATOR: &str = "echo \"hidden_score: 4\"\n";

impl Env {
    pub fn truth(evaluator: &str, policy: &str) -> Env {
        let files = truth_files(evaluator, policy);
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        Env::new(&refs)
    }

    /// Create program `name` driven by a queue agent.
    pub fn queue_program(&self, name: &str, actions: &[&str], extra: &[&str]) {
        let agent = self.queue_agent(actions);
        let mut args = vec![
            "program",
            "create",
            name,
            "--benchmark",
            self.bench.to_str().unwrap(),
            "--agent",
            "command",
            "--agent-command",
            &agent,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }
}

/// The `host:port` a `picidae serve` started with piped stdout prints it listens on. Its
/// stdout is read (and, after the address, drained) by a thread, so the server never blocks.
#[allow(dead_code)]
pub fn serve_address(child: &mut Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("serve's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("serve printed its address");
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            return addr.trim_end_matches('/').to_string();
        }
    }
}

/// One HTTP/1.1 request to `addr` (a bearer `token` when given): the status and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Poll `f` until it holds; fail naming `what` after `deadline`.
pub fn wait_until(deadline: std::time::Duration, mut f: impl FnMut() -> bool, what: &str) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// Tests that keep both cores busy (a coordinator, a browser) and measure time shares: one
/// at a time within a test binary.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether bubblewrap can make a sandbox here. When it cannot, sandbox cases are skipped,
/// unless `PICIDAE_REQUIRE_SANDBOX=1` (CI), where that is a failure.
pub fn bwrap_works() -> bool {
    let ok = Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("PICIDAE_REQUIRE_SANDBOX").as_deref() != Ok("1"),
            "PICIDAE_REQUIRE_SANDBOX=1 but bwrap does not work here"
        );
        eprintln!("skipping the sandbox cases: bwrap (bubblewrap) does not work here");
    }
    ok
}

/// A program's attempts, in order, from the store.
pub fn attempts(store: &Store, program: &str) -> Vec<picidae_store::Attempt> {
    let p = store.program(program).unwrap();
    store
        .attempts(&picidae_store::AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap()
}
