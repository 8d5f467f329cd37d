//! The fault zoo: one program whose agent proposes a hostile `run.sh` per attempt, run
//! through the real binary. Every fault must be contained (the harness goes on, no process of
//! the run is left, the disk is not filled) and recorded with the right status and its logs;
//! afterwards the store is intact and every attempt and run is in exactly one state. The test
//! prints a table of faults tried, contained and data lost.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use common::{pid_alive, read_pids, Env};
use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_store::AttemptFilter;

const LOG_CAP: u64 = 1024 * 1024;

const CONTRACT: &str = r#"[benchmark]
name = "faults"

[boundary]
editable = ["run.sh"]

[run]
command = "sh run.sh"
time_budget = 6
timeout = 6
grace = 0.5
log_cap_bytes = 1048576

[run.resources]
memory_mb = 256
max_processes = 64

[metrics.score]
goal = "minimize"
min = 0.0
max = 1000.0
"#;

/// One hostile run: its name, its `run.sh` (`PIDS` is replaced by a directory for pid
/// files), and the run statuses that count as correctly recorded.
struct Case {
    name: &'static str,
    script: &'static str,
    expect: &'static [RunStatus],
    /// Words the run's error note must contain.
    note: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    use RunStatus::*;
    vec![
        Case {
            name: "segfault",
            script: "echo going down; kill -SEGV $$\n",
            expect: &[Crashed],
            note: None,
        },
        Case {
            name: "exit 1",
            script: "echo 'score: 1'; exit 1\n",
            expect: &[Failed],
            note: None,
        },
        Case {
            name: "exit 255",
            script: "exit 255\n",
            expect: &[Failed],
            note: None,
        },
        Case {
            name: "hang ignoring SIGTERM",
            script: "trap '' TERM\necho $$ >> PIDS/hang\nsh -c 'trap \"\" TERM; echo $$ >> PIDS/hang; while :; do sleep 0.2; done' &\nwhile :; do sleep 0.2; done\n",
            expect: &[TimedOut],
            note: Some("timeout"),
        },
        Case {
            name: "out of memory",
            script: "python3 -c 'b = bytearray(1024 * 1024 * 1024); print(\"score:\", len(b))'\n",
            expect: &[Failed, Crashed],
            note: Some("memory"),
        },
        Case {
            name: "fork bomb",
            script: "echo $$ >> PIDS/bomb\nb() { b | b & }\nb\nsleep 1\nexit 3\n",
            expect: &[Failed, Crashed, TimedOut],
            note: None,
        },
        Case {
            name: "1 GB of stdout",
            script: "yes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -c 1000000000\n",
            expect: &[Invalid, TimedOut],
            note: None,
        },
        Case {
            name: "non-UTF-8 output",
            script: "printf '\\377\\376\\200 not text \\300\\n'; printf 'score: \\377\\n' >&2\n",
            expect: &[Invalid],
            note: None,
        },
        Case {
            name: "metric nan",
            script: "echo 'score: nan'\n",
            expect: &[Invalid],
            note: None,
        },
        Case {
            name: "metric 1e308",
            script: "echo 'score: 1e308'\n",
            expect: &[Invalid],
            note: None,
        },
        Case {
            name: "setsid daemon",
            script: "setsid sh -c 'echo $$ >> PIDS/daemon; exec sleep 300' &\nsetsid sh -c 'sleep 300 & echo $! >> PIDS/daemon' &\nsleep 0.3\nexit 4\n",
            expect: &[Failed],
            note: None,
        },
        Case {
            name: "deletes its checkout",
            script: "rm -rf \"$PWD\"\necho gone\n",
            expect: &[Failed, Invalid],
            note: None,
        },
    ]
}

/// Live processes whose working directory lies under `root`.
fn processes_under(root: &Path) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            (cwd.starts_with(root) && pid_alive(pid)).then_some(pid)
        })
        .collect()
}

#[test]
fn the_fault_zoo_is_contained_and_recorded() {
    let cases = cases();
    let env = Env::new(&[("picidae.toml", CONTRACT), ("run.sh", "echo 'score: 10'\n")]);
    let pids = env.path("pids");
    let dir = env.path("cases");
    std::fs::create_dir_all(&pids).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let mut queue = String::new();
    for (i, c) in cases.iter().enumerate() {
        let script = c.script.replace("PIDS", &pids.display().to_string());
        std::fs::write(dir.join(format!("{i}.sh")), script).unwrap();
        queue.push_str(&format!("{i}\n"));
    }
    // After the zoo, a healthy proposal: the loop must still run it, and keep it.
    std::fs::write(dir.join("last.sh"), "echo 'score: 5'\n").unwrap();
    queue.push_str("last\n");
    let q = env.path("queue.txt");
    std::fs::write(&q, queue).unwrap();
    let agent = env.path("agent.sh");
    std::fs::write(
        &agent,
        format!(
            "set -e\nn=$(head -n 1 '{q}')\nsed -i 1d '{q}'\ncat > /dev/null\ncp '{d}/'\"$n\".sh run.sh\necho \"HYPOTHESIS: fault $n\"\n",
            q = q.display(),
            d = dir.display()
        ),
    )
    .unwrap();
    env.command_program(
        "zoo",
        &env.bench.clone(),
        &format!("sh {}", agent.display()),
    );

    let n = (cases.len() + 1).to_string();
    let out = env.picidae(&["run", "zoo", "-n", &n, "--plain"]);
    let log = common::text(&out);
    assert!(out.status.success(), "the harness did not survive:\n{log}");

    let store = env.store();
    store.integrity_check().unwrap();
    let program = store.program("zoo").unwrap();
    let attempts = store
        .attempts(&AttemptFilter {
            program_id: Some(program.id),
            ..Default::default()
        })
        .unwrap();
    let explored: Vec<_> = attempts
        .iter()
        .filter(|a| a.kind != AttemptKind::Baseline)
        .collect();
    assert_eq!(explored.len(), cases.len() + 1, "{attempts:#?}\n{log}");

    // Every attempt decided, and each seq once; every run terminal, each run id once.
    let seqs: HashSet<i64> = attempts.iter().map(|a| a.seq).collect();
    assert_eq!(seqs.len(), attempts.len(), "an attempt counted twice");
    let mut run_ids = HashSet::new();
    let mut rows: Vec<(String, String, bool, u64)> = Vec::new();
    let mut lost = 0u64;
    for (i, (case, attempt)) in cases.iter().zip(&explored).enumerate() {
        assert!(
            attempt.status.is_final(),
            "case {} left attempt {} {:?}",
            case.name,
            attempt.seq,
            attempt.status
        );
        assert_ne!(
            attempt.status,
            AttemptStatus::Kept,
            "case {} was kept",
            case.name
        );
        let runs = store.runs_of_attempt(attempt.id).unwrap();
        assert_eq!(runs.len(), 1, "case {}: {runs:#?}", case.name);
        let run = &runs[0];
        assert!(run_ids.insert(run.id), "run {} counted twice", run.id);
        let mut ok = case.expect.contains(&run.status);
        if let Some(word) = case.note {
            let note = run.error.clone().unwrap_or_default();
            ok &= note.contains(word);
        }
        assert!(
            ok,
            "case {i} {}: status {:?}, error {:?} (expected {:?}, note {:?})",
            case.name, run.status, run.error, case.expect, case.note
        );
        assert!(
            run.primary_value.is_none(),
            "case {}: a value was kept",
            case.name
        );
        // The logs are kept, and capped.
        let log_dir = Path::new(run.log_dir.as_deref().expect("log dir recorded"));
        let mut lost_here = 0;
        for f in ["stdout.log", "stderr.log"] {
            match std::fs::metadata(log_dir.join(f)) {
                Ok(m) => assert!(
                    m.len() <= LOG_CAP + 100,
                    "case {}: {f} is {} bytes",
                    case.name,
                    m.len()
                ),
                Err(_) => lost_here += 1,
            }
        }
        lost += lost_here;
        rows.push((
            case.name.to_string(),
            format!("{:?}", run.status).to_lowercase(),
            true,
            lost_here,
        ));
    }
    let big = &explored[cases
        .iter()
        .position(|c| c.name == "1 GB of stdout")
        .unwrap()];
    let big_run = &store.runs_of_attempt(big.id).unwrap()[0];
    let size = std::fs::metadata(Path::new(big_run.log_dir.as_deref().unwrap()).join("stdout.log"))
        .unwrap()
        .len();
    assert!(
        size >= LOG_CAP,
        "the capped log holds the first {LOG_CAP} bytes: {size}"
    );

    // The proposal after the zoo ran and was kept.
    let last = explored.last().unwrap();
    assert_eq!(last.status, AttemptStatus::Kept, "{last:#?}\n{log}");

    // No process of any run is left: hang, fork bomb and daemons recorded their pids.
    for f in ["hang", "bomb", "daemon"] {
        let list = read_pids(&pids.join(f));
        assert!(!list.is_empty(), "no pids recorded in {f}");
        for pid in list {
            assert!(!pid_alive(pid), "{f}: process {pid} outlived its run");
        }
    }
    let left = processes_under(env.tmp.path());
    assert!(
        left.is_empty(),
        "processes left under the test directory: {left:?}"
    );

    let by_status: BTreeMap<String, usize> = attempts.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(format!("{:?}", a.status)).or_default() += 1;
        m
    });
    println!("\nfault zoo ({} faults)", cases.len());
    println!(
        "{:<24} {:<10} {:<10} data lost",
        "fault", "status", "contained"
    );
    for (name, status, contained, lost) in &rows {
        println!(
            "{name:<24} {status:<10} {:<10} {lost}",
            if *contained { "yes" } else { "no" }
        );
    }
    println!(
        "faults tried: {}, contained: {}, data lost: {lost}; attempts by status: {by_status:?}",
        rows.len(),
        rows.iter().filter(|r| r.2).count()
    );
    assert_eq!(lost, 0);
}
