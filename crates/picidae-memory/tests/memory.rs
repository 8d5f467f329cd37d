//! The memory against a real store: search by shared key terms, similar attempts, summaries,
//! and the three dedup keys.

use picidae_core::{Assignment, AttemptKind, AttemptStatus};
use picidae_memory::{find_duplicate, index_attempt, search, set_keys, similar, summary};
use picidae_store::{Decision, NewAttempt, NewProgram, Store};

struct Fixture {
    store: Store,
    program_id: i64,
}

const PARENT: &str = "1111111111111111111111111111111111111111";

fn fixture() -> Fixture {
    let mut store = Store::open_in_memory().unwrap();
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

#[test]
fn search_finds_an_attempt_by_a_paraphrase_sharing_key_terms() {
    let mut f = fixture();
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

#[test]
fn dedup_by_exact_patch_normalized_patch_and_parameters() {
    let mut f = fixture();
    let base = patch("LR = 0.03");
    let first = f.add("lr 0.01 → 0.03", &base, None, AttemptStatus::Discarded, 1.0);
    fn dup(f: &Fixture, p: &str, params: Option<&Assignment>) -> Option<picidae_memory::Duplicate> {
        find_duplicate(&f.store, "/bench", -1, PARENT, p, params).unwrap()
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
        None
    )
    .unwrap()
    .is_none());
    // Another benchmark is another experiment.
    assert!(find_duplicate(&f.store, "/other", -1, PARENT, &base, None)
        .unwrap()
        .is_none());

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
