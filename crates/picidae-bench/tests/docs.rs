//! Every `picidae-bench` command the docs give (docs/benchmarks.md, the README) parses: the
//! benchmarks take minutes and peers (Optuna, MLflow), so the docs test checks them against
//! the binary's parser instead of running them.

#[path = "../../picidae/tests/common/docs.rs"]
mod docs;

use std::path::Path;
use std::process::Command;

#[test]
fn every_documented_bench_command_parses() {
    let bin = Path::new(env!("CARGO_BIN_EXE_picidae-bench"));
    let (checked, bad) = docs::check_documented_commands(bin, "picidae-bench");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(checked >= 7, "only {checked} bench commands found");
    let refused = Command::new(env!("CARGO_BIN_EXE_picidae-bench"))
        .args(["integrity", "--no-such-flag"])
        .env("PICIDAE_CHECK_ARGS", "1")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "the check can fail");
}
