//! The SkyPilot task of one run, written as JSON (which YAML readers, SkyPilot's among them,
//! read as YAML): `name`, `workdir` (a copy of the checkout's visible files, see
//! [`crate::upload`]), `resources`, `envs` and the framed `run` script.

use serde_json::{json, Map, Value};

use super::SkyOptions;
use crate::{ExecError, JobSpec, RunRequest};

pub(crate) use crate::framed::{nonce, valid_nonce};

/// The task for `req`, its workdir staged beside the run's logs (`skypilot-workdir/`).
pub fn task_json(
    req: &RunRequest,
    spec: &JobSpec,
    opts: &SkyOptions,
    nonce: &str,
) -> Result<Value, ExecError> {
    let mut resources = Map::new();
    if spec.gpus > 0 {
        let g = spec.gpus;
        let Some(kind) = opts.gpu.as_deref() else {
            return Err(ExecError::Refused {
                executor: "skypilot".into(),
                reason: format!(
                    "the run asks {g} GPU(s) but the executor names no GPU type (skypilot?gpu=H100)"
                ),
            });
        };
        resources.insert("accelerators".into(), json!(format!("{kind}:{g}")));
    }
    if spec.cpus > 0 {
        resources.insert("cpus".into(), json!(format!("{}+", spec.cpus)));
    }
    if let Some(mb) = spec.memory_mb {
        // SkyPilot counts memory in GB.
        resources.insert("memory".into(), json!(format!("{}+", mb.div_ceil(1024))));
    }
    if let Some(cloud) = &opts.cloud {
        resources.insert("cloud".into(), json!(cloud));
    }
    if let Some(region) = &opts.region {
        resources.insert("region".into(), json!(region));
    }
    if opts.use_spot {
        resources.insert("use_spot".into(), json!(true));
    }
    let envs: Map<String, Value> = req
        .env
        .iter()
        .filter(|(k, _)| k != "PICIDAE_METRICS" && k != "PICIDAE_ARTIFACTS")
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let workdir = req
        .stdout_path
        .parent()
        .map(|p| p.join("skypilot-workdir"))
        .ok_or_else(|| ExecError::InvalidRequest("the stdout log has no directory".into()))?;
    let links = crate::upload::copy_visible(&req.cwd, &workdir)?;
    if links > 0 {
        crate::logs::note_in_log(
            &req.stderr_path,
            &format!("[picidae: {links} link(s) in the checkout were not sent to SkyPilot]\n"),
        );
    }
    Ok(json!({
        "name": spec.name,
        "workdir": workdir.display().to_string(),
        "resources": Value::Object(resources),
        "envs": Value::Object(envs),
        "run": crate::framed::script("", &req.command, nonce),
    }))
}
