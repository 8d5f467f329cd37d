//! `picidae agent …`: what a program's agent is given, and the agent options of
//! `program create` (the coding-agent adapters: claude, codex, aider).

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use picidae_agent::adapters::AdapterKind;
use picidae_agent::command::find_on_path;
use picidae_agent::AgentSpec;
use picidae_sched::Project;

#[derive(Subcommand)]
pub(crate) enum AgentCmd {
    /// Print the prompt the program's agent would get on its next turn, built from the store
    /// the way the loop builds it (nothing runs, nothing is written).
    Prompt { program: String },
}

pub(crate) fn run(project: &Project, cmd: AgentCmd) -> Result<()> {
    match cmd {
        AgentCmd::Prompt { program } => {
            let stored = project.store.program(&program)?;
            let spec: AgentSpec = serde_json::from_value(stored.agent.clone())
                .with_context(|| format!("program {program}: unreadable agent configuration"))?;
            let agent = spec.build();
            let turn = picidae_sched::next_turn(project, &program, agent.uses_followups())?;
            match agent.prompt(&turn.context()) {
                Some(prompt) => print!("{prompt}"),
                None => bail!(
                    "program {program} uses the {} agent, which takes no prompt",
                    spec.label()
                ),
            }
        }
    }
    Ok(())
}

/// The stored configuration of a coding-agent adapter.
pub(crate) fn adapter_spec(
    adapter: AdapterKind,
    timeout_secs: Option<f64>,
    args: &[String],
) -> AgentSpec {
    AgentSpec::Adapter {
        adapter,
        timeout_secs,
        args: args.to_vec(),
    }
}

/// A warning when an adapter's CLI is not on PATH (the program is still created: the CLI can be
/// installed before the first run, which refuses to start without it).
/// The agent the command line names (`--agent` and its options).
pub(crate) fn agent_spec(args: &crate::cli::AgentArgs) -> Result<AgentSpec> {
    use crate::cli::AgentKind;
    if args
        .agent_timeout
        .is_some_and(|t| !(t.is_finite() && t > 0.0))
    {
        bail!("--agent-timeout must be a positive number of seconds");
    }
    Ok(match args.agent {
        AgentKind::Sweep => AgentSpec::Sweep {
            sampler: args.sampler,
            seed: args.sweep_seed,
        },
        AgentKind::Command => AgentSpec::Command {
            command: args
                .agent_command
                .clone()
                .context("--agent command needs --agent-command '<command line>'")?,
            timeout_secs: args.agent_timeout.unwrap_or(600.0),
        },
        AgentKind::Claude => {
            adapter_spec(AdapterKind::Claude, args.agent_timeout, &args.agent_args)
        }
        AgentKind::Codex => adapter_spec(AdapterKind::Codex, args.agent_timeout, &args.agent_args),
        AgentKind::Aider => adapter_spec(AdapterKind::Aider, args.agent_timeout, &args.agent_args),
    })
}

pub(crate) fn warn_if_missing(spec: &AgentSpec) {
    if let AgentSpec::Adapter { adapter, .. } = spec {
        let a = adapter.adapter();
        if find_on_path(a.binary).is_none() {
            eprintln!(
                "warning: `{}` is not on PATH. The {} agent runs your own `{}` CLI with your own \
                 API key or login; install it and sign in before `picidae run`.",
                a.binary, a.product, a.binary
            );
        }
    }
}
