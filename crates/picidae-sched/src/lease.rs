//! Who drives a program: the program's file lock (one loop per program on this machine), and
//! the name and expiry of the leases a coordinator holds on its runs and programs in the store.

use crate::{Project, SchedError};

/// The name this process puts on the leases of its runs: host and process id.
pub fn lease_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether the coordinator named `owner` (see [`lease_owner`]) may still be alive: always for
/// another host (only its heartbeat can tell), and for this host when its process lives.
pub(crate) fn lease_holder_alive(owner: &str) -> bool {
    let me = lease_owner();
    let my_host = me.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
    match owner.rsplit_once(':') {
        Some((host, pid)) if host == my_host => pid
            .parse::<i32>()
            .map(picidae_exec::process_alive)
            .unwrap_or(false),
        _ => true,
    }
}

/// A lease not renewed for this long belongs to a dead coordinator; its runs are recovered
/// and its programs taken over: 30 s, or `PICIDAE_LEASE_EXPIRY_SECS`.
pub fn lease_expiry() -> std::time::Duration {
    static EXPIRY: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *EXPIRY.get_or_init(|| {
        let secs = std::env::var("PICIDAE_LEASE_EXPIRY_SECS")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(30);
        std::time::Duration::from_secs(secs)
    })
}

/// Take the program's exclusive lock (an OS file lock, released when the process dies), so two
/// loops never drive one program and recovery never mistakes a live loop's run for an orphan.
pub(crate) fn lock_program(project: &Project, program: &str) -> Result<std::fs::File, SchedError> {
    let dir = project.dir().join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| SchedError::io(&dir, e))?;
    let path = dir.join(format!("{program}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SchedError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SchedError::Busy(program.to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(SchedError::io(&path, e)),
    }
}
