//! The remote machine's identity: one remote call gathering `uname`,
//! `/proc/cpuinfo`, `/proc/meminfo`, `os-release`, `python3` and
//! `nvidia-smi`, read as a string map or as a [`Fingerprint`].

use std::collections::BTreeMap;

use super::{SshExecutor, SHORT_CALL_LIMIT};
use crate::probe::{probe_sections, MACHINE_PROBE};
use crate::{ExecError, Fingerprint};

impl SshExecutor {
    /// Identity of the remote machine as a string map: `uname` (`uname
    /// -a`), `hostname`, `nproc`, `cpu_model`, `mem_total_kb`, `os`
    /// (`PRETTY_NAME`), `python3` (`python3 --version`), `nvidia_smi`
    /// (`nvidia-smi -L`, only when it works). Missing tools give no key.
    pub fn fingerprint(&self) -> Result<BTreeMap<String, String>, ExecError> {
        let sections = self.machine_sections()?;
        let first_line = |k: &str| {
            sections
                .get(k)
                .and_then(|v| v.lines().find(|l| !l.trim().is_empty()))
                .map(|l| l.trim().to_string())
        };
        let mut map = BTreeMap::new();
        for (key, section) in [
            ("uname", "uname"),
            ("hostname", "hostname"),
            ("nproc", "nproc"),
            ("python3", "python3"),
        ] {
            if let Some(v) = first_line(section) {
                map.insert(key.to_string(), v);
            }
        }
        if let Some(v) = sections.get("nvidia_l").map(|s| s.trim()) {
            if !v.is_empty() {
                map.insert("nvidia_smi".into(), v.to_string());
            }
        }
        if let Some(cpuinfo) = sections.get("cpuinfo") {
            if let Some(model) = cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            }) {
                map.insert("cpu_model".into(), model);
            }
        }
        if let Some(meminfo) = sections.get("meminfo") {
            if let Some(kb) = meminfo.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|r| r.split_whitespace().next())
            }) {
                map.insert("mem_total_kb".into(), kb.to_string());
            }
        }
        if let Some(os) = sections.get("os_release").and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        }) {
            map.insert("os".into(), os);
        }
        Ok(map)
    }

    /// The remote machine's [`Fingerprint`], parsed exactly like
    /// [`Fingerprint::collect`] parses the local one, so runs executed there
    /// are compared only with runs from identical machines.
    pub fn machine_fingerprint(
        &self,
        benchmark_commit: Option<&str>,
    ) -> Result<Fingerprint, ExecError> {
        Ok(Fingerprint::from_sections(
            &self.machine_sections()?,
            benchmark_commit,
        ))
    }

    /// One remote call printing `@@@section NAME` blocks.
    fn machine_sections(&self) -> Result<BTreeMap<String, String>, ExecError> {
        let inner = &self.inner;
        let out = inner.retry("fingerprint", || {
            inner.remote(MACHINE_PROBE, SHORT_CALL_LIMIT)
        })?;
        let sections = probe_sections(&String::from_utf8_lossy(&out.stdout));
        if !sections.contains_key("uname") {
            return Err(inner.ssh_error(format!(
                "cannot read machine identity: {}",
                out.stderr_text()
            )));
        }
        Ok(sections)
    }
}
