//! `picidae-bench contributors`: what a hub spends verifying claims against the compute its
//! contributors spent finding them (the "cheap to verify" ratio), and how many fake claims it
//! catches.
//!
//! One hub (`picidae serve`, the binary beside this one, on loopback) holds the bundled example
//! (tiny-mlp) opened to contributors; its own agent changes nothing, so every gain is a
//! contributor's. `--honest N` contributors each run `picidae contribute` with the random
//! sweep (each its own seed) for `--attempts A` attempts on their own machine (here, this one):
//! their local runs are the compute they donate. `--fakers M` contributors each submit
//! `--fake-claims K` claims of a change that does nothing to the model (an unused assignment
//! in train.py, a new one each time), claimed to cut the loss by a quarter. The hub verifies every claim on its own
//! runs (the contract's policy and hidden evaluator). Reported: the contributors' runs and run
//! time against the hub's verification runs and run time, honest claims verified, fake claims
//! refuted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_sched::Project;
use picidae_store::{AttemptFilter, ContributionState, Store};

#[derive(Args)]
pub struct ContributorsArgs {
    /// Honest contributors (each runs `picidae contribute` with the random sweep).
    #[arg(long, default_value_t = 2)]
    pub honest: u32,
    /// Attempts each honest contributor makes.
    #[arg(long, default_value_t = 12)]
    pub attempts: u32,
    /// Contributors who submit fake claims.
    #[arg(long, default_value_t = 1)]
    pub fakers: u32,
    /// Fake claims each of them submits.
    #[arg(long, default_value_t = 4)]
    pub fake_claims: u32,
    /// Longest wait for the hub's verdicts once every claim is in, in seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Where to keep the hub and the contributors (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The hub's `picidae serve`, stopped when dropped.
struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The URL `picidae serve` prints when it listens.
fn listen_address(child: &mut Child) -> Result<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().context("serve's stdout is piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .context("the hub printed no address")?;
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            return Ok(format!("http://{}", addr.trim_end_matches('/')));
        }
    }
}

fn picidae(bin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .with_context(|| format!("running picidae {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "picidae {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The secret of a new contributor token.
fn token(bin: &Path, project: &Path, name: &str) -> Result<String> {
    let out = picidae(
        bin,
        &[
            "--project",
            &project.display().to_string(),
            "token",
            "create",
            name,
            "--contributor",
        ],
    )?;
    out.lines()
        .nth(1)
        .map(|l| l.trim().to_string())
        .context("no token secret printed")
}

/// Runs and run seconds of the runs of `attempts` (by id) in `store`.
fn runs_of(store: &Store, attempts: &[i64]) -> Result<(usize, f64)> {
    let (mut n, mut secs) = (0, 0.0);
    for &a in attempts {
        for r in store.runs_of_attempt(a)? {
            n += 1;
            secs += r.wall_secs.unwrap_or(0.0);
        }
    }
    Ok((n, secs))
}

pub fn run(args: ContributorsArgs) -> Result<()> {
    if args.honest + args.fakers == 0 {
        bail!("give at least one contributor (--honest or --fakers)");
    }
    let bin = crate::peer::picidae_beside()?;
    let (_tmp, root) = crate::peer::work_dir(&args.dir)?;
    let hub_dir = root.join("hub");
    std::fs::create_dir_all(&hub_dir)?;
    let bench = crate::example::write(&hub_dir)?;
    let project = hub_dir.display().to_string();
    picidae(&bin, &["--project", &project, "init"])?;
    picidae(
        &bin,
        &[
            "--project",
            &project,
            "program",
            "create",
            "mlp",
            "--benchmark",
            &bench.display().to_string(),
            "--agent",
            "command",
            "--agent-command",
            "sleep 0.5",
        ],
    )?;
    picidae(&bin, &["--project", &project, "program", "open", "mlp"])?;
    let honest: Vec<String> = (0..args.honest)
        .map(|i| token(&bin, &hub_dir, &format!("honest{i}")))
        .collect::<Result<_>>()?;
    let fakers: Vec<String> = (0..args.fakers)
        .map(|i| token(&bin, &hub_dir, &format!("faker{i}")))
        .collect::<Result<_>>()?;
    let mut child = Command::new(&bin)
        .args(["--project", &project, "serve", "--slots", "2"])
        .args(["--listen", "127.0.0.1:0", "--private-reads"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let url = listen_address(&mut child)?;
    let _hub = Hub(child);
    let store = Project::open(&hub_dir)?.store;
    let started = Instant::now();
    while store.program("mlp")?.frontier_value.is_none() {
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the hub measured no baseline in 300 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let base = store.program("mlp")?.frontier_value.unwrap_or(0.0);

    // The honest contributors, all at once; the fakers meanwhile.
    let t0 = Instant::now();
    let mut loops = Vec::new();
    for (i, t) in honest.iter().enumerate() {
        let dir = root.join(format!("honest{i}"));
        loops.push((
            dir.clone(),
            Command::new(&bin)
                .args(["contribute", "mlp", "--hub", &url, "--token", t])
                .arg("--dir")
                .arg(&dir)
                .args(["--agent", "sweep", "--sweep-seed", &(i + 1).to_string()])
                .args(["-n", &args.attempts.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        ));
    }
    for (i, t) in fakers.iter().enumerate() {
        fake(
            &bin,
            &url,
            t,
            &root.join(format!("faker{i}")),
            args.fake_claims,
            base,
        )?;
    }
    let mut donated = (0usize, 0.0f64);
    for (dir, mut c) in loops {
        c.wait()?;
        // A keep left waiting while its predecessor was judged goes once the hub has judged.
        let _ = wait_judged(&store, Duration::from_secs(args.timeout));
        let _ = Command::new(&bin)
            .args(["contribute", "mlp", "--hub", &url, "--token"])
            .arg(&honest[0])
            .arg("--dir")
            .arg(&dir)
            .args(["-n", "0"])
            .output();
        if let Ok(Project { store: local, .. }) = Project::open(&dir) {
            let p = local.program("mlp")?;
            let ids: Vec<i64> = local
                .attempts(&AttemptFilter {
                    program_id: Some(p.id),
                    ..Default::default()
                })?
                .iter()
                .map(|a| a.id)
                .collect();
            let (n, s) = runs_of(&local, &ids)?;
            donated.0 += n;
            donated.1 += s;
        }
    }
    wait_judged(&store, Duration::from_secs(args.timeout))?;
    let elapsed = t0.elapsed().as_secs_f64();
    report(&store, donated, base, elapsed)
}

/// Wait until no claim on the hub is queued or being verified.
fn wait_judged(store: &Store, timeout: Duration) -> Result<()> {
    let p = store.program("mlp")?;
    let start = Instant::now();
    loop {
        let open = store
            .contributions(p.id, None)?
            .iter()
            .filter(|c| {
                matches!(
                    c.state,
                    ContributionState::Queued | ContributionState::Verifying
                )
            })
            .count();
        if open == 0 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "{open} claim(s) still unjudged after {} s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `claims` fake claims from one faker: each a line added to train.py that the model never
/// reads, on the fetched frontier, claimed to cut the loss by a quarter.
fn fake(bin: &Path, url: &str, token: &str, dir: &Path, claims: u32, base: f64) -> Result<()> {
    let repo = dir.join("frontier");
    let into = repo.display().to_string();
    picidae(
        bin,
        &[
            "fetch", "mlp", "--hub", url, "--token", token, "--into", &into,
        ],
    )?;
    let git = |args: &[&str]| -> Result<()> {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args([
                "-c",
                "user.name=faker",
                "-c",
                "user.email=faker@picidae.invalid",
            ])
            .args(args)
            .status()?
            .success();
        if !ok {
            bail!("git {} failed in {}", args.join(" "), repo.display());
        }
        Ok(())
    };
    let export = String::from_utf8(
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["rev-parse", "HEAD"])
            .output()?
            .stdout,
    )?
    .trim()
    .to_string();
    let claimed = format!("{}", base * 0.75);
    for k in 0..claims {
        git(&["checkout", "-q", "--detach", &export])?;
        let train = repo.join("train.py");
        let mut text = std::fs::read_to_string(&train)?;
        // A statement the model never reads: unlike a comment, the memory's normalized-patch
        // key does not fold it into an earlier claim, so every fake costs a verification.
        text.push_str(&format!("_SCHEDULE_VARIANT = {k}\n"));
        std::fs::write(&train, text)?;
        git(&["commit", "-q", "-am", &format!("tuned schedule {k}")])?;
        picidae(
            bin,
            &[
                "submit",
                "mlp",
                "--hub",
                url,
                "--token",
                token,
                "--commit",
                "HEAD",
                "--repo",
                &into,
                "--claimed",
                &claimed,
            ],
        )?;
    }
    Ok(())
}

fn report(store: &Store, donated: (usize, f64), base: f64, elapsed: f64) -> Result<()> {
    let p = store.program("mlp")?;
    let claims = store.contributions(p.id, None)?;
    let verified_by = |who: &str| -> Vec<i64> {
        claims
            .iter()
            .filter(|c| c.contributor.starts_with(who))
            .filter_map(|c| c.attempt_id)
            .collect()
    };
    let honest_cost = runs_of(store, &verified_by("honest"))?;
    let fake_cost = runs_of(store, &verified_by("faker"))?;
    let (hub_runs, hub_secs) = (honest_cost.0 + fake_cost.0, honest_cost.1 + fake_cost.1);
    let count = |who: &str, state: ContributionState| {
        claims
            .iter()
            .filter(|c| c.contributor.starts_with(who) && c.state == state)
            .count()
    };
    let total = |who: &str| {
        claims
            .iter()
            .filter(|c| c.contributor.starts_with(who))
            .count()
    };
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["", "runs", "run time (s)"]);
    t.add_row([
        "contributors' own loops (compute donated)".to_string(),
        donated.0.to_string(),
        format!("{:.1}", donated.1),
    ]);
    for (what, (n, secs)) in [
        ("the hub verifying the honest claims", honest_cost),
        ("the hub verifying the fake claims", fake_cost),
        ("the hub verifying every claim", (hub_runs, hub_secs)),
    ] {
        t.add_row([what.to_string(), n.to_string(), format!("{secs:.1}")]);
    }
    println!("{t}");
    println!(
        "cheap to verify: the honest claims cost the hub {:.2}x the runs ({:.2}x the run time) \
         their finders spent; every claim, fakes included, {:.2}x ({:.2}x)",
        honest_cost.0 as f64 / donated.0.max(1) as f64,
        honest_cost.1 / donated.1.max(1e-9),
        hub_runs as f64 / donated.0.max(1) as f64,
        hub_secs / donated.1.max(1e-9)
    );
    println!(
        "honest claims: {} verified, {} refuted, {} refused, of {}",
        count("honest", ContributionState::Verified),
        count("honest", ContributionState::Refuted),
        count("honest", ContributionState::Refused),
        total("honest")
    );
    let fakes = total("faker");
    let caught =
        count("faker", ContributionState::Refuted) + count("faker", ContributionState::Refused);
    println!(
        "fake claims caught: {caught} of {fakes} ({} verified)",
        count("faker", ContributionState::Verified)
    );
    let p = store.program("mlp")?;
    println!(
        "frontier: val_loss {base:.6} → {:.6}; {:.0} s from the first claim to the last verdict",
        p.frontier_value.unwrap_or(base),
        elapsed
    );
    Ok(())
}
