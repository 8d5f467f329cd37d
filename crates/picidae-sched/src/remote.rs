//! What running on another machine changes about a run: a name safe as a remote directory,
//! the request rewritten so outputs land under the remote run directory, and those outputs
//! fetched back.

use std::path::Path;

use picidae_exec::RunRequest;

/// A program name as a remote directory name ([A-Za-z0-9._-]).
pub(crate) fn remote_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The request as a remote host runs it: metrics and artifacts go under the remote run
/// directory's `out/` (fetched back afterwards); the local data directory means nothing there.
pub(crate) fn remote_request(mut req: RunRequest, remote_dir: &str) -> RunRequest {
    let out = format!("{remote_dir}/out");
    req.env.retain(|(k, _)| k != "PICIDAE_DATA");
    for (k, v) in req.env.iter_mut() {
        match k.as_str() {
            "PICIDAE_METRICS" => *v = format!("{out}/metrics.jsonl"),
            "PICIDAE_ARTIFACTS" => *v = format!("{out}/artifacts"),
            _ => {}
        }
    }
    req.command = format!(
        "mkdir -p {} && {{ {}\n}}",
        picidae_exec::shell::quote(&format!("{out}/artifacts")),
        req.command
    );
    req
}

/// Copy a remote run's metrics and artifacts back into its local run directory. A failure is
/// logged, not fatal: the run's outcome and logs are already home.
pub(crate) fn fetch_remote_outputs(
    ex: &picidae_exec::ssh::SshExecutor,
    remote_dir: &str,
    run_dir: &Path,
) {
    if let Err(e) = ex.fetch_dir(&format!("{remote_dir}/out"), run_dir) {
        tracing::warn!("fetching {remote_dir}/out: {e}");
    }
}
