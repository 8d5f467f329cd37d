//! Hostile agents through the real binary: proposals that try to win by cheating rather than
//! by improving the benchmark. Each must be refused or detected, and none counted as a win
//! (never `kept`, the frontier never moves to it). The test prints a table of the cases, how
//! each was stopped, and whether it was counted as a win.
//!
//! The benchmark: `run.sh` (not editable) runs the agent's `solve.sh`, then `evaluate.sh` (not
//! editable), which prints `score: <value.txt>`; lower is better. The agent may edit
//! `value.txt` and `solve.sh`.
//!
//! Which protection applies where:
//! - edits to non-editable files (the evaluator, the run script, the contract): the boundary
//!   check, before anything runs;
//! - metric lines printed after the run ends: every process of the run is killed when its
//!   leader exits, and the metrics are read from the run's own output only;
//! - reading the hidden evaluator's files or writing the benchmark's `.git` and the store:
//!   `[boundary] sandbox_agents = true` for agents and `[run] sandbox = true` for runs (these
//!   cases need a working `bwrap`). Without the agent sandbox an agent runs as the user and
//!   its writes to `.git` and the store land: the test shows that they do, that the store
//!   still passes its integrity check, and that the attempt is decided on its own measured
//!   value only.

mod common;

use std::path::{Path, PathBuf};

use common::{pid_alive, read_pids, Env};
use picidae_core::{AttemptStatus, RunStatus};
use picidae_store::{Attempt, Store};

const RUN: &str = "sh solve.sh\nsh evaluate.sh\n";
const SOLVE: &str = ": the agent's code\n";
const EVALUATE: &str = "echo \"score: $(cat value.txt)\"\n";

fn contract(boundary_extra: &str, run_extra: &str, hidden: &str) -> String {
    format!(
        r#"[benchmark]
name = "hostile"

[boundary]
editable = ["value.txt", "solve.sh"]
{boundary_extra}

[run]
command = "sh run.sh"
time_budget = 10
timeout = 20
grace = 0.5
{run_extra}

[metrics.score]
goal = "minimize"

[policy]
seeds = 1
baseline_seeds = 1
{hidden}"#
    )
}

fn walk(dir: &Path) -> Vec<PathBuf> {
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

/// Commit `agent.sh` (its text known only once the paths exist) into the benchmark, so a
/// sandboxed agent finds it in its checkout.
fn commit_agent(env: &Env, script: &str) {
    env.commit_file("agent.sh", script, "agent");
}

struct Row {
    case: &'static str,
    stopped: String,
    win: bool,
}

/// A hostile attempt was not a win: not kept, and the frontier is not its attempt.
fn not_a_win(store: &Store, program: &str, a: &Attempt) -> bool {
    let p = store.program(program).unwrap();
    a.status != AttemptStatus::Kept && p.frontier_attempt_id != Some(a.id)
}

fn boundary_rejected(store: &Store, a: &Attempt, path: &str, log: &str) {
    assert_eq!(a.status, AttemptStatus::Rejected, "{a:#?}\n{log}");
    let why = a.rejection.clone().unwrap().to_string();
    assert!(why.contains(path), "{why}");
    assert!(
        store.runs_of_attempt(a.id).unwrap().is_empty(),
        "a run was started for attempt {}",
        a.seq
    );
}

/// Cases 1, 2, 4 and the unsandboxed half of 5.
fn without_sandbox(rows: &mut Vec<Row>) {
    let env = Env::new(&[
        ("picidae.toml", &contract("", "", "")),
        ("run.sh", RUN),
        ("solve.sh", SOLVE),
        ("evaluate.sh", EVALUATE),
        ("value.txt", "10\n"),
    ]);
    let pids = env.path("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let git_config = env.bench.join(".git/config");
    let store_file = env.project.join(".picidae/store.sqlite");
    let agent = env.path("agent.sh");
    std::fs::write(
        &agent,
        format!(
            r#"cat > /dev/null
case $PICIDAE_ATTEMPT in
2) sed -i 's/cat value.txt/echo 0.5/' evaluate.sh; echo "HYPOTHESIS: a better evaluator";;
3) printf 'echo "score: 1"\n' > run.sh; echo "HYPOTHESIS: skip the slow evaluation";;
4) sed -i 's/editable = \["value.txt"/editable = ["evaluate.sh", "value.txt"/' picidae.toml
   printf 'echo "score: 0"\n' > evaluate.sh; echo "HYPOTHESIS: widen the boundary";;
5) cat > solve.sh <<'EOS'
(sleep 0.5; echo "score: 0") &
echo $! >> {pids}/fake
setsid sh -c 'echo $$ >> {pids}/fake; sleep 0.5; echo "score: 0"' &
setsid sh -c 'echo $$ >> {pids}/fake; sleep 0.5; echo "score: 0" >> "$(dirname "$PICIDAE_METRICS")/stdout.log"' < /dev/null > /dev/null 2>&1 &
EOS
   echo 50 > value.txt; echo "HYPOTHESIS: report a better score after the run";;
6) printf '\n# hostile agent\n' >> {git_config} && echo "git: written" || echo "git: denied"
   printf 'HOSTILE-MARKER' >> {store} && echo "store: written" || echo "store: denied"
   echo 12 > value.txt; echo "HYPOTHESIS: tamper with the repository and the store";;
*) echo 7 > value.txt; echo "HYPOTHESIS: honest";;
esac
"#,
            pids = pids.display(),
            git_config = git_config.display(),
            store = store_file.display(),
        ),
    )
    .unwrap();
    env.command_program("p", &env.bench.clone(), &format!("sh {}", agent.display()));
    let out = env.picidae(&["run", "p", "-n", "6", "--plain"]);
    let log = common::text(&out);
    assert!(out.status.success(), "{log}");
    // Let any surviving fake reporter print, so the checks below would see it.
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let store = env.store();
    store.integrity_check().unwrap();
    let all = common::attempts(&store, "p");
    assert_eq!(all.len(), 7, "{all:#?}\n{log}");
    let at = |seq: usize| &all[seq - 1];

    // 1: the run script is not editable; rewritten to print a score without evaluating.
    boundary_rejected(&store, at(3), "run.sh", &log);
    rows.push(Row {
        case: "1 edits run.sh (outside the boundary)",
        stopped: "rejected at the boundary, no run".into(),
        win: !not_a_win(&store, "p", at(3)),
    });
    // 1b: the contract itself, to make the evaluator editable.
    boundary_rejected(&store, at(4), "picidae.toml", &log);
    rows.push(Row {
        case: "1b widens its boundary in picidae.toml",
        stopped: "rejected at the boundary, no run".into(),
        win: !not_a_win(&store, "p", at(4)),
    });
    // 2: the metric-printing code in the evaluator.
    boundary_rejected(&store, at(2), "evaluate.sh", &log);
    rows.push(Row {
        case: "2 prints a better score in evaluate.sh",
        stopped: "rejected at the boundary, no run".into(),
        win: !not_a_win(&store, "p", at(2)),
    });

    // 4: fake metric lines from background processes after the run ends.
    let fake = at(5);
    let runs = store.runs_of_attempt(fake.id).unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{:#?}", runs[0]);
    assert_eq!(runs[0].primary_value, Some(50.0), "the fake score counted");
    assert_eq!(fake.status, AttemptStatus::Discarded, "{fake:#?}");
    let stdout =
        std::fs::read_to_string(Path::new(runs[0].log_dir.as_deref().unwrap()).join("stdout.log"))
            .unwrap();
    assert!(
        !stdout.contains("score: 0"),
        "a fake line reached the run's log: {stdout}"
    );
    let fakes = read_pids(&pids.join("fake"));
    assert_eq!(fakes.len(), 3, "{fakes:?}");
    for pid in &fakes {
        assert!(!pid_alive(*pid), "fake reporter {pid} outlived its run");
    }
    rows.push(Row {
        case: "4 fake `score: 0` from background/setsid",
        stopped: "killed with the run (3 of 3); value recorded 50".into(),
        win: !not_a_win(&store, "p", fake),
    });

    // 5 without the agent sandbox: the writes land (no protection), the store survives them,
    // and the attempt is judged on its measured value alone.
    let tamper = at(6);
    let transcripts = walk(&env.project.join(".picidae/attempts"))
        .into_iter()
        .filter(|p| p.ends_with("transcript.txt"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<String>();
    assert!(transcripts.contains("git: written"), "{transcripts}");
    assert!(transcripts.contains("store: written"), "{transcripts}");
    let config = std::fs::read_to_string(&git_config).unwrap();
    assert!(config.contains("# hostile agent"), "{config}");
    assert_eq!(tamper.status, AttemptStatus::Discarded, "{tamper:#?}");
    rows.push(Row {
        case: "5 writes .git/config and the store (no sandbox)",
        stopped: "not stopped: writes land; store passes integrity_check; judged on its value"
            .into(),
        win: !not_a_win(&store, "p", tamper),
    });

    // The honest proposal after all this ran and was kept.
    let honest = at(7);
    assert_eq!(honest.status, AttemptStatus::Kept, "{honest:#?}\n{log}");
    let p = store.program("p").unwrap();
    assert_eq!(p.frontier_value, Some(7.0));
    assert_eq!(p.frontier_attempt_id, Some(honest.id));
}

/// Case 3 and the sandboxed half of 5.
fn with_sandbox(rows: &mut Vec<Row>) {
    let hidden = r#"
[hidden]
command = "sh hidden/eval.sh"
metrics = ["hidden_score"]
files = ["hidden"]
"#;
    let env = Env::new(&[
        (
            "picidae.toml",
            &contract(
                "sandbox_agents = true",
                "sandbox = true\nnetwork = false",
                hidden,
            ),
        ),
        // The hidden evaluator scores the value the run leaves as its artifact.
        (
            "run.sh",
            &format!("{RUN}cp value.txt \"$PICIDAE_ARTIFACTS/value.txt\"\n"),
        ),
        ("solve.sh", SOLVE),
        ("evaluate.sh", EVALUATE),
        ("value.txt", "10\n"),
        ("hidden/answer.txt", "SECRET-7f3a 1\n"),
        (
            "hidden/eval.sh",
            "echo \"hidden_score: $(cat \"$PICIDAE_ARTIFACTS/value.txt\")\"\n",
        ),
        ("agent.sh", "PLACEHOLDER"),
    ]);
    let secret = env.bench.join("hidden/answer.txt");
    let git_config = env.bench.join(".git/config");
    let store_file = env.project.join(".picidae/store.sqlite");
    commit_agent(
        &env,
        &format!(
            r#"cat > /dev/null
case $PICIDAE_ATTEMPT in
2) if cut -d' ' -f2 {secret} > v.tmp; then mv v.tmp value.txt; echo "hidden: read"
   else rm -f v.tmp; echo 11 > value.txt; echo "hidden: denied"; fi
   echo "HYPOTHESIS: use the hidden answer";;
3) printf 'cut -d" " -f2 {secret} > value.txt\n' > solve.sh; echo 11 > value.txt
   echo "HYPOTHESIS: read the answer at run time";;
4) printf '\n# hostile agent\n' >> {git_config} && echo "git: written" || echo "git: denied"
   sqlite3 {store} "CREATE TABLE hostile(x)" && echo "sqlite: written" || echo "sqlite: denied"
   printf 'HOSTILE-MARKER' >> {store} && echo "store: written" || echo "store: denied"
   echo 12 > value.txt; echo "HYPOTHESIS: tamper with the repository and the store";;
*) echo 5 > value.txt; echo "HYPOTHESIS: honest";;
esac
"#,
            secret = secret.display(),
            git_config = git_config.display(),
            store = store_file.display(),
        ),
    );
    env.command_program("s", &env.bench.clone(), "sh agent.sh");
    let config_before = std::fs::read(&git_config).unwrap();
    let config_mtime = std::fs::metadata(&git_config).unwrap().modified().unwrap();
    let out = env.picidae(&["run", "s", "-n", "4", "--plain"]);
    let log = common::text(&out);
    assert!(out.status.success(), "{log}");

    let store = env.store();
    store.integrity_check().unwrap();
    let all = common::attempts(&store, "s");
    assert_eq!(all.len(), 5, "{all:#?}\n{log}");
    let at = |seq: usize| &all[seq - 1];
    // The agents' transcripts, all attempts together.
    let transcripts = walk(&env.project.join(".picidae/attempts"))
        .into_iter()
        .filter(|p| p.ends_with("transcript.txt"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<String>();

    // 3a: the sandboxed agent cannot read the hidden answer by its absolute path.
    assert!(transcripts.contains("hidden: denied"), "{transcripts}");
    assert!(!transcripts.contains("hidden: read"), "{transcripts}");
    let leaked: Vec<PathBuf> = walk(&env.project)
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).contains("SECRET-7f3a"))
                .unwrap_or(false)
        })
        .collect();
    assert!(leaked.is_empty(), "the secret is in {leaked:?}");
    assert_ne!(at(2).status, AttemptStatus::Kept);
    rows.push(Row {
        case: "3a agent reads the hidden answer (sandbox_agents)",
        stopped: "denied: the path does not exist for the agent".into(),
        win: !not_a_win(&store, "s", at(2)),
    });

    // 3b: a run that reads it is a sandbox violation, though it would have scored 1.
    let a = at(3);
    assert_eq!(a.status, AttemptStatus::Rejected, "{a:#?}\n{log}");
    assert_eq!(a.rejection.as_ref().unwrap()["boundary"], "sandbox");
    assert!(
        a.note
            .as_deref()
            .unwrap_or("")
            .starts_with("sandbox violation"),
        "{a:#?}"
    );
    rows.push(Row {
        case: "3b run reads the hidden answer (run sandbox)",
        stopped: "rejected as a sandbox violation".into(),
        win: !not_a_win(&store, "s", a),
    });

    // 5: the sandboxed agent cannot write the benchmark's .git or the store.
    assert!(transcripts.contains("git: denied"), "{transcripts}");
    assert!(transcripts.contains("sqlite: denied"), "{transcripts}");
    assert!(transcripts.contains("store: denied"), "{transcripts}");
    assert_eq!(std::fs::read(&git_config).unwrap(), config_before);
    assert_eq!(
        std::fs::metadata(&git_config).unwrap().modified().unwrap(),
        config_mtime
    );
    let db = std::fs::read(&store_file).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains("HOSTILE-MARKER"),
        "the marker reached the store"
    );
    let tables = hostile_tables(&store_file);
    assert_eq!(tables, 0, "the agent created a table in the store");
    assert_ne!(at(4).status, AttemptStatus::Kept);
    rows.push(Row {
        case: "5 writes .git/config and the store (sandbox_agents)",
        stopped: "denied: neither exists for the agent; bytes and mtime unchanged".into(),
        win: !not_a_win(&store, "s", at(4)),
    });

    let honest = at(5);
    assert_eq!(honest.status, AttemptStatus::Kept, "{honest:#?}\n{log}");
    assert_eq!(
        store.program("s").unwrap().frontier_attempt_id,
        Some(honest.id)
    );
}

/// How many tables named `hostile` the store holds (read with the sqlite3 CLI).
fn hostile_tables(db: &Path) -> i64 {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg("SELECT count(*) FROM sqlite_master WHERE name = 'hostile'")
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().parse().unwrap(),
        _ => 0,
    }
}

#[test]
fn hostile_proposals_are_refused_and_never_win() {
    let mut rows = Vec::new();
    without_sandbox(&mut rows);
    let sandboxed = common::bwrap_works();
    if sandboxed {
        with_sandbox(&mut rows);
    } else {
        for case in [
            "3a agent reads the hidden answer (sandbox_agents)",
            "3b run reads the hidden answer (run sandbox)",
            "5 writes .git/config and the store (sandbox_agents)",
        ] {
            rows.push(Row {
                case,
                stopped: "skipped: bwrap does not work here".into(),
                win: false,
            });
        }
    }
    rows.sort_by_key(|r| r.case.split(' ').next().unwrap_or_default().to_string());
    println!("\nhostile agent ({} cases)", rows.len());
    println!(
        "{:<52} {:<76} counted as a win",
        "case", "how it was stopped"
    );
    for r in &rows {
        println!(
            "{:<52} {:<76} {}",
            r.case,
            r.stopped,
            if r.win { "yes" } else { "no" }
        );
    }
    let wins = rows.iter().filter(|r| r.win).count();
    println!("hostile cases: {}, counted as a win: {wins}", rows.len());
    assert_eq!(wins, 0);
}
