//! Shared helpers: a populated store, a server on a loopback port over it, and a minimal
//! HTTP/1.1 client on a raw TCP stream.

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

pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) db: PathBuf,
    pub(crate) write: String,
    pub(crate) read: String,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) task: tokio::task::JoinHandle<std::io::Result<()>>,
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

pub(crate) async fn start(read_requires_token: bool) -> Server {
    start_on(read_requires_token, None).await
}

/// A server on a SQLite store, or on the PostgreSQL database `url`.
pub(crate) async fn start_on(read_requires_token: bool, url: Option<String>) -> Server {
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
        worker_lease: api::DEFAULT_WORKER_LEASE,
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

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: String,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
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

pub(crate) async fn http(
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

pub(crate) async fn get(addr: SocketAddr, path: &str) -> Reply {
    http(addr, "GET", path, &[], None).await
}

pub(crate) async fn post(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
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
pub(crate) fn started_attempt(store: &mut Store, hypothesis: &str) -> picidae_store::Attempt {
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

pub(crate) fn program_status(db: &Path) -> String {
    Store::open(db)
        .unwrap()
        .program("demo")
        .unwrap()
        .status
        .to_string()
}
