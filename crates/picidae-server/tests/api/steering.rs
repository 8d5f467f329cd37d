//! Steering routes: pause and resume, weight, concurrency, budget and follow-ups behind a
//! write token; cancel requests for runs and retry requests for attempts.

use std::path::Path;

use picidae_core::RunStatus;
use picidae_store::Store;
use serde_json::json;

use crate::support::{get, http, post, program_status, start, started_attempt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_a_write_token() {
    let s = start(false).await;

    // No token, a malformed header, an unknown token: 401, and nothing changes.
    let r = post(s.addr, "/api/programs/demo/pause", None, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.headers.contains("www-authenticate: bearer"));
    assert!(r.json()["error"].is_string());
    assert_eq!(program_status(&s.db), "active");
    let r = http(
        s.addr,
        "POST",
        "/api/programs/demo/pause",
        &[("Authorization", "Basic dXNlcjpwYXNz")],
        None,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = post(s.addr, "/api/programs/demo/pause", Some("pcd_bogus"), None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(program_status(&s.db), "active");

    // A read-only token: 403.
    let r = post(s.addr, "/api/programs/demo/pause", Some(&s.read), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(program_status(&s.db), "active");

    // A write token pauses it, in the store.
    let r = post(s.addr, "/api/programs/demo/pause", Some(&s.write), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "paused");
    assert_eq!(program_status(&s.db), "paused");
    let r = post(s.addr, "/api/programs/demo/resume", Some(&s.write), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(program_status(&s.db), "active");
    let r = post(s.addr, "/api/programs/nope/pause", Some(&s.write), None).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Weight: validated, JSON only.
    let r = post(
        s.addr,
        "/api/programs/demo/weight",
        Some(&s.write),
        Some(json!({"weight": 2.5})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["weight"], 2.5);
    for bad in [json!({"weight": 0}), json!({"weight": -1.0})] {
        let r = post(
            s.addr,
            "/api/programs/demo/weight",
            Some(&s.write),
            Some(bad),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.json()["error"].as_str().unwrap().starts_with("weight"));
    }
    let r = post(
        s.addr,
        "/api/programs/demo/weight",
        Some(&s.write),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("weight"));
    let auth = format!("Bearer {}", s.write);
    let r = http(
        s.addr,
        "POST",
        "/api/programs/demo/weight",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(r#"{"weight": 3}"#),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    let r = post(
        s.addr,
        "/api/programs/demo/weight",
        Some(&s.read),
        Some(json!({"weight": 3})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        Store::open(&s.db).unwrap().program("demo").unwrap().weight,
        2.5
    );

    // Concurrency: 1..1000, stored with the program's policy; null goes back to the contract's.
    let r = post(
        s.addr,
        "/api/programs/demo/concurrency",
        Some(&s.write),
        Some(json!({"concurrency": 4})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["concurrency"], 4);
    let policy = Store::open(&s.db).unwrap().program("demo").unwrap().policy;
    assert_eq!(policy["concurrency"], 4, "{policy}");
    for bad in [json!({"concurrency": 0}), json!({"concurrency": 1001})] {
        let r = post(
            s.addr,
            "/api/programs/demo/concurrency",
            Some(&s.write),
            Some(bad),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("concurrency"));
    }
    let r = post(
        s.addr,
        "/api/programs/demo/concurrency",
        Some(&s.read),
        Some(json!({"concurrency": 2})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = post(
        s.addr,
        "/api/programs/demo/concurrency",
        Some(&s.write),
        Some(json!({"concurrency": null})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["concurrency"].is_null(), "{}", r.body);

    // Budget: set, refuse a missing key, clear.
    let r = post(
        s.addr,
        "/api/programs/demo/budget",
        Some(&s.write),
        Some(json!({"max_runs": 40})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["max_runs"], 40);
    let r = post(
        s.addr,
        "/api/programs/demo/budget",
        Some(&s.write),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("no budget given"),
        "{}",
        r.body
    );
    assert_eq!(
        Store::open(&s.db)
            .unwrap()
            .program("demo")
            .unwrap()
            .max_runs,
        Some(40)
    );
    let r = post(
        s.addr,
        "/api/programs/demo/budget",
        Some(&s.write),
        Some(json!({"max_runs": null})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        Store::open(&s.db)
            .unwrap()
            .program("demo")
            .unwrap()
            .max_runs,
        None
    );

    // A follow-up, authored by the token's name.
    let r = post(
        s.addr,
        "/api/programs/demo/followups",
        Some(&s.write),
        Some(json!({"text": "try a bloom filter"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["author"], "alice");
    let store = Store::open(&s.db).unwrap();
    let pid = store.program("demo").unwrap().id;
    let open = store.open_followups(pid).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].text, "try a bloom filter");
    assert_eq!(open[0].author, "alice");
    let r = post(
        s.addr,
        "/api/programs/demo/followups",
        Some(&s.write),
        Some(json!({"text": "   "})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().starts_with("text"));
    let d = get(s.addr, "/api/programs/demo").await.json();
    assert_eq!(d["followups"][0]["author"], "alice");
    assert_eq!(d["followups"][0]["text"], "try a bloom filter");
}

/// Cancelling a run records the request in the store for its coordinator: a write token is
/// needed, a finished run answers 409, an unknown one 404, and asking twice keeps the first
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_is_recorded_for_the_coordinator() {
    let s = start(false).await;
    let (running, queued, finished) = {
        let mut store = Store::open(&s.db).unwrap();
        let a = started_attempt(&mut store, "prefetch");
        let running = store.insert_run(a.id, 0, "local").unwrap().id;
        store
            .mark_run_started(running, 1, 1, "host", None, "/tmp/log")
            .unwrap();
        let queued = store.insert_run(a.id, 1, "local").unwrap().id;
        let finished = store.runs_of_attempt(a.id - 1).unwrap()[0].id;
        (running, queued, finished)
    };
    let path = format!("/api/runs/{running}/cancel");
    assert_eq!(post(s.addr, &path, None, None).await.status, 401);
    assert_eq!(post(s.addr, &path, Some(&s.read), None).await.status, 403);
    let asked = |db: &Path, id: i64| {
        !Store::open(db)
            .unwrap()
            .cancel_requested_runs(&[id])
            .unwrap()
            .is_empty()
    };
    assert!(!asked(&s.db, running));
    let r = post(s.addr, &path, Some(&s.write), None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let c = r.json();
    assert_eq!(c["run_id"], running);
    assert_eq!(c["status"], "running");
    assert_eq!(c["program"], "demo");
    assert_eq!(c["attempt_seq"], 6);
    assert!(asked(&s.db, running));
    // The store keeps the run running: stopping it is the coordinator's job.
    assert_eq!(
        Store::open(&s.db).unwrap().run(running).unwrap().status,
        RunStatus::Running
    );
    let again = post(s.addr, &path, Some(&s.write), Some(json!({}))).await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(
        again.json()["cancel_requested_at"],
        c["cancel_requested_at"]
    );
    let run = get(s.addr, &format!("/api/runs/{running}")).await.json();
    assert_eq!(run["cancel_requested"], true);
    let a = get(s.addr, "/api/programs/demo/attempts/6").await.json();
    assert_eq!(a["runs"][0]["cancel_requested"], true);
    assert_eq!(a["runs"][1]["cancel_requested"], false);

    let r = post(
        s.addr,
        &format!("/api/runs/{queued}/cancel"),
        Some(&s.write),
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["status"], "queued");

    let r = post(
        s.addr,
        &format!("/api/runs/{finished}/cancel"),
        Some(&s.write),
        None,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("already finished (succeeded)"),
        "{}",
        r.body
    );
    assert!(!asked(&s.db, finished));
    assert_eq!(
        post(s.addr, "/api/runs/12345/cancel", Some(&s.write), None)
            .await
            .status,
        404
    );
    assert_eq!(
        post(s.addr, "/api/runs/abc/cancel", Some(&s.write), None)
            .await
            .status,
        400
    );
}

/// Asking for an attempt to be verified again records one request for the program's next
/// proposal: a write token is needed, an attempt decided on one run may be retried (asking
/// twice returns the same request), one whose finding is still being verified or that was kept
/// answers 409 with the reason, an unknown one 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_request_is_recorded_for_the_next_proposal() {
    let s = start(false).await;
    let path = "/api/programs/demo/attempts/2/retry";
    assert_eq!(post(s.addr, path, None, None).await.status, 401);
    assert_eq!(post(s.addr, path, Some(&s.read), None).await.status, 403);
    let r = post(s.addr, path, Some(&s.write), None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let first = r.json();
    assert_eq!(first["attempt_seq"], 2);
    assert_eq!(first["author"], "alice");
    assert_eq!(first["new"], true);
    let again = post(s.addr, path, Some(&s.write), None).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["id"], first["id"]);
    let store = Store::open(&s.db).unwrap();
    let p = store.program("demo").unwrap();
    let open = store.open_retries(p.id).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(store.attempt(open[0].attempt_id).unwrap().seq, 2);

    for (seq, why) in [(3, "is verifying"), (1, "it is kept")] {
        let r = post(
            s.addr,
            &format!("/api/programs/demo/attempts/{seq}/retry"),
            Some(&s.write),
            None,
        )
        .await;
        assert_eq!(r.status, 409, "{}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains(why),
            "{}",
            r.body
        );
    }
    for (path, status) in [
        ("/api/programs/demo/attempts/77/retry", 404),
        ("/api/programs/nope/attempts/2/retry", 404),
        ("/api/programs/demo/attempts/x/retry", 400),
    ] {
        let r = post(s.addr, path, Some(&s.write), None).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
    }
    assert_eq!(store.open_retries(p.id).unwrap().len(), 1);
}
