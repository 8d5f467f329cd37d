//! A contributor's claims: which kept attempts of the local program went to the hub
//! (`DIR/.picidae/contributed-<local program>`: `<seq> <contribution id or "refused">` per
//! line), and sending the next one.

use anyhow::Result;
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Repo;
use picidae_sched::Project;
use picidae_store::AttemptFilter;

use crate::submit::{call, refused, Hub};

/// Whether a claim waits for the hub's verdict after [`submit_kept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flight {
    /// One is queued or being verified (maybe just sent).
    Waiting,
    /// None is, and no kept attempt is left unsent.
    Idle,
}

fn sent_file(project: &Project, local: &str) -> std::path::PathBuf {
    project.dir().join(format!("contributed-{local}"))
}

/// What `contributed` records of one kept attempt sent to the hub.
struct Sent {
    seq: i64,
    /// The hub's contribution, or `None` when the hub refused it before any compute.
    id: Option<i64>,
}

/// The attempts sent already, oldest first.
fn sent(project: &Project, local: &str) -> Vec<Sent> {
    std::fs::read_to_string(sent_file(project, local))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let seq = w.next()?.parse().ok()?;
            Some(Sent {
                seq,
                id: w.next().and_then(|id| id.parse().ok()),
            })
        })
        .collect()
}

/// Send the newest kept attempt of `program` not sent yet, as the change from the last
/// state the hub verified from us (the fetched frontier, `export`, at first) to its commit,
/// made against the hub's frontier now. One claim is in flight at a time: while the last one
/// waits for its verdict nothing is sent, and keeps made meanwhile are folded into the next
/// claim (each keep holds the ones before it). So a verified claim's change is on the hub's
/// frontier when the next one, which starts from it, is applied there.
pub(super) fn submit_kept(
    hub: &Hub<'_>,
    project: &Project,
    (program, local): (&str, &str),
    export: &str,
) -> Result<Flight> {
    use std::io::Write;
    let done = sent(project, local);
    let (status, mine) = call(hub, &format!("/api/programs/{program}/contributions"), None)?;
    if status != 200 {
        return Err(refused(status, &mine));
    }
    let state_of = |id: i64| {
        mine.as_array()
            .into_iter()
            .flatten()
            .find(|c| c["id"].as_i64() == Some(id))
            .and_then(|c| c["state"].as_str().map(str::to_string))
    };
    if let Some(waiting) = done
        .iter()
        .filter_map(|s| s.id)
        .find(|id| matches!(state_of(*id).as_deref(), Some("queued" | "verifying")))
    {
        println!(
            "contribution #{waiting} waits for the hub's verdict; the next claim waits for it"
        );
        return Ok(Flight::Waiting);
    }
    let p = project.store.program(local)?;
    let attempts = project.store.attempts(&AttemptFilter {
        program_id: Some(p.id),
        status: Some(AttemptStatus::Kept),
        ..Default::default()
    })?;
    let commit_of = |seq: i64| {
        attempts
            .iter()
            .find(|a| a.seq == seq)
            .and_then(|a| a.commit.clone())
    };
    // Where the hub stands for us: the last claim it verified, else the fetched frontier.
    let from = done
        .iter()
        .rev()
        .find(|s| s.id.and_then(state_of).as_deref() == Some("verified"))
        .and_then(|s| commit_of(s.seq))
        .unwrap_or_else(|| export.to_string());
    let newest_sent = done.iter().map(|s| s.seq).max().unwrap_or(0);
    let Some(a) = attempts
        .iter()
        .filter(|a| a.kind != AttemptKind::Baseline && a.seq > newest_sent)
        .max_by_key(|a| a.seq)
    else {
        return Ok(Flight::Idle);
    };
    let (Some(commit), Some(value)) = (a.commit.as_deref(), a.primary_value) else {
        return Ok(Flight::Idle);
    };
    let (status, public) = call(hub, &format!("/api/programs/{program}/public"), None)?;
    if status != 200 {
        return Err(refused(status, &public));
    }
    let frontier = public["frontier_commit"].as_str().unwrap_or_default();
    let seeds: Vec<i64> = project
        .store
        .runs_of_attempt(a.id)?
        .iter()
        .map(|r| r.seed)
        .collect();
    let bench = Repo::open(&p.benchmark_dir)?;
    let body = serde_json::json!({
        "parent_commit": frontier,
        "patch": bench.patch_between(&from, commit)?,
        "hypothesis": a.hypothesis,
        "claimed_value": value,
        "seeds": seeds,
    });
    let (status, v) = call(
        hub,
        &format!("/api/programs/{program}/contributions"),
        Some(&body),
    )?;
    let (line, flight) = match status {
        202 => {
            println!(
                "#{:<4} kept at {value} → contribution #{} queued on the hub (claimed gain {})",
                a.seq, v["id"], v["claimed_gain"]
            );
            (format!("{} {}", a.seq, v["id"]), Flight::Waiting)
        }
        401 | 403 | 404 => return Err(refused(status, &v)),
        _ => {
            println!(
                "#{:<4} kept at {value}, not sent: {}",
                a.seq,
                refused(status, &v)
            );
            (format!("{} refused", a.seq), Flight::Idle)
        }
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sent_file(project, local))?;
    writeln!(f, "{line}")?;
    Ok(flight)
}
