//! The workers' routes: a worker token takes and reports runs and nothing else, a worker acts
//! only as itself, and a report counts once, under the lease held.

use picidae_store::Store;
use serde_json::json;

use crate::support::{get, http, post, program_status, start};

/// A queued run of the `demo` program offered to the default pool; its id.
fn offer(db: &std::path::Path) -> i64 {
    let mut store = Store::open(db).unwrap();
    let p = store.program("demo").unwrap();
    let attempt = store.attempt_by_seq(p.id, 1).unwrap().unwrap().id;
    let run = store.insert_run(attempt, 99, "workers").unwrap().id;
    store
        .offer_work(run, "", &json!({"tree": "0".repeat(40), "gpus": 0}))
        .unwrap();
    run
}

fn register_body(name: &str) -> serde_json::Value {
    json!({"name": name, "fingerprint": "fp", "fingerprint_json": "{}", "cpus": 4})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_token_takes_and_reports_runs_and_nothing_else() {
    let s = start(true).await;
    let (token, other) = tokio::task::block_in_place(|| {
        let mut store = Store::open(&s.db).unwrap();
        let (_, a) = store.create_worker_token("gpu-box").unwrap();
        let (_, b) = store.create_worker_token("laptop").unwrap();
        (a, b)
    });
    // Steering and reads are refused to it (403), and change nothing.
    let r = post(s.addr, "/api/programs/demo/pause", Some(&token), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("worker"), "{}", r.body);
    assert_eq!(program_status(&s.db), "active");
    let auth = format!("Bearer {token}");
    let r = http(
        s.addr,
        "GET",
        "/api/programs",
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // A write token is not a worker's.
    let r = post(
        s.addr,
        "/api/workers",
        Some(&s.write),
        Some(register_body("w")),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Register, and find nothing to run yet.
    let r = post(
        s.addr,
        "/api/workers",
        Some(&token),
        Some(register_body("box-1")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    let claim = format!("/api/workers/{id}/claim");
    assert_eq!(post(s.addr, &claim, Some(&token), None).await.status, 204);
    // Another worker's token cannot act as this one.
    assert_eq!(post(s.addr, &claim, Some(&other), None).await.status, 403);
    let run = tokio::task::block_in_place(|| offer(&s.db));
    let r = post(s.addr, &claim, Some(&token), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = r.json();
    assert_eq!(got["run_id"], run);
    let lease = got["lease"].as_str().unwrap().to_string();
    let r = post(
        s.addr,
        &format!("/api/workers/{id}/heartbeat"),
        Some(&token),
        Some(json!({"leases": [{"run_id": run, "lease": lease}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["held"], json!([run]));
    // A report under another lease is refused and recorded; the holder's counts once.
    let result = format!("/api/workers/{id}/runs/{run}/result");
    let r = post(
        s.addr,
        &result,
        Some(&token),
        Some(json!({"lease": "not-the-lease", "result": {}})),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let report = json!({"lease": lease, "result": {"stdout": "loss: 1"}});
    let r = post(s.addr, &result, Some(&token), Some(report.clone())).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("accepted"))
    );
    let r = post(s.addr, &result, Some(&token), Some(report)).await;
    assert_eq!(r.json()["status"], "already-reported");
    tokio::task::block_in_place(|| {
        let store = Store::open(&s.db).unwrap();
        assert_eq!(store.work_refusals(Some(run)).unwrap().len(), 1);
        let item = store.work_item(run).unwrap().unwrap();
        assert_eq!(item.result, Some(json!({"stdout": "loss: 1"})));
    });
    // The bundle of a run it does not hold is refused.
    let r = http(
        s.addr,
        "GET",
        &format!("/api/workers/{id}/runs/{run}/bundle?lease=nope"),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    // People see the worker (with a read token).
    let read = format!("Bearer {}", s.read);
    let r = http(
        s.addr,
        "GET",
        "/api/workers",
        &[("Authorization", &read)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()[0]["name"], "box-1");
    assert_eq!(get(s.addr, "/api/workers").await.status, 401);
}
