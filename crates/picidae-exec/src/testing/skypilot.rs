//! A scripted stand-in of SkyPilot's `sky` CLI (`sky_standin.py`, Python, running each task
//! on this machine), for the SkyPilot executor's tests: no cloud account exists where they
//! run. See the script's own docs for the commands it plays.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SCRIPT: &str = include_str!("sky_standin.py");

/// Writes the stand-in into `dir` with its state under `dir/state`, and returns the path of
/// an executable `sky` that runs it.
pub fn sky_standin(dir: &Path) -> String {
    fs::create_dir_all(dir).unwrap();
    let script = dir.join("sky_standin.py");
    fs::write(&script, SCRIPT).unwrap();
    let wrapper = dir.join("sky");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec python3 {} --state {} \"$@\"\n",
            script.display(),
            dir.join("state").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    wrapper.display().to_string()
}
