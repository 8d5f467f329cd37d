//! Read routes: programs, attempts (pagination and filters), runs, findings and memory
//! search, without hidden-evaluator numbers; Prometheus metrics; the OpenAPI document.

use serde_json::json;

use crate::support::{get, start};

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
        ("post", "/api/workers"),
        ("get", "/api/workers"),
        ("post", "/api/workers/{id}/claim"),
        ("post", "/api/workers/{id}/heartbeat"),
        ("get", "/api/workers/{id}/runs/{run_id}/bundle"),
        ("put", "/api/workers/{id}/runs/{run_id}/artifacts"),
        ("post", "/api/workers/{id}/runs/{run_id}/log"),
        ("post", "/api/workers/{id}/runs/{run_id}/release"),
        ("post", "/api/workers/{id}/runs/{run_id}/result"),
        ("post", "/api/programs/{name}/contributions"),
        ("get", "/api/programs/{name}/contributions"),
        ("get", "/api/programs/{name}/public"),
        ("get", "/api/programs/{name}/public/bundle"),
        ("get", "/api/programs/{name}/leaderboard"),
        ("get", "/api/cockpit/arenas"),
        ("get", "/api/cockpit/arenas/{name}"),
    ];
    for (method, path) in routes {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()))[method];
        assert!(op.is_object(), "{method} {path}");
        if method == "post" || method == "put" {
            assert_eq!(op["security"], json!([{"bearer": []}]), "{path}");
        }
    }
    let distinct: std::collections::BTreeSet<&str> = routes.iter().map(|(_, p)| *p).collect();
    assert_eq!(paths.len(), distinct.len(), "{:?}", paths.keys());
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
