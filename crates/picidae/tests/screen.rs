//! The `[screen]` promotion stage: a candidate first runs once with the stage's short budget
//! (`PICIDAE_STAGE=screen`) on the screen seed, against the incumbent's screen run; a clear
//! loser is discarded there without a single full-budget run, a winner goes on to verification
//! with the stage recorded in its finding, and no screen value counts as a seed of anything.

mod common;

use common::Env;
use picidae_core::{AttemptStatus, SCREEN_SEED};

/// Runs report `score` = value.txt plus a small spread by seed; a screen run (a fifth of the
/// budget) reports a biased, cheaper estimate (+0.5). Every run prints its stage, budget, seed
/// and value on a line of its stdout.
fn screen_env(policy: &str) -> Env {
    let contract = format!(
        r#"[benchmark]
name = "staged"

[boundary]
editable = ["value.txt"]

[run]
command = "sh run.sh"
time_budget = 10
timeout = 20

[screen]
time_budget = 2

[metrics.score]
goal = "minimize"

[policy]
seeds = 2
baseline_seeds = 2
max_seeds = 4
{policy}
"#
    );
    Env::new(&[
        ("picidae.toml", &contract),
        (
            "run.sh",
            r#"v=$(cat value.txt)
echo "STAGE $PICIDAE_STAGE $PICIDAE_TIME_BUDGET $PICIDAE_SEED $v"
awk -v v="$v" -v s="$PICIDAE_SEED" -v st="$PICIDAE_STAGE" 'BEGIN {
  o = (s % 2) * 0.02
  if (st == "screen") o = 0.5
  printf "score: %.3f\n", v + o
}'
"#,
        ),
        ("value.txt", "10\n"),
    ])
}

#[test]
fn a_clear_loser_costs_one_short_run_and_a_winner_records_the_stage() {
    staged_program(screen_env(""));
}

/// The same stage in front of fixed-seed verification (`sequential = false`), where it stands
/// in for the one-seed screen.
#[test]
fn the_stage_fronts_fixed_seed_verification_too() {
    staged_program(screen_env("sequential = false"));
}

/// The stage on a cheaper executor class of its own: with `--screen-executor slurm` every
/// screen run is a job of a real single-node Slurm while every full-budget run stays on the
/// local executor, and the stage decides as before.
#[test]
fn the_stage_runs_on_its_own_executor_class() {
    if !common::remote::slurm_works() {
        return;
    }
    let env = screen_env("");
    // #2 is worse (screened out), #3 better (verified, kept).
    env.queue_program("p", &["20", "5"], &["--screen-executor", "slurm"]);
    let out = env.ok(&["run", "p", "-n", "2", "--plain"]);
    let store = env.store();
    let attempts = common::attempts(&store, "p");
    let status = |seq: i64| attempts.iter().find(|a| a.seq == seq).unwrap().status;
    assert_eq!(status(2), AttemptStatus::Discarded, "{out}");
    assert_eq!(status(3), AttemptStatus::Kept, "{out}");
    let (mut screen, mut full) = (0, 0);
    for a in &attempts {
        for r in store.all_runs_of_attempt(a.id).unwrap() {
            if r.seed == SCREEN_SEED {
                screen += 1;
                assert_eq!(r.executor, "slurm", "{r:?}");
                let job = r.executor_ref.clone().unwrap_or_default();
                assert!(job.starts_with("slurm:"), "{r:?}");
            } else {
                full += 1;
                assert_eq!(r.executor, "local", "{r:?}");
            }
        }
    }
    // The baseline's screen run (the incumbent's) and one for each candidate.
    assert_eq!(screen, 3, "{out}");
    assert!(full >= 4, "{out}");
}

fn staged_program(env: Env) {
    // #2 is worse (screened out), #3 better (verified, kept), #4 and #5 worse than #3.
    env.queue_program("p", &["20", "5", "30", "40"], &[]);
    let out = env.ok(&["run", "p", "-n", "4", "--plain"]);
    let store = env.store();
    let attempts = common::attempts(&store, "p");
    let by_seq = |seq: i64| attempts.iter().find(|a| a.seq == seq).unwrap().clone();
    let screen_runs = |id: i64| -> Vec<picidae_store::Run> {
        store
            .all_runs_of_attempt(id)
            .unwrap()
            .into_iter()
            .filter(|r| r.seed == SCREEN_SEED)
            .collect()
    };

    // The losers: discarded at the screen, with no full-budget run and no value of their own.
    for seq in [2, 4, 5] {
        let a = by_seq(seq);
        assert_eq!(a.status, AttemptStatus::Discarded, "#{seq}: {a:?}\n{out}");
        let note = a.note.clone().unwrap_or_default();
        assert!(
            note.contains("screened out at the screen stage"),
            "#{seq}: {note}"
        );
        assert!(note.contains("2.000s screen run"), "#{seq}: {note}");
        assert!(store.runs_of_attempt(a.id).unwrap().is_empty(), "#{seq}");
        assert_eq!(screen_runs(a.id).len(), 1, "#{seq}");
        assert_eq!(a.primary_value, None, "#{seq}");
        assert!(store.finding_for_attempt(a.id).unwrap().is_none(), "#{seq}");
    }

    // The winner: through the stage, verified on full seeds, kept, and its finding says so.
    let win = by_seq(3);
    assert_eq!(win.status, AttemptStatus::Kept, "{win:?}\n{out}");
    let p = store.program("p").unwrap();
    assert_eq!(p.frontier_attempt_id, Some(win.id));
    let finding = store
        .finding_for_attempt(win.id)
        .unwrap()
        .expect("a finding");
    let events = store.finding_events(finding.id).unwrap();
    let opened = &events
        .iter()
        .find(|e| e.to == "verifying")
        .expect("the move to verification")
        .reason;
    assert!(opened.contains("screen stage passed"), "{events:?}");
    assert!(
        opened.contains("5.500000 against the incumbent's 10.500000"),
        "{opened}"
    );
    assert!(!store.runs_of_attempt(win.id).unwrap().is_empty());

    // Each incumbent's screen run was made once and shared: the baseline's by #2 and #3, the
    // winner's by #4 and #5.
    let baseline = by_seq(1);
    assert_eq!(screen_runs(baseline.id).len(), 1);
    // The winner's own screen run serves as the incumbent's for #4 and #5.
    assert_eq!(screen_runs(win.id).len(), 1);

    // No screen value counts as a seed: every value is the mean of full-budget seeds only.
    for a in [&baseline, &win] {
        let a = store.attempt(a.id).unwrap();
        let seeds: Vec<f64> = store
            .runs_of_attempt(a.id)
            .unwrap()
            .iter()
            .filter_map(|r| r.primary_value)
            .collect();
        assert!(seeds.len() >= 2);
        let mean = seeds.iter().sum::<f64>() / seeds.len() as f64;
        assert!((a.primary_value.unwrap() - mean).abs() < 1e-9, "{a:?}");
    }

    // What the runs were told, from their own logs.
    let mut lines = String::new();
    for r in store.runs(Some(p.id)).unwrap() {
        let dir = r.log_dir.clone().expect("a run directory");
        let stdout = std::fs::read_to_string(std::path::Path::new(&dir).join("stdout.log"))
            .unwrap_or_else(|e| panic!("run {}: {e}", r.id));
        for l in stdout.lines().filter(|l| l.starts_with("STAGE ")) {
            lines.push_str(&l["STAGE ".len()..]);
            lines.push('\n');
        }
    }
    for line in lines.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "screen" => assert_eq!((f[1], f[2]), ("2", "-1"), "{line}"),
            "full" => {
                assert_eq!(f[1], "10", "{line}");
                assert!(f[2].parse::<i64>().unwrap() >= 0, "{line}");
            }
            _ => panic!("a run with no stage: {line}"),
        }
    }
    let screens = lines.lines().filter(|l| l.starts_with("screen ")).count();
    // Four candidates and the baseline: five short runs, none made twice (the winner's own
    // screen run is the incumbent's for the two after it).
    assert_eq!(screens, 5, "{lines}");
    let full_of_losers = lines
        .lines()
        .filter(|l| l.starts_with("full ") && (l.ends_with(" 20") || l.ends_with(" 30")))
        .count();
    assert_eq!(full_of_losers, 0, "{lines}");

    // The store's own audit agrees: every value is what its counted runs say.
    env.ok(&["fsck"]);
}
