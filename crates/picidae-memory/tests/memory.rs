//! The memory against a real store, on both backends (a SQLite file and a PostgreSQL
//! database): search by shared key terms, similar attempts, summaries, the three dedup keys,
//! and the same answers from both engines for the same memory.

use picidae_core::domain::{FindingState, FLAG_OVERFIT};
use picidae_core::{Assignment, AttemptKind, AttemptStatus};
use picidae_memory::{find_duplicate, index_attempt, search, set_keys, similar, summary};
use picidae_store::testing::TestStore;
use picidae_store::{Decision, Evidence, NewAttempt, NewProgram, Store};

struct Fixture {
    store: Store,
    program_id: i64,
}

const PARENT: &str = "1111111111111111111111111111111111111111";

fn fixture(t: &TestStore) -> Fixture {
    let mut store = t.open();
    let p = store
        .create_program(&NewProgram {
            name: "p".into(),
            benchmark_dir: "/bench".into(),
            program_md: String::new(),
            agent: serde_json::Value::Null,
            policy: serde_json::Value::Null,
            base_commit: PARENT.into(),
        })
        .unwrap();
    Fixture {
        store,
        program_id: p.id,
    }
}

impl Fixture {
    fn add(
        &mut self,
        hypothesis: &str,
        patch: &str,
        params: Option<Assignment>,
        status: AttemptStatus,
        value: f64,
    ) -> i64 {
        let a = self
            .store
            .insert_attempt(&NewAttempt {
                program_id: self.program_id,
                kind: AttemptKind::Explore,
                parent_commit: PARENT.into(),
                hypothesis: hypothesis.into(),
                proposer: "test".into(),
                params: params.as_ref().map(|p| serde_json::to_value(p).unwrap()),
            })
            .unwrap();
        let hash = hex_sha(patch);
        self.store
            .set_attempt_commit(
                a.id,
                &format!("{:040}", a.id),
                &hash,
                &["train.py".into()],
                None,
            )
            .unwrap();
        self.store
            .decide_attempt(
                a.id,
                &Decision {
                    status,
                    primary_value: Some(value),
                    note: None,
                    advance_frontier: false,
                    judged_against: None,
                },
            )
            .unwrap();
        let a = self.store.attempt(a.id).unwrap();
        set_keys(&self.store, a.id, patch, params.as_ref()).unwrap();
        index_attempt(&self.store, &a, patch).unwrap();
        a.id
    }
}

fn hex_sha(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn patch(line: &str) -> String {
    format!("--- a/train.py\n+++ b/train.py\n@@ -3,1 +3,1 @@ def train():\n-{line}_OLD\n+{line}\n")
}

fn search_finds_an_attempt_by_a_paraphrase_sharing_key_terms(t: &TestStore) {
    let mut f = fixture(t);
    let warm = f.add(
        "add a linear learning-rate warmup over the first 500 steps",
        &patch("WARMUP_STEPS = 500"),
        None,
        AttemptStatus::Discarded,
        0.98,
    );
    f.add(
        "double the hidden width of the MLP",
        &patch("HIDDEN = 64"),
        None,
        AttemptStatus::Kept,
        0.91,
    );
    f.add(
        "switch the optimizer to AdamW with weight decay",
        &patch("OPT = 'adamw'"),
        None,
        AttemptStatus::Discarded,
        0.99,
    );
    // Different words, shared key terms ("warmup", "learning rate" stems).
    let hits = search(
        &f.store,
        "should we warm up the learning rates first?",
        None,
        5,
    )
    .unwrap();
    assert_eq!(hits[0].attempt_id, warm, "{hits:?}");
    assert_eq!(hits[0].status, AttemptStatus::Discarded);
    // Symbols and diffs are searchable too.
    let hits = search(&f.store, "WARMUP_STEPS", Some("p"), 5).unwrap();
    assert_eq!(hits[0].attempt_id, warm);
    // Similar attempts exclude the attempt itself.
    let sim = similar(&f.store, warm, 5).unwrap();
    assert!(sim.iter().all(|h| h.attempt_id != warm));
    // Summaries count tries and outcomes.
    f.add(
        "add a linear learning-rate warmup over the first 500 steps",
        &patch("WARMUP_STEPS = 500  # again"),
        None,
        AttemptStatus::Discarded,
        0.97,
    );
    let s = summary(&f.store, "learning-rate warmup", None, 10).unwrap();
    assert!(s.contains("tried 2×") && s.contains("discarded ×2"), "{s}");
    // An empty query is an error, not everything.
    assert!(search(&f.store, " ? ", None, 5).is_err());
}

fn dedup_by_exact_patch_normalized_patch_and_parameters(t: &TestStore) {
    let mut f = fixture(t);
    let base = patch("LR = 0.03");
    let first = f.add("lr 0.01 → 0.03", &base, None, AttemptStatus::Discarded, 1.0);
    fn dup(f: &Fixture, p: &str, params: Option<&Assignment>) -> Option<picidae_memory::Duplicate> {
        find_duplicate(&f.store, "/bench", -1, PARENT, p, params, None).unwrap()
    }
    let d = dup(&f, &base, None).expect("exact duplicate");
    assert_eq!((d.of.attempt_id, d.how.as_str()), (first, "exact-patch"));
    assert_eq!(d.of.status, AttemptStatus::Discarded);
    let reformatted = base.replace("+LR = 0.03", "+LR  =  0.03   # same idea");
    let d = dup(&f, &reformatted, None).expect("normalized duplicate");
    assert_eq!(d.how, "normalized-patch");
    assert!(dup(&f, &patch("LR = 0.05"), None).is_none());
    // Another parent commit is another experiment.
    assert!(find_duplicate(
        &f.store,
        "/bench",
        -1,
        "2222222222222222222222222222222222222222",
        &base,
        None,
        None
    )
    .unwrap()
    .is_none());
    // Another benchmark is another experiment.
    assert!(
        find_duplicate(&f.store, "/other", -1, PARENT, &base, None, None)
            .unwrap()
            .is_none()
    );

    let mut a = Assignment::new();
    a.insert("lr".into(), "0.1".into());
    a.insert("batch".into(), "32".into());
    let swept = f.add(
        "lr 0.05 → 0.1",
        &patch("LR = 0.1"),
        Some(a.clone()),
        AttemptStatus::Kept,
        0.5,
    );
    let d = dup(&f, &patch("LR = 0.1 ; other layout"), Some(&a)).expect("same parameters");
    assert_eq!(
        (d.of.attempt_id, d.how.as_str()),
        (swept, "same-parameters")
    );
    a.insert("batch".into(), "64".into());
    assert!(dup(&f, &patch("LR = 0.1 ; other layout"), Some(&a)).is_none());
}

const TOPICS: &[&str] = &[
    "learning rate warmup",
    "cosine decay schedule",
    "hidden width",
    "dropout regularisation",
    "batch size",
    "weight decay",
    "adamw optimizer",
    "gradient clipping",
    "label smoothing",
    "residual connections",
];

/// One memory, built the same way in each store: (seq, hypothesis) pairs come back by seq, so
/// the two engines' answers can be compared.
fn corpus(f: &mut Fixture) {
    for i in 0..80usize {
        let topic = TOPICS[i % TOPICS.len()];
        let other = TOPICS[(i * 7 + 3) % TOPICS.len()];
        let hypothesis = match i % 4 {
            0 => format!("try {topic} with {other}"),
            1 => format!("increase the {topic}"),
            2 => format!("reduce {topic} and tune {other}"),
            _ => format!("{topic} ablation number {i}"),
        };
        let line = format!("{}_{i} = {}", topic.replace(' ', "_").to_uppercase(), i % 5);
        let status = if i % 3 == 0 {
            AttemptStatus::Kept
        } else {
            AttemptStatus::Discarded
        };
        f.add(
            &hypothesis,
            &patch(&line),
            None,
            status,
            1.0 - i as f64 / 100.0,
        );
    }
}

fn answers(f: &Fixture, query: &str) -> Vec<i64> {
    let mut seqs: Vec<i64> = search(&f.store, query, None, 100)
        .unwrap()
        .iter()
        .map(|h| h.seq)
        .collect();
    seqs.sort();
    seqs
}

#[test]
fn postgres_finds_what_sqlite_finds() {
    let Some(pg) = TestStore::postgres() else {
        return;
    };
    let lite = TestStore::sqlite();
    let (mut a, mut b) = (fixture(&lite), fixture(&pg));
    corpus(&mut a);
    corpus(&mut b);
    let queries = [
        "warm up the learning rates",
        "cosine decay",
        "hidden width ablation",
        "dropout",
        "adamw optimizer with weight decay",
        "gradient clipping and label smoothing",
        "LEARNING_RATE_WARMUP_10",
        "residual",
        "quantum annealing",
    ];
    let mut nonempty = 0;
    for q in queries {
        let (x, y) = (answers(&a, q), answers(&b, q));
        assert_eq!(x, y, "query {q:?}: SQLite found {x:?}, PostgreSQL {y:?}");
        nonempty += usize::from(!x.is_empty());
    }
    assert!(nonempty >= 7, "the queries must find something");
    assert!(answers(&a, "quantum annealing").is_empty());
    // The best match agrees where one attempt stands out.
    let top = |f: &Fixture| search(&f.store, "LEARNING_RATE_WARMUP_10", None, 1).unwrap()[0].seq;
    assert_eq!(top(&a), top(&b));
}

/// A refuted finding for `attempt` with the given visible evidence and flags.
fn refute(f: &mut Fixture, attempt: i64, seeds: i64, ci: (f64, f64), flags: &[&str]) {
    let finding = f
        .store
        .create_finding(f.program_id, attempt, attempt, "loss", None)
        .unwrap();
    f.store
        .move_finding(finding.id, FindingState::Verifying, None, "verify")
        .unwrap();
    let evidence = Evidence {
        effect: Some((ci.0 + ci.1) / 2.0),
        ci_low: Some(ci.0),
        ci_high: Some(ci.1),
        n_candidate: Some(seeds),
        flags: flags.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    f.store
        .move_finding(
            finding.id,
            FindingState::Refuted,
            Some(&evidence),
            "refuted",
        )
        .unwrap();
}

/// An idea refuted because its test lacked power is not a dead end: a program with more
/// seeds may verify it again; one with as many may not, and an idea contradicted by the
/// evidence or flagged as overfit stays a duplicate whatever the power. The memory's line
/// says which kind of refutation it was.
fn a_refutation_for_lack_of_power_may_be_verified_again_with_more_seeds(t: &TestStore) {
    let mut f = fixture(t);
    let weak = patch("LR = 0.02");
    let a = f.add("lr 0.02", &weak, None, AttemptStatus::Discarded, 1.0);
    refute(&mut f, a, 3, (-0.01, 0.03), &[]);
    let dup = |f: &Fixture, p: &str, seeds: i64| {
        find_duplicate(&f.store, "/bench", -1, PARENT, p, None, Some(seeds)).unwrap()
    };
    let d = dup(&f, &weak, 3).expect("as many seeds: still a duplicate");
    assert!(
        d.of.line().contains("refuted (lacked power, 3 seeds)"),
        "{}",
        d.of.line()
    );
    assert!(
        dup(&f, &weak, 8).is_none(),
        "more seeds may verify it again"
    );

    let worse = patch("LR = 0.9");
    let b = f.add("lr 0.9", &worse, None, AttemptStatus::Discarded, 3.0);
    refute(&mut f, b, 3, (-0.5, -0.2), &[]);
    let d = dup(&f, &worse, 8).expect("contradicted: a duplicate whatever the power");
    assert!(d.of.line().contains("contradicted"), "{}", d.of.line());

    let gamed = patch("LR = 0.5");
    let c = f.add("lr 0.5", &gamed, None, AttemptStatus::Discarded, 0.5);
    refute(&mut f, c, 3, (-0.1, 0.4), &[FLAG_OVERFIT]);
    let d = dup(&f, &gamed, 8).expect("overfit: a duplicate whatever the power");
    assert!(d.of.line().contains("suspected overfit"), "{}", d.of.line());
}

/// A retry is accepted for an idea decided on too little evidence (refuted for lack of power,
/// discarded on one run) and refused, with the kind named, for one the evidence contradicts,
/// one flagged as overfit, and a kept or rejected attempt.
fn a_retry_is_accepted_only_for_too_little_evidence(t: &TestStore) {
    use picidae_memory::retry::{request_retry, RetryError};
    let mut f = fixture(t);
    let weak = f.add(
        "lr 0.02",
        &patch("LR = 0.02"),
        None,
        AttemptStatus::Discarded,
        1.0,
    );
    refute(&mut f, weak, 3, (-0.01, 0.03), &[]);
    let worse = f.add(
        "lr 0.9",
        &patch("LR = 0.9"),
        None,
        AttemptStatus::Discarded,
        3.0,
    );
    refute(&mut f, worse, 3, (-0.5, -0.2), &[]);
    let gamed = f.add(
        "lr 0.5",
        &patch("LR = 0.5"),
        None,
        AttemptStatus::Discarded,
        0.5,
    );
    refute(&mut f, gamed, 3, (-0.1, 0.4), &[FLAG_OVERFIT]);
    let screened = f.add(
        "lr 0.03",
        &patch("LR = 0.03"),
        None,
        AttemptStatus::Discarded,
        1.1,
    );
    let kept = f.add(
        "lr 0.01",
        &patch("LR = 0.01"),
        None,
        AttemptStatus::Kept,
        0.9,
    );
    let seq = |f: &Fixture, id: i64| f.store.attempt(id).unwrap().seq;

    for id in [weak, screened] {
        let s = seq(&f, id);
        let (req, new) = request_retry(&mut f.store, "p", s, "ana").unwrap();
        assert!(new);
        assert_eq!((req.attempt_id, req.author.as_str()), (id, "ana"));
        let (again, new) = request_retry(&mut f.store, "p", s, "bo").unwrap();
        assert!(!new, "an open request is not made twice");
        assert_eq!(again.id, req.id);
    }
    for (id, why) in [
        (worse, "refuted as contradicted"),
        (gamed, "refuted as suspected overfit"),
        (kept, "it is kept"),
    ] {
        let s = seq(&f, id);
        match request_retry(&mut f.store, "p", s, "ana") {
            Err(e @ RetryError::NotRetryable { .. }) => {
                assert!(e.to_string().contains(why), "{e}")
            }
            other => panic!("#{s}: {other:?}"),
        }
    }
    assert!(matches!(
        request_retry(&mut f.store, "p", 999, "ana"),
        Err(RetryError::NoSuchAttempt { seq: 999, .. })
    ));
    let open = f.store.open_retries(f.program_id).unwrap();
    assert_eq!(open.len(), 2);
    assert!(f.store.consume_retry(open[0].id, kept).unwrap());
    assert!(
        !f.store.consume_retry(open[0].id, kept).unwrap(),
        "taken once"
    );
    assert_eq!(f.store.open_retries(f.program_id).unwrap().len(), 1);
}

picidae_store::on_both_backends!(
    search_finds_an_attempt_by_a_paraphrase_sharing_key_terms,
    dedup_by_exact_patch_normalized_patch_and_parameters,
    a_refutation_for_lack_of_power_may_be_verified_again_with_more_seeds,
    a_retry_is_accepted_only_for_too_little_evidence,
);
