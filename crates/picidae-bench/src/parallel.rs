//! `picidae-bench parallel`: N attempts of one program in flight against N = 1, on a benchmark
//! whose ground truth is known.
//!
//! The benchmark has `--knobs` switch files (`k00.txt` ...), all off. Turning on an even knob
//! lowers the true score by 1, an odd one raises it by 0.5; a run sleeps `--run` seconds and
//! reports the true score plus uniform noise of `--noise`. The agent (a command agent standing
//! in for an LLM, as one would read its context) turns on one knob that is off in its checkout
//! and not already in flight, at random. Each N runs `--repeats` times until the frontier's
//! true score is `--target` below the baseline's; the bench reports the wall time from the
//! baseline's decision to that moment, the runs spent, and false keeps (a kept attempt whose
//! true score is not better than the frontier it replaced), as a speedup over N = 1.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_agent::AgentSpec;
use picidae_core::{AttemptKind, AttemptStatus};
use picidae_git::{Identity, Repo};
use picidae_sched::{create_program, LoopEvent, LoopOptions, ProgramOptions, Project, Runner};

#[derive(Args)]
pub struct ParallelArgs {
    /// The numbers of attempts in flight to compare (the first is the reference).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub concurrency: Vec<u32>,
    /// Switch files in the benchmark (half of them good).
    #[arg(long, default_value_t = 16)]
    pub knobs: usize,
    /// True improvement to reach (each good knob is worth 1).
    #[arg(long, default_value_t = 4.0)]
    pub target: f64,
    /// Seconds every run sleeps (standing in for a GPU run).
    #[arg(long, default_value_t = 1.0)]
    pub run: f64,
    /// Half-width of the uniform noise on every reported score.
    #[arg(long, default_value_t = 0.3)]
    pub noise: f64,
    /// Repetitions per N (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: u32,
    /// Where to keep the projects (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

const BASE: f64 = 10.0;
const GOOD: f64 = -1.0;
const BAD: f64 = 0.5;

fn contract(args: &ParallelArgs) -> String {
    let budget = args.run * 5.0 + 10.0;
    format!(
        r#"[benchmark]
name = "knobs"

[boundary]
editable = ["k*.txt"]

[run]
command = "sh run.sh"
time_budget = {budget}
timeout = {budget}
grace = 1.0

[metrics.score]
goal = "minimize"

[policy]
seeds = 1
baseline_seeds = 1
"#
    )
}

fn run_script(args: &ParallelArgs) -> String {
    format!(
        "sleep {run}\nawk -v seed=\"$(od -An -N4 -tu4 /dev/urandom)\" 'BEGIN {{ srand(seed); s = {BASE}; \
         for (i = 0; i < {k}; i++) {{ f = sprintf(\"k%02d.txt\", i); v = 0; getline v < f; \
         if (v == 1) s += (i % 2 == 0) ? {GOOD} : {BAD} }}; s += (rand() * 2 - 1) * {noise}; \
         printf \"score: %.4f\\n\", s }}'\n",
        run = args.run,
        k = args.knobs,
        noise = args.noise
    )
}

/// The agent: one knob that is off and not in flight, at random (seeded by the attempt).
const AGENT: &str = r#"
import glob, json, os, random, sys
sys.stdin.read()
ctx = json.load(open(os.environ["PICIDAE_CONTEXT_FILE"]))
busy = {f["hypothesis"].split("set k")[1][:2] for f in ctx.get("in_flight", []) if "set k" in f["hypothesis"]}
off = sorted(p[1:3] for p in glob.glob("k*.txt") if open(p).read().strip() == "0")
free = [k for k in off if k not in busy] or off
if not free:
    print("PICIDAE: DONE")
    sys.exit(0)
k = random.Random(int(os.environ["PICIDAE_ATTEMPT"]) * 7919 + int(sys.argv[1])).choice(free)
open(f"k{k}.txt", "w").write("1\n")
print(f"HYPOTHESIS: set k{k}")
"#;

/// The true score of `commit`: the knobs it turns on, without noise.
fn truth(repo: &Repo, commit: &str, knobs: usize) -> Result<f64> {
    let mut s = BASE;
    for i in 0..knobs {
        let v = repo
            .file_at(commit, &format!("k{i:02}.txt"))?
            .unwrap_or_default();
        if String::from_utf8_lossy(&v).trim() == "1" {
            s += if i % 2 == 0 { GOOD } else { BAD };
        }
    }
    Ok(s)
}

/// One repetition at one N.
struct Trial {
    secs: f64,
    runs: i64,
    false_keeps: usize,
    reached: bool,
}

pub fn run(args: ParallelArgs) -> Result<()> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency: give numbers >= 1, e.g. 1,2,4,8");
    }
    if args.knobs < 2 || args.knobs > 100 {
        bail!("--knobs must be between 2 and 100");
    }
    let (_tmp, root) = crate::peer::work_dir(&args.dir)?;
    let mut rows: Vec<(u32, Vec<Trial>)> = Vec::new();
    for &n in &args.concurrency {
        let mut trials = Vec::new();
        for rep in 0..args.repeats {
            let dir = root.join(format!("n{n}-r{rep}"));
            eprintln!("bench parallel: concurrency {n}, repetition {}", rep + 1);
            trials.push(trial(&args, n, rep, &dir)?);
        }
        rows.push((n, trials));
    }
    let median = |v: &mut Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "concurrency",
        "reached target",
        "time to target (s, median)",
        "runs spent (median)",
        "false keeps (total)",
        "speedup over the first",
        "speedup / N",
    ]);
    let mut reference: Option<f64> = None;
    for (n, trials) in &rows {
        let mut secs: Vec<f64> = trials.iter().map(|t| t.secs).collect();
        let mut runs: Vec<f64> = trials.iter().map(|t| t.runs as f64).collect();
        let s = median(&mut secs);
        let base = *reference.get_or_insert(s);
        let speedup = base / s;
        t.add_row([
            n.to_string(),
            format!(
                "{}/{}",
                trials.iter().filter(|t| t.reached).count(),
                trials.len()
            ),
            format!("{s:.1}"),
            format!("{:.0}", median(&mut runs)),
            trials
                .iter()
                .map(|t| t.false_keeps)
                .sum::<usize>()
                .to_string(),
            format!("{speedup:.2}x"),
            format!("{:.2}", speedup / f64::from(*n) * f64::from(rows[0].0)),
        ]);
    }
    println!("{t}");
    println!(
        "runs of {} s, {} knobs ({} good), target: {} below the baseline's true score; noise ±{}",
        args.run,
        args.knobs,
        args.knobs.div_ceil(2),
        args.target,
        args.noise
    );
    Ok(())
}

fn trial(args: &ParallelArgs, n: u32, rep: u32, dir: &Path) -> Result<Trial> {
    let bench = dir.join("bench");
    std::fs::create_dir_all(&bench).with_context(|| format!("creating {}", bench.display()))?;
    std::fs::write(bench.join("picidae.toml"), contract(args))?;
    std::fs::write(bench.join("run.sh"), run_script(args))?;
    for i in 0..args.knobs {
        std::fs::write(bench.join(format!("k{i:02}.txt")), "0\n")?;
    }
    let repo = Repo::init(&bench, "knobs benchmark", Identity::default())?;
    let agent = dir.join("agent.py");
    std::fs::write(&agent, AGENT)?;
    let mut project = Project::init(&dir.join("project"))?;
    create_program(
        &mut project,
        &ProgramOptions {
            name: "k".into(),
            benchmark: bench.clone(),
            program_md: None,
            agent: AgentSpec::Command {
                command: format!("python3 {} {rep}", agent.display()),
                timeout_secs: 60.0,
            },
            seeds: Some(1),
            baseline_seeds: Some(1),
            min_improvement: None,
            alpha: None,
            concurrency: Some(n),
        },
    )?;
    let spec: AgentSpec = serde_json::from_value(project.store.program("k")?.agent)?;
    let mut agent = spec.build();
    let shutdown = picidae_sched::Shutdown::new();
    let opts = LoopOptions {
        max_attempts: Some(args.knobs as u64 * 4),
        shutdown: shutdown.clone(),
        ..Default::default()
    };
    let baseline_truth = BASE;
    let mut started: Option<Instant> = None;
    let mut reached: Option<f64> = None;
    let mut frontier_error: Option<anyhow::Error> = None;
    {
        let mut runner = Runner::new(&mut project, "k")?;
        let mut on_event = |e: &LoopEvent| {
            let LoopEvent::Decided { kind, status, .. } = e else {
                return;
            };
            if *kind == AttemptKind::Baseline {
                started = Some(Instant::now());
                return;
            }
            if *status != AttemptStatus::Kept || reached.is_some() {
                return;
            }
            let frontier = repo
                .resolve("refs/picidae/k/frontier")
                .map_err(anyhow::Error::from)
                .and_then(|c| truth(&repo, &c.unwrap_or_default(), args.knobs));
            match frontier {
                Ok(v) if baseline_truth - v >= args.target - 1e-9 => {
                    reached = started.map(|s| s.elapsed().as_secs_f64());
                    shutdown.drain();
                }
                Ok(_) => {}
                Err(e) => frontier_error = Some(e),
            }
        };
        runner.run(agent.as_mut(), &opts, &mut on_event)?;
    }
    if let Some(e) = frontier_error {
        return Err(e);
    }
    let p = project.store.program("k")?;
    let history = project.store.frontier_history(p.id)?;
    let mut false_keeps = 0;
    for w in history.windows(2) {
        if truth(&repo, &w[1].commit, args.knobs)? >= truth(&repo, &w[0].commit, args.knobs)? {
            false_keeps += 1;
        }
    }
    let runs = project.store.run_count(Some(p.id))? - 1;
    let elapsed = started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    Ok(Trial {
        secs: reached.unwrap_or(elapsed),
        runs,
        false_keeps,
        reached: reached.is_some(),
    })
}
