//! Tokens: reads that require one, every mutating route refusing a missing or read-only
//! token, and tokens from another project's store.

use crate::support::{get, http, post, program_status, start};

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
