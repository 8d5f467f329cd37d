//! Placement and budgets beyond run counts, with real processes: runs hold distinct GPUs and see
//! only theirs; a run that can never fit is refused with the reason; GPU-hour and money budgets
//! stop dispatch at the limit and say so.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bin, text, value_contract, Env};

fn gpu_contract(gpus: u32, run: &str) -> String {
    let base = value_contract(run, 30.0);
    format!("{base}\n[run.resources]\ncpus = 1\ngpus = {gpus}\n").replace(
        "[metrics.score]",
        "[policy]\nseeds = 1\nbaseline_seeds = 1\n\n[metrics.score]",
    )
}

/// An agent that writes a new, worse value each turn (nothing goes stale) and reports a cost.
fn costly_agent(env: &Env, cost: f64) -> String {
    let agent = env.path("agent.sh");
    std::fs::write(
        &agent,
        format!(
            "v=$((5000 + PICIDAE_ATTEMPT)); echo $v > value.txt\necho \"HYPOTHESIS: value $v\"\necho \"COST_USD: {cost}\"\necho \"TOKENS: 100\"\n"
        ),
    )
    .unwrap();
    format!("sh {}", agent.display())
}

/// (start, end, gpus, log directory) of every finished run of the project.
fn placements(env: &Env) -> Vec<(i64, i64, String, String)> {
    let store = env.store();
    store
        .runs(None)
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            let (start, end) = (r.started_at?, r.finished_at?);
            let gpus: Vec<String> = store
                .run_gpus(r.id)
                .unwrap()
                .iter()
                .map(|g| g.to_string())
                .collect();
            Some((start, end, gpus.join(","), r.log_dir.unwrap_or_default()))
        })
        .collect()
}

#[test]
fn concurrent_runs_hold_distinct_gpus_and_see_only_theirs() {
    // Each run prints the GPUs it sees, then lasts long enough to overlap with the other's.
    let run = "echo \\\"visible=$CUDA_VISIBLE_DEVICES\\\"; sleep 0.6; echo \\\"score: $(cat value.txt)\\\"";
    let env = Env::new(&[
        ("picidae.toml", &gpu_contract(1, run)),
        ("value.txt", "10000\n"),
    ]);
    let bench_b = env.path("bench-b");
    std::fs::create_dir_all(&bench_b).unwrap();
    for f in ["picidae.toml", "value.txt"] {
        std::fs::copy(env.bench.join(f), bench_b.join(f)).unwrap();
    }
    picidae_git::Repo::init(&bench_b, "b", picidae_git::Identity::default()).unwrap();
    let agent = costly_agent(&env, 0.0);
    env.command_program("a", &env.bench.clone(), &agent);
    env.command_program("b", &bench_b, &agent);
    // A program that needs more GPUs than the machine has.
    let bench_c = env.path("bench-c");
    std::fs::create_dir_all(&bench_c).unwrap();
    std::fs::write(bench_c.join("picidae.toml"), gpu_contract(3, run)).unwrap();
    std::fs::write(bench_c.join("value.txt"), "10000\n").unwrap();
    picidae_git::Repo::init(&bench_c, "c", picidae_git::Identity::default()).unwrap();
    env.command_program("c", &bench_c, &agent);

    let child = bin()
        .arg("--project")
        .arg(&env.project)
        .args(["serve", "--slots", "3", "--no-api", "--gpus", "0,1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while placements(&env).iter().filter(|p| !p.2.is_empty()).count() < 8 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "runs did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    let runs = placements(&env);
    let mut overlapping = 0;
    for (i, a) in runs.iter().enumerate() {
        if a.2.is_empty() {
            continue;
        }
        assert!(a.2 == "0" || a.2 == "1", "one GPU of 0,1 per run: {a:?}");
        // The run saw exactly the GPU it was given.
        let stdout = std::fs::read_to_string(std::path::Path::new(&a.3).join("stdout.log"))
            .unwrap_or_default();
        assert!(
            stdout.contains(&format!("visible={}", a.2)),
            "run given GPU {} printed {stdout:?}",
            a.2
        );
        for b in &runs[i + 1..] {
            if b.2.is_empty() {
                continue;
            }
            if a.0 < b.1 && b.0 < a.1 {
                overlapping += 1;
                assert_ne!(a.2, b.2, "overlapping runs shared a GPU: {a:?} {b:?}");
            }
        }
    }
    eprintln!(
        "{} placed runs, {overlapping} overlapping pairs, none sharing a GPU",
        runs.len()
    );
    assert!(overlapping > 0, "the two programs' runs should overlap");
    // The program needing 3 GPUs never ran anything, and says why.
    let store = env.store();
    let c = store.program("c").unwrap();
    let crashed: Vec<String> = store
        .attempts(&picidae_store::AttemptFilter {
            program_id: Some(c.id),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .flat_map(|a| store.runs_of_attempt(a.id).unwrap())
        .filter_map(|r| r.error)
        .collect();
    assert!(
        crashed
            .iter()
            .any(|e| e.contains("needs 3 GPU(s) but this coordinator has 2")),
        "{crashed:?}\n{log}"
    );
}

#[test]
fn gpu_hour_budget_stops_dispatch_at_the_limit() {
    let env = Env::new(&[
        (
            "picidae.toml",
            &gpu_contract(2, "sleep 0.5; echo \\\"score: $(cat value.txt)\\\""),
        ),
        ("value.txt", "10000\n"),
    ]);
    let agent = costly_agent(&env, 0.0);
    env.command_program("p", &env.bench.clone(), &agent);
    // 2 GPUs × ~0.5 s per run (about 0.0003 GPU-hours): a budget of 0.0005 GPU-hours admits
    // the baseline, and not a second run that would cross it.
    let out = env.ok(&["program", "set", "p", "--max-gpu-hours", "0.0005"]);
    assert!(out.contains("GPU-hour budget 0.0005"), "{out}");
    let out = env.picidae(&["run", "p", "-n", "20", "--pipeline", "0"]);
    let log = text(&out);
    assert!(log.contains("GPU-hour budget is spent"), "{log}");
    let store = env.store();
    let p = store.program("p").unwrap();
    let spent = store.program_spend(p.id).unwrap();
    eprintln!(
        "GPU-hour budget 0.0005: stopped after {} runs, {:.5} GPU-hours",
        spent.runs, spent.gpu_hours
    );
    // Admitted before it starts, a run never takes the spend past the budget; the next one
    // (as long as the last) would have.
    assert!(spent.gpu_hours <= 0.0005, "{spent:?}");
    let per_run = spent.gpu_hours / spent.runs as f64;
    assert!(spent.gpu_hours + per_run > 0.0005, "{spent:?}");
}

#[test]
fn money_budget_counts_agent_cost_and_stops_at_the_limit() {
    let env = Env::new(&[
        (
            "picidae.toml",
            &gpu_contract(0, "echo \\\"score: $(cat value.txt)\\\""),
        ),
        ("value.txt", "10000\n"),
    ]);
    let agent = costly_agent(&env, 1.0);
    env.command_program("p", &env.bench.clone(), &agent);
    env.ok(&["program", "set", "p", "--max-usd", "2.5"]);
    let log = text(&env.picidae(&["run", "p", "-n", "20", "--pipeline", "0"]));
    assert!(log.contains("money budget is spent"), "{log}");
    let store = env.store();
    let p = store.program("p").unwrap();
    let spent = store.program_spend(p.id).unwrap();
    eprintln!(
        "money budget $2.50 at $1 per proposal: stopped at ${:.2}, {} tokens, {} runs",
        spent.usd, spent.agent_tokens, spent.runs
    );
    // Two proposals ($2) leave budget; the third ($3) crosses it (an agent turn's cost is
    // known only once it is paid), so its run is not admitted and nothing starts after.
    assert_eq!(spent.usd, 3.0, "{spent:?}");
    assert_eq!(spent.agent_tokens, 300);
    assert_eq!(spent.runs, 3, "baseline + 2 attempts: {spent:?}");
}

/// `--parallel 3`: the baseline's three seeds, and a candidate's two verification seeds, run
/// at the same time (each in its own checkout, on its own store connection), and every seed is
/// recorded exactly once.
#[test]
fn seeds_of_one_attempt_run_in_parallel() {
    let contract = value_contract("sh run.sh", 30.0).replace(
        "[metrics.score]",
        "[policy]\nseeds = 3\nbaseline_seeds = 3\n\n[metrics.score]",
    );
    let env = Env::new(&[
        ("picidae.toml", &contract),
        (
            "run.sh",
            "sleep 1\necho \"score: $(cat value.txt).$PICIDAE_SEED\"\n",
        ),
        ("value.txt", "10\n"),
    ]);
    env.queue_program("p", &["5"], &[]);
    let started = Instant::now();
    env.ok(&["run", "p", "-n", "1", "--parallel", "3", "--plain"]);
    let wall = started.elapsed().as_secs_f64();
    let store = env.store();
    let p = store.program("p").unwrap();
    let attempts = store
        .attempts(&picidae_store::AttemptFilter {
            program_id: Some(p.id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(attempts.len(), 2);
    for a in &attempts {
        let runs = store.runs_of_attempt(a.id).unwrap();
        let mut seeds: Vec<i64> = runs.iter().map(|r| r.seed).collect();
        seeds.sort();
        assert_eq!(seeds, vec![0, 1, 2], "each seed once: {runs:?}");
        let spans: Vec<(i64, i64)> = runs
            .iter()
            .map(|r| (r.started_at.unwrap(), r.finished_at.unwrap()))
            .collect();
        // Seeds run together: the baseline's three, and the candidate's seeds 1 and 2
        // (seed 0 screens it first).
        let together: Vec<&(i64, i64)> = if a.seq == 1 {
            spans.iter().collect()
        } else {
            runs.iter()
                .zip(&spans)
                .filter(|(r, _)| r.seed > 0)
                .map(|(_, s)| s)
                .collect()
        };
        let latest_start = together.iter().map(|s| s.0).max().unwrap();
        let earliest_end = together.iter().map(|s| s.1).min().unwrap();
        assert!(
            latest_start < earliest_end,
            "attempt {} ran its seeds one after another: {spans:?}",
            a.seq
        );
    }
    let frontier = p.frontier_value.unwrap();
    assert!(
        (frontier - 5.1).abs() < 1e-9,
        "the candidate was validated: {frontier}"
    );
    eprintln!("6 runs of 1 s in {wall:.1} s with --parallel 3");
    assert!(wall < 5.5, "parallel seeds took {wall:.1} s");
}
