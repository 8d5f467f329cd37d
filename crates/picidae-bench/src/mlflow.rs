//! An MLflow tracking server for the benches that compare against one: started on a SQLite file
//! in the bench's directory, on a free loopback port, with MLflow 3's job runner off (it would
//! start several extra processes competing for the cores), and killed with its whole process
//! group when dropped.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Why `python -c "import mlflow"` fails, or `None` when it works.
pub fn mlflow_missing(python: &str) -> Option<String> {
    match Command::new(python)
        .args(["-c", "import mlflow"])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Some(format!("{python}: {e}")),
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim()
                .to_string(),
        ),
    }
}

/// A running `mlflow server`.
pub struct MlflowServer {
    pub base: String,
    child: Child,
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        picidae_exec::process::kill_group(self.child.id() as i32, Duration::from_secs(10));
        let _ = self.child.wait();
    }
}

impl MlflowServer {
    /// Start a server on the SQLite database `db` (created if new), artifacts under
    /// `artifacts`, its log in `dir/server.log`; returns once `/health` answers.
    pub fn start(python: &str, dir: &Path, db: &Path, artifacts: &Path) -> Result<MlflowServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(python)
            .args(["-m", "mlflow", "server", "--backend-store-uri"])
            .arg(format!("sqlite:///{}", db.display()))
            .arg("--default-artifact-root")
            .arg(artifacts)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--workers", "1"])
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {python} -m mlflow server"))?;
        let mut server = MlflowServer {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        let probe: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        let started = Instant::now();
        loop {
            if let Ok(resp) = probe.get(&format!("{}/health", server.base)).call() {
                if resp.status().is_success() {
                    return Ok(server);
                }
            }
            let exited = server.child.try_wait()?;
            if exited.is_some() || started.elapsed() > Duration::from_secs(180) {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let msg = lines[lines.len().saturating_sub(20)..].join("\n");
                bail!(
                    "the MLflow server {} (pass --no-peer to skip it):\n{msg}",
                    match exited {
                        Some(s) => format!("exited ({s})"),
                        None => "did not answer /health within 180 s".into(),
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
