//! A per-run pids cgroup: how a local run's process count is limited when running as root.
//!
//! Root ignores `RLIMIT_NPROC`, so a fork bomb started by a run of a root coordinator could
//! only be stopped by the kernel's pid limit. When the executor is asked for a process limit
//! and the effective user is root, each run gets its own cgroup in the `pids` controller:
//! cgroup v1 (a `cgroup` mount with the `pids` option) or, failing that, the unified v2
//! hierarchy where the `pids` controller is enabled for the coordinator's cgroup's children.
//! The child joins it before `exec` (it writes `0`, "this process", to `cgroup.procs`), so no
//! process of the run is ever outside it. The cgroup's members also count as the run's
//! processes when it is killed, and the directory is removed once the run has ended.

use std::fs;
use std::path::{Path, PathBuf};

use crate::ExecError;

/// The cgroup of one run. Removed on drop (after its processes are gone).
#[derive(Debug)]
pub(crate) struct PidsCgroup {
    dir: PathBuf,
}

/// (mount point, is v2) of each cgroup hierarchy that has the pids controller.
fn pids_mounts() -> Vec<(PathBuf, bool)> {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        match f[2] {
            "cgroup" if f[3].split(',').any(|o| o == "pids") => {
                found.insert(0, (PathBuf::from(f[1]), false));
            }
            "cgroup2" => found.push((PathBuf::from(f[1]), true)),
            _ => {}
        }
    }
    found
}

/// This process's cgroup path (relative to the mount) in the v1 pids hierarchy or v2.
fn own_path(v2: bool) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_id, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if v2 {
            ctrl.is_empty()
        } else {
            ctrl.split(',').any(|c| c == "pids")
        };
        hit.then(|| path.trim_start_matches('/').to_string())
    })
}

impl PidsCgroup {
    /// Creates `picidae-<token>` beside (v1: below) this process's cgroup, limited to `max`
    /// tasks.
    pub(crate) fn create(token: &str, max: u64) -> Result<PidsCgroup, ExecError> {
        let mut tried = Vec::new();
        for (mount, v2) in pids_mounts() {
            let Some(own) = own_path(v2) else { continue };
            let dir = mount.join(&own).join(format!("picidae-{token}"));
            match Self::try_at(&dir, max) {
                Ok(cg) => return Ok(cg),
                Err(e) => tried.push(format!("{}: {e}", dir.display())),
            }
        }
        Err(ExecError::InvalidRequest(format!(
            "max_processes cannot be enforced: running as root (which ignores RLIMIT_NPROC) \
             and no writable pids cgroup ({})",
            if tried.is_empty() {
                "no pids controller mounted".to_string()
            } else {
                tried.join("; ")
            }
        )))
    }

    fn try_at(dir: &Path, max: u64) -> std::io::Result<PidsCgroup> {
        fs::create_dir(dir)?;
        let cg = PidsCgroup {
            dir: dir.to_path_buf(),
        };
        fs::write(dir.join("pids.max"), max.to_string())?;
        Ok(cg)
    }

    /// The `cgroup.procs` file the child writes itself into.
    pub(crate) fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Fails while a process is still inside; then the empty directory is left behind.
        if let Err(e) = fs::remove_dir(&self.dir) {
            tracing::debug!(dir = %self.dir.display(), error = %e, "run cgroup not removed");
        }
    }
}
