//! The remote machine's identity: one remote call gathering `uname`,
//! `/proc/cpuinfo`, `/proc/meminfo`, `os-release`, `python3` and
//! `nvidia-smi`, read as a string map or as a [`Fingerprint`].

use std::collections::BTreeMap;

use super::{SshExecutor, SHORT_CALL_LIMIT};
use crate::fingerprint::MachineTexts;
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
        let s = self.machine_sections()?;
        let get = |k: &str| s.get(k).map(String::as_str).unwrap_or("");
        let texts = MachineTexts {
            os_release: get("os_release"),
            sysname: get("sysname"),
            nodename: get("hostname"),
            release: get("release"),
            machine: get("machine"),
            cpuinfo: get("cpuinfo"),
            meminfo: get("meminfo"),
            nproc: get("nproc").trim().parse().ok(),
            nvidia_csv: get("nvidia_csv"),
        };
        Ok(Fingerprint::from_texts(&texts, benchmark_commit))
    }

    /// One remote call printing `@@@section NAME` blocks.
    fn machine_sections(&self) -> Result<BTreeMap<String, String>, ExecError> {
        const SCRIPT: &str = "\
s() { printf '\\n@@@section %s\\n' \"$1\"; }
s uname; uname -a 2>/dev/null
s sysname; uname -s 2>/dev/null
s release; uname -r 2>/dev/null
s machine; uname -m 2>/dev/null
s hostname; uname -n 2>/dev/null
s nproc; nproc 2>/dev/null
s cpuinfo; cat /proc/cpuinfo 2>/dev/null
s meminfo; cat /proc/meminfo 2>/dev/null
s os_release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
s python3; python3 --version 2>&1 </dev/null | head -n 1
if command -v nvidia-smi >/dev/null 2>&1; then
  s nvidia_l; timeout 20 nvidia-smi -L 2>/dev/null
  s nvidia_csv; timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total \
--format=csv,noheader,nounits 2>/dev/null
fi
s end
";
        let inner = &self.inner;
        let out = inner.retry("fingerprint", || inner.remote(SCRIPT, SHORT_CALL_LIMIT))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut sections = BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("@@@section ") {
                if let Some((k, v)) = current.take() {
                    sections.insert(k, v);
                }
                current = Some((name.trim().to_string(), String::new()));
            } else if let Some((_, v)) = current.as_mut() {
                v.push_str(line);
                v.push('\n');
            }
        }
        if !sections.contains_key("uname") {
            return Err(inner.ssh_error(format!(
                "cannot read machine identity: {}",
                out.stderr_text()
            )));
        }
        // A python3 that is missing prints a shell error: keep only versions.
        if sections
            .get("python3")
            .is_some_and(|v| !v.trim_start().starts_with("Python"))
        {
            sections.remove("python3");
        }
        Ok(sections)
    }
}
