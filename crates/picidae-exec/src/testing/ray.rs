//! The Ray cluster the Ray tests use: the one at `PICIDAE_RAY_ADDRESS`, else a local head
//! started with `ray start --head --dashboard-port=8265` (`.ci/ray-up` starts one). Tests skip,
//! saying why, when none answers, unless `PICIDAE_REQUIRE_RAY=1`: then they fail.

use crate::ray::{RayExecutor, RayOptions};

/// The address tests submit to.
pub fn ray_address() -> String {
    std::env::var("PICIDAE_RAY_ADDRESS").unwrap_or_else(|_| "ray://127.0.0.1:8265".into())
}

/// `Some(executor)` when a cluster answers at [`ray_address`]; `None` (the test is skipped)
/// or a panic (with `PICIDAE_REQUIRE_RAY=1`) when none does.
pub fn ray_cluster(test: &str) -> Option<RayExecutor> {
    let address = ray_address();
    let why = match RayOptions::new(&address) {
        Ok(opts) => {
            let ex = RayExecutor::new(opts);
            match ex.check_cluster() {
                Ok(_) => return Some(ex),
                Err(e) => e.to_string(),
            }
        }
        Err(e) => e.to_string(),
    };
    if std::env::var("PICIDAE_REQUIRE_RAY").as_deref() == Ok("1") {
        panic!("{test}: a Ray cluster is required (PICIDAE_REQUIRE_RAY=1) but none answers at {address}: {why}");
    }
    eprintln!("skipping {test}: no Ray cluster at {address} ({why}); set PICIDAE_REQUIRE_RAY=1 to make this fail");
    None
}
