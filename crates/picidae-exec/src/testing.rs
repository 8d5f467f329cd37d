//! Test fixtures shared by the executor tests of this crate and of the binary (enabled by the
//! `testing` feature; never part of a release build):
//!
//! * a private `sshd` on 127.0.0.1 with generated keys, killed with its sessions on drop
//!   ([`Sshd`], [`ssh_usable`]);
//! * container runtimes with a tiny test image ([`BUSYBOX_IMAGE`]) imported
//!   ([`container_backend`], [`docker_backend`], [`podman_backend`]);
//! * the Ray cluster the Ray tests submit to ([`ray::ray_cluster`]);
//! * a scripted stand-in of SkyPilot's `sky` CLI ([`skypilot::sky_standin`]).
//!
//! Docker: the first use starts a private `dockerd` for the test binary (data root, exec root,
//! socket and pid file in a temporary directory; `--bridge=none --iptables=false
//! --ip-forward=false`, so it creates no `docker0` bridge and leaves the host firewall alone).
//! It is stopped when the test binary exits (and gets SIGTERM should the binary die; a later run
//! removes what such a run left behind). With `PICIDAE_DOCKER_HOST` set, that daemon is used
//! instead and no private one is started; `PICIDAE_DOCKER` / `PICIDAE_DOCKERD` name other
//! `docker` / `dockerd` binaries.
//!
//! Podman: runs with a private `--root`/`--runroot` and a `CONTAINERS_CONF` selecting `runc`
//! with explicit ulimits, no daemon.
//!
//! Both import an image made from the static `busybox` binary. Tests skip (printing why) when
//! the runtime cannot be used here, unless `PICIDAE_REQUIRE_CONTAINERS=1` (Docker) or
//! `PICIDAE_REQUIRE_PODMAN=1` (Podman), in which case they fail. Needs (Debian): `docker.io`
//! (and root for the private daemon), `podman runc catatonit` for Podman, `busybox-static`,
//! `tar`.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod ray;
pub mod skypilot;

use crate::{ContainerRuntime, RuntimeKind, SshExecutor, SshSettings, SshTarget};

const SSHD: &str = "/usr/sbin/sshd";

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// False (after printing why) when the test must be skipped.
pub fn ssh_usable() -> bool {
    let missing: Vec<&str> = [
        (SSHD, Path::new(SSHD).is_file()),
        ("ssh", on_path("ssh")),
        ("ssh-keygen", on_path("ssh-keygen")),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(n, _)| n)
    .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!("missing {}", missing.join(", "));
    if std::env::var("PICIDAE_REQUIRE_SSH").as_deref() == Ok("1") {
        panic!("PICIDAE_REQUIRE_SSH=1 but {reason}");
    }
    println!("SKIPPED: {reason}");
    false
}

/// A private sshd on 127.0.0.1, killed (with its sessions) on drop.
pub struct Sshd {
    dir: TempDir,
    pub port: u16,
    config: PathBuf,
    pub client_key: PathBuf,
    child: Option<Child>,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen failed");
}

pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = TempDir::new().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        let host_key = base.join("host_key");
        let client_key = base.join("client_key");
        keygen(&host_key);
        keygen(&client_key);
        fs::copy(base.join("client_key.pub"), base.join("authorized_keys")).unwrap();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = base.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
                 AuthorizedKeysFile {ak}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\n\
                 PermitRootLogin prohibit-password\nMaxStartups 100\nMaxSessions 100\n",
                hk = host_key.display(),
                pid = base.join("sshd.pid").display(),
                ak = base.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        fs::create_dir_all("/run/sshd").ok();
        let mut sshd = Sshd {
            dir,
            port,
            config,
            client_key,
            child: None,
        };
        sshd.launch();
        sshd
    }

    pub fn launch(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sshd.log"))
            .unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the listening sshd and every sshd session process below it
    /// (which ends all open connections, including multiplexed ones).
    pub fn kill_all(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let root = child.id() as i32;
        let sessions = sshd_descendants(root);
        let _ = child.kill();
        let _ = child.wait();
        for pid in sessions {
            // SAFETY: plain kill(2) of a process found under our own sshd.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    pub fn executor(&self, remote_root: &Path, settings: SshSettings) -> SshExecutor {
        let mut target = SshTarget::new("127.0.0.1", current_user());
        target.port = self.port;
        target.identity_file = Some(self.client_key.clone());
        target.config_file = Some(PathBuf::from("/dev/null"));
        target.options = vec![
            ("StrictHostKeyChecking".into(), "no".into()),
            ("UserKnownHostsFile".into(), "/dev/null".into()),
        ];
        SshExecutor::with_settings(target, remote_root.display().to_string(), settings).unwrap()
    }
}

impl Sshd {
    /// The sshd session processes below the listening server.
    pub fn sessions(&self) -> Vec<i32> {
        self.child
            .as_ref()
            .map(|c| sshd_descendants(c.id() as i32))
            .unwrap_or_default()
    }

    /// This server as an executor URL for `picidae program create --executor`.
    pub fn executor_url(&self, remote_root: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}?identity={}&option=StrictHostKeyChecking=no&option=UserKnownHostsFile=/dev/null",
            current_user(),
            self.port,
            remote_root.display(),
            self.client_key.display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn parent_and_comm(pid: i32) -> Option<(i32, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let ppid = stat[close + 1..].split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// sshd processes whose ancestry includes `root`.
fn sshd_descendants(root: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Some((_, comm)) = parent_and_comm(pid) else {
            continue;
        };
        if !comm.starts_with("sshd") {
            continue;
        }
        let mut cur = pid;
        for _ in 0..64 {
            match parent_and_comm(cur) {
                Some((ppid, _)) if ppid == root => {
                    found.push(pid);
                    break;
                }
                Some((ppid, _)) if ppid > 1 => cur = ppid,
                _ => break,
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// Container runtimes
// ---------------------------------------------------------------------------------------------

/// The test image: only the static `busybox` and its applet links. Fully qualified, so Podman
/// never tries a registry for it.
pub const BUSYBOX_IMAGE: &str = "localhost/picidae-test-busybox:1";

/// A usable container runtime with [`BUSYBOX_IMAGE`] imported.
#[derive(Debug)]
pub struct ContainerBackend {
    runtime: ContainerRuntime,
    memory_limit: bool,
}

impl ContainerBackend {
    /// How to reach the runtime (CLI, daemon address, private storage).
    pub fn runtime(&self) -> &ContainerRuntime {
        &self.runtime
    }

    pub fn kind(&self) -> RuntimeKind {
        self.runtime.kind
    }

    /// The runtime enforces `--memory` (cgroups work here).
    pub fn memory_limit(&self) -> bool {
        self.memory_limit
    }

    /// The daemon address (`DOCKER_HOST` form, e.g. `unix:///tmp/…/docker.sock`); always set
    /// for Docker, `None` for Podman.
    pub fn host(&self) -> Option<&str> {
        self.runtime.host.as_deref()
    }

    /// Prefix of `RunHandle::id` (`docker:` / `podman:`).
    pub fn prefix(&self) -> String {
        format!("{}:", self.runtime.kind.as_str())
    }

    /// This runtime and [`BUSYBOX_IMAGE`] as an executor for `picidae program create
    /// --executor`: `docker:IMAGE?host=HOST` (`podman:IMAGE` for Podman). Podman's private
    /// storage cannot be expressed there, so only Docker is usable from the binary.
    pub fn executor_arg(&self) -> String {
        match self.host() {
            Some(host) => format!("{}{BUSYBOX_IMAGE}?host={host}", self.prefix()),
            None => format!("{}{BUSYBOX_IMAGE}", self.prefix()),
        }
    }

    /// Runs the runtime's CLI with its global arguments and environment, stdin on `/dev/null`.
    pub fn cli_output(&self, args: &[&str]) -> Result<Output, String> {
        cli_output(&self.runtime, args)
    }
}

static DOCKER: OnceLock<Result<ContainerBackend, String>> = OnceLock::new();
static PODMAN: OnceLock<Result<ContainerBackend, String>> = OnceLock::new();
/// Pid of the private dockerd (0: none).
static DAEMON_PID: AtomicI32 = AtomicI32::new(0);
/// Directory of the private dockerd.
static DAEMON_DIR: OnceLock<PathBuf> = OnceLock::new();
/// Directory of the private Podman storage.
static PODMAN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Docker with the test image, set up once per test binary (a private `dockerd` unless
/// `PICIDAE_DOCKER_HOST` is set); `Err` says why Docker cannot be used here.
pub fn docker_backend() -> Result<&'static ContainerBackend, String> {
    DOCKER
        .get_or_init(set_up_docker)
        .as_ref()
        .map_err(Clone::clone)
}

/// Podman (as root, private storage) with the test image, set up once per test binary; `Err`
/// says why Podman cannot be used here.
pub fn podman_backend() -> Result<&'static ContainerBackend, String> {
    PODMAN
        .get_or_init(set_up_podman)
        .as_ref()
        .map_err(Clone::clone)
}

/// The variable that makes an unusable runtime a test failure instead of a skip.
pub fn require_variable(kind: RuntimeKind) -> &'static str {
    match kind {
        RuntimeKind::Docker => "PICIDAE_REQUIRE_CONTAINERS",
        RuntimeKind::Podman => "PICIDAE_REQUIRE_PODMAN",
    }
}

/// `Some(backend)` when `test` should run; prints why and returns `None` when it should be
/// skipped; panics when the runtime is unusable but required (see [`require_variable`]).
pub fn container_backend(kind: RuntimeKind, test: &str) -> Option<&'static ContainerBackend> {
    let backend = match kind {
        RuntimeKind::Docker => docker_backend(),
        RuntimeKind::Podman => podman_backend(),
    };
    let name = kind.as_str();
    let require = require_variable(kind);
    match backend {
        Ok(b) => Some(b),
        Err(why) => {
            if std::env::var(require).as_deref() == Ok("1") {
                panic!("{name}::{test}: {name} is required ({require}=1) but unusable: {why}");
            }
            eprintln!(
                "skipping {name}::{test}: {name} is unusable: {why} (set {require}=1 to make this fail)"
            );
            None
        }
    }
}

fn find_program(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn busybox() -> Result<PathBuf, String> {
    find_program("busybox")
        .ok_or_else(|| "`busybox` is not on PATH (apt-get install -y busybox-static)".into())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Imports the test image and checks a container from it runs.
fn finish_set_up(runtime: ContainerRuntime) -> Result<ContainerBackend, String> {
    let busybox = busybox()?;
    let work = tempfile::Builder::new()
        .prefix("picidae-image")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    import_busybox_image(&runtime, &busybox, work.path())?;
    let smoke = cli_output(
        &runtime,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "/bin/sh",
            "-c",
            "echo ok",
        ],
    )?;
    if !smoke.status.success() || smoke.stdout != b"ok\n" {
        return Err(format!(
            "a container from the busybox image does not run (is {} statically linked?): {}",
            busybox.display(),
            String::from_utf8_lossy(&smoke.stderr).trim()
        ));
    }
    let format = match runtime.kind {
        RuntimeKind::Docker => "{{.MemoryLimit}}",
        RuntimeKind::Podman => "{{.Host.MemoryLimit}}",
    };
    let info = cli_output(&runtime, &["info", "--format", format])?;
    // Podman 4 has no such field; it enforces limits wherever cgroups work.
    let memory_limit = match String::from_utf8_lossy(&info.stdout).trim() {
        "false" => false,
        "true" => true,
        _ => runtime.kind == RuntimeKind::Podman,
    };
    Ok(ContainerBackend {
        runtime,
        memory_limit,
    })
}

fn set_up_docker() -> Result<ContainerBackend, String> {
    let cli = match std::env::var_os("PICIDAE_DOCKER") {
        Some(p) => PathBuf::from(p),
        None => find_program("docker")
            .ok_or("`docker` is not on PATH (apt-get install -y docker.io)")?,
    };
    busybox()?;
    let runtime = match std::env::var("PICIDAE_DOCKER_HOST") {
        Ok(host) if !host.is_empty() => ContainerRuntime::docker()
            .with_program(&cli)
            .with_host(host),
        _ => start_private_daemon(&cli)?,
    };
    finish_set_up(runtime)
}

fn set_up_podman() -> Result<ContainerBackend, String> {
    let cli = find_program("podman")
        .ok_or("`podman` is not on PATH (apt-get install -y podman runc catatonit)")?;
    find_program("runc").ok_or("`runc` is not on PATH (apt-get install -y runc)")?;
    busybox()?;
    let euid = euid();
    if euid != 0 {
        return Err(format!("these Podman tests run as root (euid is {euid})"));
    }
    remove_stale_dirs("picidae-podman-");
    let dir = std::env::temp_dir().join(format!("picidae-podman-{}", std::process::id()));
    fs::create_dir_all(dir.join("tmp"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = PODMAN_DIR.set(dir.clone());
    // SAFETY: registers a plain `extern "C" fn()`.
    unsafe {
        libc::atexit(remove_podman_dir);
    }
    // crun (Podman's default) fails on setrlimit and on hybrid cgroups.
    let conf = dir.join("containers.conf");
    let text = format!(
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
         [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
         tmp_dir = \"{tmp}\"\n[network]\nnetwork_config_dir = \"{net}\"\n",
        tmp = dir.join("tmp").display(),
        net = dir.join("networks").display(),
    );
    fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    let runtime = ContainerRuntime::podman()
        .with_program(cli)
        .with_global_arg("--root")
        .with_global_arg(dir.join("root").display().to_string())
        .with_global_arg("--runroot")
        .with_global_arg(dir.join("runroot").display().to_string())
        .with_env("CONTAINERS_CONF", conf.display().to_string());
    let version = runtime.check().map_err(|e| e.to_string())?;
    eprintln!("podman {version} with storage in {}", dir.display());
    finish_set_up(runtime)
}

/// `atexit` handler: removes the private Podman storage.
extern "C" fn remove_podman_dir() {
    if let Some(dir) = PODMAN_DIR.get() {
        if let Err(e) = remove_private_dir(dir) {
            eprintln!("cannot remove {}: {e}", dir.display());
        }
    }
}

/// Runs the CLI with the runtime's global arguments and environment.
fn cli_output(runtime: &ContainerRuntime, args: &[&str]) -> Result<Output, String> {
    Command::new(&runtime.program)
        .args(runtime.global_cli_args())
        .args(args)
        .envs(runtime.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", runtime.program.display()))
}

fn start_private_daemon(cli: &Path) -> Result<ContainerRuntime, String> {
    let dockerd = match std::env::var_os("PICIDAE_DOCKERD") {
        Some(p) => PathBuf::from(p),
        None => find_program("dockerd").ok_or(
            "`dockerd` is not on PATH (apt-get install -y docker.io), and PICIDAE_DOCKER_HOST is not set",
        )?,
    };
    let euid = euid();
    if euid != 0 {
        return Err(format!(
            "a private dockerd needs root (euid is {euid}); set PICIDAE_DOCKER_HOST to use a running daemon"
        ));
    }
    remove_stale_dirs("picidae-dockerd-");
    let dir = std::env::temp_dir().join(format!("picidae-dockerd-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = DAEMON_DIR.set(dir.clone());
    let config = dir.join("daemon.json");
    fs::write(&config, "{}\n").map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let log_path = dir.join("dockerd.log");
    let log = fs::File::create(&log_path).map_err(|e| format!("cannot create dockerd log: {e}"))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot clone dockerd log: {e}"))?;
    let socket = dir.join("docker.sock");
    let mut cmd = Command::new(&dockerd);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .args([
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
            "--log-level=warn",
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: prctl is async-signal-safe. The daemon gets SIGTERM when the
    // thread that started it (a keeper thread living as long as this test
    // binary) goes away, so a killed test binary does not leak it.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let exited = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    {
        let exited = exited.clone();
        thread::Builder::new()
            .name("dockerd-keeper".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id() as i32));
                    let _ = child.wait();
                    exited.store(true, Ordering::SeqCst);
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start {}: {e}", dockerd.display())));
                }
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
    }
    let pid = rx
        .recv()
        .map_err(|_| "dockerd keeper thread died".to_string())??;
    DAEMON_PID.store(pid, Ordering::SeqCst);
    // SAFETY: registers a plain `extern "C" fn()` once.
    unsafe {
        libc::atexit(stop_private_daemon);
    }
    let runtime = ContainerRuntime::docker()
        .with_program(cli)
        .with_host(format!("unix://{}", socket.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let why = match runtime.check() {
            Ok(version) => {
                eprintln!(
                    "private dockerd {version} (pid {pid}) at {}",
                    socket.display()
                );
                return Ok(runtime);
            }
            Err(e) => e.to_string(),
        };
        if exited.load(Ordering::SeqCst) || Instant::now() >= deadline {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            return Err(format!(
                "dockerd did not come up ({why}); its log ends with: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `atexit` handler: SIGTERM the private daemon, wait for it, remove its
/// directory.
extern "C" fn stop_private_daemon() {
    let pid = DAEMON_PID.swap(0, Ordering::SeqCst);
    if pid <= 0 {
        return;
    }
    // SAFETY: plain signal sends to the daemon we started.
    let alive = || unsafe { libc::kill(pid, 0) } == 0;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        eprintln!("private dockerd {pid} ignored SIGTERM; killing it");
        unsafe { libc::kill(pid, libc::SIGKILL) };
        thread::sleep(Duration::from_millis(500));
    }
    if let Some(dir) = DAEMON_DIR.get() {
        if let Err(e) = remove_private_dir(dir) {
            eprintln!("cannot remove {}: {e}", dir.display());
        }
    }
}

/// Unmounts what a stopped runtime left under `dir` (e.g. dockerd's
/// `<exec-root>/netns/default`), then removes `dir`.
fn remove_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        if let Ok(c) = std::ffi::CString::new(m) {
            // SAFETY: c is a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    fs::remove_dir_all(dir)
}

/// Removes the private directories (`<tmp>/<prefix><pid>`) of test binaries
/// that died without cleaning up (killed before their `atexit` handler ran).
fn remove_stale_dirs(prefix: &str) {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let daemon = fs::read_to_string(entry.path().join("docker.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        // SAFETY: signal 0 only checks for existence.
        let alive = |pid: i32| pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
        if alive(owner) || daemon.is_some_and(alive) {
            continue;
        }
        match remove_private_dir(&entry.path()) {
            Ok(()) => eprintln!("removed stale {}", entry.path().display()),
            Err(e) => eprintln!("cannot remove stale {}: {e}", entry.path().display()),
        }
    }
}

/// Imports a rootfs holding only the static busybox and its applet links
/// as [`BUSYBOX_IMAGE`].
fn import_busybox_image(
    runtime: &ContainerRuntime,
    busybox: &Path,
    work: &Path,
) -> Result<(), String> {
    let root = work.join("rootfs");
    let bin = root.join("bin");
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    fs::create_dir_all(&bin).map_err(|e| io("mkdir rootfs", e))?;
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        fs::create_dir_all(root.join(d)).map_err(|e| io("mkdir rootfs", e))?;
    }
    fs::copy(busybox, bin.join("busybox")).map_err(|e| io("copy busybox", e))?;
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| io("busybox --list", e))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .map_err(|e| io("symlink applet", e))?;
        }
    }
    let tar = work.join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .map_err(|e| io("tar", e))?;
    if !status.success() {
        return Err(format!("tar failed: {status}"));
    }
    let tar_arg = tar.to_string_lossy().into_owned();
    let out = cli_output(runtime, &["import", &tar_arg, BUSYBOX_IMAGE])?;
    if !out.status.success() {
        return Err(format!(
            "{} import failed: {}",
            runtime.kind.as_str(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}
