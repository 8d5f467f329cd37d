//! Machine fingerprint: the hardware/software identity a run executed on.
//!
//! Runs are only compared within one fingerprint. [`Fingerprint::hash`]
//! covers everything except the hostname, so two identical machines share a
//! fingerprint. Sources: `/etc/os-release`, `/proc/cpuinfo`,
//! `/proc/meminfo`, `uname(2)`, and `nvidia-smi` when installed. Missing
//! sources yield `"unknown"`/0/empty values, never errors.

use std::fs;
use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ExecError;

/// How long `nvidia-smi` may take before it is killed and ignored.
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(10);
const UNKNOWN: &str = "unknown";

/// One GPU as reported by `nvidia-smi`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub name: String,
    pub driver: String,
    /// Total memory in MiB, if reported.
    pub memory_mb: Option<u64>,
}

/// Hardware/software identity of a machine (plus the benchmark commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `ID` from os-release (e.g. `debian`), or the uname sysname.
    pub os: String,
    /// `VERSION_ID` from os-release.
    pub os_version: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Machine architecture (`uname -m`).
    pub arch: String,
    pub cpu_model: String,
    /// Online logical CPUs.
    pub cpu_count: u32,
    pub mem_total_mb: u64,
    pub gpus: Vec<GpuInfo>,
    /// Informational only; excluded from [`Fingerprint::hash`].
    pub hostname: String,
    /// Commit of the benchmark/evaluation harness, part of the hash.
    pub benchmark_commit: Option<String>,
}

impl Fingerprint {
    /// Collects the fingerprint of this machine. Only fails if `uname(2)`
    /// fails.
    pub fn collect(benchmark_commit: Option<&str>) -> Result<Fingerprint, ExecError> {
        let uts = uname()?;
        let os_release = fs::read_to_string("/etc/os-release")
            .or_else(|_| fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        let os = os_release_value(&os_release, "ID").unwrap_or_else(|| uts.sysname.to_lowercase());
        let os_version =
            os_release_value(&os_release, "VERSION_ID").unwrap_or_else(|| UNKNOWN.to_string());
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Ok(Fingerprint {
            os,
            os_version,
            kernel: uts.release,
            arch: uts.machine,
            cpu_model: cpu_model(&cpuinfo),
            cpu_count: cpu_count(&cpuinfo),
            mem_total_mb: mem_total_mb(&meminfo),
            gpus: nvidia_gpus(),
            hostname: uts.nodename,
            benchmark_commit: benchmark_commit.map(str::to_owned),
        })
    }

    /// First 16 hex chars of the SHA-256 of the canonical (sorted-key,
    /// compact) JSON of every field except `hostname`.
    pub fn hash(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = value.as_object_mut() {
            obj.remove("hostname");
        }
        let mut canonical = String::new();
        write_canonical(&value, &mut canonical);
        let digest = Sha256::digest(canonical.as_bytes());
        let mut hex = hex::encode(digest);
        hex.truncate(16);
        hex
    }
}

/// Compact JSON with object keys sorted recursively (independent of
/// serde_json's `preserve_order` feature).
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

struct Uname {
    sysname: String,
    nodename: String,
    release: String,
    machine: String,
}

fn c_chars_to_string(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn uname() -> Result<Uname, ExecError> {
    // SAFETY: utsname is plain old data; all-zero is valid.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid out-pointer.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(ExecError::System(format!(
            "uname: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(Uname {
        sysname: c_chars_to_string(&uts.sysname),
        nodename: c_chars_to_string(&uts.nodename),
        release: c_chars_to_string(&uts.release),
        machine: c_chars_to_string(&uts.machine),
    })
}

/// Value of `key` in an os-release file, unquoted.
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        if k != key {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        let v = v.replace("\\\"", "\"").replace("\\\\", "\\");
        (!v.is_empty()).then_some(v)
    })
}

fn cpuinfo_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim().eq_ignore_ascii_case(key) && !v.trim().is_empty()).then(|| v.trim())
    })
}

fn cpu_model(cpuinfo: &str) -> String {
    ["model name", "Hardware", "Processor", "cpu model", "cpu"]
        .iter()
        .find_map(|key| cpuinfo_value(cpuinfo, key))
        .unwrap_or(UNKNOWN)
        .to_string()
}

fn cpu_count(cpuinfo: &str) -> u32 {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if online > 0 {
        return u32::try_from(online).unwrap_or(u32::MAX);
    }
    let listed = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
        .count();
    if listed > 0 {
        return u32::try_from(listed).unwrap_or(u32::MAX);
    }
    thread::available_parallelism().map_or(0, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

fn mem_total_mb(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix("MemTotal:")?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb / 1024)
}

/// Parses `nvidia-smi --query-gpu=name,driver_version,memory.total
/// --format=csv,noheader,nounits` output.
fn parse_nvidia_smi(text: &str) -> Vec<GpuInfo> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.rsplitn(3, ',');
            let memory = parts.next()?.trim();
            let driver = parts.next()?.trim();
            let name = parts.next()?.trim();
            if name.is_empty() {
                return None;
            }
            Some(GpuInfo {
                name: name.to_string(),
                driver: driver.to_string(),
                memory_mb: memory.parse().ok(),
            })
        })
        .collect()
}

/// GPUs from `nvidia-smi`; empty if it is absent, fails, or hangs.
fn nvidia_gpus() -> Vec<GpuInfo> {
    let child = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Vec::new();
    };
    let Some(mut stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Vec::new();
    };
    // Read on a helper thread so a chatty nvidia-smi cannot block on a full pipe.
    let reader = thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + NVIDIA_SMI_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => parse_nvidia_smi(&out),
        _ => Vec::new(),
    }
}

/// Raw texts describing another machine (collected over SSH), turned into a
/// [`Fingerprint`] by the same parsers [`Fingerprint::collect`] uses.
pub(crate) struct MachineTexts<'a> {
    pub os_release: &'a str,
    pub sysname: &'a str,
    pub nodename: &'a str,
    pub release: &'a str,
    pub machine: &'a str,
    pub cpuinfo: &'a str,
    pub meminfo: &'a str,
    /// `nproc` output, if it could be read.
    pub nproc: Option<u32>,
    /// `nvidia-smi --query-gpu=name,driver_version,memory.total
    /// --format=csv,noheader,nounits` output (empty without GPUs).
    pub nvidia_csv: &'a str,
}

impl Fingerprint {
    /// Builds the fingerprint of the machine that `texts` describe.
    pub(crate) fn from_texts(texts: &MachineTexts<'_>, benchmark_commit: Option<&str>) -> Self {
        let or_unknown = |s: &str| {
            let s = s.trim();
            if s.is_empty() {
                UNKNOWN.to_string()
            } else {
                s.to_string()
            }
        };
        let listed = texts
            .cpuinfo
            .lines()
            .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
            .count();
        Fingerprint {
            os: os_release_value(texts.os_release, "ID")
                .unwrap_or_else(|| or_unknown(texts.sysname).to_lowercase()),
            os_version: os_release_value(texts.os_release, "VERSION_ID")
                .unwrap_or_else(|| UNKNOWN.to_string()),
            kernel: or_unknown(texts.release),
            arch: or_unknown(texts.machine),
            cpu_model: cpu_model(texts.cpuinfo),
            cpu_count: texts
                .nproc
                .unwrap_or_else(|| u32::try_from(listed).unwrap_or(u32::MAX)),
            mem_total_mb: mem_total_mb(texts.meminfo),
            gpus: parse_nvidia_smi(texts.nvidia_csv),
            hostname: or_unknown(texts.nodename),
            benchmark_commit: benchmark_commit.map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_lines() {
        let gpus =
            parse_nvidia_smi("NVIDIA H100 80GB HBM3, 550.54.15, 81559\nTesla T4, 535.1, [N/A]\n");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].driver, "550.54.15");
        assert_eq!(gpus[0].memory_mb, Some(81559));
        assert_eq!(gpus[1].memory_mb, None);
    }

    #[test]
    fn parses_os_release() {
        let text = "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(os_release_value(text, "ID").as_deref(), Some("debian"));
        assert_eq!(os_release_value(text, "VERSION_ID").as_deref(), Some("12"));
        assert_eq!(os_release_value(text, "NOPE"), None);
    }

    #[test]
    fn hash_ignores_hostname_but_not_hardware() {
        let a = Fingerprint {
            os: "debian".into(),
            os_version: "12".into(),
            kernel: "6.1".into(),
            arch: "x86_64".into(),
            cpu_model: "cpu".into(),
            cpu_count: 2,
            mem_total_mb: 1024,
            gpus: vec![],
            hostname: "a".into(),
            benchmark_commit: Some("abc".into()),
        };
        let mut b = a.clone();
        b.hostname = "b".into();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 16);
        b.cpu_count = 4;
        assert_ne!(a.hash(), b.hash());
    }
}
