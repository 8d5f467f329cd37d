//! Fingerprint collection on the real machine.

use picidae_exec::Fingerprint;

#[test]
fn fingerprint_collects_and_hash_is_stable() {
    let a = Fingerprint::collect(Some("deadbeef")).unwrap();
    let b = Fingerprint::collect(Some("deadbeef")).unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 16);
    assert!(a.hash().chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!a.kernel.is_empty());
    assert!(!a.arch.is_empty());
    assert!(a.cpu_count >= 1);
    assert!(a.mem_total_mb > 0);
    assert_eq!(a.benchmark_commit.as_deref(), Some("deadbeef"));

    // Hostname does not matter, the benchmark commit does.
    let mut renamed = a.clone();
    renamed.hostname = "another-identical-box".into();
    assert_eq!(renamed.hash(), a.hash());
    let other = Fingerprint::collect(None).unwrap();
    assert_ne!(other.hash(), a.hash());

    let json = serde_json::to_string(&a).unwrap();
    let back: Fingerprint = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
}
