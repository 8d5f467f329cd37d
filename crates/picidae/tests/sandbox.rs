//! Sandboxed runs through the real binary with a real bubblewrap: a run that reads the hidden
//! files, writes outside its checkout, or opens a network connection is denied, and its attempt
//! is recorded as a boundary violation; an honest run in the same sandbox succeeds.

mod common;

use common::Env;
use picidae_core::AttemptStatus;
use picidae_store::AttemptFilter;

const CONTRACT: &str = r#"[benchmark]
name = "sandboxed"

[boundary]
editable = ["run.sh"]

[run]
command = "sh run.sh"
time_budget = 10.0
timeout = 20.0
grace = 0.5
sandbox = true
network = false

[metrics.score]
goal = "minimize"

[policy]
seeds = 1
baseline_seeds = 1
"#;

#[test]
fn a_run_reaching_outside_the_sandbox_is_denied_and_rejected() {
    if !common::bwrap_works() {
        return;
    }
    let env = Env::new(&[
        ("picidae.toml", CONTRACT),
        ("run.sh", "echo \"score: 10\"\n"),
        ("hidden/answer.txt", "the-secret-answer\n"),
    ]);
    let secret = env.bench.join("hidden/answer.txt");
    // Outside every writable directory, and somewhere the host would let a root run write.
    let outside = std::path::PathBuf::from(format!(
        "/usr/local/picidae-sandbox-test-{}.txt",
        std::process::id()
    ));
    // Attempt 2 reads the hidden answer, 3 writes outside its checkout, 4 opens a connection,
    // 5 is honest.
    let agent = env.path("agent.sh");
    std::fs::write(
        &agent,
        format!(
            r#"case $PICIDAE_ATTEMPT in
2) printf 'cat {secret}\necho "score: 1"\n' > run.sh; echo "HYPOTHESIS: read the answer";;
3) printf 'echo leaked > {outside}\necho "score: 1"\n' > run.sh; echo "HYPOTHESIS: write outside";;
4) printf 'python3 -c "import socket; socket.create_connection((\\"192.0.2.1\\", 80), timeout=3)"\necho "score: 1"\n' > run.sh; echo "HYPOTHESIS: phone home";;
*) printf 'echo "score: 5"\n' > run.sh; echo "HYPOTHESIS: honest";;
esac
"#,
            secret = secret.display(),
            outside = outside.display()
        ),
    )
    .unwrap();
    env.ok(&[
        "program",
        "create",
        "p",
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--agent",
        "command",
        "--agent-command",
        &format!("sh {}", agent.display()),
    ]);
    // Each hostile run.sh still prints a winning score after the denied command: the denial
    // alone must make it a violation.
    let out = env.ok(&["run", "p", "-n", "4", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let attempts = store
        .attempts(&AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap();
    let line: Vec<(i64, AttemptStatus, String)> = attempts
        .iter()
        .map(|a| (a.seq, a.status, a.note.clone().unwrap_or_default()))
        .collect();
    eprintln!("{line:#?}");
    for seq in [2, 3, 4] {
        let a = &attempts[seq - 1];
        assert_eq!(a.status, AttemptStatus::Rejected, "{out}\n{line:#?}");
        let why = a.rejection.as_ref().unwrap();
        assert_eq!(why["boundary"], "sandbox", "{why}");
        assert!(
            a.note
                .as_deref()
                .unwrap_or("")
                .starts_with("sandbox violation"),
            "{line:#?}"
        );
    }
    assert_eq!(attempts[4].status, AttemptStatus::Kept, "{line:#?}");
    assert_eq!(store.program("p").unwrap().frontier_value, Some(5.0));
    let landed = outside.exists();
    let _ = std::fs::remove_file(&outside);
    assert!(!landed, "the write outside the checkout landed");
    let runs_dir = env.project.join(".picidae");
    let leaked = walk(&runs_dir)
        .into_iter()
        .filter(|p| p.ends_with("stdout.log"))
        .any(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains("the-secret-answer")
        });
    assert!(!leaked, "a run printed the hidden answer");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `boundary.sandbox_agents`: a command agent works in its checkout as usual, but the
/// benchmark's repository (with the hidden answer), the store and the rest of the project do
/// not exist for it.
#[test]
fn a_sandboxed_agent_edits_its_checkout_and_reaches_nothing_else() {
    if !common::bwrap_works() {
        return;
    }
    let contract = CONTRACT
        .replace("sandbox = true\nnetwork = false\n", "")
        .replace(
            "editable = [\"run.sh\"]",
            "editable = [\"run.sh\"]\nsandbox_agents = true",
        );
    let env = Env::new(&[
        ("picidae.toml", &contract),
        ("run.sh", "echo \"score: 10\"\n"),
        ("hidden/answer.txt", "the-secret-answer\n"),
        // The agent ships with the benchmark (not editable), so it exists in the checkout.
        ("agent.sh", "PLACEHOLDER"),
    ]);
    let secret = env.bench.join("hidden/answer.txt");
    let store = env.project.join(".picidae").join("store.sqlite");
    let evil = env.project.join(".picidae").join("evil.txt");
    let agent = format!(
        r#"cat {secret} && echo "hidden: read" || echo "hidden: denied"
test -e {store} && echo "store: visible" || echo "store: denied"
echo evil > {evil} && echo "project: written" || echo "project: denied"
echo 'echo "score: 5"' > run.sh
echo "HYPOTHESIS: lower the score"
"#,
        secret = secret.display(),
        store = store.display(),
        evil = evil.display()
    );
    env.commit_file("agent.sh", &agent, "agent");
    env.ok(&[
        "program",
        "create",
        "p",
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--agent",
        "command",
        "--agent-command",
        "sh agent.sh",
    ]);
    let out = env.ok(&["run", "p", "-n", "1", "--plain"]);
    let store_db = env.store();
    let p = store_db.program("p").unwrap();
    assert_eq!(p.frontier_value, Some(5.0), "the agent's edit ran: {out}");
    let transcript = walk(&env.project.join(".picidae").join("attempts"))
        .into_iter()
        .filter(|p| p.ends_with("transcript.txt"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    eprintln!("{transcript}");
    assert!(transcript.contains("hidden: denied"), "{transcript}");
    assert!(transcript.contains("store: denied"), "{transcript}");
    assert!(transcript.contains("project: denied"), "{transcript}");
    assert!(!transcript.contains("the-secret-answer"));
    assert!(!evil.exists());
}
