//! The contract a program runs under, and what it leaves an agent able to read.
//!
//! * **From the base commit.** A program's contract is `picidae.toml` as committed in its
//!   base commit ([`program_contract`]), never the file in the benchmark's working tree: a run
//!   or an agent that writes that file (one write is enough) must not widen the boundary, make
//!   the evaluator editable or switch the sandbox off for every later start. A working-tree
//!   file that differs is reported, not used; a changed contract needs a new program.
//! * **Sandbox by default.** With a `[hidden]` evaluator, runs (`run.sandbox`) and command
//!   agents (`boundary.sandbox_agents`) are sandboxed unless the contract says otherwise,
//!   wherever bubblewrap works ([`apply_sandbox_defaults`]). Where it does not, or where the
//!   contract turns a sandbox off, [`exposure`] says plainly what agents and runs can read.

use std::path::Path;

use picidae_core::{Contract, CONTRACT_FILE};
use picidae_exec::Sandbox;
use picidae_git::Repo;
use picidae_store::Program;

use crate::SchedError;

/// The program's contract, parsed from its base commit, with the harness's sandbox defaults
/// applied. The second value is a notice when the working tree's `picidae.toml` differs.
pub fn program_contract(
    repo: &Repo,
    program: &Program,
) -> Result<(Contract, Option<String>), SchedError> {
    let rel = repo.prefix().join(CONTRACT_FILE);
    let rel_str = rel.to_string_lossy().replace('\\', "/");
    let short = &program.base_commit[..program.base_commit.len().min(12)];
    let committed = repo
        .file_at(&program.base_commit, &rel_str)?
        .ok_or_else(|| SchedError::Program {
            program: program.name.clone(),
            message: format!(
                "{rel_str} is not in the program's base commit {short}; the program cannot run"
            ),
        })?;
    let text = String::from_utf8(committed).map_err(|_| SchedError::Program {
        program: program.name.clone(),
        message: format!("{rel_str} at {short} is not UTF-8"),
    })?;
    let on_disk = repo.bench_dir().join(CONTRACT_FILE);
    let shown = format!("{} (as committed in {short})", on_disk.display());
    let mut contract = Contract::parse(&text, Path::new(&shown))?;
    apply_sandbox_defaults(&mut contract);
    if without_hidden(program) {
        // A contributor's copy of a hub's frontier: the hidden evaluator's files stayed on
        // the hub, which evaluates every claim itself.
        contract.hidden = None;
        contract.gold.clear();
    }
    let notice = match std::fs::read_to_string(&on_disk) {
        Ok(t) if t == text => None,
        Ok(_) => Some(format!(
            "{} differs from the program's base commit {short}; program {} runs under the committed contract (create a new program to use the changed one)",
            on_disk.display(),
            program.name
        )),
        Err(_) => Some(format!(
            "{} is missing from the working tree; program {} runs under the contract of its base commit {short}",
            on_disk.display(),
            program.name
        )),
    };
    Ok((contract, notice))
}

/// The program's setting (`hidden_evaluator = false`, made by `picidae contribute`) to run
/// without the contract's hidden evaluator, whose files a hub keeps to itself.
pub const NO_HIDDEN_KEY: &str = "hidden_evaluator";

fn without_hidden(program: &Program) -> bool {
    program.policy.get(NO_HIDDEN_KEY) == Some(&serde_json::Value::Bool(false))
}

/// Turn the sandboxes on where the contract has a `[hidden]` evaluator, leaves them unset,
/// and bubblewrap works here.
pub fn apply_sandbox_defaults(contract: &mut Contract) {
    if contract.hidden.is_none() || !Sandbox::available() {
        return;
    }
    if contract.run.sandbox_unset {
        contract.run.sandbox = true;
    }
    if contract.boundary.sandbox_agents_unset {
        contract.boundary.sandbox_agents = true;
    }
}

/// What agents and runs can read of the hidden evaluator's files under this contract, and
/// how to close it; `None` when both are sandboxed or there is nothing hidden.
pub fn exposure(contract: &Contract) -> Option<String> {
    let hidden = contract.hidden.as_ref()?;
    let mut open = Vec::new();
    if !contract.boundary.sandbox_agents {
        open.push("command agents");
    }
    if !contract.run.sandbox {
        open.push("runs");
    }
    if open.is_empty() {
        return None;
    }
    let why = if Sandbox::available() {
        "the contract turns the sandbox off".to_string()
    } else {
        "bubblewrap (bwrap) does not work on this machine".to_string()
    };
    let files = if hidden.files.is_empty() {
        String::new()
    } else {
        format!(
            " the hidden files ({}) through the benchmark's git objects (git show BASE:PATH),",
            hidden.files.join(", ")
        )
    };
    Some(format!(
        "{} run unsandboxed ({why}): they execute as this user and can read{files} the setup's hidden directory under .picidae/cache/, the hidden evaluator's checkouts under .picidae/hidden/, and the store. To close it, install bubblewrap (Debian: bubblewrap) and leave run.sandbox and boundary.sandbox_agents unset (or set them to true); runs on another executor are isolated by that executor only.",
        open.join(" and ")
    ))
}
