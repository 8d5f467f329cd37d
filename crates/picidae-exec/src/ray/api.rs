//! The Ray Jobs API of a cluster's dashboard, over HTTP: packages (the uploaded working
//! directory), jobs (submit, look, logs, stop) and the nodes a job can land on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ExecError;

/// Time limit of one API call (uploads included).
const CALL_LIMIT: Duration = Duration::from_secs(120);

/// A Ray job as `GET /api/jobs/{id}` describes it (the fields Picidae reads).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RayJobInfo {
    /// `PENDING`, `RUNNING`, `STOPPED`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    /// Why a job failed when it is not the entrypoint's exit status
    /// (`RUNTIME_ENV_SETUP_FAILURE`, `JOB_SUPERVISOR_ACTOR_DIED`, ...).
    #[serde(default)]
    pub error_type: Option<String>,
    /// Unix ms.
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub driver_exit_code: Option<i32>,
    #[serde(default)]
    pub driver_node_id: Option<String>,
}

/// One node of the cluster (`GET /api/v0/nodes`).
#[derive(Debug, Clone, Deserialize)]
pub struct RayNode {
    pub node_id: String,
    #[serde(default)]
    pub node_ip: String,
    pub state: String,
    #[serde(default)]
    pub resources_total: std::collections::BTreeMap<String, f64>,
}

impl RayNode {
    /// A resource the node has in all (`CPU`, `GPU`, `memory` in bytes); 0 when absent.
    pub fn total(&self, name: &str) -> f64 {
        self.resources_total.get(name).copied().unwrap_or(0.0)
    }
}

/// The body of `POST /api/jobs/`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct JobSubmit {
    pub(crate) entrypoint: String,
    pub(crate) submission_id: String,
    pub(crate) runtime_env: serde_json::Value,
    pub(crate) metadata: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entrypoint_num_cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entrypoint_num_gpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entrypoint_memory: Option<u64>,
}

/// A client of one cluster's dashboard (`http://HEAD:PORT`).
#[derive(Debug, Clone)]
pub(crate) struct RayApi {
    pub(crate) base: String,
    agent: ureq::Agent,
}

impl RayApi {
    pub(crate) fn new(base: String) -> RayApi {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(CALL_LIMIT))
            .http_status_as_error(false)
            .build()
            .into();
        RayApi { base, agent }
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> ExecError {
        ExecError::Ray {
            address: self.base.clone(),
            message: message.into(),
        }
    }

    /// One call: the status and the body's text.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Body<'_>>,
    ) -> Result<(u16, String), ExecError> {
        let url = format!("{}{path}", self.base);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("PUT", Some(Body::Bytes(b))) => self.agent.put(&url).send(b),
            ("POST", Some(Body::Json(v))) => self.agent.post(&url).send_json(v),
            ("POST", _) => self.agent.post(&url).send_empty(),
            _ => return Err(self.error(format!("unsupported call {method} {path}"))),
        };
        let mut resp = resp.map_err(|e| self.error(format!("{method} {path}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| self.error(format!("{method} {path}: reading the answer: {e}")))?;
        Ok((status, text))
    }

    fn ok(&self, method: &str, path: &str, body: Option<Body<'_>>) -> Result<String, ExecError> {
        let (status, text) = self.call(method, path, body)?;
        if !(200..300).contains(&status) {
            return Err(self.error(format!(
                "{method} {path} answered {status}: {}",
                last_line(&text)
            )));
        }
        Ok(text)
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, path: &str, text: &str) -> Result<T, ExecError> {
        serde_json::from_str(text)
            .map_err(|e| self.error(format!("GET {path}: unexpected answer ({e})")))
    }

    /// The cluster's Ray version (`GET /api/version`): the check that it answers.
    pub(crate) fn version(&self) -> Result<String, ExecError> {
        let text = self.ok("GET", "/api/version", None)?;
        let v: serde_json::Value = self.json("/api/version", &text)?;
        Ok(v["ray_version"].as_str().unwrap_or("unknown").to_string())
    }

    /// The cluster's nodes, alive or not.
    pub(crate) fn nodes(&self) -> Result<Vec<RayNode>, ExecError> {
        let path = "/api/v0/nodes?detail=1&limit=10000";
        let text = self.ok("GET", path, None)?;
        let v: serde_json::Value = self.json(path, &text)?;
        let list = v["data"]["result"]["result"].clone();
        serde_json::from_value(list)
            .map_err(|e| self.error(format!("GET {path}: unexpected node list ({e})")))
    }

    pub(crate) fn upload_package(&self, name: &str, zip: &[u8]) -> Result<(), ExecError> {
        self.ok(
            "PUT",
            &format!("/api/packages/gcs/{name}"),
            Some(Body::Bytes(zip)),
        )
        .map(|_| ())
    }

    pub(crate) fn submit(&self, job: &JobSubmit) -> Result<(), ExecError> {
        let body = serde_json::to_value(job).map_err(|e| self.error(e.to_string()))?;
        self.ok("POST", "/api/jobs/", Some(Body::Json(&body)))
            .map(|_| ())
    }

    /// The job, or `None` when the cluster does not know it.
    pub(crate) fn job(&self, id: &str) -> Result<Option<RayJobInfo>, ExecError> {
        let path = format!("/api/jobs/{id}");
        match self.call("GET", &path, None)? {
            (404, _) => Ok(None),
            (200, text) => self.json(&path, &text).map(Some),
            (s, text) => Err(self.error(format!("GET {path} answered {s}: {}", last_line(&text)))),
        }
    }

    /// Everything the job printed so far (stdout and stderr, as one stream).
    pub(crate) fn logs(&self, id: &str) -> Result<String, ExecError> {
        let path = format!("/api/jobs/{id}/logs");
        let text = self.ok("GET", &path, None)?;
        let v: serde_json::Value = self.json(&path, &text)?;
        Ok(v["logs"].as_str().unwrap_or("").to_string())
    }

    /// Asks Ray to stop the job: SIGTERM to its processes, SIGKILL a few seconds later.
    pub(crate) fn stop(&self, id: &str) -> Result<(), ExecError> {
        self.ok("POST", &format!("/api/jobs/{id}/stop"), None)
            .map(|_| ())
    }
}

enum Body<'a> {
    Bytes(&'a [u8]),
    Json(&'a serde_json::Value),
}

/// The last non-blank line of an error answer (Ray answers with a Python traceback).
fn last_line(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    line.chars().take(500).collect()
}
