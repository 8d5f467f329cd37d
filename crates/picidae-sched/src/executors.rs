//! Where a program's runs execute: on this machine, as Slurm batch jobs, in a container, on a
//! host reached over SSH, or on remote workers that pull them. The contract does not change
//! between them; the program's [`ExecutorSpec`] does.
//!
//! A spec is written on the command line as `local`, `slurm`, `slurm:PARTITION`,
//! `ssh://USER@HOST[:PORT]/REMOTE/ROOT[?identity=KEY_FILE&option=NAME=VALUE…]` (options are
//! passed to ssh as `-o NAME=VALUE`), `docker:IMAGE`, `podman:IMAGE`, `ray://HEAD:PORT`,
//! `skypilot[:CLUSTER][?gpu=TYPE&cloud=NAME&region=NAME&spot=1]`, `workers` or
//! `workers:POOL`, and stored with the program as JSON. Remote runs record their handle
//! (`slurm:<job id>`, `ssh:<host>:<dir>`, `ray:<submission id>`, `workers:<run id>`) before Picidae waits on them, so
//! a coordinator that restarts re-adopts them instead of running them again.

use std::path::PathBuf;

use picidae_exec::container::{ContainerExecutor, ContainerRuntime, ContainerSpec};
use picidae_exec::ray::{RayExecutor, RayOptions};
use picidae_exec::skypilot::{SkyExecutor, SkyOptions};
use picidae_exec::slurm::{SlurmExecutor, SlurmOptions};
use picidae_exec::ssh::{SshExecutor, SshTarget};
use serde::{Deserialize, Serialize};

/// A program's executor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ExecutorSpec {
    /// Child process groups on this machine (optionally sandboxed by the contract).
    #[default]
    Local,
    /// Slurm batch jobs (`sbatch`), on a filesystem the cluster's nodes share with Picidae.
    Slurm {
        #[serde(default)]
        partition: Option<String>,
        #[serde(default)]
        extra_args: Vec<String>,
    },
    /// A host reached over SSH: each run's checkout is synced to `remote_root/<run>`.
    Ssh {
        host: String,
        #[serde(default = "ssh_port")]
        port: u16,
        user: String,
        #[serde(default)]
        identity_file: Option<String>,
        remote_root: String,
        /// Extra `-o` options, e.g. `StrictHostKeyChecking=accept-new`.
        #[serde(default)]
        options: Vec<(String, String)>,
    },
    /// A container per run (`docker` or `podman` CLI): the checkout and run directory
    /// mounted at their own paths, the setup data read-only, nothing else of the machine.
    Container {
        /// `docker` or `podman`.
        runtime: String,
        image: String,
        /// The daemon's address (`DOCKER_HOST`), when not the default.
        #[serde(default)]
        host: Option<String>,
    },
    /// Jobs of an existing Ray cluster, through its dashboard's Jobs API (`ray://HEAD:PORT`):
    /// the checkout uploaded as the job's working directory, resources from the contract.
    Ray { address: String },
    /// SkyPilot tasks through the `sky` CLI: on `cluster` with `sky exec`, else as managed
    /// jobs (`sky jobs launch`, spot instances recovered by SkyPilot).
    #[serde(rename = "skypilot")]
    SkyPilot {
        #[serde(default)]
        cluster: Option<String>,
        /// GPU type for `accelerators` (`H100`), needed when the contract asks GPUs.
        #[serde(default)]
        gpu: Option<String>,
        #[serde(default)]
        cloud: Option<String>,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        spot: bool,
    },
    /// Remote workers (`picidae worker`) that pull runs from this coordinator over its HTTP
    /// API; `pool` picks which of them (`""`: the default pool).
    Workers {
        #[serde(default)]
        pool: String,
    },
}

/// `skypilot[:CLUSTER][?gpu=TYPE&cloud=NAME&region=NAME&spot=1]`.
fn parse_skypilot(text: &str) -> Result<ExecutorSpec, String> {
    let (head, query) = match text.split_once('?') {
        Some((h, q)) => (h, q),
        None => (text, ""),
    };
    let cluster = match head.strip_prefix("skypilot") {
        Some("") => None,
        Some(rest) => match rest.strip_prefix(':') {
            Some(c)
                if !c.is_empty()
                    && c.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) =>
            {
                Some(c.to_string())
            }
            _ => return Err(format!("{text:?}: expected skypilot or skypilot:CLUSTER")),
        },
        None => return Err(format!("{text:?}: expected skypilot or skypilot:CLUSTER")),
    };
    let (mut gpu, mut cloud, mut region, mut spot) = (None, None, None, false);
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let value = |v: &str| -> Result<Option<String>, String> {
            if v.is_empty() || v.contains(char::is_whitespace) {
                Err(format!("{text:?}: {kv:?} needs a value"))
            } else {
                Ok(Some(v.to_string()))
            }
        };
        match kv.split_once('=') {
            Some(("gpu", v)) => gpu = value(v)?,
            Some(("cloud", v)) => cloud = value(v)?,
            Some(("region", v)) => region = value(v)?,
            Some(("spot", "1" | "true")) => spot = true,
            Some(("spot", "0" | "false")) => spot = false,
            _ => {
                return Err(format!(
                    "{text:?}: unknown option {kv:?} (known: gpu=TYPE, cloud=NAME, region=NAME, spot=1)"
                ))
            }
        }
    }
    Ok(ExecutorSpec::SkyPilot {
        cluster,
        gpu,
        cloud,
        region,
        spot,
    })
}

fn ssh_port() -> u16 {
    22
}

/// The program setting naming where screen-stage runs execute (`program create/set
/// --screen-executor`).
pub const SCREEN_EXECUTOR_KEY: &str = "screen_executor";

impl ExecutorSpec {
    /// Parse the command-line form (see the module docs).
    pub fn parse(text: &str) -> Result<ExecutorSpec, String> {
        let text = text.trim();
        if text == "local" {
            return Ok(ExecutorSpec::Local);
        }
        if text == "workers" {
            return Ok(ExecutorSpec::Workers {
                pool: String::new(),
            });
        }
        if let Some(p) = text.strip_prefix("workers:") {
            if !crate::workers::valid_pool(p) {
                return Err(format!(
                    "{text:?}: expected workers:POOL (letters, digits, '-', '_' and '.')"
                ));
            }
            return Ok(ExecutorSpec::Workers {
                pool: p.to_string(),
            });
        }
        if text.starts_with("ray://") {
            picidae_exec::ray::RayOptions::new(text).map_err(|e| e.to_string())?;
            return Ok(ExecutorSpec::Ray {
                address: text.trim_end_matches('/').to_string(),
            });
        }
        if text == "skypilot" || text.starts_with("skypilot:") || text.starts_with("skypilot?") {
            return parse_skypilot(text);
        }
        if text == "slurm" {
            return Ok(ExecutorSpec::Slurm {
                partition: None,
                extra_args: Vec::new(),
            });
        }
        if let Some(p) = text.strip_prefix("slurm:") {
            if p.is_empty() || p.contains(char::is_whitespace) {
                return Err(format!("{text:?}: expected slurm:PARTITION"));
            }
            return Ok(ExecutorSpec::Slurm {
                partition: Some(p.to_string()),
                extra_args: Vec::new(),
            });
        }
        if let Some(rest) = text.strip_prefix("ssh://") {
            let (rest, query) = match rest.split_once('?') {
                Some((r, q)) => (r, Some(q)),
                None => (rest, None),
            };
            let (authority, root) = rest
                .split_once('/')
                .ok_or_else(|| format!("{text:?}: expected ssh://USER@HOST[:PORT]/REMOTE/ROOT"))?;
            let (user, hostport) = authority
                .split_once('@')
                .ok_or_else(|| format!("{text:?}: the user is missing (USER@HOST)"))?;
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| format!("{text:?}: {p:?} is not a port"))?,
                ),
                None => (hostport, 22),
            };
            if user.is_empty() || host.is_empty() || root.is_empty() {
                return Err(format!(
                    "{text:?}: expected ssh://USER@HOST[:PORT]/REMOTE/ROOT"
                ));
            }
            let mut identity_file = None;
            let mut options = Vec::new();
            for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
                match kv.split_once('=') {
                    Some(("identity", v)) if !v.is_empty() => identity_file = Some(v.to_string()),
                    Some(("option", o)) => match o.split_once('=') {
                        Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                            options.push((k.to_string(), v.to_string()))
                        }
                        _ => return Err(format!("{text:?}: option={o:?} must be NAME=VALUE")),
                    },
                    _ => {
                        return Err(format!(
                            "{text:?}: unknown option {kv:?} (known: identity=KEY_FILE, option=NAME=VALUE)"
                        ))
                    }
                }
            }
            return Ok(ExecutorSpec::Ssh {
                host: host.to_string(),
                port,
                user: user.to_string(),
                identity_file,
                remote_root: format!("/{root}"),
                options,
            });
        }
        for runtime in ["docker", "podman"] {
            if let Some(rest) = text.strip_prefix(runtime).and_then(|r| r.strip_prefix(':')) {
                let (image, query) = match rest.split_once('?') {
                    Some((i, q)) => (i, Some(q)),
                    None => (rest, None),
                };
                if image.is_empty() || image.contains(char::is_whitespace) {
                    return Err(format!("{text:?}: expected {runtime}:IMAGE"));
                }
                let mut host = None;
                for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
                    match kv.split_once('=') {
                        Some(("host", v)) if !v.is_empty() => host = Some(v.to_string()),
                        _ => {
                            return Err(format!(
                                "{text:?}: unknown option {kv:?} (known: host=DAEMON_ADDRESS)"
                            ))
                        }
                    }
                }
                return Ok(ExecutorSpec::Container {
                    runtime: runtime.to_string(),
                    image: image.to_string(),
                    host,
                });
            }
        }
        Err(format!(
            "{text:?}: unknown executor (expected local, slurm, slurm:PARTITION, ssh://USER@HOST[:PORT]/ROOT, docker:IMAGE, podman:IMAGE, ray://HEAD:PORT, skypilot[:CLUSTER][?gpu=…], workers or workers:POOL)"
        ))
    }

    /// Read the stored form; `null` (programs made before executors existed) is local.
    /// Where `program`'s screen-stage runs execute, when not where its other runs do: its
    /// `screen_executor` setting (an executor as `parse` reads it, checked when set).
    pub fn screen_of(program: &picidae_store::Program) -> Option<ExecutorSpec> {
        program
            .policy
            .get(SCREEN_EXECUTOR_KEY)
            .and_then(|v| v.as_str())
            .and_then(|t| ExecutorSpec::parse(t).ok())
    }

    pub fn from_stored(v: &serde_json::Value) -> Result<ExecutorSpec, String> {
        if v.is_null() {
            return Ok(ExecutorSpec::Local);
        }
        serde_json::from_value(v.clone()).map_err(|e| format!("unreadable executor: {e}"))
    }

    /// The name recorded on runs (`local`, `slurm`, `ssh`).
    pub fn name(&self) -> &'static str {
        match self {
            ExecutorSpec::Local => "local",
            ExecutorSpec::Slurm { .. } => "slurm",
            ExecutorSpec::Ssh { .. } => "ssh",
            ExecutorSpec::Container { runtime, .. } if runtime == "podman" => "podman",
            ExecutorSpec::Container { .. } => "docker",
            ExecutorSpec::Workers { .. } => "workers",
            ExecutorSpec::Ray { .. } => "ray",
            ExecutorSpec::SkyPilot { .. } => "skypilot",
        }
    }

    /// A short description for listings.
    pub fn label(&self) -> String {
        match self {
            ExecutorSpec::Local => "local".into(),
            ExecutorSpec::Slurm { partition, .. } => match partition {
                Some(p) => format!("slurm:{p}"),
                None => "slurm".into(),
            },
            ExecutorSpec::Ssh {
                host,
                port,
                user,
                remote_root,
                ..
            } => format!("ssh://{user}@{host}:{port}{remote_root}"),
            ExecutorSpec::Container { runtime, image, .. } => format!("{runtime}:{image}"),
            ExecutorSpec::Workers { pool } if pool.is_empty() => "workers".into(),
            ExecutorSpec::Workers { pool } => format!("workers:{pool}"),
            ExecutorSpec::Ray { address } => address.clone(),
            ExecutorSpec::SkyPilot {
                cluster,
                gpu,
                cloud,
                region,
                spot,
            } => {
                let mut s = match cluster {
                    Some(c) => format!("skypilot:{c}"),
                    None => "skypilot".into(),
                };
                let q: Vec<String> = [
                    gpu.as_ref().map(|v| format!("gpu={v}")),
                    cloud.as_ref().map(|v| format!("cloud={v}")),
                    region.as_ref().map(|v| format!("region={v}")),
                    spot.then(|| "spot=1".to_string()),
                ]
                .into_iter()
                .flatten()
                .collect();
                if !q.is_empty() {
                    s.push('?');
                    s.push_str(&q.join("&"));
                }
                s
            }
        }
    }

    /// A container executor for one run: image from the spec; network, memory, CPUs and GPUs
    /// from the contract and the run's placement; `readonly` mounted read-only.
    pub(crate) fn container(
        &self,
        run: &picidae_core::contract::RunSpec,
        gpus: Option<String>,
        readonly: Vec<PathBuf>,
    ) -> Option<ContainerExecutor> {
        let ExecutorSpec::Container {
            runtime,
            image,
            host,
        } = self
        else {
            return None;
        };
        let mut rt = if runtime == "podman" {
            ContainerRuntime::podman()
        } else {
            ContainerRuntime::docker()
        };
        if let Some(h) = host {
            rt = rt.with_host(h.clone());
        }
        let mut spec = ContainerSpec::new(image.clone());
        // No network unless the contract allows it.
        spec.network = run.network == Some(true);
        spec.memory_mb = run.resources.memory_mb;
        spec.cpus = Some(f64::from(run.resources.cpus.max(1)));
        spec.gpus = gpus;
        spec.readonly_mounts = readonly;
        Some(ContainerExecutor::new(rt, spec))
    }

    pub(crate) fn slurm(&self) -> Option<SlurmExecutor> {
        match self {
            ExecutorSpec::Slurm {
                partition,
                extra_args,
            } => Some(SlurmExecutor::new(SlurmOptions {
                partition: partition.clone(),
                extra_args: extra_args.clone(),
                ..Default::default()
            })),
            _ => None,
        }
    }

    pub(crate) fn ray(&self) -> Option<Result<RayExecutor, picidae_exec::ExecError>> {
        match self {
            ExecutorSpec::Ray { address } => Some(RayOptions::new(address).map(RayExecutor::new)),
            _ => None,
        }
    }

    pub(crate) fn skypilot(&self) -> Option<SkyExecutor> {
        match self {
            ExecutorSpec::SkyPilot {
                cluster,
                gpu,
                cloud,
                region,
                spot,
            } => Some(SkyExecutor::new(SkyOptions {
                cluster: cluster.clone(),
                gpu: gpu.clone(),
                cloud: cloud.clone(),
                region: region.clone(),
                use_spot: *spot,
                cli: std::env::var("PICIDAE_SKY").unwrap_or_else(|_| "sky".into()),
                ..SkyOptions::default()
            })),
            _ => None,
        }
    }

    pub(crate) fn ssh(&self) -> Option<Result<SshExecutor, picidae_exec::ExecError>> {
        match self {
            ExecutorSpec::Ssh {
                host,
                port,
                user,
                identity_file,
                remote_root,
                options,
            } => {
                let mut t = SshTarget::new(host.clone(), user.clone());
                t.port = *port;
                t.identity_file = identity_file.as_ref().map(PathBuf::from);
                t.options = options.clone();
                Some(SshExecutor::new(t, remote_root.clone()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_forms() {
        assert_eq!(ExecutorSpec::parse("local").unwrap(), ExecutorSpec::Local);
        assert_eq!(
            ExecutorSpec::parse("workers:a100").unwrap(),
            ExecutorSpec::Workers {
                pool: "a100".into()
            }
        );
        assert_eq!(ExecutorSpec::parse("workers").unwrap().label(), "workers");
        assert!(ExecutorSpec::parse("workers:a b").is_err());
        assert_eq!(
            ExecutorSpec::parse("slurm:gpu").unwrap(),
            ExecutorSpec::Slurm {
                partition: Some("gpu".into()),
                extra_args: vec![]
            }
        );
        let s = ExecutorSpec::parse("ssh://ml@box.example:2222/scratch/picidae?identity=/k/id")
            .unwrap();
        let o =
            ExecutorSpec::parse("ssh://ml@h/r?option=StrictHostKeyChecking=accept-new").unwrap();
        assert!(
            matches!(&o, ExecutorSpec::Ssh { options, .. } if options == &[("StrictHostKeyChecking".to_string(), "accept-new".to_string())])
        );
        assert_eq!(
            s,
            ExecutorSpec::Ssh {
                host: "box.example".into(),
                port: 2222,
                user: "ml".into(),
                identity_file: Some("/k/id".into()),
                remote_root: "/scratch/picidae".into(),
                options: vec![],
            }
        );
        assert_eq!(s.label(), "ssh://ml@box.example:2222/scratch/picidae");
        assert_eq!(
            ExecutorSpec::parse("docker:localhost/img:1?host=unix:///run/d.sock").unwrap(),
            ExecutorSpec::Container {
                runtime: "docker".into(),
                image: "localhost/img:1".into(),
                host: Some("unix:///run/d.sock".into()),
            }
        );
        assert_eq!(ExecutorSpec::parse("podman:img").unwrap().name(), "podman");
        let sky = ExecutorSpec::parse("skypilot:warm-h100?gpu=H100&cloud=aws&spot=1").unwrap();
        assert_eq!(
            sky,
            ExecutorSpec::SkyPilot {
                cluster: Some("warm-h100".into()),
                gpu: Some("H100".into()),
                cloud: Some("aws".into()),
                region: None,
                spot: true,
            }
        );
        assert_eq!(ExecutorSpec::parse(&sky.label()).unwrap(), sky);
        assert_eq!(ExecutorSpec::parse("skypilot").unwrap().label(), "skypilot");
        assert_eq!(
            ExecutorSpec::parse("ray://head:8265/").unwrap(),
            ExecutorSpec::Ray {
                address: "ray://head:8265".into()
            }
        );
        for bad in [
            "docker",
            "docker:",
            "docker:img?net=1",
            "kubernetes:x",
            "ssh://box/x",
            "ssh://u@box:notaport/x",
            "ssh://u@box",
            "ssh://u@box/x?key=1",
            "slurm:",
            "ray://",
            "ray://h/x",
            "skypilot:",
            "skypilot?gpu=",
            "skypilot?zone=a",
            "skypilotx",
        ] {
            assert!(ExecutorSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stored_null_is_local_and_round_trips() {
        assert_eq!(
            ExecutorSpec::from_stored(&serde_json::Value::Null).unwrap(),
            ExecutorSpec::Local
        );
        let s = ExecutorSpec::parse("slurm").unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(ExecutorSpec::from_stored(&v).unwrap(), s);
    }
}
