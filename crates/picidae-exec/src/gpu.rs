//! A run's peak GPU memory, sampled with `nvidia-smi` while it runs.
//!
//! `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits` lists every
//! process holding GPU memory, with host pids. A [`GpuProbe`] starts that query about once a
//! second without waiting for it (a hung driver must not hold up a run's timeout), reads the
//! answer on a later poll, and sums the memory of the processes that belong to the run. The
//! peak of those sums is the run's `peak_gpu_mb`.
//!
//! The tool is `$PICIDAE_NVIDIA_SMI` when set (a path), else `nvidia-smi` on `PATH`; on a
//! machine with neither nothing is sampled and the figure is absent. A query that fails or
//! prints something unreadable counts for nothing: a missing figure, never a wrong one.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often a run's GPU memory is queried.
pub const GPU_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// The environment variable naming the query tool (default: `nvidia-smi` on `PATH`).
pub const NVIDIA_SMI_ENV: &str = "PICIDAE_NVIDIA_SMI";
/// A query still unanswered after this long is abandoned (killed).
const QUERY_LIMIT: Duration = Duration::from_secs(10);

/// The query tool of this machine, found once.
pub fn nvidia_smi() -> Option<&'static Path> {
    static TOOL: OnceLock<Option<PathBuf>> = OnceLock::new();
    TOOL.get_or_init(|| {
        if let Some(p) = std::env::var_os(NVIDIA_SMI_ENV).filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("nvidia-smi"))
            .find(|p| p.is_file())
    })
    .as_deref()
}

/// Sums `used_memory` (MiB) of the listed processes that are in `pids`. `None` when no line
/// could be read at all; a process of the run that holds no GPU memory is simply not listed.
pub fn parse_compute_apps(text: &str, pids: &HashSet<i32>) -> Option<u64> {
    let mut total = 0u64;
    let mut readable = text.trim().is_empty();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split(',').map(str::trim);
        let (Some(pid), Some(mb)) = (cols.next(), cols.next()) else {
            continue;
        };
        let (Ok(pid), Ok(mb)) = (pid.parse::<i32>(), mb.parse::<u64>()) else {
            continue;
        };
        readable = true;
        if pids.contains(&pid) {
            total = total.saturating_add(mb);
        }
    }
    readable.then_some(total)
}

/// Samples one run's GPU memory (see the module docs).
#[derive(Debug)]
pub struct GpuProbe {
    tool: PathBuf,
    query: Option<(Child, Instant)>,
    next: Instant,
    peak_mb: Option<u64>,
}

impl GpuProbe {
    /// A probe for this machine, or `None` where there is no query tool.
    pub fn for_this_machine() -> Option<Self> {
        nvidia_smi().map(|t| Self::with_tool(t.to_path_buf()))
    }

    pub fn with_tool(tool: PathBuf) -> Self {
        GpuProbe {
            tool,
            query: None,
            next: Instant::now(),
            peak_mb: None,
        }
    }

    /// The largest sum seen so far, in MiB (zero when the run's processes held none).
    pub fn peak_mb(&self) -> Option<u64> {
        self.peak_mb
    }

    /// Reads a finished query (its processes summed over `pids()`) and starts the next one
    /// when it is due. Never blocks on the tool.
    pub fn poll(&mut self, pids: impl FnOnce() -> HashSet<i32>) {
        if let Some((child, started)) = &mut self.query {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let mut out = String::new();
                    if let Some(mut s) = child.stdout.take() {
                        let _ = s.read_to_string(&mut out);
                    }
                    self.query = None;
                    if status.success() {
                        if let Some(mb) = parse_compute_apps(&out, &pids()) {
                            self.peak_mb = Some(self.peak_mb.map_or(mb, |p| p.max(mb)));
                        }
                    }
                }
                Ok(None) if started.elapsed() < QUERY_LIMIT => return,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.query = None;
                }
            }
        }
        let now = Instant::now();
        if self.query.is_none() && now >= self.next {
            self.next = now + GPU_SAMPLE_INTERVAL;
            let child = Command::new(&self.tool)
                .args([
                    "--query-compute-apps=pid,used_memory",
                    "--format=csv,noheader,nounits",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            match child {
                Ok(c) => self.query = Some((c, now)),
                Err(e) => {
                    tracing::debug!(tool = %self.tool.display(), error = %e, "GPU query failed")
                }
            }
        }
    }
}

impl Drop for GpuProbe {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.query.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_only_the_runs_processes() {
        let pids: HashSet<i32> = [10, 11].into_iter().collect();
        let text = "10, 4000\n99, 70000\n11, 1500\n";
        assert_eq!(parse_compute_apps(text, &pids), Some(5500));
    }

    #[test]
    fn an_empty_list_is_zero_and_garbage_is_nothing() {
        let pids: HashSet<i32> = [10].into_iter().collect();
        assert_eq!(parse_compute_apps("", &pids), Some(0));
        assert_eq!(parse_compute_apps("\n", &pids), Some(0));
        assert_eq!(
            parse_compute_apps("No devices were found\n", &pids),
            None,
            "an error message read as a list would claim zero memory"
        );
        assert_eq!(parse_compute_apps("10, [N/A]\n", &pids), None);
    }

    #[test]
    fn a_probe_reads_a_tool_that_answers() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("nvidia-smi");
        std::fs::write(&tool, "#!/bin/sh\necho \"$$, 10\"\necho '4242, 3072'\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut probe = GpuProbe::with_tool(tool);
        let deadline = Instant::now() + Duration::from_secs(10);
        while probe.peak_mb().is_none() && Instant::now() < deadline {
            probe.poll(|| [4242].into_iter().collect());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(probe.peak_mb(), Some(3072));
    }
}
