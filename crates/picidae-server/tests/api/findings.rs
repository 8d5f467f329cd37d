//! Findings: approval, retraction and follow-ups on a finding, and the Markdown report.

use std::path::Path;

use picidae_core::domain::FindingState;
use picidae_store::Store;
use serde_json::json;

use crate::support::{get, post, start};

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
