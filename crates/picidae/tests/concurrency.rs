//! Many attempts of one program in flight (`concurrency = N`): they run at once, each judged
//! against the frontier it was built on; wins found in parallel stack through merge
//! candidates, a conflicting pair is recorded as a conflict, an idea already in flight is not
//! run twice, the run budget holds whatever the number in flight, and a SIGKILL with four in
//! flight loses nothing and counts nothing twice. Runs mostly sleep, so two cores suffice.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bin, git, two_file_env, value_contract, Env};
use picidae_core::{AttemptStatus, RunStatus};
use picidae_store::{Attempt, Run};

fn create(env: &Env, agent: &str, concurrency: &str) {
    env.ok(&[
        "program",
        "create",
        "p",
        "--benchmark",
        env.bench.to_str().unwrap(),
        "--agent",
        "command",
        "--agent-command",
        agent,
        "--concurrency",
        concurrency,
    ]);
}

fn by_hypothesis(all: &[Attempt], hypothesis: &str) -> Attempt {
    let found: Vec<&Attempt> = all.iter().filter(|a| a.hypothesis == hypothesis).collect();
    assert_eq!(found.len(), 1, "one attempt {hypothesis:?}: {all:#?}");
    found[0].clone()
}

fn attempts(env: &Env) -> Vec<Attempt> {
    common::attempts(&env.store(), "p")
}

fn runs(env: &Env) -> Vec<Run> {
    let store = env.store();
    attempts(env)
        .iter()
        .flat_map(|a| store.runs_of_attempt(a.id).unwrap())
        .collect()
}

/// The most runs that were executing at one instant.
fn most_at_once(runs: &[Run]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for r in runs {
        if let (Some(s), Some(f)) = (r.started_at, r.finished_at) {
            edges.push((s, 1));
            edges.push((f, -1));
        }
    }
    // Ends before starts at the same millisecond: touching runs do not overlap.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[test]
fn four_attempts_run_at_once_and_no_more() {
    let env = two_file_env(2.0);
    let turns: Vec<String> = (0..8).map(|i| format!("a.txt {}", 40 + i)).collect();
    let turns: Vec<&str> = turns.iter().map(String::as_str).collect();
    let agent = env.pair_agent(&turns);
    create(&env, &agent, "4");
    let started = Instant::now();
    let out = env.ok(&["run", "p", "-n", "8", "--plain"]);
    let wall = started.elapsed();
    let runs = runs(&env);
    let explore: Vec<Run> = runs.iter().skip(1).cloned().collect();
    assert_eq!(explore.len(), 8, "{runs:#?}\n{out}");
    assert_eq!(most_at_once(&explore), 4, "{explore:#?}");
    // Eight two-second runs four at a time: about 4 s, not the 16 s of one at a time.
    assert!(wall < Duration::from_secs(12), "took {wall:?}\n{out}");
    // All worse than the baseline (a = 5): every one discarded, against its own parent.
    for a in attempts(&env).iter().filter(|a| a.seq > 1) {
        assert_eq!(a.status, AttemptStatus::Discarded, "{a:?}");
    }
    assert!(out.contains("8 attempts: 0 kept, 8 discarded"), "{out}");
}

#[test]
fn two_wins_in_flight_together_stack_through_a_merge_candidate() {
    let env = two_file_env(1.0);
    // b's run is slower, so a's win is kept first and b's lands on a frontier that moved.
    std::fs::write(
        env.bench.join("run.sh"),
        "b=$(cat b.txt); if [ \"$b\" = 3 ]; then sleep 2; else sleep 1; fi\n\
         echo \"score: $(( $(cat a.txt) + b ))\"\n",
    )
    .unwrap();
    git(&env.bench, &["commit", "-qam", "b is slower"]);
    let agent = env.pair_agent(&["a.txt 4", "b.txt 3"]);
    create(&env, &agent, "2");
    let out = env.ok(&["run", "p", "-n", "2", "--plain"]);
    let all = attempts(&env);
    let (a, b) = (
        by_hypothesis(&all, "a.txt = 4"),
        by_hypothesis(&all, "b.txt = 3"),
    );
    assert_eq!(
        a.parent_commit, b.parent_commit,
        "both built on the baseline"
    );
    assert_eq!(a.status, AttemptStatus::Kept, "{all:#?}\n{out}");
    assert_eq!(b.status, AttemptStatus::Merged, "{all:#?}\n{out}");
    assert_eq!(
        b.primary_value,
        Some(8.0),
        "judged against its own parent (10)"
    );
    let merge = all
        .iter()
        .find(|x| x.replay_of == Some(b.id))
        .unwrap_or_else(|| panic!("no merge candidate of #3: {all:#?}"));
    assert_eq!(merge.proposer, "merge");
    assert_eq!(merge.parent_commit, a.commit.clone().unwrap());
    assert!(
        b.note
            .as_deref()
            .unwrap_or("")
            .contains(&format!("merged onto the new frontier as #{}", merge.seq)),
        "{b:?}"
    );
    assert_eq!(merge.status, AttemptStatus::Kept, "{all:#?}\n{out}");
    assert_eq!(merge.primary_value, Some(7.0));
    let p = env.store().program("p").unwrap();
    assert_eq!(p.frontier_value, Some(7.0));
    let frontier = git(&env.bench, &["rev-parse", "refs/picidae/p/frontier"]);
    assert_eq!(frontier, merge.commit.clone().unwrap());
    assert_eq!(
        git(&env.bench, &["show", &format!("{frontier}:a.txt")]),
        "4"
    );
    assert_eq!(
        git(&env.bench, &["show", &format!("{frontier}:b.txt")]),
        "3"
    );
    // `show` links the merge candidate to the attempt it carries.
    let shown = env.ok(&["show", "p", &merge.seq.to_string()]);
    assert!(shown.contains(&format!("carries #{}", b.seq)), "{shown}");
}

#[test]
fn three_wins_land_together_through_stacked_merge_candidates() {
    let env = Env::new(&[
        (
            "picidae.toml",
            r#"[boundary]
editable = ["a.txt", "b.txt", "c.txt"]

[run]
command = "sh run.sh"
time_budget = 30

[metrics.score]
goal = "minimize"
"#,
        ),
        // c = 2 runs longest, then b = 3: a's win lands first, then b's, then c's.
        (
            "run.sh",
            "b=$(cat b.txt); c=$(cat c.txt)\n\
             if [ \"$c\" = 2 ]; then sleep 2.4; elif [ \"$b\" = 3 ]; then sleep 1.8; else sleep 0.8; fi\n\
             echo \"score: $(( $(cat a.txt) + b + c ))\"\n",
        ),
        ("a.txt", "5\n"),
        ("b.txt", "5\n"),
        ("c.txt", "5\n"),
    ]);
    let agent = env.pair_agent(&["a.txt 4", "b.txt 3", "c.txt 2"]);
    create(&env, &agent, "3");
    let out = env.ok(&["run", "p", "-n", "3", "--plain"]);
    let all = attempts(&env);
    let (a, b, c) = (
        by_hypothesis(&all, "a.txt = 4"),
        by_hypothesis(&all, "b.txt = 3"),
        by_hypothesis(&all, "c.txt = 2"),
    );
    assert_eq!(a.status, AttemptStatus::Kept, "{all:#?}\n{out}");
    assert_eq!(b.status, AttemptStatus::Merged, "{all:#?}\n{out}");
    assert_eq!(c.status, AttemptStatus::Merged, "{all:#?}\n{out}");
    let mb = all.iter().find(|x| x.replay_of == Some(b.id)).unwrap();
    let mc = all.iter().find(|x| x.replay_of == Some(c.id)).unwrap();
    // c's merge candidate went on top of b's (still running): when b's was kept, c's run
    // had measured the new frontier plus c, and was judged against it without another run.
    assert_eq!(mb.status, AttemptStatus::Kept, "{all:#?}\n{out}");
    assert_eq!(mc.status, AttemptStatus::Kept, "{all:#?}\n{out}");
    assert_eq!(mc.parent_commit, mb.commit.clone().unwrap(), "{mc:?}");
    assert!(
        mc.note
            .as_deref()
            .unwrap_or("")
            .contains("judged against it"),
        "{mc:?}"
    );
    let p = env.store().program("p").unwrap();
    assert_eq!(p.frontier_value, Some(9.0));
    assert_eq!(
        runs(&env).len(),
        6,
        "baseline, three wins, two merge candidates"
    );
    let frontier = git(&env.bench, &["rev-parse", "refs/picidae/p/frontier"]);
    for (file, v) in [("a.txt", "4"), ("b.txt", "3"), ("c.txt", "2")] {
        assert_eq!(git(&env.bench, &["show", &format!("{frontier}:{file}")]), v);
    }
}

#[test]
fn a_conflicting_pair_is_recorded_as_a_conflict() {
    let env = two_file_env(1.0);
    std::fs::write(
        env.bench.join("run.sh"),
        "a=$(cat a.txt); if [ \"$a\" = 3 ]; then sleep 2; else sleep 1; fi\n\
         echo \"score: $(( a + $(cat b.txt) ))\"\n",
    )
    .unwrap();
    git(&env.bench, &["commit", "-qam", "a = 3 is slower"]);
    let agent = env.pair_agent(&["a.txt 4", "a.txt 3"]);
    create(&env, &agent, "2");
    let out = env.ok(&["run", "p", "-n", "2", "--plain"]);
    let all = attempts(&env);
    let first = by_hypothesis(&all, "a.txt = 4");
    assert_eq!(first.status, AttemptStatus::Kept, "{all:#?}\n{out}");
    let late = by_hypothesis(&all, "a.txt = 3");
    assert_eq!(late.status, AttemptStatus::Merged, "{all:#?}\n{out}");
    let merge = all.iter().find(|x| x.replay_of == Some(late.id)).unwrap();
    assert_eq!(merge.status, AttemptStatus::Rejected, "{all:#?}");
    let note = merge.note.clone().unwrap_or_default();
    assert!(
        note.contains(&format!(
            "the change of #{} conflicts with the frontier in a.txt",
            late.seq
        )),
        "{note}"
    );
    assert_eq!(
        merge.rejection.as_ref().unwrap()["conflicts"],
        serde_json::json!(["a.txt"])
    );
    let store = env.store();
    assert!(store.runs_of_attempt(merge.id).unwrap().is_empty());
    assert_eq!(store.program("p").unwrap().frontier_value, Some(9.0));
}

#[test]
fn an_idea_already_in_flight_is_not_run_again() {
    let env = two_file_env(2.0);
    // The fourth turn starts once the duplicate is decided, while the others run.
    let agent = env.pair_agent(&["a.txt 4", "a.txt 4", "b.txt 9", "b.txt 8"]);
    create(&env, &agent, "3");
    let out = env.ok(&["run", "p", "-n", "4", "--plain"]);
    let all = attempts(&env);
    let same: Vec<&Attempt> = all.iter().filter(|a| a.hypothesis == "a.txt = 4").collect();
    assert_eq!(same.len(), 2, "{all:#?}\n{out}");
    let (second, first) = match same[0].status {
        AttemptStatus::Duplicate => (same[0], same[1]),
        _ => (same[1], same[0]),
    };
    assert_eq!(second.status, AttemptStatus::Duplicate, "{all:#?}\n{out}");
    assert!(
        second
            .note
            .as_deref()
            .unwrap_or("")
            .contains(&format!("#{}", first.seq)),
        "{second:?}"
    );
    let store = env.store();
    assert!(store.runs_of_attempt(second.id).unwrap().is_empty());
    assert_eq!(store.runs_of_attempt(first.id).unwrap().len(), 1);
    // Later turns were told what was in flight: hypothesis and diff.
    let prompts = env.project.join(".picidae/attempts/p");
    let running = format!("#{} [", first.seq);
    let told = std::fs::read_dir(&prompts).unwrap().flatten().any(|e| {
        let t = std::fs::read_to_string(e.path().join("prompt.md")).unwrap_or_default();
        t.contains("## In flight now") && t.contains(&running) && t.contains("+4")
    });
    assert!(told, "no prompt listed #{} as in flight", first.seq);
}

#[test]
fn the_run_budget_holds_with_four_in_flight() {
    let env = two_file_env(0.5);
    let turns: Vec<String> = (0..12).map(|i| format!("a.txt {}", 40 + i)).collect();
    let turns: Vec<&str> = turns.iter().map(String::as_str).collect();
    let agent = env.pair_agent(&turns);
    create(&env, &agent, "4");
    env.ok(&["program", "set", "p", "--max-runs", "6"]);
    let out = env.ok(&["run", "p", "-n", "12", "--plain"]);
    assert!(out.contains("run budget is spent"), "{out}");
    assert_eq!(runs(&env).len(), 6, "baseline + 5 attempts\n{out}");
    // The invocation's own budget, on top of what the program has used.
    env.ok(&["program", "set", "p", "--no-max-runs"]);
    let out = env.ok(&["run", "p", "-n", "12", "--plain", "--max-runs", "3"]);
    assert!(out.contains("run budget of 3 runs spent"), "{out}");
    assert_eq!(runs(&env).len(), 9, "{out}");
}

#[test]
fn kill_9_with_four_in_flight_loses_nothing_and_counts_nothing_twice() {
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("hung");
    // The first run of each value hangs (until the harness dies); a second one is quick.
    let run = format!(
        "v=$(cat value.txt)\nif [ ! -e '{m}'.$v ]; then touch '{m}'.$v; sleep 60; fi\n\
         echo \"score: $v\"\n",
        m = marker.display()
    );
    let env = Env::new(&[
        ("picidae.toml", &value_contract("sh run.sh", 90.0)),
        ("run.sh", &run),
        ("value.txt", "1000\n"),
    ]);
    // The baseline's run must not hang.
    std::fs::write(format!("{}.1000", marker.display()), "").unwrap();
    let agent = env.queue_agent(&["996", "997", "998", "999", "DONE"]);
    create(&env, &agent, "4");
    let mut child = bin()
        .arg("--project")
        .arg(&env.project)
        .args(["run", "p", "-n", "4", "--plain"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let running = runs(&env)
            .into_iter()
            .filter(|r| r.status == RunStatus::Running)
            .count();
        if running == 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never 4 in flight: {:#?}\n{:#?}",
            attempts(&env),
            runs(&env)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let before = runs(&env);
    assert_eq!(before.len(), 5, "{before:#?}");

    let out = env.ok(&["run", "p", "-n", "0", "--plain"]);
    let after = runs(&env);
    // The four interrupted runs are closed as cancelled, each seed is run once more, and no
    // attempt counts a seed twice.
    for r in &before {
        let now = after.iter().find(|x| x.id == r.id).unwrap();
        if r.status == RunStatus::Running {
            assert_eq!(now.status, RunStatus::Cancelled, "{now:?}");
        } else {
            assert_eq!(now, r, "a finished run changed");
        }
    }
    assert!(after.iter().all(|r| r.status.is_terminal()), "{after:#?}");
    let all = attempts(&env);
    let store = env.store();
    let mut kept = 0;
    for a in &all {
        assert!(a.status.is_final(), "#{} left {}\n{out}", a.seq, a.status);
        let ok = store
            .runs_of_attempt(a.id)
            .unwrap()
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .count();
        assert!(ok <= 1, "#{} counts {ok} successful runs", a.seq);
        kept += usize::from(a.status == AttemptStatus::Kept);
    }
    // The baseline and the first win are kept; the other wins, judged against their own
    // parent, became merge candidates (which conflict: one file) rather than overwriting it.
    assert_eq!(kept, 2, "{all:#?}\n{out}");
    let seqs: Vec<i64> = all.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>());
    let p = store.program("p").unwrap();
    let best_kept = all
        .iter()
        .filter(|a| a.status == AttemptStatus::Kept)
        .filter_map(|a| a.primary_value)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(p.frontier_value, Some(best_kept));
}

/// Two candidates in flight together, both undecided after the baseline's two seeds, both ask
/// for the baseline's third seed at the same moment to pair with their own: it runs once.
#[test]
fn candidates_in_flight_together_top_up_a_shared_incumbent_seed_once() {
    let contract = value_contract("sh run.sh", 30.0).replace(
        "[metrics.score]",
        "[policy]\nseeds = 2\nbaseline_seeds = 2\nmax_seeds = 4\n\n[metrics.score]",
    );
    // Runs take the same second everywhere, with a spread of ±0.6 by attempt and seed, so
    // neither small gain is decided on two seeds.
    let run = r#"sleep 1
awk -v v="$(cat value.txt)" -v s="$PICIDAE_SEED" -v a="$PICIDAE_ATTEMPT" 'BEGIN {
  printf "score: %.3f\n", v + ((a * 7 + s * 13) % 5 - 2) * 0.3
}'
"#;
    let env = Env::new(&[
        ("picidae.toml", &contract),
        ("run.sh", run),
        ("value.txt", "10\n"),
    ]);
    let agent = env.queue_agent(&["9.9", "9.95", "DONE"]);
    create(&env, &agent, "2");
    env.ok(&["run", "p", "-n", "2", "--plain"]);
    let store = env.store();
    let all = attempts(&env);
    let baseline = &all[0];
    let mut seeds: Vec<i64> = store
        .runs_of_attempt(baseline.id)
        .unwrap()
        .iter()
        .filter(|r| r.status != RunStatus::Cancelled)
        .map(|r| r.seed)
        .collect();
    seeds.sort();
    let mut unique = seeds.clone();
    unique.dedup();
    assert_eq!(
        seeds,
        unique,
        "a seed of the baseline ran twice: {:#?}",
        runs(&env)
    );
    assert!(
        seeds.len() > 2,
        "no candidate needed a third seed of the baseline: {:#?}",
        runs(&env)
    );
}
