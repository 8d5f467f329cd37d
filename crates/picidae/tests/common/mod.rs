//! Shared helpers for the CLI's end-to-end tests: a scripted benchmark in a real git repository,
//! a scripted command agent, and a way to run the real `picidae` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        let out = bin().arg("init").arg(&project).output().unwrap();
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
        Store::open(&self.project.join(".picidae/store.sqlite")).unwrap()
    }

    /// Write a command agent that takes its next action from a queue file: a number is written
    /// into value.txt; `OUT` writes a file outside the boundary; `NOTHING` changes nothing.
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
n=$(head -n 1 "$q")
sed -i 1d "$q"
cat > /dev/null   # the prompt arrives on stdin
case "$n" in
  OUT) echo hacked > other.txt; echo "HYPOTHESIS: touch a file outside the boundary" ;;
  NOTHING) echo "HYPOTHESIS: change nothing" ;;
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
