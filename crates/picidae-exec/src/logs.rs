//! Log streaming: one reader thread per child pipe.
//!
//! Each thread copies its pipe to a log file as data arrives (unbuffered, so
//! a live `tail -f` works), writes at most `cap` bytes followed by a single
//! truncation marker, and keeps *draining* the pipe afterwards so the child
//! never blocks on a full pipe. Optionally the last `tail_cap` bytes are kept
//! in memory (used for stdout, whose final lines usually carry metrics).
//!
//! [`LogFiles`], [`create_log`] and [`append_log`] create and open a run's two log files the
//! same way for every executor (local, SSH, container).
//!
//! Readers use `poll(2)` with a short timeout so they can be told to stop
//! (via a shared flag) even if some process that escaped the run's process
//! group still holds the write end of the pipe.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// poll(2) timeout of a reader, in milliseconds.
const READER_POLL_MS: i32 = 100;
/// After the stop flag is raised, a reader drains at most this long.
const STOP_DRAIN_LIMIT: Duration = Duration::from_secs(2);
const CHUNK: usize = 64 * 1024;

/// Creates (truncates) the log file at `path` and its directory, and opens it for appending.
/// A link found at `path` (planted by a run or an agent) is removed, never followed.
pub(crate) fn create_log(path: &Path) -> Result<File, crate::ExecError> {
    let wrap = |source| crate::ExecError::LogFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(wrap)?;
    }
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(path).map_err(wrap)?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(wrap)?;
    append_log(path)
}

/// Appends a note line to a log file (not counted against the cap).
pub(crate) fn note_in_log(path: &Path, text: &str) {
    let result = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(err) = result {
        tracing::warn!(path = %path.display(), error = %err, "cannot append note to log");
    }
}

/// Opens an existing log file for appending, never through a link.
pub(crate) fn append_log(path: &Path) -> Result<File, crate::ExecError> {
    OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| crate::ExecError::LogFile {
            path: path.to_path_buf(),
            source,
        })
}

/// The local log files of a run whose output arrives from elsewhere (a remote host, a
/// container runtime), and their cap.
#[derive(Debug, Clone)]
pub(crate) struct LogFiles {
    pub(crate) stdout_path: PathBuf,
    pub(crate) stderr_path: PathBuf,
    pub(crate) cap: u64,
}

impl LogFiles {
    /// Creates (truncates) both log files and their directories, like the local executor.
    pub(crate) fn create(req: &crate::RunRequest) -> Result<LogFiles, crate::ExecError> {
        for path in [&req.stdout_path, &req.stderr_path] {
            create_log(path)?;
        }
        Ok(LogFiles {
            stdout_path: req.stdout_path.clone(),
            stderr_path: req.stderr_path.clone(),
            cap: req.log_cap_bytes,
        })
    }
}

/// The marker line appended once a log reaches its cap.
pub(crate) fn truncation_marker(cap: u64) -> String {
    format!("\n[picidae: log truncated at {cap} bytes]\n")
}

/// What a reader thread reports when it finishes.
#[derive(Debug, Default)]
pub(crate) struct StreamReport {
    pub truncated: bool,
    pub tail: Vec<u8>,
}

/// A capped log file plus an in-memory tail. Used by the reader threads and
/// by remote executors that fetch log increments themselves.
pub(crate) struct LogSink {
    file: Option<File>,
    path: PathBuf,
    written: u64,
    cap: u64,
    truncated: bool,
    tail: Vec<u8>,
    tail_cap: usize,
}

impl LogSink {
    pub(crate) fn new(file: File, path: PathBuf, cap: u64, tail_cap: usize) -> LogSink {
        LogSink {
            file: Some(file),
            path,
            written: 0,
            cap,
            truncated: false,
            tail: Vec::new(),
            tail_cap,
        }
    }

    /// The cap was reached: further bytes only feed the tail.
    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.tail_cap > 0 {
            self.tail.extend_from_slice(data);
            if self.tail.len() > 2 * self.tail_cap {
                let excess = self.tail.len() - self.tail_cap;
                self.tail.drain(..excess);
            }
        }
        if self.truncated {
            return;
        }
        let room = self.cap.saturating_sub(self.written);
        if (data.len() as u64) <= room {
            self.write(data);
            self.written += data.len() as u64;
        } else {
            // room < data.len() <= usize::MAX, so the cast is lossless.
            let head = &data[..room as usize];
            self.write(head);
            self.written += room;
            self.write(truncation_marker(self.cap).as_bytes());
            self.truncated = true;
        }
    }

    fn write(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(file) = self.file.as_mut() {
            if let Err(err) = file.write_all(data) {
                tracing::warn!(
                    path = %self.path.display(),
                    error = %err,
                    "log write failed; further output of this stream is discarded"
                );
                self.file = None;
            }
        }
    }

    pub(crate) fn finish(mut self) -> StreamReport {
        if self.tail.len() > self.tail_cap {
            let excess = self.tail.len() - self.tail_cap;
            self.tail.drain(..excess);
            // Do not start in the middle of a UTF-8 sequence.
            let skip = self
                .tail
                .iter()
                .take(3)
                .take_while(|b| (**b & 0xC0) == 0x80)
                .count();
            self.tail.drain(..skip);
        }
        StreamReport {
            truncated: self.truncated,
            tail: self.tail,
        }
    }
}

/// Waits up to `timeout_ms` for `fd` to become readable (or hung up).
fn poll_readable(fd: i32, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: pfd is a valid pollfd and we pass a count of 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(rc > 0)
}

fn pump<R: Read + AsRawFd>(mut src: R, sink: &mut LogSink, stop: &AtomicBool) {
    let fd = src.as_raw_fd();
    let mut buf = vec![0u8; CHUNK];
    let mut stop_seen: Option<Instant> = None;
    loop {
        match stop_seen {
            Some(at) if at.elapsed() >= STOP_DRAIN_LIMIT => break,
            Some(_) => {}
            None if stop.load(Ordering::SeqCst) => stop_seen = Some(Instant::now()),
            None => {}
        }
        match poll_readable(fd, READER_POLL_MS) {
            Ok(true) => {}
            Ok(false) if stop_seen.is_some() => break,
            Ok(false) => continue,
            Err(err) => {
                tracing::warn!(path = %sink.path.display(), error = %err, "poll on child pipe failed");
                break;
            }
        }
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => sink.push(&buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(err) => {
                tracing::warn!(path = %sink.path.display(), error = %err, "read from child pipe failed");
                break;
            }
        }
    }
}

/// Starts a reader thread copying `src` into `file`.
pub(crate) fn spawn_reader<R>(
    name: &str,
    src: R,
    file: File,
    path: PathBuf,
    cap: u64,
    tail_cap: usize,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<StreamReport>>
where
    R: Read + AsRawFd + Send + 'static,
{
    thread::Builder::new()
        .name(format!("picidae-{name}"))
        .spawn(move || {
            let mut sink = LogSink::new(file, path, cap, tail_cap);
            pump(src, &mut sink, &stop);
            sink.finish()
        })
}
