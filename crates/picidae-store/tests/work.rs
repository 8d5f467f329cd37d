//! Runs handed to remote workers, on both backends: worker tokens, registration, claims that
//! fit, leases renewed, lost and expired, reports accepted once and refused (and recorded) for
//! a lease no longer held.

use picidae_core::{AttemptKind, WorkState};
use picidae_store::testing::TestStore;
use picidae_store::{NewAttempt, NewProgram, Report, Store};
use serde_json::json;

/// A program with one attempt and `n` queued runs on it; their ids.
fn runs(s: &mut Store, n: usize) -> Vec<i64> {
    runs_of(s, "p", n)
}

/// [`runs`] for a program named `name`.
fn runs_of(s: &mut Store, name: &str, n: usize) -> Vec<i64> {
    let p = s
        .create_program(&NewProgram {
            name: name.into(),
            benchmark_dir: "/bench".into(),
            program_md: String::new(),
            agent: json!({"kind": "sweep"}),
            policy: json!({}),
            base_commit: "a".repeat(40),
        })
        .unwrap();
    let a = s
        .insert_attempt(&NewAttempt {
            program_id: p.id,
            kind: AttemptKind::Explore,
            parent_commit: "a".repeat(40),
            hypothesis: "h".into(),
            proposer: "sweep".into(),
            params: None,
        })
        .unwrap();
    (0..n)
        .map(|seed| s.insert_run(a.id, seed as i64, "workers").unwrap().id)
        .collect()
}

fn worker(s: &mut Store, name: &str, gpus: u32) -> i64 {
    let (token, _) = s.create_worker_token(name).unwrap();
    assert!(token.worker && token.read_only, "{token:?}");
    s.register_worker(token.id, name, "", ("fp", "{}"), &json!({ "gpus": gpus }))
        .unwrap()
        .id
}

fn needs(spec: &serde_json::Value) -> u64 {
    spec["gpus"].as_u64().unwrap_or(0)
}

fn claims_fit_and_are_exclusive(t: &TestStore) {
    let mut s = t.open();
    let ids = runs(&mut s, 2);
    s.offer_work(ids[0], "", &json!({"gpus": 2})).unwrap();
    s.offer_work(ids[1], "", &json!({"gpus": 0})).unwrap();
    // Offering again (a restarted coordinator) changes nothing.
    s.offer_work(ids[1], "", &json!({"gpus": 5})).unwrap();
    assert_eq!(s.work_item(ids[1]).unwrap().unwrap().spec["gpus"], 0);
    let small = worker(&mut s, "small", 0);
    let big = worker(&mut s, "big", 4);
    // The small worker skips what does not fit it.
    let got = s
        .claim_work(small, &|spec| needs(spec) == 0, 10_000)
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.run_id, got.state, got.claims),
        (ids[1], WorkState::Claimed, 1)
    );
    assert_eq!(got.worker_id, Some(small));
    assert!(s
        .claim_work(small, &|spec| needs(spec) == 0, 10_000)
        .unwrap()
        .is_none());
    let got = s
        .claim_work(big, &|spec| needs(spec) <= 4, 10_000)
        .unwrap()
        .unwrap();
    assert_eq!(got.run_id, ids[0]);
    // Nothing is left to claim.
    assert!(s.claim_work(big, &|_| true, 10_000).unwrap().is_none());
    let listed = s.workers().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].1, vec![ids[1]]);
    assert_eq!(listed[1].1, vec![ids[0]]);
    // Registering again under the same token and name is the same worker.
    let again = s
        .register_worker(listed[0].0.token_id, "small", "", ("fp2", "{}"), &json!({}))
        .unwrap();
    assert_eq!((again.id, again.fingerprint.as_str()), (small, "fp2"));
}

fn a_report_counts_once_and_only_under_the_lease_held(t: &TestStore) {
    let mut s = t.open();
    let ids = runs(&mut s, 1);
    let run = ids[0];
    s.offer_work(run, "", &json!({})).unwrap();
    let (a, b) = (worker(&mut s, "a", 0), worker(&mut s, "b", 0));
    let first = s.claim_work(a, &|_| true, 1).unwrap().unwrap();
    let lease_a = first.lease.clone().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Its lease ran out: a heartbeat no longer renews it, and the run goes back on offer.
    let r = s.renew_work(a, &[(run, lease_a.clone())], 10_000).unwrap();
    assert_eq!((r.held, r.lost), (vec![], vec![run]));
    assert!(s.expire_work(run, picidae_store::now_ms()).unwrap());
    let second = s.claim_work(b, &|_| true, 10_000).unwrap().unwrap();
    assert_eq!(second.claims, 2);
    let lease_b = second.lease.clone().unwrap();
    assert_ne!(lease_a, lease_b);
    // The first worker comes back with a result: refused, and the refusal recorded.
    let out = json!({"exit_code": 0, "stdout": "loss: 1"});
    let refused = s.report_work(run, a, &lease_a, &out).unwrap();
    assert!(
        matches!(&refused, Report::Refused(why) if why.contains("no longer holds")),
        "{refused:?}"
    );
    // The holder renews, then reports; a retried upload is the same report.
    let r = s.renew_work(b, &[(run, lease_b.clone())], 10_000).unwrap();
    assert_eq!(r.held, vec![run]);
    let theirs = json!({"exit_code": 0, "stdout": "loss: 2"});
    assert_eq!(
        s.report_work(run, b, &lease_b, &theirs).unwrap(),
        Report::Accepted
    );
    assert_eq!(
        s.report_work(run, b, &lease_b, &json!({"exit_code": 1}))
            .unwrap(),
        Report::AlreadyReported
    );
    let item = s.work_item(run).unwrap().unwrap();
    assert_eq!(item.state, WorkState::Reported);
    assert_eq!(item.result, Some(theirs), "the first report stands");
    // A reported item never goes back on offer, and a lease on it renews no more.
    assert!(!s.expire_work(run, i64::MAX).unwrap());
    let refusals = s.work_refusals(Some(run)).unwrap();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].worker_id, Some(a));
}

fn cancels_reach_the_worker_and_withdraw_the_item(t: &TestStore) {
    let mut s = t.open();
    let ids = runs(&mut s, 2);
    for id in &ids {
        s.offer_work(*id, "", &json!({})).unwrap();
    }
    let w = worker(&mut s, "w", 0);
    let item = s.claim_work(w, &|_| true, 10_000).unwrap().unwrap();
    let lease = item.lease.unwrap();
    s.request_run_cancel(item.run_id).unwrap();
    let r = s
        .renew_work(w, &[(item.run_id, lease.clone())], 10_000)
        .unwrap();
    assert_eq!(r.cancel, vec![item.run_id]);
    // Withdrawn: a later report is refused; the other run is withdrawn before any claim.
    s.cancel_work(item.run_id).unwrap();
    s.cancel_work(ids[1]).unwrap();
    assert!(matches!(
        s.report_work(item.run_id, w, &lease, &json!({})).unwrap(),
        Report::Refused(_)
    ));
    assert!(s.claim_work(w, &|_| true, 10_000).unwrap().is_none());
    assert_eq!(
        s.work_item(ids[1]).unwrap().unwrap().state,
        WorkState::Cancelled
    );
}

fn a_run_released_by_its_worker_is_offered_again_at_once(t: &TestStore) {
    let mut s = t.open();
    let run = runs(&mut s, 1)[0];
    s.offer_work(run, "", &json!({})).unwrap();
    let (a, b) = (worker(&mut s, "a", 0), worker(&mut s, "b", 0));
    let item = s.claim_work(a, &|_| true, 60_000).unwrap().unwrap();
    let lease = item.lease.unwrap();
    // Only the holder, under its lease, gives it back.
    assert!(!s.release_work(run, b, &lease).unwrap());
    assert!(!s.release_work(run, a, "another lease").unwrap());
    assert!(s.release_work(run, a, &lease).unwrap());
    let again = s.claim_work(b, &|_| true, 60_000).unwrap().unwrap();
    assert_eq!((again.run_id, again.claims), (run, 2));
    // The first worker's late report is refused.
    assert!(matches!(
        s.report_work(run, a, &lease, &json!({})).unwrap(),
        Report::Refused(_)
    ));
}

/// One query tells where every run waited on stands (what the coordinator's watcher polls),
/// past the 500 ids of one statement; runs never offered are left out.
fn statuses_of_many_runs_in_one_call(t: &TestStore) {
    let mut s = t.open();
    let ids = runs(&mut s, 1203);
    for id in &ids[..1201] {
        s.offer_work(*id, "", &json!({})).unwrap();
    }
    let w = worker(&mut s, "w", 0);
    let got = s.claim_work(w, &|_| true, 10_000).unwrap().unwrap();
    let all = s.work_statuses(&ids).unwrap();
    assert_eq!(all.len(), 1201);
    let claimed: Vec<_> = all
        .iter()
        .filter(|x| x.state == WorkState::Claimed)
        .collect();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].run_id, claimed[0].worker_id),
        (got.run_id, Some(w))
    );
    assert!(claimed[0].lease_expires_at.is_some());
    assert!(all
        .iter()
        .filter(|x| x.run_id != got.run_id)
        .all(|x| x.state == WorkState::Offered && x.worker_id.is_none()));
    assert_eq!(s.work_statuses(&ids[1201..]).unwrap(), vec![]);
    assert_eq!(s.work_statuses(&[]).unwrap(), vec![]);
}

/// Programs share a pool's workers by weight, as they share local slots: with `heavy`
/// (weight 3) offering its runs first and `light` (weight 1) after, the workers' claims still
/// go three to one while both wait, and `light` is not held behind `heavy`'s backlog.
fn the_pool_is_shared_by_weight(t: &TestStore) {
    let mut s = t.open();
    let heavy = runs_of(&mut s, "heavy", 100);
    let light = runs_of(&mut s, "light", 100);
    s.set_program_weight("heavy", 3.0).unwrap();
    for id in heavy.iter().chain(&light) {
        s.offer_work(*id, "", &json!({"gpus": 0})).unwrap();
    }
    let w = worker(&mut s, "w", 0);
    let mut got = Vec::new();
    for _ in 0..40 {
        let item = s.claim_work(w, &|_| true, 60_000).unwrap().unwrap();
        got.push(item.run_id);
    }
    let of_light = got.iter().filter(|id| light.contains(id)).count();
    assert_eq!(of_light, 10, "claims: {got:?}");
    // The second claim already goes to `light`: the first put `heavy` ahead of its share.
    assert!(light.contains(&got[1]), "{got:?}");
    // Within a program, oldest first.
    let of_heavy: Vec<i64> = got
        .iter()
        .copied()
        .filter(|id| heavy.contains(id))
        .collect();
    assert_eq!(of_heavy, heavy[..30].to_vec());
}

picidae_store::on_both_backends!(
    the_pool_is_shared_by_weight,
    statuses_of_many_runs_in_one_call,
    a_run_released_by_its_worker_is_offered_again_at_once,
    claims_fit_and_are_exclusive,
    a_report_counts_once_and_only_under_the_lease_held,
    cancels_reach_the_worker_and_withdraw_the_item,
);
