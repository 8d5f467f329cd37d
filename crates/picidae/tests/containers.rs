//! The same contract in a container, through the real binary: a program created with
//! `--executor docker:IMAGE?host=…` runs every run (baseline included) in a container of a
//! private Docker daemon (the `picidae_exec::testing` fixture, with its busybox image). The run
//! sees its checkout and run directory at their own paths and the setup data read-only, and
//! nothing else: no network, not the benchmark repository, not the store, not the hidden
//! evaluation files.
//!
//! Skips (printing why) when Docker cannot be used here, unless `PICIDAE_REQUIRE_CONTAINERS=1`.

mod common;

use std::path::{Path, PathBuf};

use common::remote::program_runs;
use common::{value_contract, Env};
use picidae_core::RunStatus;
use picidae_exec::testing;
use picidae_exec::RuntimeKind;

/// What a run reports about its view of the machine; only busybox tools (the image has
/// nothing else). `BENCH` and `STORE` are host paths outside every mount.
const RUN_SH: &str = r#"echo "cwd=$(pwd)"
echo "interfaces=$(sed -n 's/^ *\([^:|]*\):.*/\1/p' /proc/net/dev | tr '\n' ',')"
if ls 'BENCH' > /dev/null 2>&1; then echo "bench=visible"; else echo "bench=absent"; fi
if [ -e 'STORE' ]; then echo "store=visible"; else echo "store=absent"; fi
if [ -e "$PICIDAE_DATA/../hidden/answer.txt" ]; then echo "hidden=visible"; else echo "hidden=absent"; fi
echo "data=$(cat "$PICIDAE_DATA/input.txt")"
if (echo changed > "$PICIDAE_DATA/input.txt") 2> /dev/null; then echo "data-write=allowed"; else echo "data-write=refused"; fi
echo "score: $(cat value.txt)"
"#;

/// The setup (run on the host) leaves data for the runs and a hidden file next to it.
const SETUP_SH: &str =
    "echo input > \"$PICIDAE_DATA/input.txt\"\necho 42 > \"$PICIDAE_HIDDEN/answer.txt\"\n";

/// Files named `name` anywhere below `dir`.
fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(find_files(&p, name));
        } else if p.file_name().is_some_and(|n| n == name) {
            found.push(p);
        }
    }
    found
}

#[test]
fn docker_runs_the_contract_in_an_isolated_container() {
    let Some(docker) = testing::container_backend(
        RuntimeKind::Docker,
        "docker_runs_the_contract_in_an_isolated_container",
    ) else {
        return;
    };
    let contract = format!(
        "{}\n[setup]\ncommand = \"sh setup.sh\"\n",
        value_contract("sh run.sh", 60.0)
    );
    let env = Env::new(&[
        ("picidae.toml", &contract),
        ("run.sh", "echo \"score: $(cat value.txt)\"\n"),
        ("setup.sh", SETUP_SH),
        ("value.txt", "10\n"),
    ]);
    // Now that the paths are known: what the run must not see.
    let store = env.project.join(".picidae/store.sqlite");
    assert!(store.is_file(), "{}", store.display());
    let run_sh = RUN_SH
        .replace("BENCH", env.bench.to_str().unwrap())
        .replace("STORE", store.to_str().unwrap());
    env.commit_file("run.sh", &run_sh, "run.sh reports its view");

    let executor = docker.executor_arg();
    assert!(
        executor.starts_with(&format!("docker:{}?host=unix://", testing::BUSYBOX_IMAGE)),
        "{executor}"
    );
    env.queue_program("p", &["5", "7"], &["--executor", &executor]);
    let out = env.ok(&["run", "p", "-n", "2", "--plain"]);
    println!("{out}");
    assert!(out.contains("2 attempts: 1 kept, 1 discarded"), "{out}");

    // The setup ran and left its files on the host: their absence below is the container's.
    let hidden = find_files(&env.project, "answer.txt");
    assert_eq!(hidden.len(), 1, "{hidden:?}");
    assert!(
        hidden[0].parent().unwrap().ends_with("hidden"),
        "{hidden:?}"
    );
    let input = find_files(&env.project, "input.txt");
    assert_eq!(input.len(), 1, "{input:?}");
    assert_eq!(std::fs::read_to_string(&input[0]).unwrap(), "input\n");

    let runs = program_runs(&env, "p");
    assert_eq!(runs.len(), 3, "{runs:?}");
    let project = env.project.to_str().unwrap();
    for r in &runs {
        assert_eq!(r.executor, "docker", "{r:?}");
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        let handle = r.executor_ref.as_deref().unwrap_or_default();
        assert!(handle.starts_with("docker:"), "{r:?}");
        let log_dir = Path::new(r.log_dir.as_deref().unwrap());
        let log = std::fs::read_to_string(log_dir.join("stdout.log")).unwrap();
        println!("run {} ({handle}):\n{log}", r.id);
        let field = |name: &str| -> String {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in the log of run {}:\n{log}", r.id))
                .to_string()
        };
        // The checkout is mounted at its own path.
        assert!(field("cwd").starts_with(project), "{log}");
        // --network none: only the loopback interface.
        assert_eq!(field("interfaces"), "lo,", "{log}");
        assert_eq!(field("bench"), "absent", "{log}");
        assert_eq!(field("store"), "absent", "{log}");
        assert_eq!(field("hidden"), "absent", "{log}");
        assert_eq!(field("data"), "input", "{log}");
        assert_eq!(field("data-write"), "refused", "{log}");
    }
    assert_eq!(std::fs::read_to_string(&input[0]).unwrap(), "input\n");
    assert_eq!(env.store().program("p").unwrap().frontier_value, Some(5.0));

    // Every container was removed.
    let label = format!("label={}", picidae_exec::container::RUN_LABEL);
    let ps = docker
        .cli_output(&["ps", "-a", "-q", "--filter", &label])
        .unwrap();
    assert!(ps.status.success(), "{ps:?}");
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "containers left behind: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
    eprintln!(
        "3 runs in containers of the daemon at {}",
        docker.host().unwrap_or("?")
    );
}
