//! The harness never writes, or reads back, through a path an agent could have replaced. Through
//! the real binary:
//!
//! - a command agent plants symlinks to the store and to files outside the project where the
//!   harness writes (the transcript, in its scratch directory and in the attempt directory
//!   around it), where it reads back (its captured stdout and stderr), and in the next
//!   attempt's directory before the harness makes it (prompt, context, transcript, scratch);
//!   an earlier agent's planted attempt directory is there before the run starts. Each case
//!   runs without and with the agent sandbox (`[boundary] sandbox_agents`; skipped where
//!   `bwrap` does not work unless `PICIDAE_REQUIRE_SANDBOX=1`).
//! - a sweep over a parameter file that a previous commit turned into a symlink, or whose
//!   directory is one: refused, nothing written outside the checkout.
//!
//! Each checks from the store (its integrity, every attempt there with its status and reason)
//! and from the files (the link targets byte for byte) that nothing was lost or overwritten.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{git, text, value_contract, Env, VALUE_RUN};
use picidae_core::AttemptStatus;
use picidae_store::Store;

const MARKER: &[u8] = b"marker: must never change\n";
const SECRET: &str = "SECRET-LABEL-5e1d";

/// Every regular file under `dir`, links neither listed nor followed.
fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => out.extend(regular_files(&p)),
                Ok(m) if m.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

/// `path` is a regular file (not a link) and its text.
fn regular_text(path: &Path) -> String {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.is_file(), "{} is not a regular file", path.display());
    std::fs::read_to_string(path).unwrap()
}

/// The store is whole: it opens, passes SQLite's integrity check, and is still a database.
fn store_whole(env: &Env, store_file: &Path) -> Store {
    let head = std::fs::read(store_file).unwrap();
    assert!(
        head.starts_with(b"SQLite format 3\0"),
        "the store file was overwritten"
    );
    let store = env.store();
    store.integrity_check().unwrap();
    store
}

/// Turn 2 plants links where the harness writes, and the next attempt's directory; turn 3
/// replaces its captured output with links; turn 4 is honest. `$H` is the attempt directory
/// around the scratch directory.
fn agent_script(store: &Path, marker: &Path, secret: &Path, outside: &Path) -> String {
    format!(
        r#"cat > /dev/null
S="$PICIDAE_SCRATCH"
H="$(dirname "$S")"
plant() {{ if ln -sfn "$1" "$2" 2>/dev/null; then echo "planted $2"; else echo "denied $2"; fi; }}
case $PICIDAE_ATTEMPT in
2) plant {store} "$S/transcript.txt"
   plant {marker} "$H/transcript.txt"
   plant {store} "$S/agent.stdout"
   N="$(dirname "$H")/3"
   if mkdir -p "$N" 2>/dev/null; then
     for f in prompt.md context.json program.md mcp.json transcript.txt agent.stdout agent.stderr; do
       plant {store} "$N/$f"
     done
     plant {outside} "$N/scratch"
   else echo "denied $N"; fi
   echo 9 > value.txt; echo "HYPOTHESIS: nine";;
3) plant {store} "$H/agent.stdout"
   plant {secret} "$H/agent.stderr"
   echo 8 > value.txt; echo "HYPOTHESIS: eight";;
*) echo 7 > value.txt; echo "HYPOTHESIS: seven";;
esac
"#,
        store = store.display(),
        marker = marker.display(),
        secret = secret.display(),
        outside = outside.display(),
    )
}

fn command_agent_case(sandboxed: bool) {
    let mut contract = value_contract("sh run.sh", 10.0);
    if sandboxed {
        contract = contract.replace(
            "editable = [\"value.txt\"]\n",
            "editable = [\"value.txt\"]\nsandbox_agents = true\n",
        );
    }
    let env = Env::new(&[
        ("picidae.toml", &contract),
        ("run.sh", VALUE_RUN),
        ("value.txt", "10\n"),
        ("agent.sh", "PLACEHOLDER"),
    ]);
    let store_file = env.project.join(".picidae/store.sqlite");
    let marker = env.path("marker.txt");
    std::fs::write(&marker, MARKER).unwrap();
    let secret = env.path("labels.txt");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let outside = env.path("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), MARKER).unwrap();
    // Committed, so a sandboxed agent finds it in its checkout.
    env.commit_file(
        "agent.sh",
        &agent_script(&store_file, &marker, &secret, &outside),
        "agent",
    );
    env.command_program("p", &env.bench.clone(), "sh agent.sh");

    // An earlier agent outside the sandbox left the first explored attempt's directory
    // planted with links to the store, the marker and a directory outside.
    let attempts_dir = env.project.join(".picidae/attempts/p");
    let planted = attempts_dir.join("2");
    std::fs::create_dir_all(&planted).unwrap();
    symlink(&store_file, planted.join("prompt.md")).unwrap();
    symlink(&marker, planted.join("context.json")).unwrap();
    symlink(&store_file, planted.join("transcript.txt")).unwrap();
    symlink(&store_file, planted.join("agent.stdout")).unwrap();
    symlink(&outside, planted.join("scratch")).unwrap();

    let out = env.picidae(&["run", "p", "-n", "3", "--plain"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");

    // Nothing was lost: the store is whole, with the baseline and all three turns.
    let store = store_whole(&env, &store_file);
    let all = common::attempts(&store, "p");
    assert_eq!(all.len(), 4, "{all:#?}\n{log}");
    let at = |seq: usize| &all[seq - 1];
    assert_eq!(at(1).status, AttemptStatus::Kept, "{log}");
    // Turn 2's links sat where the harness writes: the transcript was renamed into place, and
    // the attempt was decided on its own measured value.
    assert_eq!(at(2).status, AttemptStatus::Kept, "{:#?}\n{log}", at(2));
    assert_eq!(at(2).hypothesis, "nine");
    // Turn 3 replaced its captured output with links: outside the sandbox they are refused
    // (the attempt fails, saying so); inside they could not be made.
    if sandboxed {
        assert_eq!(at(3).status, AttemptStatus::Kept, "{:#?}\n{log}", at(3));
    } else {
        assert_eq!(at(3).status, AttemptStatus::Failed, "{:#?}\n{log}", at(3));
        let note = at(3).note.clone().unwrap_or_default();
        assert!(
            note.contains("refusing to read through a symlink") && note.contains("3/agent.stdout"),
            "{note}"
        );
    }
    assert_eq!(at(4).status, AttemptStatus::Kept, "{:#?}\n{log}", at(4));
    assert_eq!(
        store.program("p").unwrap().frontier_attempt_id,
        Some(at(4).id)
    );

    // The link targets are byte for byte as they were.
    assert_eq!(std::fs::read(&marker).unwrap(), MARKER);
    assert_eq!(std::fs::read(outside.join("keep.txt")).unwrap(), MARKER);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        format!("{SECRET}\n")
    );

    // The harness's files are its own: regular files, made afresh, with what it meant to
    // write; the scratch directory is a directory of the attempt's, not a link.
    for seq in [2, 3, 4] {
        let dir = attempts_dir.join(seq.to_string());
        let prompt = regular_text(&dir.join("prompt.md"));
        assert!(prompt.contains("HYPOTHESIS:"), "{prompt}");
        let context = regular_text(&dir.join("context.json"));
        assert!(
            context.contains(&format!("\"attempt_seq\":{seq}")),
            "{context}"
        );
        let scratch = std::fs::symlink_metadata(dir.join("scratch")).unwrap();
        assert!(scratch.is_dir(), "attempt {seq}: scratch is {scratch:?}");
    }
    let t2 = regular_text(&attempts_dir.join("2/transcript.txt"));
    assert!(t2.contains("HYPOTHESIS: nine"), "{t2}");
    let t3 = regular_text(&attempts_dir.join("3/transcript.txt"));
    if sandboxed {
        assert!(t3.contains("denied") && !t3.contains("planted"), "{t3}");
    } else {
        assert!(t3.contains("refusing to read through a symlink"), "{t3}");
    }
    assert!(
        t2.contains(if sandboxed { "denied" } else { "planted" }),
        "{t2}"
    );
    // Nothing read through a link reached a file of the project: not the labels, not the
    // store's bytes.
    for f in regular_files(&env.project.join(".picidae/attempts")) {
        let bytes = std::fs::read(&f).unwrap();
        let s = String::from_utf8_lossy(&bytes);
        assert!(!s.contains(SECRET), "{} holds the labels", f.display());
        assert!(
            !s.contains("SQLite format 3"),
            "{} holds the store",
            f.display()
        );
    }
}

#[test]
fn a_command_agent_cannot_redirect_the_harness_writes() {
    command_agent_case(false);
}

#[test]
fn a_sandboxed_command_agent_cannot_redirect_the_harness_writes() {
    if common::bwrap_works() {
        command_agent_case(true);
    }
}

const SWEEP_RUN: &str = "x=$(sed -n 's/^x = //p' conf/params.txt); echo \"score: $x\"\n";

fn sweep_contract() -> String {
    r#"[benchmark]
name = "sweep"

[boundary]
editable = ["conf/params.txt"]

[run]
command = "sh run.sh"
time_budget = 10
timeout = 10
grace = 0.5

[metrics.score]
goal = "minimize"

[policy]
seeds = 1
baseline_seeds = 1

[[param]]
name = "x"
file = "conf/params.txt"
pattern = '^x = (\S+)$'
min = 0.0
max = 1.0
"#
    .into()
}

/// A committed link where the sweep's parameter file is (`link` is `conf/params.txt` or
/// `conf`): its turn fails, naming the link, and nothing outside the checkout changes.
fn sweep_case(link: &str) {
    let env = Env::new(&[
        ("picidae.toml", &sweep_contract()),
        ("run.sh", SWEEP_RUN),
        ("conf/.keep", ""),
    ]);
    let outside = env.path("outside");
    std::fs::create_dir(&outside).unwrap();
    let target = outside.join("params.txt");
    let original = b"x = 0.75\n";
    std::fs::write(&target, original).unwrap();
    if link == "conf" {
        std::fs::remove_dir_all(env.bench.join("conf")).unwrap();
        git(&env.bench, &["rm", "-q", "--cached", "-r", "conf"]);
        symlink(&outside, env.bench.join("conf")).unwrap();
    } else {
        symlink(&target, env.bench.join(link)).unwrap();
    }
    git(&env.bench, &["add", "-A"]);
    git(
        &env.bench,
        &["commit", "-q", "-m", "a link where the parameters are"],
    );
    let store_file = env.project.join(".picidae/store.sqlite");
    env.ok(&[
        "program",
        "create",
        "s",
        "--benchmark",
        env.bench.to_str().unwrap(),
    ]);
    let out = env.picidae(&["run", "s", "-n", "2", "--plain"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");

    let store = store_whole(&env, &store_file);
    let all = common::attempts(&store, "s");
    assert_eq!(all.len(), 3, "{all:#?}\n{log}");
    // The baseline ran the committed code (the run itself may follow its own link).
    assert_eq!(all[0].status, AttemptStatus::Kept, "{log}");
    for a in &all[1..] {
        assert_eq!(a.status, AttemptStatus::Failed, "{a:#?}\n{log}");
        let note = a.note.clone().unwrap_or_default();
        assert!(
            note.contains("through a symlink") && note.contains(&format!("/{link}")),
            "{note}"
        );
    }
    assert_eq!(std::fs::read(&target).unwrap(), original);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn a_sweep_refuses_a_committed_link_at_its_parameter_file() {
    sweep_case("conf/params.txt");
}

#[test]
fn a_sweep_refuses_a_committed_link_on_the_way_to_its_parameter_file() {
    sweep_case("conf");
}
