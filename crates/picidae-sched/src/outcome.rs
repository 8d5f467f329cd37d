//! A run's outcome classified: from the process's exit, its output files and the contract to
//! a [`RunResult`] (succeeded, failed, crashed, timed out, invalid, cancelled), with the
//! metrics parsed, the guards checked, sandbox denials and out-of-memory failures named.

use std::path::Path;

use picidae_core::metrics::{check_guards, parse_json_lines, parse_stdout};
use picidae_core::{RunBreach, RunStatus};
use picidae_exec::RunOutcome;
use picidae_store::RunResult;

use crate::run::RunCtx;

impl RunCtx {
    /// Turn a process outcome and its outputs into a run result.
    pub(crate) fn classify(&self, o: &RunOutcome, run_dir: &Path) -> RunResult {
        let mut r = RunResult {
            exit_code: o.exit_code.map(i64::from),
            signal: o.signal.map(i64::from),
            wall_secs: Some(o.wall_secs),
            peak_rss_kb: o.peak_rss_kb.map(|k| k as i64),
            peak_gpu_mb: o.peak_gpu_mb.map(|m| m as i64),
            restarts: i64::from(o.restarts),
            over_budget: o.over_budget,
            ..Default::default()
        };
        let stdout = if o.stdout_truncated {
            o.stdout_tail.clone()
        } else {
            read_output(run_dir, "stdout.log").unwrap_or_else(|| o.stdout_tail.clone())
        };
        let specs = self.contract.metrics.values();
        let (values, ambiguous) = parse_stdout(&stdout, specs.clone());
        r.metrics = values;
        // A report the run's own output makes ambiguous is not believed: the run is invalid.
        let mut ambiguous: Vec<String> = ambiguous
            .iter()
            .map(|e| format!("ambiguous metric report: stdout {e}"))
            .collect();
        if let Some(text) = read_output(run_dir, "metrics.jsonl") {
            let (values, errors) = parse_json_lines(&text, specs.clone());
            r.metrics.extend(values);
            ambiguous.extend(
                errors
                    .iter()
                    .map(|e| format!("ambiguous metric report: metrics.jsonl {e}")),
            );
        }
        r.primary_value = r
            .metrics
            .get(&self.contract.primary_metric)
            .copied()
            .filter(|v| v.is_finite());
        // A run that reports its own budgeted time (training, start-up excluded) is judged on
        // it; one that does not, on its wall time.
        if let Some(m) = &self.contract.run.budget_metric {
            if let Some(v) = r.metrics.get(m).filter(|v| v.is_finite()) {
                r.over_budget = *v > self.contract.run.time_budget.as_secs_f64();
            }
        }
        r.status = Some(if o.cancelled {
            RunStatus::Cancelled
        } else if o.timed_out {
            r.error = Some(format!(
                "killed after the hard timeout of {:.1}s",
                self.contract.run.timeout.as_secs_f64()
            ));
            RunStatus::TimedOut
        } else if o.signal.is_some() {
            RunStatus::Crashed
        } else if let Some(sig) = o.exit_code.and_then(shell_crash_signal) {
            // A shell between the harness and the program reports a child killed by signal N
            // as exit status 128 + N (so does the sandbox).
            r.error = Some(format!(
                "crashed: killed by signal {sig} (exit status {})",
                128 + sig
            ));
            RunStatus::Crashed
        } else if o.exit_code != Some(0) {
            RunStatus::Failed
        } else {
            let v = check_guards(&r.metrics, specs, &self.contract.primary_metric);
            if v.is_empty() && ambiguous.is_empty() {
                RunStatus::Succeeded
            } else {
                r.violations.extend(ambiguous.iter().cloned());
                r.violations.extend(v.iter().map(|x| x.to_string()));
                if r.error.is_none() {
                    r.error = r.violations.first().cloned();
                }
                RunStatus::Invalid
            }
        });
        // A run the sandbox denied something is invalid even if it exited cleanly: it tried to
        // reach what the contract keeps from it.
        if self.contract.run.sandbox && r.status != Some(RunStatus::Cancelled) {
            let stderr = read_output(run_dir, "stderr.log").unwrap_or_default();
            if let Some(line) = sandbox_denial(&stderr).or_else(|| sandbox_denial(&stdout)) {
                r.error = Some(format!("{SANDBOX_VIOLATION}: {line}"));
                r.violations.push(format!("{SANDBOX_VIOLATION}: {line}"));
                r.status = Some(RunStatus::Invalid);
                r.breach = Some(RunBreach::SandboxDenied);
            }
        }
        // What a run leaves for the hidden evaluator must be plain files: a link would resolve
        // outside the run's view when the evaluator reads it.
        if self.contract.hidden.is_some() && r.status == Some(RunStatus::Succeeded) {
            if let Err(refused) = crate::artifacts::scan(&run_dir.join("artifacts")) {
                let why = format!("invalid artifacts: {refused}");
                r.violations.push(why.clone());
                r.error = Some(why);
                r.status = Some(RunStatus::Invalid);
            }
        }
        if let (Some(mb), Some(RunStatus::Failed | RunStatus::Crashed)) =
            (self.contract.run.resources.memory_mb, r.status)
        {
            let stderr = read_output(run_dir, "stderr.log").unwrap_or_default();
            if out_of_memory(&stderr) || out_of_memory(&stdout) {
                r.error = Some(format!(
                    "out of memory: an allocation failed under the memory limit of {mb} MB \
                     (run.resources.memory_mb)"
                ));
            }
        }
        if r.status != Some(RunStatus::Succeeded) {
            r.primary_value = None;
        }
        r
    }
}

/// The most of one output file the harness reads back.
const OUTPUT_READ_CAP: u64 = 256 * 1024 * 1024;

/// A file the run left in its run directory, read without following a link (a run could
/// replace its log by a link to a file it cannot see); `None` when absent or refused.
fn read_output(run_dir: &Path, name: &str) -> Option<String> {
    picidae_exec::safe_fs::read_nofollow(run_dir, name, OUTPUT_READ_CAP)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The crash signal (SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL, SIGSEGV, SIGSYS)
/// that exit status `code` reports when a shell's child died of it, if any.
fn shell_crash_signal(code: i32) -> Option<i32> {
    let sig = code.checked_sub(128)?;
    [
        libc_sig::ILL,
        libc_sig::TRAP,
        libc_sig::ABRT,
        libc_sig::BUS,
        libc_sig::FPE,
        libc_sig::KILL,
        libc_sig::SEGV,
        libc_sig::SYS,
    ]
    .contains(&sig)
    .then_some(sig)
}

/// Linux signal numbers (x86-64 and aarch64 agree on these).
mod libc_sig {
    pub const ILL: i32 = 4;
    pub const TRAP: i32 = 5;
    pub const ABRT: i32 = 6;
    pub const BUS: i32 = 7;
    pub const FPE: i32 = 8;
    pub const KILL: i32 = 9;
    pub const SEGV: i32 = 11;
    pub const SYS: i32 = 31;
}

/// Whether a run's output says an allocation failed, as a run under `RLIMIT_AS` reports it
/// (Python, C and C++ runtimes, the shell, CUDA-less numpy/torch allocators).
fn out_of_memory(output: &str) -> bool {
    const MARKERS: &[&str] = &[
        "MemoryError",
        "Cannot allocate memory",
        "cannot allocate memory",
        "out of memory",
        "Out of memory",
        "std::bad_alloc",
        "memory exhausted",
        "xmalloc: cannot allocate",
        "failed to allocate",
    ];
    MARKERS.iter().any(|m| output.contains(m))
}

/// How a run's error starts when it changed a non-editable file of its checkout.
pub(crate) const REWROTE_PROTECTED: &str = "rewrote non-editable files";

/// How a run's error starts when the sandbox stopped it.
pub(crate) const SANDBOX_VIOLATION: &str = "sandbox violation";

/// The line of a failed sandboxed run's output that shows the sandbox denying it something:
/// a write outside its writable directories, a network connection, or a path that does not
/// exist inside the sandbox (the benchmark's repository, hidden files, the store).
pub(crate) fn sandbox_denial(output: &str) -> Option<String> {
    const SIGNS: [&str; 5] = [
        "Read-only file system",
        "Network is unreachable",
        "Temporary failure in name resolution",
        "Operation not permitted",
        "Permission denied",
    ];
    output
        .lines()
        .find(|l| {
            SIGNS.iter().any(|s| l.contains(s))
                || (l.contains("No such file or directory") && l.contains("/.picidae/"))
                || (l.contains("No such file or directory") && l.contains("hidden"))
        })
        .map(|l| l.trim().chars().take(300).collect())
}
