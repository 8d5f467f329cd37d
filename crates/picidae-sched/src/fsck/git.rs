//! The program's refs and commits against the store (checks 1 and 2 of [`super`]), and their
//! repair: refs are restored from the store; nothing else is written.

use std::collections::{HashMap, HashSet};

use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::{Repo, ZERO_OID};

use super::{full_hash, short, AttemptRow, Check, Checker, Repair, Subject};
use crate::{attempt_ref, program_ref, SchedError};

impl Checker<'_> {
    /// Refs and commit objects; returns how many refs the program has.
    pub(super) fn git(&mut self, repo: &Repo, repair: bool) -> Result<usize, SchedError> {
        let snap = self.snap;
        let name = snap.program.name.as_str();
        let refs: HashMap<String, String> = repo
            .list_refs(&program_ref(name, ""))?
            .into_iter()
            .collect();
        let mut git = Objects {
            repo,
            known: refs.values().map(String::as_str).collect(),
            asked: HashMap::new(),
        };
        // What the store implies: (ref, attempt seq, commit).
        let mut expected: Vec<(String, Option<i64>, String)> = Vec::new();
        for a in &snap.attempts {
            let Some(commit) = &a.commit else { continue };
            if a.kind == Some(AttemptKind::Imported) {
                continue;
            }
            if !full_hash(commit) {
                self.problem(
                    Check::WrongCommit,
                    Subject::Attempt { seq: a.seq },
                    "the stored commit is not a full commit hash",
                    "a full hash",
                    commit.clone(),
                    true,
                );
                continue;
            }
            if a.kind == Some(AttemptKind::Explore) && a.own_commit {
                expected.push((attempt_ref(name, a.seq), Some(a.seq), commit.clone()));
            }
        }
        if let Some(f) = &snap.program.frontier_commit {
            expected.push((program_ref(name, "frontier"), None, f.clone()));
        }
        expected.push((
            program_ref(name, "base"),
            None,
            snap.program.base_commit.clone(),
        ));
        // Subjects whose store records are in doubt: their refs stay as they are.
        let doubtful: HashSet<i64> = self
            .problems
            .iter()
            .filter(|p| p.blocks_start)
            .filter_map(|p| match &p.subject {
                Subject::Attempt { seq } | Subject::Run { seq, .. } => Some(*seq),
                Subject::Finding { seq, .. } | Subject::History { seq, .. } => *seq,
                _ => None,
            })
            .collect();
        let frontier_doubtful = self
            .problems
            .iter()
            .any(|p| matches!(p.check, Check::Frontier | Check::FrontierHistory));
        let frontier_ref = program_ref(name, "frontier");
        let expected_names: HashSet<String> = expected.iter().map(|e| e.0.clone()).collect();
        for (reference, seq, commit) in expected {
            let found = refs.get(&reference).cloned();
            if found.as_deref() == Some(commit.as_str()) {
                continue;
            }
            let subject = Subject::Ref {
                name: reference.clone(),
                seq,
            };
            let now = match &found {
                Some(sha) => format!("ref at {}", short(sha)),
                None => "ref missing".into(),
            };
            if !git.exists(&commit)? {
                // The loop cannot work without its frontier or base commit.
                let blocks = seq.is_none();
                self.problem(
                    Check::CommitMissing,
                    subject,
                    "the store's commit is not in the repository",
                    commit,
                    format!("no such commit; {now}"),
                    blocks,
                );
                continue;
            }
            if let Some(seq) = seq {
                if !carries_trailers(repo, &commit, name, seq)? {
                    self.problem(
                        Check::WrongCommit,
                        Subject::Attempt { seq },
                        &format!("the stored commit is not attempt {seq}'s (its trailers differ)"),
                        format!("a commit with Picidae-Program: {name}, Picidae-Attempt: {seq}"),
                        format!("{commit}; {now}"),
                        true,
                    );
                    continue;
                }
            }
            let in_doubt = match seq {
                Some(s) => doubtful.contains(&s),
                None => reference == frontier_ref && frontier_doubtful,
            };
            if repair && !in_doubt {
                let old = found.clone().unwrap_or_else(|| ZERO_OID.to_string());
                match repo.update_ref(&reference, &commit, Some(&old)) {
                    Ok(()) => {
                        self.repaired.push(Repair {
                            reference,
                            seq,
                            from: found,
                            to: commit,
                        });
                        continue;
                    }
                    Err(e) => tracing::warn!("restoring {reference}: {e}"),
                }
            }
            let (check, detail) = match found {
                Some(_) => (
                    Check::RefMoved,
                    "the ref points at another commit than the store",
                ),
                None => (Check::RefMissing, "the ref is missing"),
            };
            self.problem(check, subject, detail, commit, now, false);
        }
        self.unknown_refs(&refs, &expected_names, repair);
        // Commits no expected ref holds: baselines, measurements, attempts without a change.
        for a in &snap.attempts {
            if a.kind == Some(AttemptKind::Imported) {
                continue;
            }
            let Some(commit) = a.commit.as_deref().filter(|c| full_hash(c)) else {
                continue;
            };
            if !git.exists(commit)? && !self.reported_missing(commit) {
                self.problem(
                    Check::CommitMissing,
                    Subject::Attempt { seq: a.seq },
                    "the attempt's commit is not in the repository",
                    commit,
                    "no such commit",
                    false,
                );
            }
        }
        Ok(refs.len())
    }

    fn reported_missing(&self, commit: &str) -> bool {
        self.problems
            .iter()
            .any(|p| p.check == Check::CommitMissing && p.expected == commit)
    }

    /// Refs under `attempts/` that no attempt accounts for. `locked`: no loop runs the program
    /// now (repairs hold its lock), so a number beyond the store's last is not a loop's new
    /// attempt.
    fn unknown_refs(
        &mut self,
        refs: &HashMap<String, String>,
        expected: &HashSet<String>,
        locked: bool,
    ) {
        let snap = self.snap;
        let prefix = program_ref(&snap.program.name, "attempts/");
        let by_seq: HashMap<i64, &AttemptRow> = snap.attempts.iter().map(|a| (a.seq, a)).collect();
        let max_seq = snap.attempts.last().map(|a| a.seq).unwrap_or(0);
        let mut names: Vec<&String> = refs.keys().collect();
        names.sort();
        for reference in names {
            let Some(leaf) = reference.strip_prefix(&prefix) else {
                continue;
            };
            if expected.contains(reference) {
                continue;
            }
            let seq = leaf
                .parse::<i64>()
                .ok()
                .filter(|s| format!("{s:06}") == leaf);
            let why = match seq.map(|s| (s, by_seq.get(&s))) {
                // Newer than the snapshot: a loop running now made it.
                Some((s, None)) if s > max_seq && !locked => continue,
                Some((_, None)) => "no attempt of the store has this number".to_string(),
                // A crash between committing the change and recording it leaves this.
                Some((_, Some(a)))
                    if a.commit.is_none()
                        && a.kind == Some(AttemptKind::Explore)
                        && matches!(
                            a.status,
                            Some(
                                AttemptStatus::Failed
                                    | AttemptStatus::Proposed
                                    | AttemptStatus::Queued
                                    | AttemptStatus::Running
                            )
                        ) =>
                {
                    continue
                }
                Some((_, Some(a))) => match a.kind {
                    Some(AttemptKind::Explore) if a.commit.is_some() => {
                        format!(
                            "attempt {} changed no code, so it has no commit of its own",
                            a.seq
                        )
                    }
                    Some(AttemptKind::Explore) => format!("attempt {} has no commit", a.seq),
                    Some(kind) => {
                        format!("attempt {} is a {kind} attempt, which has no ref", a.seq)
                    }
                    None => format!("attempt {} is of an unknown kind", a.seq),
                },
                None => "not an attempt number".to_string(),
            };
            self.problem(
                Check::RefUnknown,
                Subject::Ref {
                    name: reference.clone(),
                    seq,
                },
                &format!("a ref the store does not account for ({why}); left in place"),
                "no such ref",
                refs[reference].clone(),
                false,
            );
        }
    }
}

/// Whether commit `sha` was made for attempt `seq` of `program` (its message's trailers).
fn carries_trailers(repo: &Repo, sha: &str, program: &str, seq: i64) -> Result<bool, SchedError> {
    let message = repo.commit_message(sha)?;
    let has = |line: String| message.lines().any(|l| l.trim() == line);
    Ok(has(format!("Picidae-Program: {program}")) && has(format!("Picidae-Attempt: {seq}")))
}

/// Which commits exist: those refs point at are known; others are asked of git once each.
struct Objects<'r> {
    repo: &'r Repo,
    known: HashSet<&'r str>,
    asked: HashMap<String, bool>,
}

impl Objects<'_> {
    fn exists(&mut self, sha: &str) -> Result<bool, SchedError> {
        if self.known.contains(sha) {
            return Ok(true);
        }
        if let Some(&e) = self.asked.get(sha) {
            return Ok(e);
        }
        let e = self.repo.resolve(sha)?.as_deref() == Some(sha);
        self.asked.insert(sha.to_string(), e);
        Ok(e)
    }
}
