//! A real headless Chromium for the cockpit's end-to-end tests, driven by
//! `tests/cockpit/driver.js` with `playwright-core` (installed with npm into
//! `<target>/cockpit-node` the first time). Screenshots go to `<target>/cockpit-screenshots`.
//! [`browser`] is `None` (the test skips, saying why) when node, npm or Chromium is missing,
//! unless `PICIDAE_REQUIRE_BROWSER=1`, then the test fails. `PICIDAE_CHROMIUM` names the
//! browser when it is not at `/usr/bin/chromium`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::text;

/// The cargo target directory (the test binary's `picidae` lives in `<target>/<profile>/`).
pub fn target_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_picidae"));
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("picidae lives in <target>/<profile>/")
}

pub struct Browser {
    chromium: PathBuf,
    modules: PathBuf,
    shots: PathBuf,
}

/// Why the browser tests cannot run here.
type Missing = String;

fn works(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Node, Chromium and playwright-core, installing the last into the target dir if missing;
/// `None` (the test skips, saying why) when one cannot be had, unless
/// `PICIDAE_REQUIRE_BROWSER=1`, then the test fails.
pub fn browser() -> Option<&'static Browser> {
    static BROWSER: OnceLock<Result<Browser, Missing>> = OnceLock::new();
    match BROWSER.get_or_init(find_browser) {
        Ok(b) => Some(b),
        Err(reason) => {
            if std::env::var("PICIDAE_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("PICIDAE_REQUIRE_BROWSER=1 but {reason}");
            }
            eprintln!("SKIPPED: {reason} (set PICIDAE_REQUIRE_BROWSER=1 to make this a failure)");
            None
        }
    }
}

fn find_browser() -> Result<Browser, Missing> {
    let chromium = match std::env::var_os("PICIDAE_CHROMIUM") {
        Some(p) => PathBuf::from(p),
        None => match [
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        {
            Some(p) => p,
            None => {
                return Err(
                    "no Chromium at /usr/bin/chromium (apt-get install chromium, or set \
                     PICIDAE_CHROMIUM)"
                        .into(),
                )
            }
        },
    };
    if !chromium.is_file() {
        return Err(format!(
            "PICIDAE_CHROMIUM={} is not a file",
            chromium.display()
        ));
    }
    if !works("node", "--version") {
        return Err("node is not installed".into());
    }
    let cache = target_dir().join("cockpit-node");
    let modules = cache.join("node_modules");
    let manifest = include_str!("../cockpit/package.json");
    let installed = std::fs::read_to_string(cache.join("package.json")).ok();
    if installed.as_deref() != Some(manifest)
        || !modules
            .join("playwright-core")
            .join("package.json")
            .is_file()
    {
        if !works("npm", "--version") {
            return Err("npm is not installed (needed once for playwright-core)".into());
        }
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join("package.json"), manifest).unwrap();
        eprintln!("installing playwright-core into {}", cache.display());
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--omit=dev"])
            .current_dir(&cache)
            .output()
            .unwrap();
        if !out.status.success() {
            // A failed install must not look like a finished one next time.
            let _ = std::fs::remove_file(cache.join("package.json"));
            return Err(format!(
                "npm install playwright-core failed:\n{}",
                text(&out)
            ));
        }
    }
    let shots = target_dir().join("cockpit-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    Ok(Browser {
        chromium,
        modules,
        shots,
    })
}

/// Run a scenario of the driver (at most three minutes); returns its stdout, failing with its
/// output if it failed.
pub fn drive(b: &Browser, scenario: &str, url: &str, envs: &[(&str, &str)]) -> String {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cockpit/driver.js");
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let mut cmd = Command::new("node");
    cmd.arg(&driver)
        .args([scenario, url])
        .arg(&b.shots)
        .env("NODE_PATH", &b.modules)
        .env("COCKPIT_CHROMIUM", &b.chromium)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    for line in stdout.lines() {
        match line.strip_prefix("SHOT ") {
            Some(path) => println!("screenshot: {path}"),
            None => println!("{line}"),
        }
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "driver scenario {scenario} failed ({status:?}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}
