//! Test fixtures for both backends (enabled by the `testing` feature; never part of a release
//! build).
//!
//! [`postgres_url`] gives each caller a fresh, empty database on a private PostgreSQL server
//! that the first call starts for the test binary: `initdb` into a temporary directory (as the
//! `postgres` account when run by root), then `postgres` on 127.0.0.1 and a private socket
//! directory with `fsync=off`. The server gets SIGINT (a fast shutdown) when the test binary
//! exits. With `PICIDAE_TEST_POSTGRES=postgres://…` set, that server is used instead and no
//! private one is started.
//!
//! Tests skip (printing why) when no server can be had, unless `PICIDAE_REQUIRE_POSTGRES=1`, in
//! which case they fail. Needs (Debian): `postgresql`.
//!
//! The rest writes the store the way Picidae never does, on either backend: bulk fills of
//! synthetic history for benchmarks ([`in_transaction`], [`seed_attempt`], [`seed_run`]), and
//! for fault-injection tests, edits made behind Picidae's back (the `tamper_*` functions) and
//! a raw dump of a table ([`table_rows`]) to check that a refused command left it as it was.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use picidae_core::{AttemptStatus, RunStatus};

use crate::db::Value;
use crate::{params, Attempt, Store, StoreError};

/// Where a test store lives: a SQLite file in a temporary directory, or a fresh PostgreSQL
/// database.
pub struct TestStore {
    pub location: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("temporary directory");
        TestStore {
            location: dir.path().join("store.db").display().to_string(),
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database, or `None` (after printing why) when there is no server.
    pub fn postgres() -> Option<TestStore> {
        postgres_url().map(|location| TestStore {
            location,
            _dir: None,
        })
    }

    /// Open (or reopen) the store.
    pub fn open(&self) -> Store {
        Store::open_location(&self.location).expect("open the test store")
    }
}

/// Define each of the named test functions (taking `&TestStore`) once per backend: as tests
/// in a module `sqlite` and in a module `postgres` (which skips when no server can be had).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&$crate::testing::TestStore::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(t) = $crate::testing::TestStore::postgres() {
                    super::$name(&t);
                }
            })*
        }
    };
}

/// The base URL of the test server (its `postgres` database), starting it if needed.
fn server() -> Result<&'static str, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("PICIDAE_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => Ok(url),
            _ => start_private(),
        })
        .as_deref()
        .map_err(|e| e.clone())
}

/// A URL to a new, empty database on the test server; `None` (after printing why) when
/// PostgreSQL is not available, or a panic when `PICIDAE_REQUIRE_POSTGRES=1`.
pub fn postgres_url() -> Option<String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = match server() {
        Ok(b) => b,
        Err(reason) => {
            if std::env::var("PICIDAE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("PICIDAE_REQUIRE_POSTGRES=1 but {reason}");
            }
            println!("SKIPPED: {reason}");
            return None;
        }
    };
    let name = format!(
        "t{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut client = postgres::Client::connect(base, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    Some(crate::url_with_database(base, &name))
}

fn find_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort();
    dirs.reverse();
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The account the server runs as: `postgres` when we are root (the server refuses root).
fn server_account() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns null or a pointer to a static record, read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err("running as root and there is no postgres account".into());
    }
    // SAFETY: pw is non-null, checked above.
    Ok(Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) }))
}

fn as_account(cmd: &mut Command, account: Option<(u32, u32)>, die_with_parent: bool) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = account {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Set after the credential change, which would clear it.
            if die_with_parent {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
            }
            Ok(())
        });
    }
}

fn chown(path: &Path, account: Option<(u32, u32)>) -> Result<(), String> {
    if let Some((uid, gid)) = account {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Remove the directories of earlier test binaries' servers that are no longer running (their
/// `postmaster.pid` names a dead process, or is gone) and are older than ten minutes.
fn remove_stale_servers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("picidae-pg"));
        // A directory younger than a few minutes may belong to a server still starting.
        let old_enough = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if !is_ours || !old_enough || !path.join("data").is_dir() {
            continue;
        }
        let pid = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0);
        if !alive {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn start_private() -> Result<String, String> {
    let initdb = find_bin("initdb").ok_or("PostgreSQL's initdb is not installed")?;
    let postgres = find_bin("postgres").ok_or("PostgreSQL's server binary is not installed")?;
    let account = server_account()?;
    remove_stale_servers();
    // Kept for the life of the test binary: the server's data and socket live here.
    let dir = tempfile::Builder::new()
        .prefix("picidae-pg")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let data = dir.join("data");
    std::fs::create_dir(&data).map_err(|e| e.to_string())?;
    chown(&dir, account)?;
    chown(&data, account)?;
    let mut init = Command::new(&initdb);
    init.args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
        "-D",
    ])
    .arg(&data)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    as_account(&mut init, account, false);
    let out = init.output().map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    chown(&dir.join("server.log"), account)?;
    let mut cmd = Command::new(&postgres);
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=400",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    as_account(&mut cmd, account, true);
    // The parent-death signal follows the thread that forked the server, so fork it from a
    // thread that lives as long as the test binary.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let spawned = cmd.spawn().map_err(|e| format!("start postgres: {e}"));
        let ok = spawned.is_ok();
        let _ = tx.send(spawned.map(|_| ()));
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv().map_err(|e| e.to_string())??;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(_) => return Ok(url),
            Err(e) if Instant::now() > deadline => {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                return Err(format!("postgres did not start: {e}\n{log}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

// ---------------------------------------------------------------- fills and planted faults

/// Run `f` in one write transaction: what it writes through `store` commits together when it
/// returns `Ok`, and is rolled back when it fails. For bulk fills, which would otherwise spend
/// their time committing row by row. `f` must not call a store function that opens a
/// transaction of its own (one that writes several rows, like [`Store::insert_attempt`]).
pub fn in_transaction<T, E: From<StoreError>>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, E>,
) -> Result<T, E> {
    let tx = store.db.begin().map_err(StoreError::from)?;
    let out = f(store)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(out)
}

/// Write attempt `a` as it stands, every column but its id (the new id is returned), without
/// [`Store::insert_attempt`]'s numbering or any check: synthetic history for benchmarks.
pub fn seed_attempt(store: &Store, a: &Attempt) -> crate::Result<i64> {
    Ok(store.db.query_row(
        "INSERT INTO attempts (program_id, seq, kind, status, parent_commit, commit_sha,
            hypothesis, proposer, params_json, patch_hash, touched_json, rejection_json,
            primary_value, note, created_at, decided_at, replay_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         RETURNING id",
        params![
            a.program_id,
            a.seq,
            a.kind.as_str(),
            a.status.as_str(),
            a.parent_commit,
            a.commit,
            a.hypothesis,
            a.proposer,
            a.params.as_ref().map(|p| p.to_string()),
            a.patch_hash,
            serde_json::to_string(&a.touched).unwrap_or_default(),
            a.rejection.as_ref().map(|r| r.to_string()),
            a.primary_value,
            a.note,
            a.created_at,
            a.decided_at,
            a.replay_of
        ],
        |r| r.get(0),
    )?)
}

/// A run of synthetic history, written by [`seed_run`]; the columns not named here (process,
/// host, metrics, placement, …) stay empty.
#[derive(Debug, Clone)]
pub struct SeedRun {
    pub attempt_id: i64,
    pub program_id: i64,
    pub seed: i64,
    pub status: RunStatus,
    pub executor: String,
    pub primary_value: Option<f64>,
    pub wall_secs: Option<f64>,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// Write run `r` as it stands, without [`Store::insert_run`]'s life cycle; the new id.
pub fn seed_run(store: &Store, r: &SeedRun) -> crate::Result<i64> {
    Ok(store.db.query_row(
        "INSERT INTO runs (attempt_id, program_id, seed, status, executor, primary_value,
            wall_secs, queued_at, started_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
        params![
            r.attempt_id,
            r.program_id,
            r.seed,
            r.status.as_str(),
            r.executor,
            r.primary_value,
            r.wall_secs,
            r.queued_at,
            r.started_at,
            r.finished_at
        ],
        |row| row.get(0),
    )?)
}

/// Overwrite attempt `id`'s status and nothing else (no decision, no frontier move, no
/// history row), as an edit of the store behind Picidae's back would.
pub fn tamper_attempt_status(store: &Store, id: i64, status: AttemptStatus) -> crate::Result<()> {
    let n = store.db.execute(
        "UPDATE attempts SET status = ?2 WHERE id = ?1",
        params![id, status.as_str()],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchAttempt(id));
    }
    Ok(())
}

/// Point program `program_id`'s frontier at `attempt_id`, `commit` and `value` directly,
/// without [`Store::decide_attempt`]'s checks or a frontier history row.
pub fn tamper_frontier(
    store: &Store,
    program_id: i64,
    attempt_id: i64,
    commit: &str,
    value: f64,
) -> crate::Result<()> {
    let n = store.db.execute(
        "UPDATE programs SET frontier_attempt_id = ?2, frontier_commit = ?3, frontier_value = ?4
         WHERE id = ?1",
        params![program_id, attempt_id, commit, value],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchProgram(format!("#{program_id}")));
    }
    Ok(())
}

/// Overwrite run `id`'s primary value, leaving its metrics and its attempt as they are.
pub fn tamper_run_value(store: &Store, id: i64, value: f64) -> crate::Result<()> {
    let n = store.db.execute(
        "UPDATE runs SET primary_value = ?2 WHERE id = ?1",
        params![id, value],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchRun(id));
    }
    Ok(())
}

/// Record every noise floor of the store as measured on the machine `fingerprint` (as if all
/// of them had been measured elsewhere); how many there are.
pub fn tamper_noise_floor_fingerprints(store: &Store, fingerprint: &str) -> crate::Result<usize> {
    Ok(store
        .db
        .execute("UPDATE noise_floors SET fingerprint = ?1", [fingerprint])?)
}

/// Every row of `table` (a name from the schema, never user input), ordered by its first
/// column, as raw values: to check that a command left the table exactly as it was.
pub fn table_rows(store: &Store, table: &str) -> crate::Result<Vec<Vec<Value>>> {
    Ok(store
        .db
        .query_map(&format!("SELECT * FROM {table} ORDER BY 1"), (), |r| {
            Ok(r.clone().into_values())
        })?)
}
