//! A contributor's side of a hub. `picidae fetch` makes a local repository of an open
//! program's public frontier (its files without the hidden evaluator's, as the hub exports
//! them), remembering which frontier commit the export stands for. `picidae submit` sends one
//! change to the program as a contribution, with the value it was measured at: a commit of
//! such a clone (or of any clone of the benchmark; its diff against its parent) or a patch
//! file. The hub checks it before any compute and answers `queued` or `refused` with the
//! reason; its verdict comes later (`picidae submit --status`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use picidae_git::Repo;

#[derive(clap::Args)]
pub(crate) struct SubmitArgs {
    /// The program on the hub.
    program: String,
    /// The hub's API (`picidae serve --listen`), e.g. `https://hub.example:7420`.
    #[arg(long, env = "PICIDAE_HUB")]
    hub: String,
    /// A contributor token (`picidae token create NAME --contributor` on the hub).
    #[arg(long, env = "PICIDAE_CONTRIBUTOR_TOKEN", hide_env_values = true)]
    token: String,
    /// The commit whose change to send (its diff against its parent), in the clone at
    /// `--repo`.
    #[arg(long, conflicts_with_all = ["patch", "status"])]
    commit: Option<String>,
    /// The clone holding `--commit` (default: the current directory).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// A patch file instead (a git diff from the repository's root), made against the
    /// hub's frontier.
    #[arg(long, conflicts_with = "status")]
    patch: Option<PathBuf>,
    /// The primary metric's value you measured with the change.
    #[arg(long, required_unless_present = "status")]
    claimed: Option<f64>,
    /// What the change does (default: the commit's subject).
    #[arg(long)]
    hypothesis: Option<String>,
    /// The seeds you measured it on.
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<i64>,
    /// Show your contributions to the program and their verdicts instead.
    #[arg(long)]
    status: bool,
}

#[derive(clap::Args)]
pub(crate) struct FetchArgs {
    /// The program on the hub.
    program: String,
    /// The hub's API, e.g. `https://hub.example:7420`.
    #[arg(long, env = "PICIDAE_HUB")]
    hub: String,
    /// A contributor token.
    #[arg(long, env = "PICIDAE_CONTRIBUTOR_TOKEN", hide_env_values = true)]
    token: String,
    /// Where to make the repository (must not exist).
    #[arg(long)]
    into: PathBuf,
}

/// The file, in a fetched repository's git directory, naming the frontier commit its export
/// stands for: `<export commit> <frontier commit>`.
const FRONTIER_FILE: &str = "picidae-frontier";

/// A hub and the contributor token to call it with.
pub(crate) struct Hub<'a> {
    pub(crate) url: &'a str,
    pub(crate) token: &'a str,
}

pub(crate) fn fetch(args: FetchArgs) -> Result<()> {
    let hub = Hub {
        url: &args.hub,
        token: &args.token,
    };
    let (_, _, frontier) = fetch_into(&hub, &args.program, &args.into)?;
    println!(
        "{}: the frontier of {} ({}), without the hidden files; commit a change there and \
         `picidae submit {} --commit HEAD --repo {} --claimed VALUE`",
        args.into.display(),
        args.program,
        &frontier[..12.min(frontier.len())],
        args.program,
        args.into.display()
    );
    Ok(())
}

/// Make a repository of `program`'s public frontier at `into` (which must not exist): the
/// repository, the export commit it holds, and the hub's frontier commit it stands for.
pub(crate) fn fetch_into(
    hub: &Hub<'_>,
    program: &str,
    into: &std::path::Path,
) -> Result<(Repo, String, String)> {
    let url = format!(
        "{}/api/programs/{program}/public/bundle",
        hub.url.trim_end_matches('/'),
    );
    let mut resp = agent()
        .get(&url)
        .header("Authorization", &format!("Bearer {}", hub.token))
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    if status != 200 {
        let v = resp
            .body_mut()
            .read_json()
            .unwrap_or(serde_json::Value::Null);
        return Err(refused(status, &v));
    }
    let frontier = resp
        .headers()
        .get("x-picidae-frontier")
        .and_then(|v| v.to_str().ok())
        .context("the hub named no frontier commit")?
        .to_string();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(1 << 32)
        .read_to_vec()
        .with_context(|| format!("GET {url}"))?;
    let file = std::env::temp_dir().join(format!(
        "picidae-fetch-{}-{}.bundle",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::write(&file, &bytes).with_context(|| format!("writing {}", file.display()))?;
    let identity = picidae_git::Identity::new("picidae contributor", "contributor@picidae.invalid");
    let made = Repo::from_export(&file, into, identity);
    let _ = std::fs::remove_file(&file);
    let (repo, export) = made.with_context(|| format!("making {}", into.display()))?;
    std::fs::write(
        repo.common_dir().join(FRONTIER_FILE),
        format!("{export} {frontier}\n"),
    )?;
    Ok((repo, export, frontier))
}

/// The export commit a fetched repository holds and the hub frontier it stands for.
pub(crate) fn fetched(repo: &Repo) -> Option<(String, String)> {
    let t = std::fs::read_to_string(repo.common_dir().join(FRONTIER_FILE)).ok()?;
    let (export, frontier) = t.trim().split_once(' ')?;
    Some((export.to_string(), frontier.to_string()))
}

/// The frontier commit `parent` stands for: itself, or the hub's frontier when it is the
/// export `picidae fetch` made.
fn hub_commit(repo: &Repo, parent: String) -> String {
    fetched(repo)
        .and_then(|(export, frontier)| (export == parent).then_some(frontier))
        .unwrap_or(parent)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// A call to the hub (a POST of `body` where there is one, else a GET): the answer's status
/// and JSON.
pub(crate) fn call(
    hub: &Hub<'_>,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value)> {
    let url = format!("{}{path}", hub.url.trim_end_matches('/'));
    let auth = format!("Bearer {}", hub.token);
    let agent = agent();
    let (method, resp) = match body {
        Some(b) => (
            "POST",
            agent.post(&url).header("Authorization", &auth).send_json(b),
        ),
        None => ("GET", agent.get(&url).header("Authorization", &auth).call()),
    };
    let mut resp = resp.with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let v = resp
        .body_mut()
        .read_json()
        .unwrap_or(serde_json::Value::Null);
    Ok((status, v))
}

pub(crate) fn refused(status: u16, v: &serde_json::Value) -> anyhow::Error {
    anyhow::anyhow!(
        "the hub refused ({status}): {}",
        v["error"]
            .as_str()
            .or(v["reason"].as_str())
            .unwrap_or("no reason given")
    )
}

pub(crate) fn run(args: SubmitArgs) -> Result<()> {
    let program = &args.program;
    let hub = Hub {
        url: &args.hub,
        token: &args.token,
    };
    if args.status {
        let (status, v) = call(
            &hub,
            &format!("/api/programs/{program}/contributions"),
            None,
        )?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        for c in v.as_array().into_iter().flatten() {
            println!(
                "#{}\t{}\tclaimed {}\tmeasured {}\t{}{}",
                c["id"],
                c["state"].as_str().unwrap_or("?"),
                c["claimed_value"],
                c["measured_value"],
                c["hypothesis"].as_str().unwrap_or(""),
                c["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        return Ok(());
    }
    let (patch, parent, subject) = match (&args.commit, &args.patch) {
        (Some(rev), None) => {
            let repo = Repo::open(&args.repo)
                .with_context(|| format!("--repo {}", args.repo.display()))?;
            let commit = repo
                .resolve(rev)?
                .with_context(|| format!("--commit {rev}: no such commit"))?;
            let parent = repo
                .resolve(&format!("{commit}^"))?
                .with_context(|| format!("--commit {rev}: it has no parent"))?;
            let subject = repo
                .commit_message(&commit)?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            (
                repo.show_patch(&commit)?,
                hub_commit(&repo, parent),
                Some(subject),
            )
        }
        (None, Some(file)) => {
            let patch = std::fs::read_to_string(file)
                .with_context(|| format!("--patch {}", file.display()))?;
            let (status, v) = call(&hub, &format!("/api/programs/{program}/public"), None)?;
            if status != 200 {
                return Err(refused(status, &v));
            }
            let frontier = v["frontier_commit"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (patch, frontier, None)
        }
        _ => bail!("give the change as --commit REV or --patch FILE"),
    };
    let hypothesis = args
        .hypothesis
        .clone()
        .or(subject)
        .filter(|h| !h.trim().is_empty())
        .context("--hypothesis: say what the change does")?;
    let body = serde_json::json!({
        "parent_commit": parent,
        "patch": patch,
        "hypothesis": hypothesis,
        "claimed_value": args.claimed,
        "seeds": args.seeds,
    });
    let (status, v) = call(
        &hub,
        &format!("/api/programs/{program}/contributions"),
        Some(&body),
    )?;
    match status {
        202 => {
            println!(
                "contribution #{} queued for verification (claimed gain {})",
                v["id"], v["claimed_gain"]
            );
            Ok(())
        }
        _ => Err(refused(status, &v)),
    }
}
