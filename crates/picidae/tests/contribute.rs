//! `picidae contribute`, a contributor's own loop against a hub (`picidae serve` over
//! loopback HTTP): what it keeps goes to the hub as claims, one at a time, each applying on
//! the frontier the hub holds; the hub verifies them.

mod common;

use common::hub::*;
use common::text;
use picidae_store::ContributionState;

/// `picidae contribute`: the contributor's own loop, on its own machine, on the fetched
/// frontier; what it keeps goes to the hub as claims, one in flight at a time, each the
/// change from the state the hub verified last, with the value it was kept at; the hub
/// verifies them, and each run goes on where the last stopped without sending a claim twice.
#[test]
fn a_contributors_own_loop_submits_what_it_keeps() {
    let env = score_env("", SCORE_RUN, &[]);
    let honest = token(&env, "honest");
    let (hub, addr) = spawn_hub(&env);
    wait_baseline(&env);
    let agent = lowering_agent(&env);
    let dir = env.path("mine");
    let contribute = |n: &str| contribute(&addr, &honest, &dir, &agent, n);
    let claims = || {
        let store = env.store();
        let p = store.program("p").unwrap();
        let mut c = store.contributions(p.id, None).unwrap();
        c.sort_by_key(|c| c.id);
        c
    };
    // The hub's program is paused while the contributor works, so a claim waits for its
    // verdict for as long as the test says.
    let judge = |id: i64| {
        env.ok(&["program", "resume", "p"]);
        assert_eq!(wait_decided(&env, id), ContributionState::Verified);
        env.ok(&["program", "pause", "p"]);
    };
    env.ok(&["program", "pause", "p"]);
    // Two keeps (90, 80): the first is sent; the second waits while the first is judged.
    let out = contribute("2");
    assert_eq!(out.matches("queued on the hub").count(), 1, "{out}");
    assert!(out.contains("waits for the hub's verdict"), "{out}");
    assert!(
        !dir.join("bench/gold").exists() && dir.join("bench/run.sh").is_file(),
        "{out}"
    );
    judge(claims()[0].id);
    // Next time the waiting keep goes first, then one more keep (70) waits in turn.
    let out = contribute("1");
    assert_eq!(out.matches("queued on the hub").count(), 1, "{out}");
    assert!(out.contains("waits for the hub's verdict"), "{out}");
    judge(claims()[1].id);
    let out = contribute("0");
    assert_eq!(out.matches("queued on the hub").count(), 1, "{out}");
    judge(claims()[2].id);

    let claims = claims();
    let claimed: Vec<f64> = claims.iter().map(|c| c.claimed_value).collect();
    assert_eq!(claimed, [90.0, 80.0, 70.0], "no claim sent twice");
    let mut from = 100.0;
    for c in &claims {
        assert_eq!(c.contributor, "honest");
        // Each claim starts from the state the hub verified last, and is measured as claimed.
        let change = format!("\n-{from}\n+{}\n", c.claimed_value);
        assert!(c.patch.contains(&change), "{}", c.patch);
        assert!(
            c.patch.starts_with("diff --git a/value.txt b/value.txt"),
            "{}",
            c.patch
        );
        assert_eq!(c.measured_value, Some(c.claimed_value), "{c:?}");
        from = c.claimed_value;
    }
    assert_eq!(env.store().program("p").unwrap().frontier_value, Some(70.0));
    let board = get_json(&addr, "/api/programs/p/leaderboard", &honest);
    assert_eq!(board[0]["contributor"], "honest", "{board}");
    assert_eq!(board[0]["verified"], 3, "{board}");
    unsafe {
        libc::kill(hub.id() as i32, libc::SIGINT);
    }
    let out = hub.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// `contribute` follows the hub's frontier: a contributor who fetched the frontier at 100
/// while another's claim moved it to 90 goes on from 90 (a new local program on the new
/// frontier), so its claim applies there and is verified, instead of conflicting.
#[test]
fn contribute_goes_on_from_the_frontier_others_moved() {
    let env = score_env("", SCORE_RUN, &[]);
    let (alice, bob) = (token(&env, "alice"), token(&env, "bob"));
    let (mut hub, addr) = spawn_hub(&env);
    wait_baseline(&env);
    let agent = lowering_agent(&env);
    let contribute =
        |token: &str, dir: &str, n: &str| contribute(&addr, token, &env.path(dir), &agent, n);
    // Bob fetches the frontier at 100; then Alice's claim moves it to 90.
    contribute(&bob, "bob", "0");
    let out = contribute(&alice, "alice", "1");
    assert!(out.contains("queued on the hub"), "{out}");
    let store = env.store();
    let p = store.program("p").unwrap();
    let first = store.contributions(p.id, None).unwrap()[0].id;
    assert_eq!(wait_decided(&env, first), ContributionState::Verified);
    // Bob catches up before his attempt: his claim starts from 90.
    let out = contribute(&bob, "bob", "1");
    assert!(out.contains("the hub's frontier moved"), "{out}");
    assert!(out.contains("queued on the hub"), "{out}");
    let store = env.store();
    let bobs = store.contributions(p.id, None).unwrap().remove(0);
    assert_eq!(bobs.contributor, "bob");
    assert!(bobs.patch.contains("\n-90\n+80\n"), "{}", bobs.patch);
    assert_eq!(wait_decided(&env, bobs.id), ContributionState::Verified);
    assert_eq!(env.store().program("p").unwrap().frontier_value, Some(80.0));
    unsafe {
        libc::kill(hub.id() as i32, libc::SIGINT);
    }
    assert!(hub.wait().unwrap().success());
}
