//! Process and process-group helpers (Linux `/proc` based, with `kill(2)`
//! fallbacks).
//!
//! Owns: liveness checks ([`process_alive`], [`group_alive`]), group
//! termination ([`kill_group`], used to clean up runs orphaned by a
//! coordinator crash), and `RunScope`: the processes of one local run
//! (group, session, token, descendants), their RSS, signalling and killing.
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

/// Terminates process group `pgid` and the session of the same id (a local run is a
/// session leader, so processes that left its group with `setpgid` stay in its session):
/// SIGTERM (plus SIGCONT so stopped members can act on it), wait up to `grace` for the
/// group to vanish, then SIGKILL and wait briefly for the kill to take effect.
///
/// Does nothing for `pgid <= 1` or our own process group or session. Used to clean up
/// runs orphaned by a coordinator crash; note that reaping is left to the processes'
/// parent (init, for orphans).
pub fn kill_group(pgid: i32, grace: Duration) {
    // SAFETY: getpgrp and getsid(0) have no preconditions.
    if pgid <= 1 || pgid == unsafe { libc::getpgrp() } || pgid == unsafe { libc::getsid(0) } {
        return;
    }
    let group = signal_group(pgid, libc::SIGTERM);
    signal_session(pgid, libc::SIGTERM);
    signal_group(pgid, libc::SIGCONT);
    signal_session(pgid, libc::SIGCONT);
    if !group && !session_alive(pgid) {
        return;
    }
    if wait_group_gone(pgid, grace) && !session_alive(pgid) {
        return;
    }
    signal_group(pgid, libc::SIGKILL);
    signal_session(pgid, libc::SIGKILL);
    wait_group_gone(pgid, KILL_SETTLE);
}

fn session_alive(sid: i32) -> bool {
    all_entries()
        .iter()
        .any(|e| e.session == sid && !is_dead_state(e.state))
}

/// One line of `/proc/<pid>/stat`, the fields run membership needs.
#[derive(Debug, Clone, Copy)]
struct ProcEntry {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    session: i32,
    /// Start time in clock ticks since boot: with the pid, it names one process even if the
    /// pid is reused later.
    start: u64,
    state: char,
}

fn read_entry(pid: i32) -> Option<ProcEntry> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm field: state(0) ppid(1) pgrp(2) session(3) ... starttime(19).
    Some(ProcEntry {
        pid,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

fn all_entries() -> Vec<ProcEntry> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter_map(read_entry)
        .collect()
}

/// Whether process `pid` has `needle` (`NAME=value`) in its environment.
fn environ_has(pid: i32, needle: &[u8]) -> bool {
    let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    env.split(|b| *b == 0).any(|var| var == needle)
}

/// The processes of one local run, found by scanning `/proc` (see the `local` module docs
/// for why each rule is there). A process belongs to the run when it is
///
/// * in the run's process group or session (both equal the leader's pid: the leader is a
///   session leader), or
/// * carries the run's token in its environment (`PICIDAE_RUN_TOKEN`), which survives
///   `setsid` and re-parenting to init, or
/// * was seen as a member before (pid and start time, so a reused pid is not mistaken for
///   it), or
/// * is in the pids cgroup of the run, or
/// * descends from any of the above.
#[derive(Debug)]
pub(crate) struct RunScope {
    leader: i32,
    token: Vec<u8>,
    known: std::collections::HashSet<(i32, u64)>,
    cgroup_procs: Option<std::path::PathBuf>,
}

impl RunScope {
    pub(crate) fn new(
        leader: i32,
        token_var: &str,
        cgroup_procs: Option<std::path::PathBuf>,
    ) -> Self {
        RunScope {
            leader,
            token: token_var.as_bytes().to_vec(),
            known: Default::default(),
            cgroup_procs,
        }
    }

    /// Live members (zombies excluded), never this process or init. `environ`: also look
    /// for the token in every process's environment (one file read per process).
    fn members(&self, environ: bool) -> Vec<ProcEntry> {
        let entries = all_entries();
        let own = std::process::id() as i32;
        let in_cgroup: Vec<i32> = self
            .cgroup_procs
            .as_ref()
            .and_then(|p| fs::read_to_string(p).ok())
            .map(|t| {
                t.split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let mut set: std::collections::HashSet<i32> = entries
            .iter()
            .filter(|e| {
                e.pid == self.leader
                    || e.pgrp == self.leader
                    || e.session == self.leader
                    || self.known.contains(&(e.pid, e.start))
                    || in_cgroup.contains(&e.pid)
                    || (environ && e.pid != own && environ_has(e.pid, &self.token))
            })
            .map(|e| e.pid)
            .collect();
        // Descendants, to a fixed point.
        loop {
            let before = set.len();
            for e in &entries {
                if set.contains(&e.ppid) {
                    set.insert(e.pid);
                }
            }
            if set.len() == before {
                break;
            }
        }
        entries
            .into_iter()
            .filter(|e| set.contains(&e.pid) && e.pid != own && e.pid > 1)
            .filter(|e| !is_dead_state(e.state))
            .collect()
    }

    /// Remembers the current members (so a later `setsid` plus a cleared environment does not
    /// hide them) and returns their summed RSS in KiB.
    pub(crate) fn sample(&mut self) -> Option<u64> {
        let members = self.members(false);
        self.known = members.iter().map(|e| (e.pid, e.start)).collect();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page_kb = if page > 0 { page as u64 / 1024 } else { 4 };
        let mut total = 0u64;
        let mut any = false;
        for e in members {
            let Ok(statm) = fs::read_to_string(format!("/proc/{}/statm", e.pid)) else {
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

    /// The pids of the members at the last [`Self::sample`].
    pub(crate) fn sampled_pids(&self) -> std::collections::HashSet<i32> {
        self.known.iter().map(|(pid, _)| *pid).collect()
    }

    /// Whether any member other than the leader itself is alive.
    pub(crate) fn alive(&self) -> bool {
        self.members(true).iter().any(|e| e.pid != self.leader) || process_alive(self.leader)
    }

    /// Sends `sig` to the group and to every member.
    pub(crate) fn signal(&self, sig: i32) {
        signal_group(self.leader, sig);
        for e in self.members(true) {
            // SAFETY: kill(2) on a pid > 1 that is not this process (filtered in members).
            unsafe { libc::kill(e.pid, sig) };
        }
    }

    /// SIGKILLs every member, again and again until none is left (a fork bomb refills) or
    /// `settle` elapses. Returns true when none is left.
    pub(crate) fn kill_all(&self, settle: Duration) -> bool {
        let deadline = Instant::now() + settle;
        loop {
            let members = self.members(true);
            if members.is_empty() {
                return true;
            }
            signal_group(self.leader, libc::SIGKILL);
            for e in &members {
                // SAFETY: kill(2) on a pid > 1 that is not this process (filtered in members).
                unsafe { libc::kill(e.pid, libc::SIGKILL) };
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sends `sig` to every live process of session `sid` (other than this process).
fn signal_session(sid: i32, sig: i32) {
    if sid <= 1 {
        return;
    }
    let own = std::process::id() as i32;
    for e in all_entries() {
        if e.session == sid && e.pid != own && e.pid > 1 && !is_dead_state(e.state) {
            // SAFETY: kill(2) on a pid > 1 that is not this process.
            unsafe { libc::kill(e.pid, sig) };
        }
    }
}
