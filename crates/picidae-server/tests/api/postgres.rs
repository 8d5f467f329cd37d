//! PostgreSQL: the API answers the same on a PostgreSQL store as on SQLite (skipped without
//! a test database).

use picidae_store::Store;
use serde_json::{json, Value};

use crate::support::{get, post, start, start_on};

/// `v` without what differs between two stores holding the same data: times.
fn timeless(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !(k.as_str() == "at"
                        || k.ends_with("_at")
                        || k.ends_with("_ms")
                        || k.contains("uptime"))
                })
                .map(|(k, v)| (k.clone(), timeless(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(timeless).collect()),
        v => v.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_the_same_on_postgres() {
    let Some(url) = tokio::task::block_in_place(picidae_store::testing::postgres_url) else {
        return;
    };
    let lite = start(false).await;
    let pg = start_on(false, Some(url.clone())).await;
    let reads = [
        "/api/programs",
        "/api/programs/demo",
        "/api/programs/demo/attempts",
        "/api/programs/demo/attempts?limit=2&offset=1&order=desc",
        "/api/programs/demo/attempts?status=kept",
        "/api/programs/demo/attempts?q=cache",
        "/api/programs/demo/attempts/3",
        "/api/runs/3",
        "/api/findings",
        "/api/findings?state=verifying",
        "/api/memory/search?q=loop",
        "/api/cockpit/status",
        "/api/cockpit/programs/demo/chart",
    ];
    for path in reads {
        let (a, b) = (get(lite.addr, path).await, get(pg.addr, path).await);
        assert_eq!(
            (a.status, b.status),
            (200, 200),
            "{path}: {} / {}",
            a.body,
            b.body
        );
        assert_eq!(
            timeless(&a.json()),
            timeless(&b.json()),
            "{path} differs between SQLite and PostgreSQL"
        );
    }
    // Hidden-evaluator numbers stay out on PostgreSQL too.
    assert!(!get(pg.addr, "/api/findings")
        .await
        .body
        .contains("0.987654"));
    // Steering writes through the API land in PostgreSQL.
    let r = post(pg.addr, "/api/programs/demo/pause", Some(&pg.write), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        pg.addr,
        "/api/programs/demo/followups",
        Some(&pg.write),
        Some(json!({"text": "try a wider cache"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (status, followups) = tokio::task::block_in_place(|| {
        let store = Store::connect(&url).unwrap();
        let p = store.program("demo").unwrap();
        (
            p.status.to_string(),
            store.open_followups(p.id).unwrap().len(),
        )
    });
    assert_eq!((status.as_str(), followups), ("paused", 1));
    let r = post(pg.addr, "/api/programs/demo/pause", Some(&pg.read), None).await;
    assert_eq!(
        r.status, 403,
        "a read-only token is refused on PostgreSQL too"
    );
    // Metrics read the same tables.
    let m = get(pg.addr, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(
        m.body.contains("picidae_programs{status=\"paused\"} 1"),
        "{}",
        m.body
    );
}
