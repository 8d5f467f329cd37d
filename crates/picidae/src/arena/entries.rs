//! An arena's entries file (`arena create --entries FILE`): entries that differ in more than
//! their program.md. Each `[[entry]]` names a label and a program.md (relative to the file),
//! and may give its own agent (the keys of `program create`'s agent options) and policy
//! overrides; what it leaves out is the arena's. Every problem names the file, the line and
//! the field.
//!
//! ```toml
//! [[entry]]
//! label = "claude"
//! program_md = "careful.md"
//! agent = { agent = "claude", agent_timeout = 1200 }
//!
//! [[entry]]
//! label = "strict"
//! program_md = "careful.md"
//! policy = { seeds = 5, max_seeds = 12 }
//! ```

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use clap::ValueEnum;
use picidae_agent::sweep::Sampler;
use picidae_sched::arena::EntrySpec;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::cli::{AgentArgs, AgentKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesFile {
    entry: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    label: Spanned<String>,
    program_md: Spanned<String>,
    agent: Option<Spanned<EntryAgent>>,
    #[serde(default)]
    policy: EntryPolicy,
}

/// An entry's agent: the agent options of `program create`, by their long names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryAgent {
    agent: String,
    agent_command: Option<String>,
    agent_timeout: Option<f64>,
    #[serde(default)]
    agent_args: Vec<String>,
    sampler: Option<String>,
    sweep_seed: Option<u64>,
}

/// The policy keys an entry may set (those a program's own settings override).
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct EntryPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    seeds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline_seeds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_seeds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_improvement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alpha: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequential: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paired: Option<bool>,
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The entries of the file at `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<EntrySpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let at = |offset: usize, field: &str, msg: String| {
        anyhow!(
            "{}:{}: field `{field}`: {msg}",
            path.display(),
            line_of(&text, offset)
        )
    };
    let file: EntriesFile = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(&text, s.start));
        anyhow!("{}:{line}: {}", path.display(), e.message().trim_end())
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for e in file.entry {
        let md_path = dir.join(e.program_md.get_ref());
        let program_md = std::fs::read_to_string(&md_path).map_err(|err| {
            at(
                e.program_md.span().start,
                "program_md",
                format!("cannot read {}: {err}", md_path.display()),
            )
        })?;
        let agent = match e.agent {
            None => None,
            Some(a) => {
                let start = a.span().start;
                let spec = agent_spec(a.into_inner()).map_err(|m| at(start, "agent", m))?;
                Some(spec)
            }
        };
        let policy = match serde_json::to_value(&e.policy)? {
            serde_json::Value::Object(map) => map,
            _ => Default::default(),
        };
        out.push(EntrySpec {
            label: e.label.into_inner(),
            program_md,
            agent,
            policy,
        });
    }
    if out.is_empty() {
        return Err(anyhow!("{}: no [[entry]]", path.display()));
    }
    Ok(out)
}

/// The agent an entry names, built as `program create` builds one from its options.
fn agent_spec(a: EntryAgent) -> Result<picidae_agent::AgentSpec, String> {
    let kind = AgentKind::from_str(&a.agent, true).map_err(|_| {
        format!(
            "unknown agent {:?} (expected sweep, command, claude, codex or aider)",
            a.agent
        )
    })?;
    let sampler = match a.sampler.as_deref() {
        None => Sampler::default(),
        Some(s) => s.parse::<Sampler>()?,
    };
    let args = AgentArgs {
        agent: kind,
        agent_command: a.agent_command,
        agent_timeout: a.agent_timeout,
        agent_args: a.agent_args,
        sampler,
        sweep_seed: a.sweep_seed.unwrap_or(0),
    };
    crate::agents::agent_spec(&args).map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn entries_carry_their_own_agent_and_policy() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.md", "Be bold.\n");
        let f = write(
            d.path(),
            "arena.toml",
            "[[entry]]\nlabel = \"plain\"\nprogram_md = \"a.md\"\n\n[[entry]]\nlabel = \"tpe\"\n\
             program_md = \"a.md\"\nagent = { agent = \"sweep\", sampler = \"tpe\", sweep_seed = 4 }\n\
             policy = { seeds = 5, sequential = false }\n",
        );
        let entries = read(&f).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].program_md, "Be bold.\n");
        assert!(entries[0].agent.is_none() && entries[0].policy.is_empty());
        assert_eq!(
            entries[1].agent,
            Some(picidae_agent::AgentSpec::Sweep {
                sampler: Sampler::Tpe,
                seed: 4
            })
        );
        assert_eq!(entries[1].policy["seeds"], 5);
        assert_eq!(entries[1].policy["sequential"], false);
        assert_eq!(entries[1].policy.len(), 2);
    }

    #[test]
    fn problems_name_the_file_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.md", "x\n");
        let err = |text: &str| {
            let f = write(d.path(), "arena.toml", text);
            format!("{:#}", read(&f).unwrap_err())
        };
        let e = err("[[entry]]\nlabel = \"a\"\nprogram_md = \"a.md\"\npolicy = { seedz = 2 }\n");
        assert!(e.contains("arena.toml:4") && e.contains("seedz"), "{e}");
        let e = err("[[entry]]\nlabel = \"a\"\nprogram_md = \"missing.md\"\n");
        assert!(
            e.contains("arena.toml:3") && e.contains("`program_md`") && e.contains("missing.md"),
            "{e}"
        );
        let e = err(
            "[[entry]]\nlabel = \"a\"\nprogram_md = \"a.md\"\n\n[entry.agent]\nagent = \"gpt\"\n",
        );
        assert!(
            e.contains("arena.toml:") && e.contains("`agent`") && e.contains("\"gpt\""),
            "{e}"
        );
        let e = err(
            "[[entry]]\nlabel = \"a\"\nprogram_md = \"a.md\"\nagent = { agent = \"command\" }\n",
        );
        assert!(
            e.contains("arena.toml:4") && e.contains("--agent-command"),
            "{e}"
        );
    }
}
