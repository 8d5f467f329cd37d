//! Import: bring an existing autoresearch session into a program's history (and so into its
//! memory), so a team's past runs stop being rediscovered. Every imported experiment becomes an
//! attempt of kind `imported` with one run carrying its value and memory; imports never move the
//! frontier and are all or nothing (one transaction, nothing written if any input is bad).
//!
//! # `picidae import autoresearch --program P --repo DIR [--branch B] [--since REV] [--results F]`
//!
//! karpathy/autoresearch keeps an experiment by leaving its commit on the session branch and
//! discards one by `git reset`ting it away; every run is appended to an untracked `results.tsv`
//! (`commit  val_bpb  memory_gb  status  description`, the commit abbreviated to 7 digits).
//! The import joins the two:
//!
//! - **Commits**: those reachable from `B` (default `HEAD`) and not from `REV`, oldest first.
//!   Without `--since`, `REV` is the program's base commit when `DIR`'s repository has it (the
//!   session's commits on top of the benchmark the program runs); otherwise nothing is excluded
//!   and the whole history of `B` is imported.
//! - **Rows**: `F` (default `DIR/results.tsv`, optional) is parsed strictly (a bad row names its
//!   file, line and column). A row joins the commit of the range whose full sha starts with the
//!   row's abbreviated id (at least 4 hex digits); an id matching two commits of the range is an
//!   error naming the file and line.
//! - A **row on a commit of the range**: status from the row (`keep` → kept, `discard` →
//!   discarded, `crash` → failed), value and memory from the row (a crash has no value),
//!   hypothesis = the commit subject, commit = its full sha. The row's status is final even
//!   when the commit is still on the branch.
//! - A **commit of the range with no row**: kept (autoresearch keeps exactly the commits left on
//!   its branch), no value, no memory, hypothesis = the subject.
//! - A **row whose commit is not in the range** (a discarded or crashed commit reset away, or
//!   the baseline at the fork point) is imported from the row alone, hypothesis = its
//!   description. If the repository still resolves the abbreviated id (reset commits live on
//!   until `git gc`), the full sha is recorded and the diff stays readable from git; if not, the
//!   abbreviation is kept and the source says so: `... (commit gone, diff lost)`.
//! - **Order**: results.tsv order (the session's chronology); a commit with no row goes just
//!   before the first row of a later commit of the range (or at the end).
//!
//! # Both
//!
//! Diffs are not copied into the store: the full commit sha is recorded wherever git still has
//! the commit, so the memory layer can read the patch from git. Importing the same session again
//! adds nothing: an attempt already imported into the program with the same commit, hypothesis,
//! status and value is skipped.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use picidae_core::results_tsv::{self, TsvError, TsvRow, TsvStatus};
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::Repo;
use picidae_sched::Project;
use picidae_store::ImportedAttempt;
use serde_json::Value;

mod pi_log;

pub use pi_log::*;

/// Abbreviated ids shorter than this never match a commit (git's own minimum).
const MIN_ABBREV: usize = 4;

/// What `picidae import autoresearch` reads.
#[derive(Debug, Clone)]
pub struct AutoresearchImport {
    pub program: String,
    /// A directory inside the session's git work tree.
    pub repo: PathBuf,
    /// The session branch (default `HEAD`).
    pub branch: Option<String>,
    /// Commits reachable from this revision are not imported (default: the program's base
    /// commit when the repository has it).
    pub since: Option<String>,
    /// The results.tsv (default `repo/results.tsv` when it exists).
    pub results: Option<PathBuf>,
}

/// What an autoresearch import did.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoresearchSummary {
    pub imported: usize,
    /// Already imported before: skipped.
    pub skipped: usize,
    /// Commits in the range.
    pub commits: usize,
    /// results.tsv rows read (0 without a results.tsv).
    pub rows: usize,
    /// Rows whose commit is not in the range.
    pub off_range: usize,
    /// Of those, rows whose commit git no longer has (diff lost).
    pub gone: usize,
    /// The excluded revision actually used, if any.
    pub since: Option<String>,
}

impl fmt::Display for AutoresearchSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} commits{}, {} results.tsv rows ({} not in the range, {} of them with the commit gone)",
            self.commits,
            self.since
                .as_deref()
                .map(|s| format!(" after {}", short(s)))
                .unwrap_or_default(),
            self.rows,
            self.off_range,
            self.gone
        )
    }
}

fn short(s: &str) -> &str {
    &s[..12.min(s.len())]
}

fn tsv_status(s: TsvStatus) -> AttemptStatus {
    match s {
        TsvStatus::Keep => AttemptStatus::Kept,
        TsvStatus::Discard => AttemptStatus::Discarded,
        TsvStatus::Crash => AttemptStatus::Failed,
    }
}

/// An attempt from a results.tsv row (value and memory as `import results-tsv` records them).
fn row_attempt(
    row: &TsvRow,
    commit: String,
    hypothesis: String,
    source: String,
) -> ImportedAttempt {
    ImportedAttempt {
        commit,
        status: tsv_status(row.status),
        primary_value: (row.status != TsvStatus::Crash).then_some(row.value),
        peak_gpu_mb: (row.memory_gb > 0.0).then(|| (row.memory_gb * 1024.0).round() as i64),
        hypothesis,
        source,
    }
}

/// Line numbers of the rows `results_tsv::parse` returned (same skipping rules: blank lines
/// and a header on line 1).
fn row_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(i, l)| {
            let l = l.trim_end_matches('\r');
            let header = *i == 0 && l.starts_with("commit\t");
            !l.trim().is_empty() && !header
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// The results.tsv side of an autoresearch import.
#[derive(Debug, Clone, Default)]
pub struct TsvInput {
    pub rows: Vec<TsvRow>,
    /// The line of each row.
    pub lines: Vec<usize>,
    /// The file as named in errors.
    pub file: String,
    /// Its file name, for the attempts' source.
    pub name: String,
}

/// Join a branch's commits (`(full sha, subject)`, oldest first) with results.tsv rows into the
/// attempts to import, by the rules in the module documentation. `resolve` turns an abbreviated
/// id not in the range into a full sha if git still has that commit. `branch` names the range
/// in the attempts' source.
pub fn plan_autoresearch(
    commits: &[(String, String)],
    tsv: &TsvInput,
    branch: &str,
    resolve: impl Fn(&str) -> Option<String>,
) -> Result<Vec<ImportedAttempt>, TsvError> {
    let on_branch = format!("autoresearch:{branch}");
    let mut matched: Vec<Option<usize>> = Vec::with_capacity(tsv.rows.len());
    let mut covered = vec![false; commits.len()];
    for (k, row) in tsv.rows.iter().enumerate() {
        let id = row.commit.to_ascii_lowercase();
        let hits: Vec<usize> = if id.len() >= MIN_ABBREV {
            commits
                .iter()
                .enumerate()
                .filter(|(_, (sha, _))| sha.starts_with(&id))
                .map(|(i, _)| i)
                .collect()
        } else {
            Vec::new()
        };
        if hits.len() > 1 {
            return Err(TsvError {
                file: tsv.file.clone(),
                line: tsv.lines.get(k).copied().unwrap_or(0),
                column: "commit",
                message: format!(
                    "{:?} matches {} commits of {branch}: {}",
                    row.commit,
                    hits.len(),
                    hits.iter()
                        .map(|&i| short(&commits[i].0))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if let Some(&i) = hits.first() {
            covered[i] = true;
        }
        matched.push(hits.first().copied());
    }

    let commit_attempt = |i: usize| {
        let (sha, subject) = &commits[i];
        ImportedAttempt {
            commit: sha.clone(),
            status: AttemptStatus::Kept,
            primary_value: None,
            peak_gpu_mb: None,
            hypothesis: if subject.trim().is_empty() {
                format!("commit {}", &sha[..7.min(sha.len())])
            } else {
                subject.clone()
            },
            source: on_branch.clone(),
        }
    };
    let mut out = Vec::with_capacity(commits.len() + tsv.rows.len());
    let mut next = 0;
    for (row, m) in tsv.rows.iter().zip(&matched) {
        match *m {
            Some(i) => {
                out.extend((next..i).filter(|&j| !covered[j]).map(&commit_attempt));
                next = next.max(i + 1);
                let (sha, subject) = &commits[i];
                let hypothesis = if subject.trim().is_empty() {
                    row.description.clone()
                } else {
                    subject.clone()
                };
                out.push(row_attempt(row, sha.clone(), hypothesis, on_branch.clone()));
            }
            None => {
                let full = (row.commit.len() >= MIN_ABBREV)
                    .then(|| resolve(&row.commit))
                    .flatten();
                let (commit, source) = match full {
                    Some(sha) => (sha, format!("autoresearch:{}", tsv.name)),
                    None => (
                        row.commit.clone(),
                        format!("autoresearch:{} (commit gone, diff lost)", tsv.name),
                    ),
                };
                out.push(row_attempt(row, commit, row.description.clone(), source));
            }
        }
    }
    out.extend(
        (next..commits.len())
            .filter(|&j| !covered[j])
            .map(&commit_attempt),
    );
    Ok(out)
}

/// Key identifying an imported attempt, to skip re-imports.
fn import_key(commit: &str, hypothesis: &str, status: AttemptStatus, value: Option<f64>) -> String {
    format!(
        "{commit}\u{0}{hypothesis}\u{0}{status}\u{0}{}",
        value.map(|v| v.to_bits().to_string()).unwrap_or_default()
    )
}

/// Insert `attempts` into `program`, skipping those already imported there. Returns
/// (imported, skipped).
pub(crate) fn insert_new(
    project: &mut Project,
    program_id: i64,
    attempts: Vec<ImportedAttempt>,
) -> Result<(usize, usize)> {
    let existing: HashSet<String> = project
        .store
        .results(Some(program_id))?
        .into_iter()
        .filter(|r| r.attempt.kind == AttemptKind::Imported)
        .map(|r| {
            let a = r.attempt;
            import_key(
                a.commit.as_deref().unwrap_or(""),
                &a.hypothesis,
                a.status,
                a.primary_value,
            )
        })
        .collect();
    let total = attempts.len();
    let fresh: Vec<ImportedAttempt> = attempts
        .into_iter()
        .filter(|a| {
            !existing.contains(&import_key(
                &a.commit,
                &a.hypothesis,
                a.status,
                a.primary_value,
            ))
        })
        .collect();
    let n = if fresh.is_empty() {
        0
    } else {
        let last = project
            .store
            .attempt_counts(program_id)?
            .iter()
            .map(|(_, n)| n)
            .sum::<i64>();
        let n = project.store.insert_imported(program_id, &fresh)?;
        // Imported attempts join the memory at once, so they are found before anything reruns.
        crate::memory::reindex_program(project, program_id, Some(last))?;
        n
    };
    Ok((n, total - fresh.len()))
}

/// `picidae import autoresearch`: a session's branch history joined with its results.tsv.
pub fn import_autoresearch(
    project: &mut Project,
    opts: &AutoresearchImport,
) -> Result<AutoresearchSummary> {
    let program = project.store.program(&opts.program)?;
    let repo = Repo::open(&opts.repo)
        .with_context(|| format!("opening the session repository {}", opts.repo.display()))?;
    let branch = opts.branch.as_deref().unwrap_or("HEAD");
    if repo.resolve(branch)?.is_none() {
        bail!("{branch:?} names no commit in {}", repo.root().display());
    }
    let since = match &opts.since {
        Some(rev) => Some(repo.resolve(rev)?.with_context(|| {
            format!(
                "--since {rev:?} names no commit in {}",
                repo.root().display()
            )
        })?),
        None => repo.resolve(&program.base_commit).ok().flatten(),
    };
    let commits = repo.log(branch, since.as_deref())?;
    if opts.since.is_none()
        && commits.is_empty()
        && repo.resolve(branch)?.as_deref() == Some(program.base_commit.as_str())
    {
        // Continuing a session: the program was created at its tip, so the tip is the base and
        // the whole session lies behind it. Guessing where the session began would be wrong as
        // often as right.
        bail!(
            "program {} starts at {branch}'s tip ({}), so none of the session's commits is newer \
             than its base: name the commit the session started from, e.g. --since main",
            program.name,
            &program.base_commit[..7.min(program.base_commit.len())]
        );
    }

    let results = opts.results.clone().or_else(|| {
        let p = opts.repo.join("results.tsv");
        p.is_file().then_some(p)
    });
    let tsv = match &results {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file = path.display().to_string();
            TsvInput {
                rows: results_tsv::parse(&text, &file)?,
                lines: row_lines(&text),
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "results.tsv".into()),
                file,
            }
        }
        None => TsvInput::default(),
    };
    let planned = plan_autoresearch(&commits, &tsv, branch, |id| repo.resolve(id).ok().flatten())?;
    let on_branch = format!("autoresearch:{branch}");
    let off: Vec<&ImportedAttempt> = planned.iter().filter(|a| a.source != on_branch).collect();
    let gone = off
        .iter()
        .filter(|a| a.source.ends_with("diff lost)"))
        .count();
    let summary = AutoresearchSummary {
        imported: 0,
        skipped: 0,
        commits: commits.len(),
        rows: tsv.rows.len(),
        off_range: off.len(),
        gone,
        since,
    };
    let (imported, skipped) = insert_new(project, program.id, planned)?;
    Ok(AutoresearchSummary {
        imported,
        skipped,
        ..summary
    })
}

fn file_name(path: &Path, default: &str) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| default.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(commit: &str, value: f64, status: TsvStatus, desc: &str) -> TsvRow {
        TsvRow {
            commit: commit.into(),
            value,
            memory_gb: 1.0,
            status,
            description: desc.into(),
        }
    }

    #[test]
    fn plan_joins_rows_to_commits_in_session_order() {
        let commits = vec![
            ("aaaa1111".repeat(5), "first".to_string()),
            ("bbbb2222".repeat(5), "second".to_string()),
            ("cccc3333".repeat(5), "third".to_string()),
        ];
        let tsv = TsvInput {
            rows: vec![
                row("0000000", 1.0, TsvStatus::Keep, "baseline"),
                row("aaaa111", 0.9, TsvStatus::Keep, "row a"),
                row("dddd444", 0.95, TsvStatus::Discard, "reset away"),
                row("cccc333", 0.8, TsvStatus::Keep, "row c"),
                row("eeee555", 0.0, TsvStatus::Crash, "oom"),
            ],
            lines: vec![2, 3, 4, 5, 6],
            file: "r.tsv".into(),
            name: "r.tsv".into(),
        };
        let plan = plan_autoresearch(&commits, &tsv, "exp", |id| {
            (id == "dddd444").then(|| "dddd4444".repeat(5))
        })
        .unwrap();
        let got: Vec<(&str, &str, AttemptStatus, Option<f64>)> = plan
            .iter()
            .map(|a| {
                (
                    a.hypothesis.as_str(),
                    a.source.as_str(),
                    a.status,
                    a.primary_value,
                )
            })
            .collect();
        use AttemptStatus::*;
        let gone = "autoresearch:r.tsv (commit gone, diff lost)";
        assert_eq!(
            got,
            [
                ("baseline", gone, Kept, Some(1.0)),
                ("first", "autoresearch:exp", Kept, Some(0.9)),
                ("reset away", "autoresearch:r.tsv", Discarded, Some(0.95)),
                ("second", "autoresearch:exp", Kept, None),
                ("third", "autoresearch:exp", Kept, Some(0.8)),
                ("oom", gone, Failed, None),
            ]
        );
        assert_eq!(plan[2].commit, "dddd4444".repeat(5));
        assert_eq!(plan[3].commit, commits[1].0);
        assert_eq!(plan[5].commit, "eeee555");

        let mut bad = tsv.clone();
        bad.rows[1].commit = "aaaa".into();
        let commits2 = vec![commits[0].clone(), ("aaaa9999".repeat(5), "x".into())];
        let e = plan_autoresearch(&commits2, &bad, "exp", |_| None).unwrap_err();
        assert_eq!((e.line, e.column), (3, "commit"));
        assert!(e.message.contains("matches 2 commits"), "{e}");
    }

    #[test]
    fn row_lines_follow_the_parser() {
        let text = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n\nabc1\t1\t1\tkeep\tx\r\nabc2\t1\t1\tkeep\ty\n";
        assert_eq!(results_tsv::parse(text, "t").unwrap().len(), 2);
        assert_eq!(row_lines(text), [3, 4]);
    }
}
