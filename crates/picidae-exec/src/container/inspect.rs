//! Reading the runtime's answers: `inspect`'s state of a container, its timestamps and exit.

use super::*;

/// The part of `inspect`'s answer this module uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerState {
    /// Full container id.
    pub id: String,
    /// Container name (without Docker's leading `/`).
    pub name: String,
    /// Runtime status word (`created`, `running`, `exited`, ...).
    pub status: String,
    pub running: bool,
    /// The kernel OOM-killed a process of the container.
    pub oom_killed: bool,
    /// Exit status of the container's main process (meaningful once it
    /// stopped).
    pub exit_code: i64,
    /// Host pid of the main process while running (0 otherwise).
    pub pid: i64,
    /// Start / finish time, nanoseconds since the Unix epoch.
    pub started_at_ns: Option<i64>,
    pub finished_at_ns: Option<i64>,
    /// Runtime error message (e.g. why the container could not start).
    pub error: String,
    /// Value of the [`RUN_LABEL`] label, if set.
    pub run_label: Option<String>,
}

impl ContainerState {
    /// The container was created but never started (start failed, or the
    /// CLI died between create and start).
    pub fn never_started(&self) -> bool {
        !self.running && self.started_at_ns.is_none()
    }
}

/// Parses the JSON array printed by `<cli> inspect --type container <id>`
/// (Docker and Podman); `None` when it holds no container.
pub fn parse_inspect(json: &str) -> Result<Option<ContainerState>, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("inspect output is not JSON: {e}"))?;
    let Some(c) = value.as_array().and_then(|a| a.first()) else {
        return Ok(None);
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let state = &c["State"];
    if !state.is_object() {
        return Err("inspect output has no State".into());
    }
    let id = text(&c["Id"]);
    if id.is_empty() {
        return Err("inspect output has no Id".into());
    }
    Ok(Some(ContainerState {
        id,
        name: text(&c["Name"]).trim_start_matches('/').to_string(),
        status: text(&state["Status"]).to_ascii_lowercase(),
        running: state["Running"].as_bool().unwrap_or(false),
        oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
        exit_code: state["ExitCode"].as_i64().unwrap_or(0),
        pid: state["Pid"].as_i64().unwrap_or(0),
        started_at_ns: state["StartedAt"].as_str().and_then(parse_timestamp_ns),
        finished_at_ns: state["FinishedAt"].as_str().and_then(parse_timestamp_ns),
        error: text(&state["Error"]),
        run_label: c["Config"]["Labels"][RUN_LABEL]
            .as_str()
            .map(str::to_string),
    }))
}

/// Parses an RFC 3339 time as the runtimes print it
/// (`2024-05-01T12:00:00.123456789Z`, or with a `+02:00` offset) into
/// nanoseconds since the Unix epoch. Times before 1970 (the runtimes'
/// "never" is year 1) give `None`.
pub fn parse_timestamp_ns(text: &str) -> Option<i64> {
    let text = text.trim();
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || year < 1970 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (clock, ""),
    };
    let mut t = hms.split(':');
    let (h, m, s) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if t.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut nanos = 0i64;
    if !frac.is_empty() {
        num(frac)?;
        let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    let offset_s = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (oh, om) = zone[1..].split_once(':')?;
            sign * (num(oh)? * 3600 + num(om)? * 60)
        }
    };
    // Days from civil (H. Hinnant), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Exit code and signal of a stopped container (see the module docs).
pub fn decode_container_exit(state: &ContainerState) -> (Option<i32>, Option<i32>) {
    if state.oom_killed {
        return (None, Some(libc::SIGKILL));
    }
    match i32::try_from(state.exit_code) {
        Ok(code) if (129..=192).contains(&code) => (None, Some(code - 128)),
        Ok(code) if (0..=255).contains(&code) => (Some(code), None),
        _ => (None, None),
    }
}

/// Strips an optional `docker:` / `podman:` prefix from a persisted id and
/// checks what remains looks like a container id or name.
pub(crate) fn normalize_container_ref(id: &str) -> Result<&str, ExecError> {
    let bare = id
        .strip_prefix("docker:")
        .or_else(|| id.strip_prefix("podman:"))
        .unwrap_or(id);
    if valid_container_name(bare) {
        Ok(bare)
    } else {
        Err(ExecError::InvalidRequest(format!(
            "{id:?} is not a container id"
        )))
    }
}

pub(crate) fn is_no_such_container(stderr: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stderr).to_ascii_lowercase();
    text.contains("no such container") || text.contains("no such object")
}
