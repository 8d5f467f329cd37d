//! The HTTP API over real HTTP: a server on a loopback port, a store file in a temporary
//! directory, and a minimal HTTP/1.1 client on a raw TCP stream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use picidae_core::domain::FindingState;
use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_server::api::{self, ApiState};
use picidae_store::{Decision, Evidence, NewAttempt, NewProgram, RunResult, Store};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    db: PathBuf,
    write: String,
    read: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// One attempt with one finished run of `value`; decided `status`, advancing the frontier
/// when kept.
fn attempt(store: &mut Store, program_id: i64, hypothesis: &str, value: f64, keep: bool) -> i64 {
    let a = store
        .insert_attempt(&NewAttempt {
            program_id,
            kind: AttemptKind::Explore,
            parent_commit: "base".into(),
            hypothesis: hypothesis.into(),
            proposer: "test".into(),
            params: None,
        })
        .unwrap();
    store
        .set_attempt_commit(a.id, &format!("c{}", a.seq), "patch", &[], None)
        .unwrap();
    let run = store.insert_run(a.id, 0, "local").unwrap();
    store
        .mark_run_started(run.id, 100, 100, "host", None, "/tmp/log")
        .unwrap();
    store
        .finish_run(
            run.id,
            &RunResult {
                status: Some(RunStatus::Succeeded),
                exit_code: Some(0),
                wall_secs: Some(1.5),
                metrics: [("score".to_string(), value)].into(),
                primary_value: Some(value),
                ..RunResult::default()
            },
        )
        .unwrap();
    store
        .decide_attempt(
            a.id,
            &Decision {
                status: if keep {
                    AttemptStatus::Kept
                } else {
                    AttemptStatus::Discarded
                },
                primary_value: Some(value),
                note: None,
                advance_frontier: keep,
                judged_against: None,
            },
        )
        .unwrap();
    a.id
}

fn populate(location: &str) -> (String, String) {
    let mut store = Store::open_location(location).unwrap();
    let p = store
        .create_program(&NewProgram {
            name: "demo".into(),
            benchmark_dir: "/nonexistent/bench".into(),
            program_md: "make it fast".into(),
            agent: json!({"kind": "sweep"}),
            policy: json!({}),
            base_commit: "base".into(),
        })
        .unwrap();
    let base = attempt(&mut store, p.id, "baseline", 1.0, true);
    attempt(&mut store, p.id, "unroll the loop", 0.9, false);
    let winner = attempt(&mut store, p.id, "vectorize the inner loop", 1.4, true);
    attempt(&mut store, p.id, "bigger cache", 1.1, false);
    attempt(&mut store, p.id, "smaller cache", 0.8, false);
    // A finding whose evidence holds hidden-evaluator numbers, which must never be served.
    let f = store
        .create_finding(p.id, winner, base, "score", None)
        .unwrap();
    store
        .move_finding(
            f.id,
            FindingState::Verifying,
            Some(&Evidence {
                effect: Some(0.4),
                ci_low: Some(0.2),
                ci_high: Some(0.6),
                n_candidate: Some(5),
                hidden_effect: Some(0.987_654),
                hidden_agrees: Some(false),
                flags: vec!["suspect".into()],
                ..Evidence::default()
            }),
            "more seeds",
        )
        .unwrap();
    let (_, write) = store.create_token("alice", false).unwrap();
    let (_, read) = store.create_token("viewer", true).unwrap();
    (write, read)
}

async fn start(read_requires_token: bool) -> Server {
    start_on(read_requires_token, None).await
}

/// A server on a SQLite store, or on the PostgreSQL database `url`.
async fn start_on(read_requires_token: bool, url: Option<String>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("picidae.db");
    // The store's PostgreSQL client blocks: keep it off the runtime's worker.
    let location = url.clone().unwrap_or_else(|| db.display().to_string());
    let (write, read) = tokio::task::block_in_place(|| populate(&location));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = ApiState {
        store_path: db.clone(),
        store_url: url,
        started: Instant::now(),
        metrics: Arc::new(|| "picidae_slots_busy 3\n".to_string()),
        read_requires_token,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        db,
        write,
        read,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        String::from_utf8(buf).unwrap()
    };
    let raw = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .expect("HTTP exchange timed out");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = head.to_ascii_lowercase();
    let body = if headers.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    http(addr, "GET", path, &[], None).await
}

async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let body = body.map(|b| b.to_string());
    http(addr, "POST", path, &headers, body.as_deref()).await
}

/// A new attempt of `demo`, started, as the scheduler records one before its runs.
fn started_attempt(store: &mut Store, hypothesis: &str) -> picidae_store::Attempt {
    let pid = store.program("demo").unwrap().id;
    let a = store
        .insert_attempt(&NewAttempt {
            program_id: pid,
            kind: AttemptKind::Explore,
            parent_commit: "c3".into(),
            hypothesis: hypothesis.into(),
            proposer: "test".into(),
            params: None,
        })
        .unwrap();
    store.start_attempt(a.id).unwrap();
    a
}

fn program_status(db: &Path) -> String {
    Store::open(db)
        .unwrap()
        .program("demo")
        .unwrap()
        .status
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_programs_attempts_runs_and_findings() {
    let s = start(false).await;

    let r = get(s.addr, "/api/health").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ok");

    let r = get(s.addr, "/api/programs").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.contains("content-type: application/json"));
    let programs = r.json()["programs"].as_array().unwrap().clone();
    assert_eq!(programs.len(), 1);
    assert_eq!(programs[0]["name"], "demo");
    assert_eq!(programs[0]["attempts"], 5);
    assert_eq!(programs[0]["runs"], 5);
    assert_eq!(programs[0]["frontier_value"], 1.4);
    assert!(programs[0].get("agent").is_none());

    let r = get(s.addr, "/api/programs/demo").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    assert_eq!(d["frontier"]["seq"], 3);
    assert_eq!(d["frontier"]["baseline"]["seq"], 1);
    assert_eq!(d["frontier"]["history"].as_array().unwrap().len(), 2);
    assert_eq!(d["attempts_by_status"]["discarded"], 3);
    assert_eq!(d["attempts_by_status"]["kept"], 2);

    // Server-side pagination with the total.
    let r = get(s.addr, "/api/programs/demo/attempts?limit=2&offset=1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = r.json();
    assert_eq!(page["total"], 5);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    let seqs: Vec<i64> = page["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3]);

    let page = get(s.addr, "/api/programs/demo/attempts?order=desc&limit=2")
        .await
        .json();
    let seqs: Vec<i64> = page["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [5, 4]);

    let page = get(s.addr, "/api/programs/demo/attempts?status=discarded")
        .await
        .json();
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 50);
    assert_eq!(page["attempts"].as_array().unwrap().len(), 3);

    let page = get(s.addr, "/api/programs/demo/attempts?limit=5000")
        .await
        .json();
    assert_eq!(page["limit"], 1000);

    for (query, field) in [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("offset=-3", "offset"),
        ("status=great", "status"),
        ("order=sideways", "order"),
    ] {
        let r = get(s.addr, &format!("/api/programs/demo/attempts?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.starts_with(field), "{query}: {msg}");
    }

    let r = get(s.addr, "/api/programs/nope/attempts").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    assert_eq!(get(s.addr, "/api/programs/nope").await.status, 404);
    assert_eq!(
        get(s.addr, "/api/programs/demo/attempts/99").await.status,
        404
    );
    assert_eq!(
        get(s.addr, "/api/programs/demo/attempts/x").await.status,
        400
    );
    assert_eq!(get(s.addr, "/api/runs/12345").await.status, 404);

    // One attempt with its runs and its finding's visible evidence only.
    let r = get(s.addr, "/api/programs/demo/attempts/3").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = r.json();
    assert_eq!(a["seq"], 3);
    assert_eq!(a["status"], "kept");
    assert_eq!(a["hypothesis"], "vectorize the inner loop");
    let runs = a["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["metrics"]["score"], 1.4);
    assert_eq!(a["finding"]["evidence"]["effect"], 0.4);
    assert_eq!(a["finding"]["evidence"]["flags"], json!(["suspect"]));
    assert!(!r.body.contains("hidden_effect"), "{}", r.body);
    assert!(!r.body.contains("hidden_agrees"), "{}", r.body);
    assert!(!r.body.contains("0.987654"), "{}", r.body);

    let run_id = runs[0]["id"].as_i64().unwrap();
    let r = get(s.addr, &format!("/api/runs/{run_id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let run = r.json();
    assert_eq!(run["program"], "demo");
    assert_eq!(run["attempt_seq"], 3);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["primary_value"], 1.4);

    let r = get(s.addr, "/api/findings?program=demo&state=verifying").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["count"], 1);
    assert!(!r.body.contains("hidden_effect") && !r.body.contains("0.987654"));
    assert_eq!(
        get(s.addr, "/api/findings?state=validated").await.json()["count"],
        0
    );
    let r = get(s.addr, "/api/findings?state=bogus").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().starts_with("state"));
    assert_eq!(get(s.addr, "/api/findings?program=nope").await.status, 404);

    let r = get(s.addr, "/api/memory/search?q=").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().starts_with("q"));
    let r = get(s.addr, "/api/memory/search?q=cache&limit=0").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = get(s.addr, "/api/memory/search?q=cache&program=demo&limit=5").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["hits"].is_array());
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_can_require_a_token() {
    let s = start(true).await;
    let r = get(s.addr, "/api/programs").await;
    assert_eq!(r.status, 401, "{}", r.body);
    let auth = format!("Bearer {}", s.read);
    let r = http(
        s.addr,
        "GET",
        "/api/programs",
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http(
        s.addr,
        "GET",
        "/api/programs",
        &[("Authorization", "Bearer pcd_nope")],
        None,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    // Health, metrics and the document stay open.
    assert_eq!(get(s.addr, "/api/health").await.status, 200);
    assert_eq!(get(s.addr, "/metrics").await.status, 200);
    assert_eq!(get(s.addr, "/openapi.json").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics() {
    let s = start(false).await;
    let r = get(s.addr, "/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.contains("content-type: text/plain"));
    let text = r.body;
    assert!(
        text.contains("picidae_runs{program=\"demo\",status=\"succeeded\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("picidae_attempts{program=\"demo\",status=\"discarded\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("picidae_programs{status=\"active\"} 1"),
        "{text}"
    );
    assert!(text.contains("# TYPE picidae_runs gauge"), "{text}");
    assert!(text.contains("picidae_uptime_seconds "), "{text}");
    assert!(text.contains("picidae_slots_busy 3\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route() {
    let s = start(false).await;
    let r = get(s.addr, "/openapi.json").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let routes = [
        ("get", "/api/health"),
        ("get", "/api/programs"),
        ("get", "/api/programs/{name}"),
        ("get", "/api/programs/{name}/attempts"),
        ("get", "/api/programs/{name}/attempts/{seq}"),
        ("get", "/api/programs/{name}/attempts/{seq}/transcript"),
        ("get", "/api/runs/{id}"),
        ("get", "/api/runs/{id}/log"),
        ("get", "/api/cockpit/status"),
        ("get", "/api/cockpit/programs/{name}/chart"),
        ("get", "/api/findings"),
        ("get", "/api/memory/search"),
        ("get", "/api/events"),
        ("post", "/api/programs/{name}/pause"),
        ("post", "/api/programs/{name}/resume"),
        ("post", "/api/programs/{name}/weight"),
        ("post", "/api/programs/{name}/concurrency"),
        ("post", "/api/programs/{name}/budget"),
        ("post", "/api/programs/{name}/followups"),
        ("get", "/api/programs/{name}/report"),
        ("post", "/api/findings/{id}/approve"),
        ("post", "/api/findings/{id}/retract"),
        ("post", "/api/findings/{id}/followup"),
        ("post", "/api/runs/{id}/cancel"),
        ("post", "/api/programs/{name}/attempts/{seq}/retry"),
        ("get", "/api/runs/{id}/artifacts"),
        ("get", "/api/runs/{id}/artifacts/{name}"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    for (method, path) in routes {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()))[method];
        assert!(op.is_object(), "{method} {path}");
        if method == "post" {
            assert_eq!(op["security"], json!([{"bearer": []}]), "{path}");
        }
    }
    assert_eq!(paths.len(), routes.len(), "{:?}", paths.keys());
    let params: Vec<&str> = paths["/api/programs/{name}/attempts"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in ["name", "status", "limit", "offset"] {
        assert!(params.contains(&p), "{params:?}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["schemas"]["EvidenceView"]["properties"]
        .get("hidden_effect")
        .is_none());
}

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

/// Every mutating operation the OpenAPI document lists (every method but GET) refuses a
/// request without a token (401) and one with a read-only token (403), and changes nothing:
/// a new mutating route without the token check fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_route_needs_a_write_token() {
    let s = start(false).await;
    let doc = get(s.addr, "/openapi.json").await.json();
    let before = get(s.addr, "/api/programs/demo").await.body;
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            if !["POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                assert!(
                    [
                        "GET",
                        "HEAD",
                        "OPTIONS",
                        "TRACE",
                        "PARAMETERS",
                        "SUMMARY",
                        "DESCRIPTION",
                        "SERVERS"
                    ]
                    .contains(&method.as_str()),
                    "unexpected key {method} under {path}"
                );
                continue;
            }
            let mut url = path.clone();
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    let value = if name == "name" { "demo" } else { "1" };
                    url = url.replace(&format!("{{{name}}}"), value);
                }
            }
            assert!(!url.contains('{'), "{method} {path}: unfilled parameter");
            for (token, want) in [(None, 401), (Some(s.read.as_str()), 403)] {
                let auth = token.map(|t| format!("Bearer {t}"));
                let mut headers = vec![("Content-Type", "application/json")];
                if let Some(a) = &auth {
                    headers.push(("Authorization", a.as_str()));
                }
                let r = http(s.addr, &method, &url, &headers, Some("{}")).await;
                assert_eq!(
                    r.status,
                    want,
                    "{method} {url} with {}: {}",
                    if token.is_some() {
                        "a read-only token"
                    } else {
                        "no token"
                    },
                    r.body
                );
            }
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(checked.len() >= 5, "mutating routes found: {checked:?}");
    assert_eq!(get(s.addr, "/api/programs/demo").await.body, before);
    assert_eq!(program_status(&s.db), "active");
}

/// Tokens live in one project's store: a token created in another project's store, even a
/// write token, is unknown here (401), for writes and for reads that require a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_another_projects_store_is_refused() {
    let here = start(true).await;
    let other = start(true).await;
    assert_ne!(here.write, other.write);
    for token in [&other.write, &other.read] {
        let r = post(here.addr, "/api/programs/demo/pause", Some(token), None).await;
        assert_eq!(r.status, 401, "{}", r.body);
        let auth = format!("Bearer {token}");
        let r = http(
            here.addr,
            "GET",
            "/api/programs",
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    assert_eq!(program_status(&here.db), "active");
    // The same token works on its own project's server.
    let r = post(
        other.addr,
        "/api/programs/demo/pause",
        Some(&other.write),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(program_status(&here.db), "active");
}

fn finding_state(db: &Path, id: i64) -> FindingState {
    Store::open(db).unwrap().finding(id).unwrap().state
}

/// Approve, retract and follow up on findings, and the report: each needs a write token
/// (401 without, 403 read-only), acts only on a finding whose state allows it (409 otherwise,
/// saying why), and lands in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_can_be_approved_retracted_and_followed_up() {
    let s = start(false).await;
    let fid = Store::open(&s.db).unwrap().findings(None, None).unwrap()[0].id;
    let approve = format!("/api/findings/{fid}/approve");
    let retract = format!("/api/findings/{fid}/retract");

    // Verifying: neither approved nor retracted, and nothing is recorded.
    for (path, body) in [
        (&approve, json!({})),
        (&retract, json!({"reason": "too early"})),
    ] {
        let r = post(s.addr, path, Some(&s.write), Some(body)).await;
        assert_eq!(r.status, 409, "{path}: {}", r.body);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            msg.contains("is verifying") && msg.contains("only a validated finding"),
            "{msg}"
        );
    }
    assert_eq!(finding_state(&s.db, fid), FindingState::Verifying);
    assert!(Store::open(&s.db)
        .unwrap()
        .finding_events(fid)
        .unwrap()
        .iter()
        .all(|e| e.to != "approved"));

    Store::open(&s.db)
        .unwrap()
        .move_finding(fid, FindingState::Validated, None, "5 seeds agree")
        .unwrap();
    let note = json!({"note": "checked the diff by hand"});
    assert_eq!(
        post(s.addr, &approve, None, Some(note.clone()))
            .await
            .status,
        401
    );
    assert_eq!(
        post(s.addr, &approve, Some(&s.read), Some(note.clone()))
            .await
            .status,
        403
    );
    assert_eq!(
        post(s.addr, &approve, Some(&s.write), Some(json!({"nope": 1})))
            .await
            .status,
        400
    );
    let r = post(s.addr, &approve, Some(&s.write), Some(note)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let f = r.json();
    assert_eq!(f["state"], "validated");
    assert_eq!(
        f["approvals"][0]["reason"],
        "approved by alice: checked the diff by hand"
    );
    let events = Store::open(&s.db).unwrap().finding_events(fid).unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.from.as_deref(), last.to.as_str()),
        (Some("validated"), "approved")
    );
    assert_eq!(finding_state(&s.db, fid), FindingState::Validated);
    let listed = get(s.addr, "/api/findings?state=validated").await.json();
    assert_eq!(
        listed["findings"][0]["approvals"].as_array().unwrap().len(),
        1
    );
    assert!(get(s.addr, "/api/programs/demo/attempts/3")
        .await
        .body
        .contains("approved by alice"));

    // A follow-up that names the finding, with and without the person's own words.
    let followup = format!("/api/findings/{fid}/followup");
    assert_eq!(
        post(s.addr, &followup, None, Some(json!({}))).await.status,
        401
    );
    assert_eq!(
        post(s.addr, &followup, Some(&s.read), Some(json!({})))
            .await
            .status,
        403
    );
    let r = post(
        s.addr,
        &followup,
        Some(&s.write),
        Some(json!({"text": "try it with AVX-512"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(s.addr, &followup, Some(&s.write), Some(json!({}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let store = Store::open(&s.db).unwrap();
    let open = store
        .open_followups(store.program("demo").unwrap().id)
        .unwrap();
    assert_eq!(open.len(), 2);
    assert!(
        open[0].text.starts_with("try it with AVX-512"),
        "{}",
        open[0].text
    );
    for f in &open {
        assert_eq!(f.author, "alice");
        assert!(
            f.text.contains(&format!("finding {fid}"))
                && f.text.contains("attempt #3")
                && f.text.contains("vectorize the inner loop"),
            "{}",
            f.text
        );
    }
    assert_eq!(
        post(
            s.addr,
            "/api/findings/999/followup",
            Some(&s.write),
            Some(json!({}))
        )
        .await
        .status,
        404
    );

    // The report: the CLI's builder, served as a Markdown file without hidden numbers.
    let r = get(s.addr, "/api/programs/demo/report").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers.contains("content-type: text/markdown"),
        "{}",
        r.headers
    );
    assert!(r
        .headers
        .contains("attachment; filename=\"demo-report.md\""));
    assert!(
        r.body.starts_with("# Research report: demo\n"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("#3: vectorize the inner loop"),
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains("approved by alice: checked the diff by hand"));
    assert!(!r.body.contains("0.987654"), "{}", r.body);
    let shown = picidae_server::report::markdown(
        &Store::open(&s.db).unwrap(),
        "demo",
        picidae_server::report::Hidden::Show,
    )
    .unwrap();
    assert!(
        shown.contains("hidden evaluator agrees: effect +0.987654"),
        "{shown}"
    );
    assert_eq!(
        shown.replace("- hidden evaluator agrees: effect +0.987654\n", ""),
        r.body
    );
    assert_eq!(get(s.addr, "/api/programs/nope/report").await.status, 404);

    // Retract: a reason is required; the frontier (this finding's attempt) moves back.
    assert_eq!(
        post(
            s.addr,
            &retract,
            Some(&s.write),
            Some(json!({"reason": "  "}))
        )
        .await
        .status,
        400
    );
    assert_eq!(
        post(
            s.addr,
            &retract,
            Some(&s.read),
            Some(json!({"reason": "x"}))
        )
        .await
        .status,
        403
    );
    assert_eq!(finding_state(&s.db, fid), FindingState::Validated);
    let r = post(
        s.addr,
        &retract,
        Some(&s.write),
        Some(json!({"reason": "the speedup came from a warm cache"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = r.json();
    assert_eq!(a["finding"]["state"], "retracted");
    assert_eq!(a["frontier_moved_to"], "c1");
    // The benchmark here is not a repository: the store moved, the ref could not.
    assert!(a["warning"]
        .as_str()
        .unwrap()
        .contains("refs/picidae/demo/frontier"));
    assert_eq!(finding_state(&s.db, fid), FindingState::Retracted);
    let p = Store::open(&s.db).unwrap().program("demo").unwrap();
    assert_eq!(
        (p.frontier_commit.as_deref(), p.frontier_value),
        (Some("c1"), Some(1.0))
    );
    let events = Store::open(&s.db).unwrap().finding_events(fid).unwrap();
    assert_eq!(
        events.last().unwrap().reason,
        "retracted by alice: the speedup came from a warm cache"
    );
    for (path, body) in [
        (&retract, json!({"reason": "again"})),
        (&approve, json!({})),
    ] {
        let r = post(s.addr, path, Some(&s.write), Some(body)).await;
        assert_eq!(r.status, 409, "{path}: {}", r.body);
        assert!(r.body.contains("is retracted"), "{}", r.body);
    }
    assert_eq!(
        post(
            s.addr,
            "/api/findings/999/approve",
            Some(&s.write),
            Some(json!({}))
        )
        .await
        .status,
        404
    );
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
