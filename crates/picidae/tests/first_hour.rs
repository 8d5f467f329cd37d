//! The first hour on a benchmark written elsewhere: `picidae check` says everything wrong with a
//! contract at once, names the benchmark after its directory and warns about editable globs that
//! match nothing; a project made inside the benchmark's own repository never counts as a change
//! of it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{bin, text, value_contract, VALUE_RUN};
use picidae_git::{Identity, Repo};

fn git_status(dir: &Path) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--untracked-files=all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn check_reports_every_mistake_in_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = tmp.path().join("mistakes");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(
        bench.join("picidae.toml"),
        r#"[boundary]
editable = ["train.py"]

[run]
command = "python3 train.py"
time_budget = 60
timout = 90

[metrics.loss]
goal = "smaller"

[policy]
seeds = "3"
"#,
    )
    .unwrap();
    let out = bin()
        .arg("check")
        .arg(".")
        .current_dir(&bench)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for located in [
        "picidae.toml:7:1: field `run.timout`",
        "picidae.toml:10:8: field `metrics.loss.goal`",
        "picidae.toml:13:9: field `policy.seeds`",
    ] {
        assert!(
            err.contains(located),
            "{located:?} missing:\n{}",
            text(&out)
        );
    }
    assert!(err.contains("3 problems found"), "{}", text(&out));
}

#[test]
fn check_names_the_benchmark_after_its_directory_and_warns_about_empty_globs() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = tmp.path().join("nameless");
    std::fs::create_dir_all(bench.join("src")).unwrap();
    std::fs::write(bench.join("src/train.py"), "LR = 0.1\n").unwrap();
    std::fs::write(
        bench.join("picidae.toml"),
        r#"[boundary]
editable = ["src/*.py", "model/*.py"]

[run]
command = "python3 src/train.py"
time_budget = 60

[metrics.loss]
goal = "minimize"
"#,
    )
    .unwrap();
    let out = bin()
        .arg("check")
        .arg(".")
        .current_dir(&bench)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("nameless: ok"), "{}", text(&out));
    assert!(
        stdout.contains("warning:  boundary.editable glob \"model/*.py\" matches no file"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("\"src/*.py\" matches"), "{}", text(&out));

    // Named by its file, in the current directory: the same.
    let out = bin()
        .arg("check")
        .arg("picidae.toml")
        .current_dir(&bench)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("nameless: ok"), "{}", text(&out));
    assert_eq!(
        stdout.matches("matches no file").count(),
        1,
        "{}",
        text(&out)
    );
}

#[test]
fn a_project_inside_the_benchmark_repository_is_not_a_change_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = tmp.path().join("bench");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(bench.join("picidae.toml"), value_contract("sh run.sh", 5.0)).unwrap();
    std::fs::write(bench.join("run.sh"), VALUE_RUN).unwrap();
    std::fs::write(bench.join("value.txt"), "10\n").unwrap();
    Repo::init(&bench, "benchmark", Identity::default()).unwrap();

    let out = bin().arg("init").current_dir(&bench).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(git_status(&bench), "", "the project shows as a change");
    let exclude = std::fs::read_to_string(bench.join(".git/info/exclude")).unwrap();
    assert!(exclude.lines().any(|l| l == "/.picidae/"), "{exclude}");
    // A second init leaves the exclude file as it is.
    let out = bin().arg("init").current_dir(&bench).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(bench.join(".git/info/exclude")).unwrap(),
        exclude
    );

    let create = |name: &str| {
        bin()
            .args(["program", "create", name, "--benchmark", "."])
            .args(["--agent", "command", "--agent-command", "true"])
            .current_dir(&bench)
            .output()
            .unwrap()
    };
    let out = create("first");
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: no program.md"), "{}", text(&out));

    // A project made before init excluded it: its files are still not a change of the benchmark.
    std::fs::write(bench.join(".git/info/exclude"), "").unwrap();
    assert!(git_status(&bench).contains(".picidae/"));
    let out = create("second");
    assert!(out.status.success(), "{}", text(&out));

    // A real change still is.
    std::fs::write(bench.join("value.txt"), "9\n").unwrap();
    let out = create("third");
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("uncommitted changes (value.txt)"),
        "{}",
        text(&out)
    );
}
