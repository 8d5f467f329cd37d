//! One turn of a program outside `picidae run`: a single attempt under the program's own
//! agent, for the commands that take turns of their own (`arena run`, `contribute`).

use anyhow::{Context, Result};
use picidae_agent::AgentSpec;
use picidae_sched::{LoopOptions, Project, Runner, Shutdown};

/// One attempt of `program`; whether it used any run (a program that uses none has spent its
/// budget or has nothing left to try).
pub(crate) fn one_attempt(
    project: &mut Project,
    program: &str,
    shutdown: &Shutdown,
) -> Result<bool> {
    let stored = project.store.program(program)?;
    let before = project.store.program_spend(stored.id)?.runs;
    let spec: AgentSpec = serde_json::from_value(stored.agent.clone())
        .with_context(|| format!("program {program}: unreadable agent configuration"))?;
    let mut agent = spec.build();
    agent.preflight()?;
    let opts = LoopOptions {
        max_attempts: Some(1),
        shutdown: shutdown.clone(),
        ..Default::default()
    };
    Runner::new(project, program)?.run(agent.as_mut(), &opts, &mut |_| {})?;
    let after = project.store.program_spend(stored.id)?.runs;
    Ok(after > before)
}
