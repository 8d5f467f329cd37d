//! Untrusted contributors against one hub (`picidae serve`) over loopback HTTP: three scripted
//! contributors with contributor tokens submit patches to an open program whose loop verifies
//! them on its own runs.
//!
//! - An honest one: its real gain is verified, credited on the leaderboard, and moves the
//!   frontier.
//! - A faker: it claims a gain its patch does not have; the claim is refuted, and its next
//!   claim, equal to an honest one's, is verified after it (its reputation fell).
//! - A flooder: outside the boundary, oversized, a repeat of a tried idea, and past its quota;
//!   each refused before any compute, with the reason, and recorded.
//! - Quotas of GPU-hours and money per contributor.
//!
//! A contributor's own loop (`picidae contribute`) is `tests/contribute.rs`'s.
//!
//! From the store: no refuted claim ever moved the frontier, refusals cost no run, and the
//! contributor tokens are refused on every other route.

mod common;

use std::time::Duration;

use common::hub::*;
use common::{bin, http, text, wait_until, Env};
use picidae_store::ContributionState;

#[test]
fn claims_count_only_once_the_hub_reproduces_them() {
    // The program's own agent changes nothing: every gain comes from contributors.
    let env = score_env("", SCORE_RUN, &["--quota-runs", "3", "--max-patch-kb", "2"]);
    let (honest, faker, flooder) = (
        token(&env, "honest"),
        token(&env, "faker"),
        token(&env, "flooder"),
    );
    let (hub, addr) = spawn_hub(&env);
    wait_baseline(&env);
    let base = env.store().program("p").unwrap().base_commit;

    // What a contributor sees of the program.
    let public = get_json(&addr, "/api/programs/p/public", &faker);
    assert_eq!(public["frontier_commit"], base.as_str());
    assert_eq!(public["goal"], "minimize");

    // The faker claims 50 for a change that makes things worse: refuted.
    let fake_id = queued(
        &addr,
        &faker,
        &base,
        &value_patch("100", "150"),
        "halve it",
        50.0,
    );
    let store = env.store();
    assert_eq!(store.contribution(fake_id).unwrap().claimed_gain, 50.0);
    assert_eq!(wait_decided(&env, fake_id), ContributionState::Refuted);

    // The honest one claims what its change does: verified, and the frontier moves.
    let real_id = queued(
        &addr,
        &honest,
        &base,
        &value_patch("100", "80"),
        "lower it",
        80.0,
    );
    assert_eq!(wait_decided(&env, real_id), ContributionState::Verified);
    let store = env.store();
    let p = store.program("p").unwrap();
    assert_eq!(p.frontier_value, Some(80.0));
    let verified = store.contribution(real_id).unwrap();
    assert_eq!(verified.measured_gain, Some(20.0));
    let kept = store.attempt(verified.attempt_id.unwrap()).unwrap();
    assert_eq!(kept.proposer, "contributor:honest");
    assert_eq!(p.frontier_attempt_id, Some(kept.id));

    // Equal claims, the faker's first: the honest one is verified first all the same.
    env.ok(&["program", "pause", "p"]);
    let frontier = p.frontier_commit.clone().unwrap();
    // The faker's change touches only the free last line: the score does not move.
    let nudge = lines_patch(&value_lines("80", "free"), &value_lines("80", "nudged"));
    let f2 = queued(&addr, &faker, &frontier, &nudge, "nudge", 70.0);
    let r2 = queued(
        &addr,
        &honest,
        &frontier,
        &value_patch("80", "70"),
        "lower",
        70.0,
    );
    env.ok(&["program", "resume", "p"]);
    assert_eq!(wait_decided(&env, r2), ContributionState::Verified);
    assert_eq!(wait_decided(&env, f2), ContributionState::Refuted);
    let store = env.store();
    let seq = |id: i64| {
        let c = store.contribution(id).unwrap();
        store.attempt(c.attempt_id.unwrap()).unwrap().seq
    };
    assert!(seq(r2) < seq(f2), "the faker's claim was verified first");

    // The flooder: each refused before compute (422), with the reason, and recorded.
    env.ok(&["program", "pause", "p"]);
    let runs_before = store.run_count(None).unwrap();
    let frontier = store.program("p").unwrap().frontier_commit.unwrap();
    let outside = "diff --git a/run.sh b/run.sh\n--- a/run.sh\n+++ b/run.sh\n@@ -1 +1 @@\n-echo \"score: $(head -n 1 value.txt)\"\n+echo \"score: 0\"\n";
    let big = value_patch("70", &"1".repeat(3000));
    let cases: [(&str, &str, &str); 3] = [
        (
            outside,
            frontier.as_str(),
            "run.sh: not matched by boundary.editable",
        ),
        (big.as_str(), frontier.as_str(), "at most 2 KiB"),
        // The faker's refuted idea, on the commit it was tried on.
        (&value_patch("100", "150"), base.as_str(), "tried already"),
    ];
    for (patch, parent, why) in cases {
        let (status, answer) = submit(&addr, &flooder, parent, patch, "flood", 1.0);
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["state"], "refused");
        let reason = answer["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(why), "{reason}");
    }
    // Past its quota of 3 runs (queued claims count one each): the fourth is refused.
    for (k, to) in ["60", "61", "62", "63"].iter().enumerate() {
        let (status, answer) = submit(&addr, &flooder, &frontier, &value_patch("70", to), to, 10.0);
        if k < 3 {
            assert_eq!(status, 202, "{answer}");
        } else {
            assert_eq!(status, 422, "{answer}");
            assert!(
                answer["reason"].as_str().unwrap().contains("quota"),
                "{answer}"
            );
        }
    }
    assert_eq!(
        store.run_count(None).unwrap(),
        runs_before,
        "a refusal cost a run"
    );

    // The contributor's own list, and the leaderboard.
    let mine = get_json(&addr, "/api/programs/p/contributions", &flooder);
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 7);
    assert!(mine.iter().all(|c| c["contributor"] == "flooder"));
    let board = get_json(&addr, "/api/programs/p/leaderboard", &faker);
    let board = board.as_array().unwrap();
    assert_eq!(board[0]["contributor"], "honest");
    assert_eq!(board[0]["verified"], 2);
    assert_eq!(board[0]["verified_gain"], 30.0);
    let faker_row = board.iter().find(|r| r["contributor"] == "faker").unwrap();
    assert_eq!(
        (
            faker_row["verified"].as_i64(),
            faker_row["refuted"].as_i64()
        ),
        (Some(0), Some(2))
    );
    assert_eq!(faker_row["verified_ratio"], 0.0);
    let flood_row = board
        .iter()
        .find(|r| r["contributor"] == "flooder")
        .unwrap();
    assert_eq!(flood_row["refused"], 4);

    // `picidae submit` from a contributor's own clone: a commit on the public frontier.
    let clone = env.path("alice-clone");
    common::git(
        &env.path(""),
        &[
            "clone",
            "-q",
            env.bench.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    common::git(
        &clone,
        &["fetch", "-q", "origin", "refs/picidae/p/frontier"],
    );
    common::git(&clone, &["checkout", "-q", "FETCH_HEAD"]);
    std::fs::write(
        clone.join("value.txt"),
        value_lines("65", "free").join("\n") + "\n",
    )
    .unwrap();
    common::git(
        &clone,
        &[
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@a",
            "commit",
            "-qam",
            "lower it to 65",
        ],
    );
    let hub_url = format!("http://{addr}");
    let submit = |extra: &[&str]| {
        bin()
            .args(["submit", "p", "--hub", &hub_url, "--token", &honest])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = submit(&[
        "--commit",
        "HEAD",
        "--repo",
        clone.to_str().unwrap(),
        "--claimed",
        "65",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("queued"),
        "{}",
        text(&out)
    );
    // The same commit again: a repeat, refused with the reason, and the command fails.
    let out = submit(&[
        "--commit",
        "HEAD",
        "--repo",
        clone.to_str().unwrap(),
        "--claimed",
        "65",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        text(&out)
    );
    let out = submit(&["--status"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains("queued") && listed.contains("lower it to 65"),
        "{listed}"
    );

    // Without a token nothing is read; a contributor's token opens nothing else: reads,
    // steering, workers, the cockpit's data.
    let (status, _) = http(&addr, "GET", "/api/programs/p/attempts", None, None);
    assert_eq!(status, 401);
    for (method, path) in [
        ("GET", "/api/programs"),
        ("GET", "/api/programs/p"),
        ("GET", "/api/programs/p/attempts"),
        ("GET", "/api/findings"),
        ("GET", "/api/memory/search?q=value"),
        ("POST", "/api/programs/p/pause"),
        ("POST", "/api/programs/p/resume"),
        ("POST", "/api/programs/p/weight"),
        ("POST", "/api/programs/p/followups"),
        ("POST", "/api/programs/p/attempts/1/retry"),
        ("POST", "/api/workers"),
    ] {
        let (status, answer) = http(&addr, method, path, Some(&honest), Some("{}"));
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    let (status, answer) = http(&addr, "GET", "/api/cockpit/status", Some(&honest), None);
    assert!(matches!(status, 401 | 403), "{status}: {answer}");

    // No refuted claim is on the frontier's history.
    let store = env.store();
    let p = store.program("p").unwrap();
    for c in store.contributions(p.id, None).unwrap() {
        if c.state != ContributionState::Verified {
            if let Some(a) = c.attempt_id {
                assert!(
                    store
                        .frontier_history(p.id)
                        .unwrap()
                        .iter()
                        .all(|m| m.attempt_id != a),
                    "{c:?}"
                );
            }
        }
    }

    // The cockpit's program page shows the leaderboard, in a real Chromium (read token).
    if let Some(b) = common::browser::browser() {
        let viewer = env.ok(&["token", "create", "viewer", "--read-only"]);
        let viewer = viewer.lines().nth(1).unwrap().trim().to_string();
        let out = common::browser::drive(
            b,
            "leaderboard",
            &format!("http://{addr}"),
            &[("COCKPIT_TOKEN", &viewer)],
        );
        assert!(
            out.contains("OK leader honest | 3 | 2 | 0 | 1 | 100% | 30"),
            "{out}"
        );
        assert!(
            out.contains("OK leader faker | 2 | 0 | 2 | 0 | 0%"),
            "{out}"
        );
    }

    unsafe {
        libc::kill(hub.id() as i32, libc::SIGINT);
    }
    let out = hub.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// With a hidden evaluator: a claim the hidden metric agrees with is verified, one that games
/// the visible metric (better score, worse hidden value) is refuted as suspected overfit, and
/// no answer a contributor can get holds a hidden number: the hidden values here (7.7777 and
/// 12.3456) appear nowhere in them.
#[test]
fn hidden_numbers_never_reach_a_contributor() {
    let env = Env::truth(
        common::GOOD_EVALUATOR,
        "seeds = 3\nbaseline_seeds = 3\nmax_seeds = 6",
    );
    env.command_program("p", &env.bench.clone(), "sleep 0.2");
    env.ok(&["program", "open", "p"]);
    let (honest, gamer) = (token(&env, "honest"), token(&env, "gamer"));
    let (hub, addr) = spawn_hub(&env);
    wait_until(
        Duration::from_secs(60),
        || env.store().program("p").unwrap().frontier_value.is_some(),
        "the baseline",
    );
    let base = env.store().program("p").unwrap().base_commit;
    let patch = |to: &str| {
        format!(
            "diff --git a/value.txt b/value.txt\n--- a/value.txt\n+++ b/value.txt\n@@ -1 +1 @@\n-10 10 base\n+{to}\n"
        )
    };
    let mut seen = String::new();
    // Submit and wait for the verdict, keeping the answer the contributor saw.
    let mut verdict = |token: &str, to: &str, hypothesis: &str, claimed: f64| {
        let (status, answer) = submit(&addr, token, &base, &patch(to), hypothesis, claimed);
        assert_eq!(status, 202, "{answer}");
        seen.push_str(&answer.to_string());
        wait_contribution(&env, answer["id"].as_i64().unwrap())
    };
    let gamed = verdict(&gamer, "5 12.3456 gamed", "game it", 5.0);
    let real = verdict(&honest, "6 7.7777 real", "improve it", 6.0);
    assert_eq!(gamed.state, ContributionState::Refuted, "{gamed:?}");
    let why = gamed.reason.clone().unwrap_or_default();
    assert!(why.contains("hidden evaluator disagrees"), "{gamed:?}");
    assert_eq!(real.state, ContributionState::Verified, "{real:?}");

    // The hidden evaluator did score both: its numbers are in the store, for people.
    let store = env.store();
    let hidden: Vec<String> = picidae_store::testing::table_rows(&store, "hidden_results")
        .unwrap()
        .into_iter()
        .map(|r| format!("{r:?}"))
        .collect();
    assert!(hidden.iter().any(|r| r.contains("7.7777")), "{hidden:?}");
    assert!(hidden.iter().any(|r| r.contains("12.3456")), "{hidden:?}");

    for t in [&honest, &gamer] {
        for path in [
            "/api/programs/p/public",
            "/api/programs/p/contributions",
            "/api/programs/p/leaderboard",
        ] {
            seen.push_str(&get_json(&addr, path, t).to_string());
        }
    }
    assert!(seen.contains("hidden evaluator disagrees"), "{seen}");

    // `picidae fetch`: the frontier's files without the hidden evaluator's (the gold
    // directory stays home), and a commit made there is submitted against the frontier.
    let hub_url = format!("http://{addr}");
    let into = env.path("fetched");
    let contributor = |args: &[&str]| {
        bin()
            .args(args)
            .args(["--hub", &hub_url, "--token", &honest])
            .output()
            .unwrap()
    };
    let out = contributor(&["fetch", "p", "--into", into.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let frontier = env.store().program("p").unwrap().frontier_commit.unwrap();
    assert_eq!(
        std::fs::read_to_string(into.join("value.txt")).unwrap(),
        "6 7.7777 real\n"
    );
    assert!(into.join("run.sh").is_file());
    assert!(!into.join("gold").exists(), "the hidden files left the hub");
    std::fs::write(into.join("value.txt"), "5.5 7.5 more\n").unwrap();
    common::git(
        &into,
        &[
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@a",
            "commit",
            "-qam",
            "lower more",
        ],
    );
    let out = contributor(&[
        "submit",
        "p",
        "--commit",
        "HEAD",
        "--repo",
        into.to_str().unwrap(),
        "--claimed",
        "5.5",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let store = env.store();
    let p = store.program("p").unwrap();
    let last = store.contributions(p.id, None).unwrap().remove(0);
    assert_eq!(last.parent_commit, frontier, "{last:?}");
    assert_eq!(last.hypothesis, "lower more");
    // Without a contributor token, no export.
    let (status, _) = http(&addr, "GET", "/api/programs/p/public/bundle", None, None);
    assert_eq!(status, 401);
    for number in ["7.7777", "12.3456"] {
        assert!(
            !seen.contains(number),
            "{number} reached a contributor: {seen}"
        );
    }
    // `picidae contribute` on a program with a hidden evaluator: the contributor's copy has
    // no gold cases, so its local loop judges on visible numbers alone (no failed
    // calibration holding every finding back) and sends what it keeps.
    let agent = env.path("three.sh");
    std::fs::write(
        &agent,
        "echo '3 7.0 mine' > value.txt\necho 'HYPOTHESIS: three'\n",
    )
    .unwrap();
    let said = contribute(
        &addr,
        &honest,
        &env.path("mine"),
        &format!("sh {}", agent.display()),
        "1",
    );
    assert!(said.contains("→ contribution #"), "{said}");
    assert!(!said.contains("calibration"), "{said}");
    unsafe {
        libc::kill(hub.id() as i32, libc::SIGINT);
    }
    let out = hub.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// Per-contributor GPU-hour and money quotas: runs that hold a GPU for a second each; a
/// contributor whose verified claims used 0.0005 GPU-hours (1.8 GPU-seconds) gets no
/// further claim accepted, and likewise at $1.50 when a GPU-hour costs $3600; refused
/// before any compute, with the reason.
#[test]
fn a_contributor_may_spend_only_its_gpu_hour_and_money_quota() {
    let env = score_env(
        "\n[run.resources]\ngpus = 1\n",
        &format!("sleep 1\n{SCORE_RUN}"),
        &["--quota-gpu-hours", "0.0005"],
    );
    let honest = token(&env, "honest");
    let (mut hub, addr) = spawn_hub_with(&env, &["--gpus", "0"]);
    wait_baseline(&env);
    let public = get_json(&addr, "/api/programs/p/public", &honest);
    assert_eq!(public["quota_gpu_hours"], 0.0005, "{public}");
    let frontier = |from: &str, to: &str| {
        let parent = env.store().program("p").unwrap().frontier_commit.unwrap();
        let id = queued(
            &addr,
            &honest,
            &parent,
            &value_patch(from, to),
            "lower",
            0.0,
        );
        assert_eq!(wait_decided(&env, id), ContributionState::Verified);
    };
    frontier("100", "90");
    frontier("90", "80");
    let store = env.store();
    let p = store.program("p").unwrap();
    let token_id = store.contributions(p.id, None).unwrap()[0].token_id;
    let spent = store.contributor_spend(p.id, token_id).unwrap();
    assert!(spent.gpu_hours >= 0.0005, "{spent:?}");
    let parent = p.frontier_commit.unwrap();
    let runs_before = store.run_count(None).unwrap();
    let (status, answer) = submit(
        &addr,
        &honest,
        &parent,
        &value_patch("80", "70"),
        "more",
        70.0,
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.to_string().contains("GPU-hours"), "{answer}");
    // The same terms in dollars.
    env.ok(&["program", "open", "p", "--quota-usd", "1.5"]);
    env.ok(&["program", "set", "p", "--gpu-hour-usd", "3600"]);
    let (status, answer) = submit(
        &addr,
        &honest,
        &parent,
        &value_patch("80", "70"),
        "more",
        70.0,
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.to_string().contains("of your $1.50"), "{answer}");
    assert_eq!(env.store().run_count(None).unwrap(), runs_before);
    unsafe {
        libc::kill(hub.id() as i32, libc::SIGINT);
    }
    assert!(hub.wait().unwrap().success());
}
