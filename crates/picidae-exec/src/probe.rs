//! A machine's identity read where it cannot be read directly (over SSH, inside a Ray job):
//! [`MACHINE_PROBE`], a shell script printing `@@@section NAME` blocks, and the
//! [`Fingerprint`] parsed from its sections exactly as [`Fingerprint::collect`] reads this
//! machine.

use crate::fingerprint::MachineTexts;
use crate::Fingerprint;

/// A shell script printing a machine's identity as `@@@section NAME` blocks (`uname`,
/// `/proc/cpuinfo`, `/proc/meminfo`, `os-release`, `python3`, `nvidia-smi`), run where the
/// machine cannot be read directly (over SSH, inside a Ray job).
pub(crate) const MACHINE_PROBE: &str = "\
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
  s nvidia_csv; timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total \\
--format=csv,noheader,nounits 2>/dev/null
fi
s end
";

/// The sections [`MACHINE_PROBE`] printed, by name. A `python3` section that holds no version
/// (the shell's "not found") is dropped.
pub(crate) fn probe_sections(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut sections = std::collections::BTreeMap::new();
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
    if sections
        .get("python3")
        .is_some_and(|v: &String| !v.trim_start().starts_with("Python"))
    {
        sections.remove("python3");
    }
    sections
}

impl Fingerprint {
    /// The fingerprint of a machine read through [`MACHINE_PROBE`], parsed exactly like
    /// [`Fingerprint::collect`] parses this one.
    pub(crate) fn from_sections(
        s: &std::collections::BTreeMap<String, String>,
        benchmark_commit: Option<&str>,
    ) -> Fingerprint {
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
        Fingerprint::from_texts(&texts, benchmark_commit)
    }
}
