//! Test fixtures shared by the executor tests of this crate and of the binary (enabled by the
//! `testing` feature; never part of a release build): a private `sshd` on 127.0.0.1 with
//! generated keys, killed with its sessions on drop.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{SshExecutor, SshSettings, SshTarget};

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
