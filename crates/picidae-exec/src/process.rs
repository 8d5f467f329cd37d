//! Process and process-group helpers (Linux `/proc` based, with `kill(2)`
//! fallbacks).
//!
//! Owns: liveness checks ([`process_alive`], [`group_alive`]), group
//! termination ([`kill_group`], used both by the executor and to clean up
//! runs orphaned by a coordinator crash), and process-group RSS sampling.
//!
//! Zombies (state `Z`/`X` in `/proc/<pid>/stat`) are reported as *not*
//! alive: they hold no resources besides their pid and will be reaped by
//! their parent (or by init once reparented).
//!
//! Safety against pid reuse: group signals are only ever sent to a pgid
//! greater than 1 that differs from our own process group. A pgid recorded
//! before a crash may in theory have been reused since; callers that care
//! should cross-check (e.g. process start time) before calling
//! [`kill_group`].

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

/// How often group liveness is re-checked while waiting for it to vanish.
const GROUP_POLL: Duration = Duration::from_millis(20);
/// After SIGKILL, how long we wait for the group to actually disappear.
pub(crate) const KILL_SETTLE: Duration = Duration::from_secs(2);

/// One entry of `/proc/<pid>/stat` that we care about.
struct ProcStat {
    state: char,
    pgrp: i32,
}

fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field is parenthesised and may contain spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcStat { state, pgrp })
}

fn is_dead_state(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// Pids of all non-zombie processes whose process group is `pgid`, or
/// `None` if `/proc` cannot be listed.
fn live_group_members(pgid: i32) -> Option<Vec<i32>> {
    let dir = fs::read_dir("/proc").ok()?;
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(pid) {
            if stat.pgrp == pgid && !is_dead_state(stat.state) {
                pids.push(pid);
            }
        }
    }
    Some(pids)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// True if a process with this pid exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only performs permission/existence checks.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc != 0 && errno() != libc::EPERM {
        return false;
    }
    match read_stat(pid) {
        Some(stat) => !is_dead_state(stat.state),
        // No /proc (or it vanished in between): trust kill(2).
        None => fs::metadata("/proc/self").is_err(),
    }
}

/// True if any non-zombie process is in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 0 {
        return false;
    }
    match live_group_members(pgid) {
        Some(members) => !members.is_empty(),
        None => {
            // SAFETY: signal 0 to a group only checks existence/permission.
            let rc = unsafe { libc::kill(-pgid, 0) };
            rc == 0 || errno() == libc::EPERM
        }
    }
}

/// Sends `sig` to every process in group `pgid`. Refuses (returns false) for
/// pgid <= 1 and for our own process group, so a bogus value can never
/// signal the coordinator itself or every process on the machine.
pub(crate) fn signal_group(pgid: i32, sig: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: getpgrp has no preconditions.
    if pgid == unsafe { libc::getpgrp() } {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; pgid > 1.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

/// Polls until no live process remains in `pgid` or `limit` elapses.
/// Returns true if the group is gone.
pub(crate) fn wait_group_gone(pgid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(GROUP_POLL);
    }
}

/// Terminates process group `pgid`: SIGTERM (plus SIGCONT so stopped
/// members can act on it), wait up to `grace` for the group to vanish, then
/// SIGKILL and wait briefly for the kill to take effect.
///
/// Does nothing for `pgid <= 1` or our own process group. Used to clean up
/// runs orphaned by a coordinator crash; note that reaping is left to the
/// processes' parent (init, for orphans).
pub fn kill_group(pgid: i32, grace: Duration) {
    if !signal_group(pgid, libc::SIGTERM) {
        return;
    }
    signal_group(pgid, libc::SIGCONT);
    if wait_group_gone(pgid, grace) {
        return;
    }
    signal_group(pgid, libc::SIGKILL);
    wait_group_gone(pgid, KILL_SETTLE);
}

/// Sum of resident set sizes (KiB) of the live processes in `pgid`, or
/// `None` if nothing could be sampled.
pub(crate) fn group_rss_kb(pgid: i32) -> Option<u64> {
    let members = live_group_members(pgid)?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page_kb = if page > 0 { page as u64 / 1024 } else { 4 };
    let mut total = 0u64;
    let mut any = false;
    for pid in members {
        let Ok(statm) = fs::read_to_string(format!("/proc/{pid}/statm")) else {
            continue;
        };
        if let Some(resident) = statm
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok())
        {
            total = total.saturating_add(resident.saturating_mul(page_kb));
            any = true;
        }
    }
    any.then_some(total)
}
