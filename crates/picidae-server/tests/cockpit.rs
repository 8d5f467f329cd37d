//! The cockpit's pages and helper endpoints over real HTTP: the compiled-in app, slot status,
//! chart data, run logs and agent transcripts (and their refusal of anything but a run's or an
//! attempt's own files), and the text filter of the attempts list.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_server::api::{self, ApiState};
use picidae_store::{Decision, NewAttempt, NewProgram, RunResult, Store};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        String::from_utf8(buf).unwrap()
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("HTTP exchange timed out");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    Reply {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

fn json_of(r: &Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

/// A project directory with a store holding program `demo` (benchmark with a contract whose
/// primary metric is `loss`), three attempts with one run each (the first two with sweep
/// parameters), run 1's logs and attempt 2's transcript.
fn populate(root: &std::path::Path) -> (std::path::PathBuf, String) {
    let bench = root.join("bench");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(
        bench.join("picidae.toml"),
        "[benchmark]\nname = \"demo\"\n[boundary]\neditable = [\"a.txt\"]\n[run]\ncommand = \
         \"true\"\ntime_budget = 5\ntimeout = 5\nartifacts = [\"model.json\"]\n\
         [metrics.loss]\ngoal = \"minimize\"\n",
    )
    .unwrap();
    let dir = root.join(".picidae");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("store.sqlite");
    let mut store = Store::open(&db).unwrap();
    let p = store
        .create_program(&NewProgram {
            name: "demo".into(),
            benchmark_dir: bench.display().to_string(),
            program_md: "make it small".into(),
            agent: json!({"kind": "sweep"}),
            policy: json!({}),
            base_commit: "base".into(),
        })
        .unwrap();
    for (i, (hypothesis, value, status)) in [
        ("baseline", Some(2.0), RunStatus::Succeeded),
        ("Halve the learning rate", Some(1.5), RunStatus::Succeeded),
        ("double the batch", None, RunStatus::Crashed),
    ]
    .into_iter()
    .enumerate()
    {
        let a = store
            .insert_attempt(&NewAttempt {
                program_id: p.id,
                kind: AttemptKind::Explore,
                parent_commit: "base".into(),
                hypothesis: hypothesis.into(),
                proposer: "test".into(),
                params: (i < 2).then(|| json!({"lr": 0.1 / (i as f64 + 1.0), "opt": "adam"})),
            })
            .unwrap();
        store
            .set_attempt_commit(a.id, &format!("c{}", a.seq), "patch", &[], None)
            .unwrap();
        let run = store.insert_run(a.id, i as i64, "local").unwrap();
        store
            .mark_run_started(run.id, 100, 100, "host", None, "/tmp/log")
            .unwrap();
        store
            .finish_run(
                run.id,
                &RunResult {
                    status: Some(status),
                    primary_value: value,
                    metrics: value.map(|v| ("loss".to_string(), v)).into_iter().collect(),
                    ..RunResult::default()
                },
            )
            .unwrap();
        store
            .decide_attempt(
                a.id,
                &Decision {
                    status: match value {
                        Some(_) => AttemptStatus::Kept,
                        None => AttemptStatus::Failed,
                    },
                    primary_value: value,
                    note: None,
                    advance_frontier: value.is_some(),
                    judged_against: None,
                },
            )
            .unwrap();
    }
    let logs = dir.join("runs").join("demo").join("1");
    std::fs::create_dir_all(&logs).unwrap();
    let long: String = (0..2000).map(|i| format!("step {i}\n")).collect();
    std::fs::write(logs.join("stdout.log"), long + "loss: 2.0\n").unwrap();
    std::fs::write(logs.join("stderr.log"), "warming up\n").unwrap();
    // Run 1's artifacts: a file, a nested one, and a link out of the directory.
    let arts = logs.join("artifacts");
    std::fs::create_dir_all(arts.join("ckpt")).unwrap();
    std::fs::write(arts.join("model.json"), "{\"w\": [1, 2]}").unwrap();
    std::fs::write(arts.join("ckpt").join("step 10.bin"), [7u8; 300]).unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), arts.join("escape.txt")).unwrap();
    let scratch = dir.join("attempts").join("demo").join("2");
    std::fs::create_dir_all(&scratch).unwrap();
    let said: String = (0..500).map(|i| format!("thought {i}\n")).collect();
    std::fs::write(
        scratch.join("transcript.txt"),
        said + "HYPOTHESIS: <b>halve</b> the learning rate\n",
    )
    .unwrap();
    std::fs::write(root.join("secret.txt"), "do not serve").unwrap();
    let (_, read) = store.create_token("viewer", true).unwrap();
    (db, read)
}

async fn start(root: &std::path::Path, read_requires_token: bool) -> (SocketAddr, String) {
    let (db, token) = populate(root);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = ApiState {
        store_path: db,
        store_url: None,
        started: Instant::now(),
        metrics: Arc::new(|| {
            "picidae_slots_capacity 4\npicidae_slots_in_use 1\n\
             picidae_program_slots_in_use{program=\"demo\"} 1\n"
                .to_string()
        }),
        read_requires_token,
        worker_lease: api::DEFAULT_WORKER_LEASE,
    };
    tokio::spawn(api::serve(listener, state, std::future::pending::<()>()));
    (addr, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_status_chart_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = start(dir.path(), false).await;

    // The app, compiled in, with headers that keep it to its own origin.
    let page = get(addr, "/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.headers.contains("content-type: text/html"));
    assert!(page
        .headers
        .contains("content-security-policy: default-src 'self'"));
    assert!(!page.headers.contains("set-cookie"));
    assert!(page.body.contains("/cockpit/app.js"));
    for (path, kind) in [
        ("/cockpit/app.js", "text/javascript"),
        ("/cockpit/app.css", "text/css"),
    ] {
        let r = get(addr, path, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.headers.contains(kind), "{path}: {}", r.headers);
    }

    let status = json_of(&get(addr, "/api/cockpit/status", None).await);
    assert_eq!(status["slots_capacity"], 4.0);
    assert_eq!(status["slots_in_use"], 1.0);
    assert_eq!(status["slot_utilisation"], 0.25);
    assert_eq!(status["program_slots"]["demo"], 1.0);

    let chart = json_of(&get(addr, "/api/cockpit/programs/demo/chart", None).await);
    assert_eq!(chart["metric"], "loss");
    assert_eq!(chart["goal"], "minimize");
    let attempts = chart["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[1]["value"], 1.5);
    assert_eq!(attempts[1]["hypothesis"], "Halve the learning rate");
    assert_eq!(attempts[2]["status"], "failed");
    assert_eq!(attempts[2]["runs"][0]["status"], "crashed");
    // Times for the chart's time axis: every run started and finished, every attempt decided.
    for a in attempts {
        assert!(a["created_at"].as_i64().unwrap() > 0, "{a}");
        assert!(a["decided_at"].as_i64().unwrap() >= a["created_at"].as_i64().unwrap());
        let r = &a["runs"][0];
        assert!(
            r["started_at"].as_i64().unwrap() <= r["finished_at"].as_i64().unwrap(),
            "{r}"
        );
    }
    assert!(attempts[2]["runs"][0]["value"].is_null());
    assert_eq!(attempts[0]["params"]["lr"], 0.1);
    assert_eq!(attempts[1]["params"]["opt"], "adam");
    assert!(attempts[2]["params"].is_null());
    let missing = get(addr, "/api/cockpit/programs/nope/chart", None).await;
    assert_eq!(missing.status, 404, "{}", missing.body);

    // Logs: the tail, cut at a line; stderr; and nothing but a run's own two files.
    let log = get(addr, "/api/runs/1/log?tail=20", None).await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(log.headers.contains("text/plain"));
    assert!(log.headers.contains("x-log-truncated: true"));
    assert_eq!(log.body, "loss: 2.0\n");
    let full = get(addr, "/api/runs/1/log", None).await;
    assert!(full.body.starts_with("step 0\n") && full.body.ends_with("loss: 2.0\n"));
    let err = get(addr, "/api/runs/1/log?stream=stderr", None).await;
    assert_eq!(err.body, "warming up\n");
    for bad in [
        "/api/runs/1/log?stream=../../../secret.txt",
        "/api/runs/1/log?stream=stdout.log",
        "/api/runs/1/log?tail=-5",
        "/api/runs/..%2F..%2Fsecret.txt/log",
        "/api/runs/0/log",
    ] {
        let r = get(addr, bad, None).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(!r.body.contains("do not serve"));
    }
    // Run 2 exists but wrote no log; run 99 does not exist.
    assert_eq!(get(addr, "/api/runs/2/log", None).await.status, 404);
    assert_eq!(get(addr, "/api/runs/99/log", None).await.status, 404);

    // Transcripts: the tail of attempt 2's, as text; none for attempt 1; nothing but the
    // attempt's own file, whatever the path looks like.
    let t = get(addr, "/api/programs/demo/attempts/2/transcript", None).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert!(t.headers.contains("content-type: text/plain"));
    assert!(t.headers.contains("x-content-type-options: nosniff"));
    assert!(t.body.starts_with("thought 0\n"));
    assert!(t
        .body
        .ends_with("HYPOTHESIS: <b>halve</b> the learning rate\n"));
    let t = get(
        addr,
        "/api/programs/demo/attempts/2/transcript?tail=50",
        None,
    )
    .await;
    assert!(t.headers.contains("x-log-truncated: true"));
    assert_eq!(t.body, "HYPOTHESIS: <b>halve</b> the learning rate\n");
    for missing in [
        "/api/programs/demo/attempts/1/transcript",
        "/api/programs/demo/attempts/9/transcript",
        "/api/programs/nope/attempts/2/transcript",
        "/api/programs/..%2F..%2F..%2Fsecret.txt/attempts/2/transcript",
        "/api/programs/../attempts/2/transcript",
    ] {
        let r = get(addr, missing, None).await;
        assert_eq!(r.status, 404, "{missing}: {}", r.body);
        assert!(!r.body.contains("do not serve"));
    }
    for bad in [
        "/api/programs/demo/attempts/..%2F..%2F..%2Fsecret.txt/transcript",
        "/api/programs/demo/attempts/0/transcript",
        "/api/programs/demo/attempts/2/transcript?tail=0",
    ] {
        let r = get(addr, bad, None).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(!r.body.contains("do not serve"));
    }

    // Artifacts: listed with sizes (links not followed) next to what the contract declares;
    // each served as a download; nothing outside the run's artifacts directory.
    let list = get(addr, "/api/runs/1/artifacts", None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let list = json_of(&list);
    assert_eq!(list["declared"], json!(["model.json"]));
    assert_eq!(
        list["artifacts"],
        json!([{"name": "ckpt/step 10.bin", "size": 300}, {"name": "model.json", "size": 13}])
    );
    assert_eq!(list["truncated"], false);
    let f = get(addr, "/api/runs/1/artifacts/model.json", None).await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.body, "{\"w\": [1, 2]}");
    assert!(f.headers.contains("content-type: application/octet-stream"));
    assert!(f.headers.contains("attachment; filename=\"model.json\""));
    assert!(f.headers.contains("x-content-type-options: nosniff"));
    let f = get(addr, "/api/runs/1/artifacts/ckpt%2Fstep%2010.bin", None).await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.body.len(), 300);
    let none = json_of(&get(addr, "/api/runs/2/artifacts", None).await);
    assert_eq!(none["artifacts"], json!([]));
    for bad in [
        "/api/runs/1/artifacts/..%2Fstdout.log",
        "/api/runs/1/artifacts/%2e%2e%2F%2e%2e%2F%2e%2e%2F%2e%2e%2F%2e%2e%2Fsecret.txt",
        "/api/runs/1/artifacts/ckpt%2F..%2F..%2Fstderr.log",
        "/api/runs/1/artifacts/%2Fetc%2Fpasswd",
        "/api/runs/1/artifacts/..",
        "/api/runs/x/artifacts",
    ] {
        let r = get(addr, bad, None).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(!r.body.contains("do not serve") && !r.body.contains("warming"));
    }
    for missing in [
        "/api/runs/1/artifacts/escape.txt",
        "/api/runs/1/artifacts/ckpt",
        "/api/runs/1/artifacts/nope.bin",
        "/api/runs/1/artifacts/../../secret.txt",
        "/api/runs/99/artifacts",
        "/api/runs/99/artifacts/model.json",
    ] {
        let r = get(addr, missing, None).await;
        assert_eq!(r.status, 404, "{missing}: {}", r.body);
        assert!(!r.body.contains("do not serve"));
    }

    // Runs in an attempt carry their environment fingerprint (none recorded here).
    let a = json_of(&get(addr, "/api/programs/demo/attempts/2", None).await);
    assert!(a["runs"][0].get("fingerprint").is_some(), "{a}");

    // The attempts list's text filter, case-insensitive, with paging and order.
    let page = json_of(&get(addr, "/api/programs/demo/attempts?q=HALVE", None).await);
    assert_eq!(page["total"], 1);
    assert_eq!(page["attempts"][0]["seq"], 2);
    let page = json_of(
        &get(
            addr,
            "/api/programs/demo/attempts?q=the&order=desc&limit=1&offset=0",
            None,
        )
        .await,
    );
    assert_eq!(page["total"], 2);
    assert_eq!(page["attempts"][0]["seq"], 3);
    let page = json_of(&get(addr, "/api/programs/demo/attempts?q=the&status=kept", None).await);
    assert_eq!(page["total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockpit_reads_follow_the_token_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, token) = start(dir.path(), true).await;
    // The app itself loads (it asks for the token); its data does not without one.
    assert_eq!(get(addr, "/", None).await.status, 200);
    for path in [
        "/api/cockpit/status",
        "/api/cockpit/programs/demo/chart",
        "/api/runs/1/log",
        "/api/programs/demo/attempts/2/transcript",
        "/api/runs/1/artifacts",
        "/api/runs/1/artifacts/model.json",
        "/api/programs/demo/report",
    ] {
        assert_eq!(get(addr, path, None).await.status, 401, "{path}");
        assert_eq!(
            get(addr, path, Some("pcd_forged")).await.status,
            401,
            "{path}"
        );
        assert_eq!(get(addr, path, Some(&token)).await.status, 200, "{path}");
    }
}
