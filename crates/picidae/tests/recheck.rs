//! `picidae findings recheck`: the kept chain re-measured on fresh seeds, and the ablation of
//! each kept change, through the real binary. A scripted benchmark with known effects: switch
//! `a` truly lowers the score by 1; switch `n` does nothing, except on the loop's own seeds
//! (below 1000), where it looks like a gain of 0.5. Plain keep/revert on seed 0 keeps both.

mod common;

use common::{text, Env};
use picidae_core::AttemptKind;

const CONTRACT: &str = r#"[benchmark]
name = "switches"

[boundary]
editable = ["a.txt", "n.txt"]

[run]
command = "sh run.sh"
time_budget = 10
timeout = 10

[metrics.score]
goal = "minimize"
"#;

// A seed effect shared by every configuration, a little noise of each run's own, and `n`'s
// gain that exists only on the seeds the loop uses.
const RUN: &str = r#"awk -v a="$(cat a.txt)" -v n="$(cat n.txt)" -v s="$PICIDAE_SEED" -v id="$PICIDAE_ATTEMPT" 'BEGIN {
  shared = ((s * 7) % 5 - 2) * 0.3
  own = ((s * 13 + id * 7) % 3 - 1) * 0.02
  lucky = (n == 1 && s < 1000) ? -0.5 : 0
  printf "score: %.4f\n", 10 - 1.0 * a + lucky + shared + own
}'
"#;

fn env() -> Env {
    let env = Env::new(&[
        ("picidae.toml", CONTRACT),
        ("run.sh", RUN),
        ("a.txt", "0\n"),
        ("n.txt", "0\n"),
    ]);
    // The agent turns on `n`, then `a`.
    let queue = env.path("queue.txt");
    std::fs::write(&queue, "n\na\n").unwrap();
    let agent = env.path("agent.sh");
    std::fs::write(
        &agent,
        format!(
            "#!/bin/sh\nset -e\nq='{}'\nw=$(head -n 1 \"$q\")\nsed -i 1d \"$q\"\ncat > /dev/null\n\
             echo 1 > \"$w.txt\"\necho \"HYPOTHESIS: switch $w on\"\n",
            queue.display()
        ),
    )
    .unwrap();
    env.command_program("p", &env.bench.clone(), &format!("sh {}", agent.display()));
    env
}

#[test]
fn the_ablation_names_the_change_that_carries_the_gain_and_the_one_that_does_not() {
    let env = env();
    env.ok(&["run", "p", "-n", "2", "--plain"]);
    let store = env.store();
    let p = store.program("p").unwrap();
    let frontier = (p.frontier_value, p.frontier_attempt_id);
    assert_eq!(
        store.frontier_history(p.id).unwrap().len(),
        3,
        "both switches kept on seed 0"
    );

    let out = env.ok(&["findings", "recheck", "p", "--seeds", "5", "--json"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{r:#}");
    let (n, a) = (&steps[0], &steps[1]);
    assert_eq!((n["seq"].as_i64(), a["seq"].as_i64()), (Some(2), Some(3)));
    assert_eq!(
        r["seeds"],
        serde_json::json!([1000, 1001, 1002, 1003, 1004])
    );
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    // `n` was kept for a gain of about 0.5 that does not hold on fresh seeds.
    assert!((f(&n["claimed"]) - 0.5).abs() < 0.1, "{n:#}");
    let step = &n["effect"];
    assert!(f(&step["low"]) <= 0.0 && f(&step["high"]) >= 0.0, "{n:#}");
    assert!(f(&step["mean"]).abs() < 0.1, "{n:#}");
    // Without `n` the frontier loses nothing; without `a` it loses about 1.
    let carries = |s: &serde_json::Value| {
        assert_eq!(s["ablation"]["kind"], "measured", "{s:#}");
        s["ablation"]["carries"].clone()
    };
    let (cn, ca) = (carries(n), carries(a));
    assert!(f(&cn["low"]) <= 0.0 && f(&cn["mean"]).abs() < 0.1, "{cn:#}");
    assert!(
        f(&ca["low"]) > 0.5 && (f(&ca["mean"]) - 1.0).abs() < 0.1,
        "{ca:#}"
    );
    assert!((f(&r["total"]["mean"]) - 1.0).abs() < 0.1, "{r:#}");

    // The readable report says the same in its last line.
    let out = env.ok(&[
        "findings",
        "recheck",
        "p",
        "--seeds",
        "3",
        "--first-seed",
        "2000",
    ]);
    eprintln!("{out}");
    assert!(
        out.contains("carry the gain: #3; do not (or not shown on these seeds): #2"),
        "{out}"
    );

    // Every measurement is in the store as a `measure` attempt (chain of three, two
    // ablations, twice), on the fresh seeds; the frontier did not move; the ablated commits
    // are pinned.
    let measures: Vec<_> = common::attempts(&store, "p")
        .into_iter()
        .filter(|a| a.kind == AttemptKind::Measure)
        .collect();
    assert_eq!(measures.len(), 10);
    for m in &measures {
        let runs = store.runs_of_attempt(m.id).unwrap();
        assert!(runs.len() == 5 || runs.len() == 3, "{runs:?}");
        assert!(runs.iter().all(|r| r.seed >= 1000), "{runs:?}");
    }
    let p = store.program("p").unwrap();
    assert_eq!((p.frontier_value, p.frontier_attempt_id), frontier);
    let repo = picidae_git::Repo::open(&env.bench).unwrap();
    let pinned = repo.list_refs("refs/picidae/p/ablations/").unwrap();
    assert_eq!(pinned.len(), 2, "{pinned:?}");
    let (_, without_a) = pinned.iter().find(|(r, _)| r.ends_with("000003")).unwrap();
    assert_eq!(repo.file_at(without_a, "a.txt").unwrap().unwrap(), b"0\n");
    assert_eq!(repo.file_at(without_a, "n.txt").unwrap().unwrap(), b"1\n");
}

#[test]
fn a_recheck_needs_a_kept_chain_and_two_seeds() {
    let env = env();
    let out = env.picidae(&["findings", "recheck", "p"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no frontier yet"), "{}", text(&out));
    env.ok(&["run", "p", "-n", "0", "--plain"]);
    let out = env.picidae(&["findings", "recheck", "p", "--seeds", "1"]);
    assert!(text(&out).contains("at least 2 seeds"), "{}", text(&out));
    let out = env.ok(&["findings", "recheck", "p", "--seeds", "2"]);
    assert!(out.contains("nothing was kept"), "{out}");
}
