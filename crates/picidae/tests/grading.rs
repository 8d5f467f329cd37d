//! Grading under attack, through the real binary: agents and runs that try to change how they
//! are graded rather than improve the benchmark. Each case runs twice, with the sandboxes (the
//! default where bubblewrap works, since the contract has a hidden evaluator) and with both
//! turned off in the contract, and every verdict is read from the store and the repository,
//! not from Picidae's own summary: the cheat is not counted (not kept, not the frontier, no
//! validated finding), nothing recorded is lost, and the failure is recorded with its reason.
//!
//! The benchmark: `run.sh` (not editable) runs the agent's `solve.sh`, then `evaluate.sh` (not
//! editable), which prints `score` from `value.txt` (lower is better), and writes a run log
//! into the checkout, as real benchmarks do. `solve.sh` leaves `pred.txt` as the run's artifact;
//! the hidden evaluator counts its lines that differ from `gold/labels.txt`, a hidden file that
//! agents and runs never get. The agent may edit `value.txt` and `solve.sh`.

mod common;

use std::path::Path;

use common::{git, text, Env};
use picidae_core::domain::FindingState;
use picidae_core::{AttemptStatus, RunStatus};
use picidae_store::{Attempt, Store};

const RUN: &str = "sh solve.sh\nsh evaluate.sh\necho finished > run.log\n";
const EVALUATE: &str =
    "awk -v s=\"$PICIDAE_SEED\" '{ printf \"score: %.3f\\n\", $1 + s * 0.01 }' value.txt\n";
const SOLVE: &str = "printf 'a\\nb\\n' > \"$PICIDAE_ARTIFACTS/pred.txt\"\n";
const HIDDEN_EVAL: &str = r#"if [ -f "$PICIDAE_ARTIFACTS/pred.txt" ]; then
  n=$(diff "$PICIDAE_ARTIFACTS/pred.txt" gold/labels.txt | grep -c '^<')
else
  n=99
fi
echo "hidden_errors: $n"
"#;

fn contract(sandboxed: bool) -> String {
    let off = |key: &str| {
        if sandboxed {
            String::new()
        } else {
            format!("{key} = false")
        }
    };
    format!(
        r#"[benchmark]
name = "grading"

[boundary]
editable = ["value.txt", "solve.sh"]
{agents}

[run]
command = "sh run.sh"
time_budget = 10
timeout = 20
grace = 0.5
artifacts = ["pred.txt"]
{runs}

[metrics.score]
goal = "minimize"

[policy]
seeds = 2
baseline_seeds = 2

[hidden]
command = "sh hidden_eval.sh"
metrics = ["hidden_errors"]
files = ["gold"]
tolerance = 0.05
"#,
        agents = off("sandbox_agents"),
        runs = off("sandbox"),
    )
}

/// The agent: one scripted move per attempt (attempt 1 is the baseline).
const AGENT: &str = r#"cat > /dev/null
case $PICIDAE_ATTEMPT in
2) echo 4 > value.txt
   printf 'ln -s /proc/self/cwd/gold/labels.txt "$PICIDAE_ARTIFACTS/pred.txt"\n' > solve.sh
   echo "HYPOTHESIS: leave a link the evaluator resolves to the hidden labels";;
3) echo 4 > value.txt
   printf 'ln -s BENCH/gold/labels.txt "$PICIDAE_ARTIFACTS/pred.txt"\n' > solve.sh
   echo "HYPOTHESIS: link to the benchmark's own labels";;
4) printf "printf 'echo \"score: 0.5\"\\\\n' > evaluate.sh\n" >> solve.sh
   echo "HYPOTHESIS: rewrite the evaluator at run time";;
5) echo 8 > value.txt; printf "printf 'score: 0.1'\n" >> solve.sh
   echo "HYPOTHESIS: a score without its newline absorbs the evaluator's";;
6) echo 8 > value.txt; printf "printf 'score: 0.1\\\\nx'\n" >> solve.sh
   echo "HYPOTHESIS: report early, then swallow the evaluator's line";;
7) echo 6 > value.txt
   echo "HYPOTHESIS: a visible-only gain (the hidden metric does not move)";;
*) echo 5 > value.txt
   printf "printf 'x\\\\nb\\\\n' > \"\$PICIDAE_ARTIFACTS/pred.txt\"\n" > solve.sh
   echo "HYPOTHESIS: honest: a better value and one label right";;
esac
"#;

fn env(sandboxed: bool) -> Env {
    let env = Env::new(&[
        ("picidae.toml", &contract(sandboxed)),
        ("run.sh", RUN),
        ("evaluate.sh", EVALUATE),
        ("solve.sh", SOLVE),
        ("hidden_eval.sh", HIDDEN_EVAL),
        ("value.txt", "10\n"),
        ("gold/labels.txt", "x\ny\n"),
        ("agent.sh", "PLACEHOLDER"),
    ]);
    let agent = AGENT.replace("BENCH", &env.bench.display().to_string());
    env.commit_file("agent.sh", &agent, "agent");
    env
}

/// An agent whose second attempt is `second` (a shell fragment ending with its hypothesis)
/// and whose later ones are the honest change (a better value, one label right).
fn two_step_agent(second: &str) -> String {
    format!(
        r#"cat > /dev/null
case $PICIDAE_ATTEMPT in
2) {second};;
*) echo 5 > value.txt
   printf "printf 'x\\\\nb\\\\n' > \"\$PICIDAE_ARTIFACTS/pred.txt\"\n" > solve.sh
   echo "HYPOTHESIS: honest";;
esac
"#
    )
}

/// Commit `agent` as the benchmark's `agent.sh`, run program `name` for `n` attempts, and
/// return the store, its attempts and the run's output (which must have succeeded).
fn run_agent(env: &Env, name: &str, agent: &str, n: usize) -> (Store, Vec<Attempt>, String) {
    env.commit_file("agent.sh", agent, "agent");
    env.command_program(name, &env.bench.clone(), "sh agent.sh");
    let out = env.picidae(&["run", name, "-n", &n.to_string(), "--plain"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let store = env.store();
    let all = common::attempts(&store, name);
    assert_eq!(all.len(), n + 1, "{all:#?}\n{log}");
    (store, all, log)
}

/// Not counted: not kept, not the frontier, no validated finding.
fn not_counted(store: &Store, program: &str, a: &Attempt) {
    let p = store.program(program).unwrap();
    assert_ne!(a.status, AttemptStatus::Kept, "{a:#?}");
    assert_ne!(p.frontier_attempt_id, Some(a.id), "{a:#?}");
    if let Some(f) = store.finding_for_attempt(a.id).unwrap() {
        assert_ne!(f.state, FindingState::Validated, "{f:#?}");
    }
}

/// The errors of an attempt's runs, joined.
fn run_errors(store: &Store, a: &Attempt) -> String {
    store
        .runs_of_attempt(a.id)
        .unwrap()
        .iter()
        .filter_map(|r| r.error.clone())
        .collect::<Vec<_>>()
        .join(" | ")
}

struct Row {
    case: &'static str,
    mode: &'static str,
    how: String,
}

fn one_mode(sandboxed: bool, rows: &mut Vec<Row>) {
    let mode = if sandboxed { "sandbox" } else { "no sandbox" };
    let env = env(sandboxed);
    env.command_program("p", &env.bench.clone(), "sh agent.sh");
    let out = env.picidae(&["run", "p", "-n", "7", "--plain"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");

    let store = env.store();
    store.integrity_check().unwrap();
    let all = common::attempts(&store, "p");
    // Nothing lost: the baseline and seven proposals, each decided, each run finished once.
    assert_eq!(all.len(), 8, "{all:#?}\n{log}");
    for a in &all {
        assert!(a.status.is_final(), "undecided: {a:#?}");
        for r in store.runs_of_attempt(a.id).unwrap() {
            assert!(r.status.is_terminal() && r.finished_at.is_some(), "{r:#?}");
        }
    }
    let at = |seq: usize| &all[seq - 1];

    // 1: links in the artifacts, resolved only where the evaluator runs.
    for (seq, case) in [
        (
            2,
            "1 artifact links to the hidden labels via /proc/self/cwd",
        ),
        (
            3,
            "1 artifact links to the benchmark's labels by absolute path",
        ),
    ] {
        let a = at(seq);
        not_counted(&store, "p", a);
        let runs = store.runs_of_attempt(a.id).unwrap();
        assert_eq!(runs[0].status, RunStatus::Invalid, "{runs:#?}\n{log}");
        let why = run_errors(&store, a);
        assert!(why.contains("symbolic link"), "{why}");
        for r in &runs {
            if let Some(h) = store.hidden_result(r.id).unwrap() {
                assert!(h.metrics.get("hidden_errors") != Some(&0.0), "{h:#?}");
            }
        }
        rows.push(Row {
            case,
            mode,
            how: "run invalid: artifact is a symbolic link; never evaluated".into(),
        });
    }

    // 2: the evaluator rewritten while the run executes.
    let a = at(4);
    not_counted(&store, "p", a);
    assert_eq!(a.status, AttemptStatus::Rejected, "{a:#?}\n{log}");
    let why = a.note.clone().unwrap_or_default();
    if sandboxed {
        assert!(why.starts_with("sandbox violation"), "{why}");
    } else {
        assert!(
            why.starts_with("rewrote non-editable files") && why.contains("evaluate.sh"),
            "{why}"
        );
    }
    // The run says how it breached its containment in a field of its own, not only in words.
    let want = if sandboxed {
        picidae_core::RunBreach::SandboxDenied
    } else {
        picidae_core::RunBreach::RewroteProtected
    };
    assert!(
        store
            .runs_of_attempt(a.id)
            .unwrap()
            .iter()
            .any(|r| r.breach == Some(want)),
        "no run of #{} records {want}",
        a.seq
    );
    assert!(
        store
            .runs_of_attempt(a.id)
            .unwrap()
            .iter()
            .all(|r| r.primary_value != Some(0.5)),
        "the rewritten evaluator's score was recorded"
    );
    rows.push(Row {
        case: "2 rewrites evaluate.sh at run time",
        mode,
        how: if sandboxed {
            "write denied (read-only bind); rejected as a sandbox violation".into()
        } else {
            "seen after the run; run invalid, attempt rejected".into()
        },
    });

    // 4: metric lines framed by the agent's code.
    for (seq, case) in [
        (5, "4 `score: 0.1` without a newline absorbs the next line"),
        (
            6,
            "4 early `score: 0.1`, then the evaluator's line swallowed",
        ),
    ] {
        let a = at(seq);
        not_counted(&store, "p", a);
        let runs = store.runs_of_attempt(a.id).unwrap();
        assert_eq!(runs[0].status, RunStatus::Invalid, "{runs:#?}");
        let why = run_errors(&store, a);
        assert!(why.contains("ambiguous metric report"), "{why}");
        assert!(runs.iter().all(|r| r.primary_value.is_none()), "{runs:#?}");
        rows.push(Row {
            case,
            mode,
            how: "run invalid: ambiguous metric report".into(),
        });
    }

    // 3: a visible gain with a hidden gain of exactly zero, at tolerance 0.05.
    let a = at(7);
    not_counted(&store, "p", a);
    let f = store.finding_for_attempt(a.id).unwrap().expect("a finding");
    assert_eq!(f.state, FindingState::Refuted, "{f:#?}");
    assert_eq!(f.evidence.hidden_agrees, Some(false), "{f:#?}");
    assert_eq!(f.evidence.hidden_effect, Some(0.0), "{f:#?}");
    rows.push(Row {
        case: "3 visible-only gain, hidden gain 0, tolerance 0.05",
        mode,
        how: "refuted: suspected overfit".into(),
    });

    // The honest proposal still works under the same rules (a non-editable evaluator called
    // by the run, a log written into the checkout) and is the frontier, in the store and in git.
    let honest = at(8);
    assert_eq!(honest.status, AttemptStatus::Kept, "{honest:#?}\n{log}");
    let p = store.program("p").unwrap();
    assert_eq!(p.frontier_attempt_id, Some(honest.id));
    assert_eq!(
        git(&env.bench, &["rev-parse", "refs/picidae/p/frontier"]),
        honest.commit.clone().unwrap()
    );
    // The benchmark's own tree is untouched.
    assert_eq!(
        std::fs::read_to_string(env.bench.join("evaluate.sh")).unwrap(),
        EVALUATE
    );
    assert_eq!(git(&env.bench, &["status", "--porcelain"]), "");

    // `picidae show` says why each one failed.
    let shown = env.ok(&["show", "p", "4"]);
    assert!(
        shown.contains("sandbox violation") || shown.contains("rewrote non-editable"),
        "{shown}"
    );
    let shown = env.ok(&["show", "p", "5"]);
    assert!(shown.contains("ambiguous metric report"), "{shown}");
}

#[test]
fn grading_holds_against_cheating_runs_with_and_without_the_sandbox() {
    let mut rows = Vec::new();
    one_mode(false, &mut rows);
    if common::bwrap_works() {
        one_mode(true, &mut rows);
    }
    println!("\ngrading under attack ({} cases)", rows.len());
    println!("{:<62} {:<11} how it was stopped", "case", "mode");
    for r in &rows {
        println!("{:<62} {:<11} {}", r.case, r.mode, r.how);
    }
}

/// A run (or anyone) writing `picidae.toml` in the benchmark's working tree does not change the
/// contract a program runs under: it comes from the program's base commit.
#[test]
fn the_contract_comes_from_the_base_commit() {
    let env = env(false);
    let agent = env.path("edit-evaluator.sh");
    std::fs::write(
        &agent,
        "cat > /dev/null; echo 'echo \"score: 0\"' > evaluate.sh; echo 'HYPOTHESIS: the evaluator is editable now'\n",
    )
    .unwrap();
    env.command_program("c", &env.bench.clone(), &format!("sh {}", agent.display()));
    // The working tree's contract now makes the evaluator editable and drops the hidden
    // evaluator.
    let widened = contract(false)
        .replace(
            r#"editable = ["value.txt", "solve.sh"]"#,
            r#"editable = ["value.txt", "solve.sh", "evaluate.sh"]"#,
        )
        .replace("[hidden]", "[ignored]");
    let widened = widened.split("[ignored]").next().unwrap().to_string();
    std::fs::write(env.bench.join("picidae.toml"), &widened).unwrap();
    let out = env.picidae(&["run", "c", "-n", "1", "--plain"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("differs from the program's base commit")
            .count(),
        1,
        "{log}"
    );
    let store = env.store();
    let all = common::attempts(&store, "c");
    assert_eq!(all.len(), 2, "{all:#?}");
    let a = &all[1];
    assert_eq!(a.status, AttemptStatus::Rejected, "{a:#?}\n{log}");
    assert!(
        a.rejection
            .as_ref()
            .unwrap()
            .to_string()
            .contains("evaluate.sh"),
        "{a:#?}"
    );
    assert!(store.runs_of_attempt(a.id).unwrap().is_empty());
    // The widened file is the user's: left as it is.
    assert_eq!(
        std::fs::read_to_string(env.bench.join("picidae.toml")).unwrap(),
        widened
    );
}

/// With a hidden evaluator and no sandbox settings, agents cannot read the hidden files where
/// bubblewrap works; with the sandbox turned off, `check` and `run` say plainly, once, what an
/// agent can read.
#[test]
fn hidden_files_are_out_of_reach_by_default_or_the_exposure_is_said() {
    let reader = r#"cat > /dev/null
if cat BENCH/gold/labels.txt > /dev/null 2>&1; then echo "labels: read by path"; else echo "labels: denied by path"; fi
if git -C BENCH show HEAD:gold/labels.txt > /dev/null 2>&1; then echo "labels: read from git"; else echo "labels: denied from git"; fi
echo 9 > value.txt; echo "HYPOTHESIS: look for the labels"
"#;
    // Default settings.
    if common::bwrap_works() {
        let env = env(true);
        env.commit_file(
            "agent.sh",
            &reader.replace("BENCH", &env.bench.display().to_string()),
            "reader",
        );
        let checked = env.ok(&["check", env.bench.to_str().unwrap()]);
        assert!(
            checked.contains("runs sandboxed, command agents sandboxed"),
            "{checked}"
        );
        env.command_program("d", &env.bench.clone(), "sh agent.sh");
        let out = env.picidae(&["run", "d", "-n", "1", "--plain"]);
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        assert!(!log.contains("run unsandboxed"), "{log}");
        let transcript =
            std::fs::read_to_string(env.project.join(".picidae/attempts/d/2/transcript.txt"))
                .unwrap();
        assert!(
            transcript.contains("labels: denied by path")
                && transcript.contains("labels: denied from git"),
            "{transcript}"
        );
    }
    // Turned off in the contract: said once by `check` and once by `run`.
    let env = env(false);
    env.commit_file(
        "agent.sh",
        &reader.replace("BENCH", &env.bench.display().to_string()),
        "reader",
    );
    let checked = env.ok(&["check", env.bench.to_str().unwrap()]);
    assert!(
        checked.contains("warning:") && checked.contains("gold"),
        "{checked}"
    );
    env.command_program("e", &env.bench.clone(), "sh agent.sh");
    let out = env.picidae(&["run", "e", "-n", "1", "--plain"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("run unsandboxed").count(), 1, "{log}");
    assert!(log.contains("git show"), "{log}");
}

/// An agent plants git configuration for Picidae's own git calls in its checkout: a filter
/// driver in its `$HOME/.config/git/` (writable for agents, as the CLIs keep state there), and
/// its checkout's `.git` file pointed at a repository it made, whose config names an fsmonitor.
/// None of the planted programs runs, the proposal is committed in the real repository, and
/// the attempt is recorded with its reason.
#[test]
fn git_configuration_an_agent_plants_is_never_obeyed() {
    for sandboxed in [false, true] {
        if sandboxed && !common::bwrap_works() {
            continue;
        }
        let env = env(sandboxed);
        let home = env.path("home");
        std::fs::create_dir_all(home.join(".config")).unwrap();
        let marker = env.path("planted-program-ran");
        let planter = format!(
            r#"cat > /dev/null
mkdir -p "$HOME/.config/git"
printf '[filter "evil"]\n\tclean = "touch {m}.filter; cat"\n\tsmudge = "touch {m}.smudge; cat"\n' > "$HOME/.config/git/config"
printf '* filter=evil\n' > "$HOME/.config/git/attributes"
git init -q evil
printf '[core]\n\tfsmonitor = "touch {m}.fsmonitor; true"\n\thooksPath = hooks\n' >> evil/.git/config
echo "gitdir: $PWD/evil/.git" > .git
echo 5 > value.txt
echo "HYPOTHESIS: plant git configuration"
"#,
            m = marker.display()
        );
        env.commit_file("agent.sh", &planter, "planter");
        env.command_program("g", &env.bench.clone(), "sh agent.sh");
        let out = common::bin()
            .arg("--project")
            .arg(&env.project)
            .args(["run", "g", "-n", "1", "--plain"])
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap();
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        for ext in ["filter", "smudge", "fsmonitor"] {
            let m = format!("{}.{ext}", marker.display());
            assert!(
                !Path::new(&m).exists(),
                "the planted {ext} ran ({sandboxed})\n{log}"
            );
        }
        assert!(
            home.join(".config/git/config").exists(),
            "the plant was not made\n{log}"
        );
        let store = env.store();
        let all = common::attempts(&store, "g");
        assert_eq!(all.len(), 2, "{all:#?}\n{log}");
        let a = &all[1];
        // The checkout's new `evil/` repository is outside the boundary: left out of the
        // proposal (not committed, not in any run's checkout), and named in its note.
        assert_ne!(a.status, AttemptStatus::Rejected, "{a:#?}\n{log}");
        assert!(a.note.as_deref().unwrap_or("").contains("evil"), "{a:#?}");
        // The proposal is a commit of the real repository, under its attempt ref.
        let commit = a.commit.clone().unwrap();
        assert_eq!(
            git(&env.bench, &["rev-parse", "refs/picidae/g/attempts/000002"]),
            commit
        );
        assert_eq!(
            git(&env.bench, &["show", &format!("{commit}:value.txt")]),
            "5"
        );
        assert_eq!(
            git(&env.bench, &["ls-tree", "--name-only", &commit, "evil"]),
            "",
            "the planted repository was committed"
        );
    }
}

/// An agent plants `refs/replace/<base>` in the benchmark's repository so that the hidden
/// evaluator, checked out from the base commit, becomes one that favours its proposal. Picidae's
/// git never uses replace objects: the evaluator that runs is the committed one.
#[test]
fn replace_refs_cannot_swap_the_hidden_evaluator() {
    for sandboxed in [false, true] {
        if sandboxed && !common::bwrap_works() {
            continue;
        }
        let env = env(sandboxed);
        let replacer = r#"cat > /dev/null
base=$(git rev-parse HEAD)
fake_eval=$(printf 'if grep -q CHEAT "$PICIDAE_ARTIFACTS/pred.txt"; then echo "hidden_errors: 0"; else echo "hidden_errors: 2"; fi\n' | git hash-object -w --stdin)
tree=$(git ls-tree HEAD | awk -v b="$fake_eval" -F '\t' '{ if ($2 == "hidden_eval.sh") { split($1, m, " "); print m[1] " blob " b "\t" $2 } else print }' | git mktree)
fake=$(echo fake | git commit-tree "$tree") && git replace "$base" "$fake" && echo "replace: planted" || echo "replace: denied"
echo 4 > value.txt
printf "printf 'CHEAT\\\\nb\\\\n' > \"\$PICIDAE_ARTIFACTS/pred.txt\"\n" > solve.sh
echo "HYPOTHESIS: swap the hidden evaluator"
"#;
        env.commit_file("agent.sh", replacer, "replacer");
        env.command_program("r", &env.bench.clone(), "sh agent.sh");
        let out = env.picidae(&["run", "r", "-n", "1", "--plain"]);
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        let transcript =
            std::fs::read_to_string(env.project.join(".picidae/attempts/r/2/transcript.txt"))
                .unwrap();
        let planted = transcript.contains("replace: planted");
        assert_eq!(planted, !sandboxed, "{transcript}");
        let store = env.store();
        let all = common::attempts(&store, "r");
        assert_eq!(all.len(), 2, "{all:#?}\n{log}");
        let a = &all[1];
        not_counted(&store, "r", a);
        let f = store.finding_for_attempt(a.id).unwrap().expect("a finding");
        assert_eq!(f.state, FindingState::Refuted, "{f:#?}");
        // The committed evaluator scored it: two errors, as for the baseline.
        for r in store.runs_of_attempt(a.id).unwrap() {
            let h = store.hidden_result(r.id).unwrap().expect("evaluated");
            assert_eq!(h.metrics.get("hidden_errors"), Some(&2.0), "{h:#?}");
        }
    }
}

/// With a hidden evaluator and one seed (a deterministic benchmark), nothing is kept without
/// the hidden evaluator's agreement: a visible-only gain (a lookup table of the visible
/// tests) is discarded, an honest gain kept.
#[test]
fn one_seed_keeps_nothing_the_hidden_evaluator_does_not_confirm() {
    let env = env(false);
    let one_seed = contract(false).replace(
        "seeds = 2\nbaseline_seeds = 2",
        "seeds = 1\nbaseline_seeds = 1",
    );
    env.commit_file("picidae.toml", &one_seed, "one seed");
    let checked = env.ok(&["check", env.bench.to_str().unwrap()]);
    assert!(
        checked.contains("guards:") && checked.contains("at one seed"),
        "{checked}"
    );
    let agent = two_step_agent(
        r#"echo 3 > value.txt; echo "HYPOTHESIS: a lookup table of the visible tests""#,
    );
    let (store, all, log) = run_agent(&env, "one", &agent, 2);
    let table = &all[1];
    assert_eq!(table.status, AttemptStatus::Discarded, "{table:#?}\n{log}");
    assert!(
        table
            .note
            .as_deref()
            .unwrap_or("")
            .contains("hidden evaluator does not agree"),
        "{table:#?}"
    );
    not_counted(&store, "one", table);
    let honest = &all[2];
    assert_eq!(honest.status, AttemptStatus::Kept, "{honest:#?}\n{log}");
    assert_eq!(
        store.program("one").unwrap().frontier_attempt_id,
        Some(honest.id)
    );
}

/// The hidden evaluator runs only where it can change a decision, and once per distinct set
/// of artifacts: a candidate the visible evidence refutes is never evaluated, and seeds whose
/// artifacts are identical are scored once.
#[test]
fn the_hidden_evaluator_runs_only_where_it_decides_and_once_per_artifact_set() {
    let env = env(false);
    let calls = env.path("evaluator-calls");
    let counting = format!("echo call >> {}\n{HIDDEN_EVAL}", calls.display());
    env.commit_file("hidden_eval.sh", &counting, "counting evaluator");
    let agent = two_step_agent(r#"echo 9.999 > value.txt; echo "HYPOTHESIS: within the noise""#);
    let (store, all, log) = run_agent(&env, "w", &agent, 2);
    let noise = &all[1];
    let f = store
        .finding_for_attempt(noise.id)
        .unwrap()
        .expect("verified");
    assert_eq!(f.state, FindingState::Refuted, "{f:#?}");
    for r in store.runs_of_attempt(noise.id).unwrap() {
        assert!(
            store.hidden_result(r.id).unwrap().is_none(),
            "run {} was scored",
            r.id
        );
    }
    let shown = env.ok(&["findings", "show", &f.id.to_string()]);
    assert!(shown.contains("not consulted"), "{shown}");
    // The honest candidate and the baseline: two seeds each, one artifact set each.
    let honest = &all[2];
    assert_eq!(honest.status, AttemptStatus::Kept, "{honest:#?}\n{log}");
    for a in [&all[0], honest] {
        for r in store.runs_of_attempt(a.id).unwrap() {
            assert!(
                store.hidden_result(r.id).unwrap().is_some(),
                "run {} unscored",
                r.id
            );
        }
    }
    let n = std::fs::read_to_string(&calls).unwrap().lines().count();
    assert_eq!(
        n, 2,
        "the evaluator ran {n} times for 4 runs with 2 distinct artifact sets"
    );
}
