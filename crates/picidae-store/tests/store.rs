//! The store suite, run on both backends: a real SQLite file and a real PostgreSQL database
//! (a private server started by the `testing` fixture). Lifecycle, atomic decisions, no double
//! counting, durability across reopen, steering and tokens.

use picidae_core::{AttemptKind, AttemptStatus, RunStatus};
use picidae_store::testing::TestStore;
use picidae_store::{Decision, NewAttempt, NewProgram, RunResult, Store, StoreError};

fn program(store: &mut Store, name: &str) -> picidae_store::Program {
    store
        .create_program(&NewProgram {
            name: name.into(),
            benchmark_dir: "/bench".into(),
            program_md: "# direction".into(),
            agent: serde_json::json!({"kind": "sweep"}),
            policy: serde_json::json!({}),
            base_commit: "a".repeat(40),
        })
        .unwrap()
}

fn attempt(store: &mut Store, program_id: i64, commit: &str) -> picidae_store::Attempt {
    let a = store
        .insert_attempt(&NewAttempt {
            program_id,
            kind: AttemptKind::Explore,
            parent_commit: "a".repeat(40),
            hypothesis: "lr 0.1 → 0.2".into(),
            proposer: "sweep".into(),
            params: Some(serde_json::json!({"lr": "0.2"})),
        })
        .unwrap();
    store
        .set_attempt_commit(a.id, commit, "hash", &["train.py".into()], None)
        .unwrap();
    a
}

fn program_names_are_unique(t: &TestStore) {
    let mut s = t.open();
    program(&mut s, "p");
    let err = s
        .create_program(&NewProgram {
            name: "p".into(),
            benchmark_dir: "/x".into(),
            program_md: String::new(),
            agent: serde_json::Value::Null,
            policy: serde_json::Value::Null,
            base_commit: "b".into(),
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::ProgramExists(_)));
    assert!(matches!(
        s.program("nope"),
        Err(StoreError::NoSuchProgram(_))
    ));
}

fn sequence_numbers_are_dense_per_program(t: &TestStore) {
    let mut s = t.open();
    let p1 = program(&mut s, "one");
    let p2 = program(&mut s, "two");
    let a = attempt(&mut s, p1.id, "c1");
    let b = attempt(&mut s, p1.id, "c2");
    let c = attempt(&mut s, p2.id, "c3");
    assert_eq!((a.seq, b.seq, c.seq), (1, 2, 1));
}

fn decision_advances_frontier_atomically_and_runs_finish_once(t: &TestStore) {
    let mut s = t.open();
    let p = program(&mut s, "p");
    let a = attempt(&mut s, p.id, "c1");
    let run = s.insert_run(a.id, 0, "local").unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    s.mark_run_started(run.id, 123, 123, "host", Some(("fp1", "{}")), "/logs/1")
        .unwrap();
    let mut result = RunResult {
        status: Some(RunStatus::Succeeded),
        exit_code: Some(0),
        wall_secs: Some(1.5),
        primary_value: Some(0.5),
        ..Default::default()
    };
    result.metrics.insert("val_loss".into(), 0.5);
    result.metrics.insert("odd".into(), f64::NAN);
    s.finish_run_and_decide(
        run.id,
        &result,
        a.id,
        &Decision {
            status: AttemptStatus::Kept,
            primary_value: Some(0.5),
            note: None,
            advance_frontier: true,
            judged_against: None,
        },
    )
    .unwrap();
    let p = s.program("p").unwrap();
    assert_eq!(p.frontier_commit.as_deref(), Some("c1"));
    assert_eq!(p.frontier_value, Some(0.5));
    assert_eq!(s.frontier_history(p.id).unwrap().len(), 1);
    let stored = s.run(run.id).unwrap();
    assert_eq!(stored.metrics["val_loss"], 0.5);
    assert!(
        stored.metrics["odd"].is_nan(),
        "NaN survives the round trip"
    );
    assert_eq!(stored.fingerprint.as_deref(), Some("fp1"));

    // a second finish is refused, and nothing changes
    let err = s.finish_run(run.id, &result).unwrap_err();
    assert!(matches!(err, StoreError::RunAlreadyFinished(_)));
    assert_eq!(s.run_count(Some(p.id)).unwrap(), 1);
}

fn failed_decide_rolls_back_the_run_result(t: &TestStore) {
    let mut s = t.open();
    let p = program(&mut s, "p");
    // attempt without commit cannot advance the frontier
    let a = s
        .insert_attempt(&NewAttempt {
            program_id: p.id,
            kind: AttemptKind::Explore,
            parent_commit: "x".into(),
            hypothesis: "h".into(),
            proposer: "t".into(),
            params: None,
        })
        .unwrap();
    let run = s.insert_run(a.id, 0, "local").unwrap();
    let err = s
        .finish_run_and_decide(
            run.id,
            &RunResult::default(),
            a.id,
            &Decision {
                status: AttemptStatus::Kept,
                primary_value: Some(1.0),
                note: None,
                advance_frontier: true,
                judged_against: None,
            },
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)));
    assert_eq!(s.run(run.id).unwrap().status, RunStatus::Queued);
    assert_eq!(s.attempt(a.id).unwrap().status, AttemptStatus::Proposed);
}

fn data_survives_reopen_and_unfinished_runs_are_listed(t: &TestStore) {
    {
        let mut s = t.open();
        let p = program(&mut s, "p");
        let a = attempt(&mut s, p.id, "c1");
        let r1 = s.insert_run(a.id, 0, "local").unwrap();
        s.finish_run(
            r1.id,
            &RunResult {
                status: Some(RunStatus::Failed),
                exit_code: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
        let r2 = s.insert_run(a.id, 1, "local").unwrap();
        s.mark_run_started(r2.id, 99, 99, "h", None, "/l").unwrap();
    }
    let s = t.open();
    s.integrity_check().unwrap();
    assert_eq!(s.schema_version().unwrap(), 18);
    assert_eq!(picidae_store::latest_schema(), 18);
    let p = s.program("p").unwrap();
    let unfinished = s.unfinished_runs(Some(p.id)).unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].pid, Some(99));
    let runs = s.runs_of_attempt(unfinished[0].attempt_id).unwrap();
    assert_eq!(runs[0].exit_code, Some(3));
    assert_eq!(s.undecided_attempts(p.id).unwrap().len(), 1);
    let rows = s.results(None).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].runs, 2);
}

fn steering_state_and_tokens(t: &TestStore) {
    let mut s = t.open();
    let p = program(&mut s, "p");
    assert_eq!(
        (p.status.as_str(), p.weight, p.max_runs),
        ("active", 1.0, None)
    );
    s.set_program_active("p", false).unwrap();
    s.set_program_weight("p", 3.0).unwrap();
    s.set_program_max_runs("p", Some(40)).unwrap();
    let p = s.program("p").unwrap();
    assert_eq!(
        (p.status.as_str(), p.weight, p.max_runs),
        ("paused", 3.0, Some(40))
    );
    assert!(s.set_program_weight("nope", 1.0).is_err());

    let f = s.add_followup("p", "try cosine decay", "alice").unwrap();
    assert_eq!(s.open_followups(p.id).unwrap().len(), 1);
    let a = attempt(&mut s, p.id, "c1");
    s.consume_followups(&[f.id], a.id).unwrap();
    assert!(s.open_followups(p.id).unwrap().is_empty());

    let (t, secret) = s.create_token("ci", true).unwrap();
    assert!(secret.starts_with("pcd_") && secret.len() > 40);
    let found = s.check_token(&secret).unwrap().unwrap();
    assert_eq!((found.id, found.read_only), (t.id, true));
    assert!(s.check_token("pcd_wrong").unwrap().is_none());
    s.revoke_token(t.id).unwrap();
    assert!(s.check_token(&secret).unwrap().is_none());
    // Only the hash is stored.
    let stored: String = s
        .db()
        .query_row("SELECT hash FROM tokens", (), |r| r.get(0))
        .unwrap();
    assert!(!stored.contains(&secret[4..]));
}

fn program_leases_are_exclusive(t: &TestStore) {
    let mut s = t.open();
    let p = program(&mut s, "p");
    assert!(s.claim_program(p.id, "a:1", None).unwrap());
    assert!(
        s.claim_program(p.id, "a:1", None).unwrap(),
        "a holder may claim again"
    );
    assert!(!s.claim_program(p.id, "b:2", None).unwrap(), "held by a");
    let seen = s.program_lease(p.id).unwrap().unwrap();
    assert_eq!(seen.0, "a:1");
    // Judged dead, the lease goes to exactly one of several racing claimants.
    let winners: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let seen = seen.clone();
                let location = t.location.clone();
                scope.spawn(move || {
                    let mut mine = Store::open_location(&location).unwrap();
                    mine.claim_program(p.id, &format!("c:{i}"), Some(&seen))
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
    let holder = s.program_lease(p.id).unwrap().unwrap().0;
    assert!(holder.starts_with("c:"), "{holder}");
    // The old holder learns it lost the program; the new one keeps it; release frees it.
    assert!(s.renew_program_leases("a:1").unwrap().is_empty());
    assert_eq!(s.renew_program_leases(&holder).unwrap(), vec![p.id]);
    s.release_program(p.id, "a:1").unwrap();
    assert!(
        s.program_lease(p.id).unwrap().is_some(),
        "only the holder releases"
    );
    s.release_program(p.id, &holder).unwrap();
    assert!(s.program_lease(p.id).unwrap().is_none());
    // Coordinators announce themselves and are forgotten when they stop.
    s.coordinator_heartbeat("c:0", 2).unwrap();
    s.coordinator_heartbeat("c:1", 4).unwrap();
    s.coordinator_heartbeat("c:1", 4).unwrap();
    assert_eq!(
        s.live_coordinators(60_000).unwrap(),
        vec![("c:0".to_string(), 2), ("c:1".to_string(), 4)]
    );
    s.remove_coordinator("c:0").unwrap();
    assert_eq!(s.live_coordinators(60_000).unwrap().len(), 1);
}

fn findings_evidence_and_spend(t: &TestStore) {
    use picidae_core::domain::FindingState;
    use picidae_store::{Calibration, Evidence, HiddenResult, NoiseFloor};
    let mut s = t.open();
    let p = program(&mut s, "p");
    let base = attempt(&mut s, p.id, "c0");
    let cand = attempt(&mut s, p.id, "c1");
    s.decide_attempt(
        base.id,
        &Decision {
            status: AttemptStatus::Kept,
            primary_value: Some(0.5),
            note: None,
            advance_frontier: true,
            judged_against: None,
        },
    )
    .unwrap();
    let f = s
        .create_finding(p.id, cand.id, base.id, "val_loss", Some("fp"))
        .unwrap();
    assert_eq!(f.state, FindingState::Candidate);
    let evidence = Evidence {
        effect: Some(0.02),
        ci_low: Some(0.01),
        ci_high: Some(0.03),
        p_value: Some(0.004),
        n_candidate: Some(3),
        hidden_agrees: Some(true),
        flags: vec!["checked".into()],
        ..Default::default()
    };
    s.move_finding(f.id, FindingState::Verifying, Some(&evidence), "3 seeds")
        .unwrap();
    s.conclude_finding(
        f.id,
        FindingState::Validated,
        &evidence,
        "significant",
        cand.id,
        &Decision {
            status: AttemptStatus::Kept,
            primary_value: Some(0.4),
            note: None,
            advance_frontier: true,
            judged_against: None,
        },
    )
    .unwrap();
    assert_eq!(
        s.program("p").unwrap().frontier_commit.as_deref(),
        Some("c1")
    );
    let stored = s.finding(f.id).unwrap();
    assert_eq!(stored.state, FindingState::Validated);
    assert_eq!(stored.evidence.p_value, Some(0.004));
    assert_eq!(stored.evidence.flags, vec!["checked".to_string()]);
    s.approve_finding(f.id, "alice", Some("looks right"))
        .unwrap();
    let events = s.finding_events(f.id).unwrap();
    // created, verifying, validated, approved
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events[3].reason.contains("alice"));
    assert_eq!(
        s.findings(Some(p.id), Some(FindingState::Validated))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.testing_family(p.id, None).unwrap(), vec![0.004]);

    // Upserts: the second write wins, nothing is duplicated.
    for (n, mean) in [(3, 0.5), (5, 0.45)] {
        s.set_noise_floor(&NoiseFloor {
            program_id: p.id,
            fingerprint: "fp".into(),
            attempt_id: base.id,
            n,
            mean,
            std: 0.01,
            created_at: 1,
        })
        .unwrap();
    }
    assert_eq!(s.noise_floor(p.id, "fp").unwrap().unwrap().n, 5);
    let run = s.insert_run(cand.id, 7, "local").unwrap();
    for ok in [false, true] {
        let mut metrics = picidae_core::MetricValues::new();
        metrics.insert("test_loss".into(), 0.25);
        s.set_hidden_result(&HiddenResult {
            run_id: run.id,
            ok,
            metrics,
            error: None,
            evaluated_at: 2,
        })
        .unwrap();
    }
    let h = s.hidden_result(run.id).unwrap().unwrap();
    assert!(h.ok && h.metrics["test_loss"] == 0.25);
    s.insert_calibration(&Calibration {
        id: 0,
        program_id: p.id,
        commit_sha: "c0".into(),
        passed: true,
        rank_correlation: Some(0.9),
        max_error: Some(0.1),
        details: serde_json::json!({"cases": 2}),
        created_at: 3,
    })
    .unwrap();
    assert!(s.latest_calibration(p.id).unwrap().unwrap().passed);

    // Spend: GPU time of the runs at the program's price, plus what agents reported.
    s.set_run_placement(run.id, &[0, 1], 2, "c:1").unwrap();
    s.mark_run_started(run.id, 1, 1, "h", None, "/l").unwrap();
    s.finish_run(run.id, &RunResult::default()).unwrap();
    s.set_attempt_agent_cost(cand.id, Some(0.5), Some(1200))
        .unwrap();
    s.set_program_cost_budget("p", None, Some(Some(10.0)), Some(2.0))
        .unwrap();
    let spend = s.program_spend(p.id).unwrap();
    assert_eq!((spend.runs, spend.agent_tokens), (1, 1200));
    assert!(spend.agent_usd == 0.5 && spend.usd >= 0.5, "{spend:?}");
    // Retraction moves the frontier back.
    s.retract_finding(f.id, "did not replicate").unwrap();
    assert_eq!(s.finding(f.id).unwrap().state, FindingState::Retracted);
    assert_ne!(
        s.program("p").unwrap().frontier_commit.as_deref(),
        Some("c1")
    );
    // A cancel request is recorded once, and not for a finished run.
    let r2 = s.insert_run(cand.id, 8, "local").unwrap();
    let first = s.request_run_cancel(r2.id).unwrap().unwrap();
    assert_eq!(s.request_run_cancel(r2.id).unwrap(), Some(first));
    assert_eq!(
        s.cancel_requested_runs(&[run.id, r2.id]).unwrap(),
        vec![r2.id]
    );
    assert_eq!(s.request_run_cancel(run.id).unwrap(), None);
}

fn deleting_a_program_removes_its_rows_only(t: &TestStore) {
    use picidae_store::{Calibration, HiddenResult, NoiseFloor};
    let mut s = t.open();
    let p = program(&mut s, "p");
    let q = program(&mut s, "q");
    let base = attempt(&mut s, p.id, "c0");
    let cand = attempt(&mut s, p.id, "c1");
    let other = attempt(&mut s, q.id, "c2");
    s.decide_attempt(
        base.id,
        &Decision {
            status: AttemptStatus::Kept,
            primary_value: Some(0.5),
            note: None,
            advance_frontier: true,
            judged_against: None,
        },
    )
    .unwrap();
    let f = s
        .create_finding(p.id, cand.id, base.id, "val_loss", Some("fp"))
        .unwrap();
    s.set_noise_floor(&NoiseFloor {
        program_id: p.id,
        fingerprint: "fp".into(),
        attempt_id: base.id,
        n: 3,
        mean: 0.5,
        std: 0.01,
        created_at: 1,
    })
    .unwrap();
    let run = s.insert_run(cand.id, 1, "local").unwrap();
    s.set_hidden_result(&HiddenResult {
        run_id: run.id,
        ok: true,
        metrics: Default::default(),
        error: None,
        evaluated_at: 2,
    })
    .unwrap();
    s.insert_calibration(&Calibration {
        id: 0,
        program_id: p.id,
        commit_sha: "c0".into(),
        passed: true,
        rank_correlation: None,
        max_error: None,
        details: serde_json::json!({}),
        created_at: 3,
    })
    .unwrap();
    s.add_followup("p", "try a warmup", "alice").unwrap();
    // Another program's attempt marked a duplicate of one of p's.
    s.db()
        .execute(
            "UPDATE attempts SET duplicate_of = ?1 WHERE id = ?2",
            [cand.id, other.id],
        )
        .unwrap();
    let q_run = s.insert_run(other.id, 1, "local").unwrap();
    // Memory rows of both programs (the full-text index is engine-specific).
    let memory_insert = match s.backend() {
        picidae_store::Backend::Sqlite => {
            "INSERT INTO memory_fts (rowid, hypothesis, program) VALUES (?1, 'warmup', 'x')"
        }
        picidae_store::Backend::Postgres => {
            "INSERT INTO memory_fts (attempt_id, hypothesis, program) VALUES (?1, 'warmup', 'x')"
        }
    };
    for id in [base.id, cand.id, other.id] {
        s.db().execute(memory_insert, [id]).unwrap();
    }
    let memory_rows = |s: &Store| -> Vec<i64> {
        let sql = match s.backend() {
            picidae_store::Backend::Sqlite => "SELECT rowid FROM memory_fts ORDER BY rowid",
            picidae_store::Backend::Postgres => {
                "SELECT attempt_id FROM memory_fts ORDER BY attempt_id"
            }
        };
        s.db().query_map(sql, (), |r| r.get(0)).unwrap()
    };

    // A running run refuses the deletion, and nothing is removed.
    s.mark_run_started(run.id, 1, 1, "h", None, "/l").unwrap();
    let err = s.delete_program("p").unwrap_err();
    assert!(
        matches!(&err, StoreError::ProgramRunning { program, runs } if program == "p" && runs == &vec![run.id]),
        "{err}"
    );
    assert!(err.to_string().contains("stop its loop"), "{err}");
    assert_eq!(s.results(Some(p.id)).unwrap().len(), 2);
    s.finish_run(run.id, &RunResult::default()).unwrap();

    let gone = s.delete_program("p").unwrap();
    assert_eq!(gone.program.id, p.id);
    assert_eq!(gone.attempt_seqs, vec![1, 2]);
    assert_eq!(gone.run_ids, vec![run.id]);
    assert_eq!(gone.findings, 1);
    assert!(matches!(s.program("p"), Err(StoreError::NoSuchProgram(_))));
    assert!(matches!(s.finding(f.id), Err(StoreError::NoSuchFinding(_))));
    for table in [
        "attempts",
        "runs",
        "frontier_history",
        "findings",
        "noise_floors",
        "calibrations",
        "followups",
    ] {
        let n: i64 = s
            .db()
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE program_id = ?1"),
                [p.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{table} still has rows of the deleted program");
    }
    assert!(s.hidden_result(run.id).unwrap().is_none());
    assert_eq!(memory_rows(&s), vec![other.id]);
    // The other program is untouched, its duplicate mark dropped.
    let kept = s.attempt(other.id).unwrap();
    assert_eq!(kept.program_id, q.id);
    assert_eq!(s.runs_of_attempt(other.id).unwrap()[0].id, q_run.id);
    let dup: Option<i64> = s
        .db()
        .query_row(
            "SELECT duplicate_of FROM attempts WHERE id = ?1",
            [other.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dup, None);
    assert!(matches!(
        s.delete_program("p"),
        Err(StoreError::NoSuchProgram(_))
    ));
}

/// A connection the server closes (a restart, a terminated backend) costs one failed call:
/// the next one connects again.
#[test]
fn a_lost_postgres_connection_is_replaced() {
    let Some(t) = TestStore::postgres() else {
        return;
    };
    let s = t.open();
    let pid: i32 = s
        .db()
        .query_row("SELECT pg_backend_pid()", (), |r| r.get(0))
        .unwrap();
    let other = t.open();
    let killed: bool = other
        .db()
        .query_row("SELECT pg_terminate_backend(?1)", [pid], |r| r.get(0))
        .unwrap();
    assert!(killed);
    // The first call finds the connection gone; the next ones work on a new one.
    let _ = s.programs();
    let mut worked = false;
    for _ in 0..50 {
        if s.programs().is_ok() {
            worked = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(worked, "the store connected again");
    let new_pid: i32 = s
        .db()
        .query_row("SELECT pg_backend_pid()", (), |r| r.get(0))
        .unwrap();
    assert_ne!(pid, new_pid);
}

/// The fixtures benchmarks and fault-injection tests write with, and the listings they read.
fn fixtures_write_what_the_listings_read(t: &TestStore) {
    use picidae_store::testing;
    let mut s = t.open();
    let p = program(&mut s, "p");
    let seeded = |seq: i64| picidae_store::Attempt {
        id: 0,
        program_id: p.id,
        seq,
        kind: AttemptKind::Explore,
        status: AttemptStatus::Discarded,
        parent_commit: "p".into(),
        commit: Some(format!("{seq:040x}")),
        hypothesis: format!("idea {seq}"),
        proposer: "synthetic".into(),
        params: Some(serde_json::json!({"lr": seq})),
        patch_hash: Some(format!("{seq:064x}")),
        touched: vec!["train.py".into()],
        rejection: None,
        primary_value: Some(seq as f64),
        note: None,
        created_at: 10 * seq,
        decided_at: Some(10 * seq),
        replay_of: None,
    };
    // A failed fill leaves nothing; a whole one commits.
    let failed = testing::in_transaction(&s, |s| {
        testing::seed_attempt(s, &seeded(1))?;
        Err::<(), _>(StoreError::Corrupt("stop".into()))
    });
    assert!(failed.is_err());
    assert!(s.hypotheses(p.id).unwrap().is_empty());
    let ids = testing::in_transaction(&s, |s| {
        (1..=3)
            .map(|seq| testing::seed_attempt(s, &seeded(seq)))
            .collect::<picidae_store::Result<Vec<i64>>>()
    })
    .unwrap();
    let a = s.attempt(ids[1]).unwrap();
    assert_eq!(
        a,
        picidae_store::Attempt {
            id: ids[1],
            ..seeded(2)
        }
    );
    let mut hypotheses = s.hypotheses(p.id).unwrap();
    hypotheses.sort();
    assert_eq!(hypotheses, ["idea 1", "idea 2", "idea 3"]);
    s.analyze().unwrap();

    let run = testing::seed_run(
        &s,
        &testing::SeedRun {
            attempt_id: a.id,
            program_id: p.id,
            seed: 0,
            status: RunStatus::Succeeded,
            executor: "local".into(),
            primary_value: Some(2.0),
            wall_secs: Some(1.0),
            queued_at: 20,
            started_at: Some(20),
            finished_at: Some(21),
        },
    )
    .unwrap();
    let live = s.insert_run(ids[2], 0, "local").unwrap();
    s.set_run_placement(live.id, &[0, 3], 2, "me").unwrap();
    let runs = s.runs(None).unwrap();
    assert_eq!(
        runs.iter().map(|r| (r.id, r.status)).collect::<Vec<_>>(),
        [(run, RunStatus::Succeeded), (live.id, RunStatus::Queued)]
    );
    assert_eq!(
        (runs[0].finished_at, runs[0].primary_value),
        (Some(21), Some(2.0))
    );
    assert_eq!(s.runs(Some(p.id + 1)).unwrap(), []);
    assert_eq!(s.run_gpus(live.id).unwrap(), [0, 3]);
    assert_eq!(s.run_gpus(run).unwrap(), Vec::<u32>::new());
    assert!(matches!(s.run_gpus(-1), Err(StoreError::NoSuchRun(-1))));

    let first = s.add_followup("p", "first", "me").unwrap();
    s.add_followup("p", "second", "you").unwrap();
    s.consume_followups(&[first.id], a.id).unwrap();
    let all = s.followups(None).unwrap();
    assert_eq!(
        all.iter()
            .map(|f| (f.text.as_str(), f.author.as_str(), f.consumed_by))
            .collect::<Vec<_>>(),
        [("first", "me", Some(a.id)), ("second", "you", None)]
    );
    assert_eq!(s.followups(Some(p.id)).unwrap(), all);
    assert_eq!(s.open_followups(p.id).unwrap(), all[1..]);

    // Planted faults change exactly what they name.
    let attempts_before = testing::table_rows(&s, "attempts").unwrap();
    assert_eq!(attempts_before.len(), 3);
    testing::tamper_attempt_status(&s, a.id, AttemptStatus::Kept).unwrap();
    assert_eq!(s.attempt(a.id).unwrap().status, AttemptStatus::Kept);
    assert_eq!(s.attempt(a.id).unwrap().decided_at, a.decided_at);
    testing::tamper_attempt_status(&s, a.id, AttemptStatus::Discarded).unwrap();
    assert_eq!(
        testing::table_rows(&s, "attempts").unwrap(),
        attempts_before
    );
    testing::tamper_frontier(&s, p.id, a.id, "c", 9.0).unwrap();
    let q = s.program("p").unwrap();
    assert_eq!(
        (
            q.frontier_attempt_id,
            q.frontier_commit.as_deref(),
            q.frontier_value
        ),
        (Some(a.id), Some("c"), Some(9.0))
    );
    assert!(s.frontier_history(p.id).unwrap().is_empty());
    testing::tamper_run_value(&s, run, 1.0).unwrap();
    assert_eq!(s.run(run).unwrap().primary_value, Some(1.0));
    assert!(matches!(
        testing::tamper_attempt_status(&s, -1, AttemptStatus::Kept),
        Err(StoreError::NoSuchAttempt(-1))
    ));
    assert!(matches!(
        testing::tamper_run_value(&s, -1, 1.0),
        Err(StoreError::NoSuchRun(-1))
    ));
    assert_eq!(
        testing::tamper_noise_floor_fingerprints(&s, "elsewhere").unwrap(),
        0
    );
}

/// Commit bundles are kept once per (program, commit), read back byte for byte, and a
/// program's commits are listed oldest first, each once.
fn commit_bundles_round_trip(t: &TestStore) {
    let mut s = t.open();
    let p = program(&mut s, "p");
    let q = program(&mut s, "q");
    let (c1, c2) = ("1".repeat(40), "2".repeat(40));
    attempt(&mut s, p.id, &c1);
    attempt(&mut s, p.id, &c2);
    attempt(&mut s, p.id, &c1);
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert!(!s.has_commit_bundle(p.id, &c1).unwrap());
    s.put_commit_bundle(p.id, &c1, &bytes).unwrap();
    // A second write of the same commit keeps the first.
    s.put_commit_bundle(p.id, &c1, b"other").unwrap();
    assert!(s.has_commit_bundle(p.id, &c1).unwrap());
    assert!(!s.has_commit_bundle(q.id, &c1).unwrap());
    assert_eq!(s.commit_bundle(p.id, &c1).unwrap().unwrap(), bytes);
    assert_eq!(s.commit_bundle(p.id, &c2).unwrap(), None);
    assert_eq!(
        s.program_commits(p.id).unwrap(),
        vec![(1, c1.clone()), (2, c2.clone())]
    );
    assert!(s.program_commits(q.id).unwrap().is_empty());
}

/// What a contributor's claims have spent: the runs of their verification attempts (one
/// pass over them), plus one per claim still queued; another contributor's are not counted.
fn contributor_spend_counts_its_claims_runs_and_queue(t: &TestStore) {
    use picidae_store::{ContributionState, NewContribution};
    let mut s = t.open();
    let p = program(&mut s, "p");
    let (alice, _) = s.create_contributor_token("alice").unwrap();
    let (bob, _) = s.create_contributor_token("bob").unwrap();
    let claim = |s: &mut Store, token_id: i64, patch: &str| {
        s.add_contribution(
            &NewContribution {
                program_id: p.id,
                token_id,
                contributor: "c".into(),
                parent_commit: "a".repeat(40),
                patch: patch.into(),
                hypothesis: "h".into(),
                claimed_value: 1.0,
                claimed_gain: 1.0,
                claimed: serde_json::json!({}),
                sign: -1.0,
            },
            ContributionState::Queued,
            None,
        )
        .unwrap()
    };
    let verified = claim(&mut s, alice.id, "p1");
    claim(&mut s, alice.id, "p2");
    let others = claim(&mut s, bob.id, "p3");
    for (c, runs) in [(&verified, 2), (&others, 1)] {
        let a = attempt(&mut s, p.id, &"c".repeat(40));
        assert!(s.start_contribution(c.id, a.id).unwrap());
        for seed in 0..runs {
            let r = s.insert_run(a.id, seed, "local").unwrap();
            s.finish_run(
                r.id,
                &RunResult {
                    status: Some(RunStatus::Succeeded),
                    ..Default::default()
                },
            )
            .unwrap();
        }
    }
    let spent = s.contributor_spend(p.id, alice.id).unwrap();
    // Two runs of the claim being verified, one for the claim still queued.
    assert_eq!(spent.runs, 3, "{spent:?}");
    assert_eq!((spent.gpu_hours, spent.usd), (0.0, 0.0), "{spent:?}");
    assert_eq!(s.contributor_spend(p.id, bob.id).unwrap().runs, 1);
}

picidae_store::on_both_backends!(
    contributor_spend_counts_its_claims_runs_and_queue,
    commit_bundles_round_trip,
    fixtures_write_what_the_listings_read,
    program_names_are_unique,
    sequence_numbers_are_dense_per_program,
    decision_advances_frontier_atomically_and_runs_finish_once,
    failed_decide_rolls_back_the_run_result,
    data_survives_reopen_and_unfinished_runs_are_listed,
    steering_state_and_tokens,
    program_leases_are_exclusive,
    findings_evidence_and_spend,
    deleting_a_program_removes_its_rows_only,
);
