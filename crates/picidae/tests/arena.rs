//! `picidae arena` end to end on a benchmark with known ground truth (the visible score is the
//! value plus seed noise; the hidden evaluator reads the true value). Scripted agents act on
//! what their program.md says: "large steps" lowers the true value by 3 per attempt, "small
//! steps" by 1.5, and "game the metric" lowers the visible value by 3 while the truth gets
//! worse. The arena must rank large > small > game on the hidden score, keep every program
//! within its budget, and interleave the programs one attempt at a time (also when three of
//! them run at once).

mod common;

use std::collections::BTreeMap;

use common::{text, Env, GOOD_EVALUATOR};
use picidae_store::AttemptFilter;

const AGENT: &str = r#"#!/bin/sh
set -e
cat > /dev/null
md=$(cat "$PICIDAE_PROGRAM_MD")
read v h tag < value.txt
case "$md" in
  *"large steps"*) v=$(awk -v x="$v" 'BEGIN{print x-3}'); h=$(awk -v x="$h" 'BEGIN{print x-3}') ;;
  *"small steps"*) v=$(awk -v x="$v" 'BEGIN{print x-1.5}'); h=$(awk -v x="$h" 'BEGIN{print x-1.5}') ;;
  *"game the metric"*) v=$(awk -v x="$v" 'BEGIN{print x-3}'); h=$(awk -v x="$h" 'BEGIN{print x+1}') ;;
esac
echo "$v $h a$PICIDAE_ATTEMPT" > value.txt
echo "HYPOTHESIS: value $v"
"#;

#[test]
fn the_arena_ranks_program_md_files_by_true_gain_within_one_budget() {
    let env = Env::truth(
        GOOD_EVALUATOR,
        "seeds = 3\nbaseline_seeds = 3\nsequential = false",
    );
    let agent = env.path("arena-agent.sh");
    std::fs::write(&agent, AGENT).unwrap();
    for (label, text) in [
        (
            "large",
            "Take large steps: change the value a lot each time.\n",
        ),
        (
            "small",
            "Take small steps: change the value a little each time.\n",
        ),
        ("game", "Whatever it takes: game the metric.\n"),
    ] {
        std::fs::write(env.path(&format!("{label}.md")), text).unwrap();
    }
    let md_of = |l: &str| env.path(&format!("{l}.md"));
    let agent_cmd = format!("sh {}", agent.display());
    let out = env.arena_create(
        "md",
        &[
            ("large", &md_of("large")),
            ("small", &md_of("small")),
            ("game", &md_of("game")),
        ],
        &agent_cmd,
        &["--budget-runs", "12", "--trials", "2"],
    );
    assert!(out.contains("6 programs"), "{out}");
    // `picidae serve` leaves an arena's programs to `arena run` (whose rounds keep the
    // turns fair): a few seconds of it start none of them.
    let mut serve = common::bin()
        .arg("--project")
        .arg(&env.project)
        .args(["serve", "--slots", "2", "--no-api"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    unsafe {
        libc::kill(serve.id() as i32, libc::SIGINT);
    }
    assert!(serve.wait().unwrap().success());
    assert_eq!(env.store().run_count(None).unwrap(), 0);

    // Three programs' turns at once; a round still ends only when all six have had theirs.
    let o = env.picidae(&["arena", "run", "md", "--parallel", "3"]);
    assert!(o.status.success(), "{}", text(&o));

    let store = env.store();
    let arena = store.arena("md").unwrap().unwrap();
    let entries = store.arena_entries(arena.id).unwrap();
    assert_eq!(entries.len(), 6);
    // Budget: no program spends more than its 12 runs; every one spent most of it.
    // Interleaving: each program's turn k comes before any program's turn k + 1.
    let mut by_seq: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for e in &entries {
        let spend = store.program_spend(e.program_id).unwrap();
        let per_attempt: Vec<(i64, String, usize)> = store
            .attempts(&AttemptFilter {
                program_id: Some(e.program_id),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|a| {
                let n = store.all_runs_of_attempt(a.id).unwrap().len();
                (a.seq, a.status.to_string(), n)
            })
            .collect();
        assert!(
            spend.runs <= 12,
            "{}: {} runs: {per_attempt:?}",
            e.label,
            spend.runs
        );
        assert!(spend.runs >= 6, "{}: only {} runs", e.label, spend.runs);
        for a in store
            .attempts(&AttemptFilter {
                program_id: Some(e.program_id),
                ..Default::default()
            })
            .unwrap()
        {
            // The first turn of a program makes its baseline (attempt 1) and attempt 2.
            by_seq.entry(a.seq.max(2)).or_default().push(a.id);
        }
    }
    let seqs: Vec<i64> = by_seq.keys().copied().collect();
    for w in seqs.windows(2) {
        let latest_k = by_seq[&w[0]].iter().max().unwrap();
        let earliest_next = by_seq[&w[1]].iter().min().unwrap();
        assert!(
            latest_k < earliest_next,
            "turn {} of one program started before turn {} of another: {by_seq:?}",
            w[1],
            w[0]
        );
    }

    let o = env.picidae(&["arena", "show", "md", "--seeds", "3", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["hidden"], true, "{v}");
    let ranking: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert_eq!(ranking, ["large", "small", "game"], "{v:#}");
    let entry_of = |l: &str| {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["label"] == l)
            .unwrap()
            .clone()
    };
    let (large, game) = (entry_of("large"), entry_of("game"));
    assert!(large["rate"].as_f64().unwrap() > 0.0, "{large}");
    assert_eq!(large["false_keeps"], 0, "{large}");
    assert!(game["rate"].as_f64().unwrap() <= 0.0, "{game}");
    // Every keep the gaming entry got, the truth refutes.
    assert_eq!(game["false_keeps"], game["keeps"], "{game}");
    // Each trial's truth is real: the large entry's frontier is truly below the base.
    for t in large["trials"].as_array().unwrap() {
        assert!(
            t["frontier"].as_f64().unwrap() < t["base"].as_f64().unwrap(),
            "{t}"
        );
    }
    // A second show reads the kept measurements: no new runs.
    let runs_before = store.run_count(None).unwrap();
    let o = env.picidae(&["arena", "show", "md"]);
    assert!(o.status.success(), "{}", text(&o));
    let shown = text(&o);
    assert!(shown.contains("1. large"), "{shown}");
    assert_eq!(env.store().run_count(None).unwrap(), runs_before);
    // The record: setup, ranking, trials and each entry's text.
    let report = env.path("arena.md");
    env.ok(&["arena", "report", "md", "-o", report.to_str().unwrap()]);
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.starts_with("# Arena md"), "{md}");
    assert!(
        md.contains("| 1 | large |") && md.contains("| 3 | game |"),
        "{md}"
    );
    assert!(
        md.contains("Take large steps") && md.contains("game the metric"),
        "{md}"
    );
    assert!(md.contains("`md-small-2`"), "{md}");
    assert_eq!(env.store().run_count(None).unwrap(), runs_before);

    // The meta-loop: a scripted meta-agent reads the scored arena and writes the next entry
    // after the best one; it runs in the next round under the same budget.
    let meta = env.path("meta.sh");
    let seen = env.path("meta-saw.md");
    std::fs::write(
        &meta,
        format!(
            "cat > '{seen}'\nbest=$(grep -m1 '^| 1 |' '{seen}' | cut -d'|' -f3 | tr -d ' ')\n\
             printf '```markdown\\nLearned from %s: take large steps, boldly.\\n```\\n' \"$best\"\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    let out = env.ok(&[
        "arena",
        "evolve",
        "md",
        "--agent-command",
        &format!("sh {}", meta.display()),
    ]);
    assert!(out.contains("entry gen1 added"), "{out}");
    let saw = std::fs::read_to_string(&seen).unwrap();
    assert!(
        saw.contains("Take small steps") && saw.contains("| 1 | large |"),
        "{saw}"
    );
    let o = env.picidae(&["arena", "run", "md"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = env.picidae(&["arena", "show", "md", "--seeds", "3", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let gen1 = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == "gen1")
        .unwrap_or_else(|| panic!("{v:#}"))
        .clone();
    assert_eq!(gen1["trials"].as_array().unwrap().len(), 2, "{gen1}");
    assert!(gen1["rate"].as_f64().unwrap() > 0.0, "{gen1}");
    let store = env.store();
    let arena = store.arena("md").unwrap().unwrap();
    let texts: Vec<String> = store
        .arena_entries(arena.id)
        .unwrap()
        .into_iter()
        .filter(|e| e.label == "gen1")
        .map(|e| e.program_md)
        .collect();
    assert_eq!(texts.len(), 2);
    assert_eq!(texts[0], "Learned from large: take large steps, boldly.\n");
    for e in store.arena_entries(arena.id).unwrap() {
        assert!(store.program_spend(e.program_id).unwrap().runs <= 12);
    }

    // The memory holds each program.md with its result: what worked can be asked for.
    let o = env.picidae(&["memory", "programs", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let hits: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hits = hits.as_array().unwrap();
    let mut labels: Vec<&str> = hits.iter().map(|h| h["label"].as_str().unwrap()).collect();
    labels.sort();
    assert_eq!(labels, ["game", "gen1", "large", "small"], "{hits:?}");
    // Best placed first, the gaming entry last of its arena, each with the stored ranking.
    let last = &hits[3];
    assert_eq!(last["label"], "game", "{hits:?}");
    assert_eq!(last["result"]["rank"], last["result"]["entries"], "{last}");
    assert_eq!(hits[0]["result"]["rank"], 1, "{hits:?}");
    let out = env.ok(&["memory", "programs", "game metric"]);
    assert!(
        out.starts_with("arena md, entry game: rank 4 of 4"),
        "{out}"
    );
    assert!(!out.contains("entry large"), "{out}");

    // A new arena on the same benchmark: its meta-agent is also shown what the memory holds
    // from the first one.
    env.arena_create(
        "md2",
        &[("small", &md_of("small")), ("game", &md_of("game"))],
        &agent_cmd,
        &["--budget-runs", "4", "--trials", "1"],
    );
    env.ok(&[
        "arena",
        "evolve",
        "md2",
        "--seeds",
        "2",
        "--agent-command",
        &format!("sh {}", meta.display()),
    ]);
    let saw = std::fs::read_to_string(&seen).unwrap();
    let memory = saw
        .split_once("From the memory")
        .unwrap_or_else(|| panic!("{saw}"))
        .1;
    assert!(memory.contains("arena md, entry large: rank"), "{memory}");
    assert!(memory.contains("Take large steps"), "{memory}");
    assert!(!memory.contains("arena md2"), "{memory}");
}

/// Entries that differ in agent and policy, not program.md: an entries file gives one entry
/// an agent that takes steps of 3 and another one that takes steps of 1, both with the same
/// program.md; the bigger steps rank first, each program runs its entry's agent and policy,
/// and the record says which. A mistake in the file names its line and field.
#[test]
fn entries_may_differ_in_agent_and_policy() {
    let env = Env::truth(GOOD_EVALUATOR, "seeds = 1\nbaseline_seeds = 1");
    let agent = env.path("step.sh");
    std::fs::write(
        &agent,
        "cat > /dev/null\nread v h tag < value.txt\n\
         v=$(awk -v x=\"$v\" -v s=\"$STEP\" 'BEGIN{print x-s}')\n\
         h=$(awk -v x=\"$h\" -v s=\"$STEP\" 'BEGIN{print x-s}')\n\
         echo \"$v $h a$PICIDAE_ATTEMPT\" > value.txt\necho \"HYPOTHESIS: value $v\"\n",
    )
    .unwrap();
    std::fs::write(env.path("same.md"), "Lower the value.\n").unwrap();
    let file = env.path("arena.toml");
    let entries = |policy: &str| {
        format!(
            "[[entry]]\nlabel = \"big\"\nprogram_md = \"same.md\"\n\
             agent = {{ agent = \"command\", agent_command = \"STEP=3 sh {a}\" }}\n\n\
             [[entry]]\nlabel = \"tiny\"\nprogram_md = \"same.md\"\n\
             agent = {{ agent = \"command\", agent_command = \"STEP=1 sh {a}\" }}\n\
             policy = {policy}\n",
            a = agent.display()
        )
    };
    let bench = env.bench.to_str().unwrap().to_string();
    let create = |name: &str| {
        env.picidae(&[
            "arena",
            "create",
            name,
            "--benchmark",
            &bench,
            "--entries",
            file.to_str().unwrap(),
            "--budget-runs",
            "5",
            "--trials",
            "1",
        ])
    };
    std::fs::write(&file, entries("{ seedz = 2 }")).unwrap();
    let o = create("bad");
    let err = text(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("arena.toml:10") && err.contains("seedz"),
        "{err}"
    );
    assert!(env.store().arena("bad").unwrap().is_none());

    std::fs::write(&file, entries("{ min_improvement = 0.5 }")).unwrap();
    let o = create("steps");
    assert!(o.status.success(), "{}", text(&o));
    env.ok(&["arena", "run", "steps", "--parallel", "2"]);
    let store = env.store();
    for (program, step) in [("steps-big-1", "STEP=3"), ("steps-tiny-1", "STEP=1")] {
        let p = store.program(program).unwrap();
        assert!(
            p.agent["command"].as_str().unwrap().starts_with(step),
            "{program}: {}",
            p.agent
        );
        let tiny = program.contains("tiny");
        assert_eq!(
            p.policy.get("min_improvement").is_some(),
            tiny,
            "{}",
            p.policy
        );
        assert!(store.program_spend(p.id).unwrap().runs <= 5);
    }
    let o = env.picidae(&["arena", "show", "steps", "--seeds", "2", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ranking: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert_eq!(ranking, ["big", "tiny"], "{v:#}");
    let md = env.ok(&["arena", "report", "steps"]);
    assert!(md.contains("### tiny\n\nAgent `command`; policy: "), "{md}");
    assert!(md.contains("min_improvement = 0.5"), "{md}");
}
