//! `picidae-bench utilisation`: how busy the run slot stays when the agent is slow, beside a
//! serial autoresearch-style loop.
//!
//! The agent takes `--think` seconds per proposal (a command agent that sleeps, then edits a
//! file); every run takes `--run` seconds. The serial peer is the autoresearch loop written
//! plainly (ask the agent, commit, run, keep or `git reset --hard`), so the slot idles while the
//! agent thinks. Picidae keeps proposals queued ahead of the slot (`--pipeline`), so the agent
//! thinks while the previous run executes. Utilisation, for both, is the time runs executed
//! divided by the time from the first run's start to the last run's end.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use picidae_agent::AgentSpec;
use picidae_core::AttemptKind;
use picidae_git::{Identity, Repo};
use picidae_sched::{create_program, LoopOptions, ProgramOptions, Project, Runner};
use picidae_store::AttemptFilter;

#[derive(Args)]
pub struct UtilisationArgs {
    /// Seconds the agent takes per proposal.
    #[arg(long, default_value_t = 2.0)]
    pub think: f64,
    /// Seconds every run takes.
    #[arg(long, default_value_t = 5.0)]
    pub run: f64,
    /// Attempts each side makes.
    #[arg(long, default_value_t = 12)]
    pub attempts: u64,
    /// Every this many proposals, one is an improvement (kept, so others go stale); 0: none.
    #[arg(long, default_value_t = 5)]
    pub keep_every: u32,
    /// Proposals Picidae keeps ready ahead of the slot.
    #[arg(long, default_value_t = 2)]
    pub pipeline: usize,
    /// Where to keep the projects (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

fn contract(run: f64) -> String {
    format!(
        r#"[benchmark]
name = "utilisation"

[boundary]
editable = ["value.txt"]

[run]
command = "sleep {run}; echo \"score: $(cat value.txt)\""
time_budget = {budget}
timeout = {budget}
grace = 1.0

[metrics.score]
goal = "minimize"

[policy]
seeds = 1
baseline_seeds = 1
"#,
        budget = run * 3.0 + 5.0
    )
}

/// The agent: think, then write a value no attempt has tried (from the attempt number). Every
/// `keep_every`-th proposal (0: none) lowers the value it found, so it is kept, and proposals
/// queued meanwhile go stale.
fn agent_script(think: f64, keep_every: u32) -> String {
    format!(
        "sleep {think}\nn=${{PICIDAE_ATTEMPT:-$1}}\nv=$((5000 + n))\n\
         if [ {keep_every} -gt 0 ] && [ $((n % {keep_every})) -eq 0 ]; then v=$(( $(cat value.txt) - 1 )); fi\n\
         echo $v > value.txt; echo \"HYPOTHESIS: value $v\"\n"
    )
}

/// The serial autoresearch-style loop: agent, commit, run, keep or reset. Prints the run spans.
const SERIAL_LOOP: &str = r#"
import json, re, subprocess, sys, time
bench, agent, n, run_cmd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def git(*a):
    subprocess.run(["git", *a], cwd=bench, check=True, capture_output=True)
best, spans = None, []
for i in range(1, n + 1):
    subprocess.run(["sh", agent, str(i)], cwd=bench, check=True, capture_output=True)
    git("commit", "-qam", f"attempt {i}")
    t0 = time.time()
    out = subprocess.run(["/bin/sh", "-c", run_cmd], cwd=bench, capture_output=True, text=True).stdout
    spans.append((t0, time.time()))
    v = float(re.search(r"score: (\S+)", out).group(1))
    if best is None or v < best:
        best = v
    else:
        git("reset", "-q", "--hard", "HEAD~1")
print(json.dumps({"spans": spans}))
"#;

struct Figure {
    name: String,
    runs: usize,
    busy: f64,
    span: f64,
}

impl Figure {
    fn from_spans(name: String, spans: &[(f64, f64)]) -> Result<Figure> {
        if spans.is_empty() {
            bail!("{name}: no run finished");
        }
        let start = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
        let end = spans.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
        Ok(Figure {
            name,
            runs: spans.len(),
            busy: spans.iter().map(|s| s.1 - s.0).sum(),
            span: end - start,
        })
    }
    fn utilisation(&self) -> f64 {
        self.busy / self.span
    }
}

pub fn run(args: UtilisationArgs) -> Result<()> {
    let (_tmp, root) = crate::peer::work_dir(&args.dir)?;
    let serial = serial_side(&args, &root.join("serial"))?;
    let picidae = picidae_side(&args, &root.join("picidae"))?;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "loop",
        "runs",
        "run time (s)",
        "first start to last end (s)",
        "slot utilisation",
    ]);
    for f in [&serial, &picidae] {
        t.add_row([
            f.name.clone(),
            f.runs.to_string(),
            format!("{:.1}", f.busy),
            format!("{:.1}", f.span),
            format!("{:.1}%", f.utilisation() * 100.0),
        ]);
    }
    println!("{t}");
    println!(
        "slot utilisation: picidae {:.1}% vs serial loop {:.1}% ({:.2}x); agent {} s per proposal, runs {} s, one proposal in {} kept",
        picidae.utilisation() * 100.0,
        serial.utilisation() * 100.0,
        picidae.utilisation() / serial.utilisation(),
        args.think,
        args.run,
        args.keep_every
    );
    Ok(())
}

/// A benchmark repository with the value file and the agent script beside it.
fn write_bench(args: &UtilisationArgs, dir: &Path) -> Result<(std::path::PathBuf, String)> {
    let bench = dir.join("bench");
    std::fs::create_dir_all(&bench).with_context(|| format!("creating {}", bench.display()))?;
    std::fs::write(bench.join("picidae.toml"), contract(args.run))?;
    std::fs::write(bench.join("value.txt"), "1000\n")?;
    Repo::init(&bench, "utilisation benchmark", Identity::default())?;
    let agent = dir.join("agent.sh");
    std::fs::write(&agent, agent_script(args.think, args.keep_every))?;
    Ok((bench, agent.display().to_string()))
}

fn serial_side(args: &UtilisationArgs, dir: &Path) -> Result<Figure> {
    let (bench, agent) = write_bench(args, dir)?;
    let script = dir.join("serial_loop.py");
    std::fs::write(&script, SERIAL_LOOP)?;
    eprintln!("bench utilisation: serial loop, {} attempts", args.attempts);
    let run_cmd = format!("sleep {}; echo \"score: $(cat value.txt)\"", args.run);
    let out = Command::new("python3")
        .arg(&script)
        .arg(&bench)
        .arg(&agent)
        .arg(args.attempts.to_string())
        .arg(&run_cmd)
        .output()
        .context("running the serial loop with python3")?;
    if !out.status.success() {
        bail!(
            "the serial loop failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let spans: Vec<(f64, f64)> = v["spans"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| Some((s[0].as_f64()?, s[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    Figure::from_spans("serial autoresearch-style loop".into(), &spans)
}

fn picidae_side(args: &UtilisationArgs, dir: &Path) -> Result<Figure> {
    let (bench, agent) = write_bench(args, dir)?;
    let mut project = Project::init(dir)?;
    create_program(
        &mut project,
        &ProgramOptions {
            name: "u".into(),
            benchmark: bench,
            program_md: None,
            agent: AgentSpec::Command {
                command: format!("sh {agent}"),
                timeout_secs: args.think * 10.0 + 30.0,
            },
            seeds: Some(1),
            baseline_seeds: Some(1),
            min_improvement: None,
            alpha: None,
            concurrency: None,
        },
    )?;
    let spec: AgentSpec = serde_json::from_value(project.store.program("u")?.agent)?;
    let mut agent = spec.build();
    eprintln!(
        "bench utilisation: picidae (pipeline {}), {} attempts",
        args.pipeline, args.attempts
    );
    {
        let mut runner = Runner::new(&mut project, "u")?;
        let opts = LoopOptions {
            max_attempts: Some(args.attempts),
            pipeline: args.pipeline,
            ..Default::default()
        };
        runner.run(agent.as_mut(), &opts, &mut |_| {})?;
    }
    let p = project.store.program("u")?;
    let mut spans = Vec::new();
    for a in project.store.attempts(&AttemptFilter {
        program_id: Some(p.id),
        ..Default::default()
    })? {
        if a.kind != AttemptKind::Explore {
            continue;
        }
        for r in project.store.runs_of_attempt(a.id)? {
            if let (Some(s), Some(e)) = (r.started_at, r.finished_at) {
                spans.push((s as f64 / 1000.0, e as f64 / 1000.0));
            }
        }
    }
    Figure::from_spans(format!("picidae (pipeline {})", args.pipeline), &spans)
}
