//! The CLI's side of a running coordinator.
//!
//! `picidae serve` with its HTTP API writes `.picidae/serve.json` (mode 0600): its process id,
//! the API's address and a write token it made for this project's own CLI. Steering commands
//! (`program pause|resume|set|followup`) find it, check the process lives and the API answers,
//! and then go through the API — the same authenticated calls the cockpit makes — so the
//! coordinator acts on them at once and publishes them on its event stream. Without a running
//! coordinator they write the store directly, which a coordinator started later reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// What `picidae serve` leaves for the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Discovery {
    pub pid: u32,
    pub url: String,
    pub token: String,
}

/// The discovery file of a project.
pub fn discovery_path(project_root: &Path) -> PathBuf {
    project_root.join(".picidae").join("serve.json")
}

/// Write the discovery file, readable by its owner only.
pub fn write_discovery(project_root: &Path, d: &Discovery) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = discovery_path(project_root);
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(serde_json::to_string(d)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A coordinator that is running now and answers.
pub struct Running {
    pub d: Discovery,
    agent: ureq::Agent,
}

/// The project's running coordinator, if its process lives and its API answers.
pub fn running(project_root: &Path) -> Option<Running> {
    let text = std::fs::read_to_string(discovery_path(project_root)).ok()?;
    let d: Discovery = serde_json::from_str(&text).ok()?;
    // SAFETY: kill(pid, 0) only checks that the process exists.
    if d.pid == 0 || unsafe { libc::kill(d.pid as i32, 0) } != 0 {
        return None;
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let ok = agent
        .get(format!("{}/api/health", d.url))
        .call()
        .is_ok_and(|r| r.status() == 200);
    ok.then_some(Running { d, agent })
}

impl Running {
    /// POST a JSON body to the API with the CLI's token; the answer's JSON, or the API's error.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.d.url);
        let mut resp = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {}", self.d.token))
            .send_json(body)
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status();
        let v: serde_json::Value = resp
            .body_mut()
            .read_json()
            .unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            bail!(
                "the coordinator at {} refused: {}",
                self.d.url,
                v["error"].as_str().unwrap_or(status.as_str())
            );
        }
        Ok(v)
    }
}
