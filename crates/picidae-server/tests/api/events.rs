//! Live events: the server-sent event stream of run and attempt changes, and its end at
//! shutdown.

use picidae_core::{AttemptStatus, RunStatus};
use picidae_store::{Decision, RunResult, Store};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{start, started_attempt, TIMEOUT};

/// Read the event stream until `want` appears in what was received, or time out.
async fn read_until(stream: &mut TcpStream, seen: &mut String, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut buf = [0u8; 4096];
    while !want.iter().all(|w| seen.contains(w)) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {want:?} in the event stream: {seen}"))
            .unwrap();
        assert!(n > 0, "event stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_run_and_attempt_changes() {
    let mut s = start(false).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
                s.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, &["\r\n\r\n"]).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        seen.to_ascii_lowercase().contains("text/event-stream"),
        "{seen}"
    );

    // A new attempt, run and decision in the store, as the scheduler would record them.
    let db = s.db.clone();
    let (run_id, attempt_id) = tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&db).unwrap();
        let a = started_attempt(&mut store, "prefetch");
        let run = store.insert_run(a.id, 7, "local").unwrap();
        (run.id, a.id)
    })
    .await
    .unwrap();
    read_until(
        &mut stream,
        &mut seen,
        &["event: run", "\"status\":\"queued\""],
    )
    .await;

    let db = s.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&db).unwrap();
        store
            .mark_run_started(run_id, 1, 1, "host", None, "/tmp/log")
            .unwrap();
        store
            .finish_run(
                run_id,
                &RunResult {
                    status: Some(RunStatus::Succeeded),
                    primary_value: Some(1.25),
                    ..RunResult::default()
                },
            )
            .unwrap();
        store
            .decide_attempt(
                attempt_id,
                &Decision {
                    status: AttemptStatus::Discarded,
                    primary_value: Some(1.25),
                    note: None,
                    advance_frontier: false,
                    judged_against: None,
                },
            )
            .unwrap();
    })
    .await
    .unwrap();
    read_until(
        &mut stream,
        &mut seen,
        &[
            "\"status\":\"succeeded\"",
            "event: attempt",
            "\"status\":\"discarded\"",
        ],
    )
    .await;
    let finished = seen
        .lines()
        .find(|l| l.starts_with("data: ") && l.contains("\"succeeded\""))
        .unwrap();
    let data: Value = serde_json::from_str(&finished["data: ".len()..]).unwrap();
    assert_eq!(data["id"], run_id);
    assert_eq!(data["program"], "demo");
    assert_eq!(data["seq"], 6);
    assert_eq!(data["seed"], 7);
    assert_eq!(data["value"], 1.25);
    // Only changes after the stream opened: the populated runs and attempts are not replayed
    // (a start and a finish within one poll may be reported as the finish alone).
    let data: Vec<Value> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(data.len() >= 3, "{seen}");
    for d in &data {
        assert_eq!(d["seq"], 6, "{seen}");
    }
    assert_eq!(seen.matches("event: attempt").count(), 1, "{seen}");

    // Shutting down ends the open stream and the server.
    s.stop.take().unwrap().send(()).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .expect("the event stream ends at shutdown")
        .unwrap();
    tokio::time::timeout(TIMEOUT, &mut s.task)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
