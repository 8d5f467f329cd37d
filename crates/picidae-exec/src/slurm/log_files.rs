//! A Slurm run's local log files: created (with their directories) before
//! submission, so Slurm can write into them; afterwards the stdout tail is
//! read and each file is capped with the truncation marker.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::logs::truncation_marker;
use crate::ExecError;

pub(crate) fn absolute(path: &Path) -> Result<PathBuf, ExecError> {
    std::path::absolute(path).map_err(|source| ExecError::LogFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates (truncates) a log file and its parent directories, so that an
/// unwritable location fails at submission rather than inside Slurm.
pub(crate) fn create_log(path: &Path) -> Result<(), ExecError> {
    let err = |source| ExecError::LogFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    File::create(path).map(|_| ()).map_err(err)
}

/// The last `max` bytes of `path`, lossily decoded, not starting inside a
/// UTF-8 sequence. A missing file gives an empty tail.
pub(crate) fn read_tail(path: &Path, max: usize) -> Result<String, ExecError> {
    let err = |source| ExecError::LocalIo {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(err(e)),
    };
    let len = file.metadata().map_err(err)?.len();
    let start = len.saturating_sub(max as u64);
    file.seek(SeekFrom::Start(start)).map_err(err)?;
    let mut buf = Vec::with_capacity(max.min(len as usize));
    file.take(max as u64).read_to_end(&mut buf).map_err(err)?;
    if start > 0 {
        let skip = buf
            .iter()
            .take(3)
            .take_while(|b| (**b & 0xC0) == 0x80)
            .count();
        buf.drain(..skip);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Truncates `path` to `cap` bytes followed by the truncation marker when it
/// is longer than `cap`. Returns whether it truncated.
pub(crate) fn cap_log(path: &Path, cap: u64) -> Result<bool, ExecError> {
    let err = |source| ExecError::LocalIo {
        path: path.to_path_buf(),
        source,
    };
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(e)),
    };
    if len <= cap {
        return Ok(false);
    }
    let mut file = OpenOptions::new().write(true).open(path).map_err(err)?;
    file.set_len(cap).map_err(err)?;
    file.seek(SeekFrom::End(0)).map_err(err)?;
    file.write_all(truncation_marker(cap).as_bytes())
        .map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_and_cap_of_log_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        assert_eq!(read_tail(&path, 10).unwrap(), "");
        assert!(!cap_log(&path, 10).unwrap());
        fs::write(&path, "0123456789abcdef").unwrap();
        assert_eq!(read_tail(&path, 4).unwrap(), "cdef");
        assert!(!cap_log(&path, 16).unwrap());
        assert!(cap_log(&path, 5).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("01234{}", truncation_marker(5)));
        // A tail never starts inside a UTF-8 sequence.
        fs::write(&path, "xé☃").unwrap();
        assert_eq!(read_tail(&path, 4).unwrap(), "☃");
    }
}
