//! Property-based requests against the HTTP API: Schemathesis reads `GET /openapi.json` from a
//! real `picidae serve` on a small project and sends generated requests (valid and invalid) to
//! every operation, with a write token, failing on any 5xx answer. Skipped with a printed reason
//! when the `schemathesis` Python package is not importable, unless
//! `PICIDAE_REQUIRE_SCHEMATHESIS=1`.

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::{bin, serve_address, text, value_contract, Env, VALUE_RUN};

/// Runs the Schemathesis CLI through the interpreter, so no script needs to be on `PATH`.
const CLI: &str = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())";

fn schemathesis_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import schemathesis"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("PICIDAE_REQUIRE_SCHEMATHESIS").as_deref() != Ok("1"),
            "PICIDAE_REQUIRE_SCHEMATHESIS=1 but `python3 -c 'import schemathesis'` fails"
        );
        println!(
            "skipped: the schemathesis Python package is not installed (pip install schemathesis)"
        );
    }
    ok
}

#[test]
fn generated_requests_get_no_server_error() {
    if !schemathesis_available() {
        return;
    }
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 10.0)),
        ("run.sh", VALUE_RUN),
        ("value.txt", "100\n"),
    ]);
    let cmd = env.down_agent("down.sh");
    env.command_program("demo", &env.bench.clone(), &cmd);
    // Some history to read: a baseline and a few attempts, then the program rests.
    env.ok(&["run", "demo", "-n", "3", "--plain"]);
    env.ok(&["program", "followup", "demo", "try something"]);
    env.ok(&["program", "set", "demo", "--max-runs", "4"]);
    let created = env.ok(&["token", "create", "fuzz"]);
    let token = created.lines().nth(1).unwrap().trim().to_string();

    let mut child = bin()
        .arg("--project")
        .arg(&env.project)
        .args(["serve", "--slots", "1", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = serve_address(&mut child);

    let report = env.path("schemathesis");
    let start = Instant::now();
    let out = Command::new("python3")
        .args(["-c", CLI, "run"])
        .arg(format!("http://{addr}/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error",
            "--header",
            &format!("Authorization: Bearer {token}"),
            // The event stream never ends by itself.
            "--exclude-path",
            "/api/events",
            "--max-examples",
            "50",
            "--seed",
            "7",
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
            "--report-dir",
        ])
        .arg(&report)
        .current_dir(env.tmp.path())
        .output()
        .unwrap();
    let took = start.elapsed();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let served = child.wait_with_output().unwrap();
    let output = text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("passed") || l.contains("failed") || l.contains("operations"))
        .collect();
    println!(
        "schemathesis: {:.1} s, {}",
        took.as_secs_f64(),
        summary.join(" | ")
    );
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{output}"
    );
    assert!(served.status.success(), "{}", text(&served));
}
