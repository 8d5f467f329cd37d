//! File writes and reads that never follow a link an agent could have planted.
//!
//! The harness writes files (prompts, transcripts, parameter files) into directories an agent
//! can reach, and reads back files (an agent's captured output) from them. A plain
//! `std::fs::write` follows a symlink at the final name, or anywhere on the path, so an agent
//! that replaces `transcript.txt` with a link to the store makes the harness overwrite the
//! store. Every function here refuses that instead:
//!
//! * [`create_dir_fresh`] creates a directory that did not exist;
//!   [`recreate_dir`] first removes whatever is at the path (a link is removed, never followed).
//! * [`write_new`] creates a file that did not exist (`O_CREAT | O_EXCL | O_NOFOLLOW`).
//! * [`replace_file`] writes a temporary file beside the name and renames it over the name: a
//!   link there is replaced, its target untouched.
//! * [`read_nofollow`] reads at most `cap` bytes of a regular file, never through a link.
//! * [`write_beneath`] and [`read_beneath`] take a relative path below a root and open it one
//!   component at a time (`openat` with `O_NOFOLLOW`), refusing `..`, absolute paths and any
//!   component that is a link.
//!
//! The directory argument (`dir`, `root`) is the harness's own anchor: its last component is
//! opened with `O_NOFOLLOW` too (a link there is refused), while its ancestors are trusted.
//! Errors name the path and what was refused ([`SafeFsError`]).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a safe write or read did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SafeFsError {
    /// The path, or one of its components below the anchor, is a symbolic link.
    #[error("refusing to {op} through a symlink: {}", path.display())]
    Symlink { op: &'static str, path: PathBuf },
    /// The path is not acceptable: `..`, absolute, already there, not a regular file, ...
    #[error("refusing to {op} {}: {why}", path.display())]
    Refused {
        op: &'static str,
        path: PathBuf,
        why: &'static str,
    },
    /// The system call failed for another reason.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SafeFsError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SafeFsError::Symlink { path, .. }
            | SafeFsError::Refused { path, .. }
            | SafeFsError::Io { path, .. } => path,
        }
    }

    /// Whether the file (or a directory on the way) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SafeFsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

type Result<T> = std::result::Result<T, SafeFsError>;

const WRITE: &str = "write";
const READ: &str = "read";
const MKDIR: &str = "create directory";

fn c_path(op: &'static str, path: &Path, s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| SafeFsError::Refused {
        op,
        path: path.to_path_buf(),
        why: "the name contains a NUL byte",
    })
}

/// `name` must be one plain component: not empty, no `/`, not `.` or `..`.
fn plain_name(op: &'static str, dir: &Path, name: &str) -> Result<CString> {
    let path = dir.join(name);
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(SafeFsError::Refused {
            op,
            path,
            why: "the name is not a single file name",
        });
    }
    c_path(op, &path, OsStr::new(name))
}

/// Whether the entry `name` of the directory `dirfd` (or the path `name` with `AT_FDCWD`) is a
/// symbolic link, without following it.
fn is_link_at(dirfd: libc::c_int, name: &CString) -> bool {
    // SAFETY: `st` is written by fstatat before it is read; `name` is NUL-terminated.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstatat(dirfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFLNK
    }
}

/// `openat(dirfd, name, flags, mode)`, with a link at `name` reported as [`SafeFsError::Symlink`].
fn open_at(
    op: &'static str,
    path: &Path,
    dirfd: libc::c_int,
    name: &CString,
    flags: libc::c_int,
) -> Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the returned descriptor is owned below.
    let fd = unsafe {
        libc::openat(
            dirfd,
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        let linkish = matches!(
            err.raw_os_error(),
            Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EEXIST)
        );
        if linkish && is_link_at(dirfd, name) {
            return Err(SafeFsError::Symlink {
                op,
                path: path.to_path_buf(),
            });
        }
        if err.raw_os_error() == Some(libc::EEXIST) {
            return Err(SafeFsError::Refused {
                op,
                path: path.to_path_buf(),
                why: "it already exists",
            });
        }
        return Err(SafeFsError::Io {
            op,
            path: path.to_path_buf(),
            source: err,
        });
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The directory `dir` opened, its last component not followed if it is a link.
fn open_dir(op: &'static str, dir: &Path) -> Result<OwnedFd> {
    let c = c_path(op, dir, dir.as_os_str())?;
    open_at(
        op,
        dir,
        libc::AT_FDCWD,
        &c,
        libc::O_RDONLY | libc::O_DIRECTORY,
    )
}

fn fstat(op: &'static str, path: &Path, fd: &OwnedFd) -> Result<libc::stat> {
    // SAFETY: `st` is written by fstat before it is read; `fd` is open.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut st) != 0 {
            return Err(SafeFsError::Io {
                op,
                path: path.to_path_buf(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(st)
    }
}

fn require_regular(op: &'static str, path: &Path, st: &libc::stat) -> Result<()> {
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(SafeFsError::Refused {
            op,
            path: path.to_path_buf(),
            why: "it is not a regular file",
        });
    }
    Ok(())
}

fn write_all(op: &'static str, path: &Path, fd: OwnedFd, bytes: &[u8]) -> Result<()> {
    let mut f = File::from(fd);
    f.write_all(bytes).map_err(|source| SafeFsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    })
}

/// Create the directory `path`, which must not exist yet (nor be a link). Its parent must exist.
pub fn create_dir_fresh(path: &Path) -> Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            Err(if link {
                SafeFsError::Symlink {
                    op: MKDIR,
                    path: path.to_path_buf(),
                }
            } else {
                SafeFsError::Refused {
                    op: MKDIR,
                    path: path.to_path_buf(),
                    why: "it already exists",
                }
            })
        }
        Err(source) => Err(SafeFsError::Io {
            op: MKDIR,
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Remove whatever is at `path` (a directory with its contents, a file, or a link, which is
/// removed and never followed), then [`create_dir_fresh`] it.
pub fn recreate_dir(path: &Path) -> Result<()> {
    let io = |source| SafeFsError::Io {
        op: MKDIR,
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => std::fs::remove_dir_all(path).map_err(io)?,
        Ok(_) => std::fs::remove_file(path).map_err(io)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    create_dir_fresh(path)
}

/// Create the file `name` in `dir` with `bytes` (mode 0644). Refused when anything, a link
/// included, is already there.
pub fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let c = plain_name(WRITE, dir, name)?;
    let path = dir.join(name);
    let dfd = open_dir(WRITE, dir)?;
    let fd = open_at(
        WRITE,
        &path,
        dfd.as_raw_fd(),
        &c,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
    )?;
    write_all(WRITE, &path, fd, bytes)
}

/// Set `name` in `dir` to `bytes`, whatever is there: a new file is written beside it and
/// renamed over it, so a link at `name` is replaced (its target untouched) and a reader never
/// sees half a file. A directory at `name` is refused.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = plain_name(WRITE, dir, name)?;
    let path = dir.join(name);
    let dfd = open_dir(WRITE, dir)?;
    let mut tries = 0;
    let (tmp, fd) = loop {
        tries += 1;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!(".{name}.{}.{n}.tmp", std::process::id());
        let tmp = plain_name(WRITE, dir, &tmp_name)?;
        match open_at(
            WRITE,
            &dir.join(&tmp_name),
            dfd.as_raw_fd(),
            &tmp,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        ) {
            Ok(fd) => break (tmp, fd),
            // Someone else's file (or link) by that name: try the next one.
            Err(SafeFsError::Refused { .. } | SafeFsError::Symlink { .. }) if tries < 100 => {
                continue
            }
            Err(e) => return Err(e),
        }
    };
    let unlink_tmp = || {
        // SAFETY: `tmp` is NUL-terminated and names an entry of the open directory `dfd`.
        unsafe { libc::unlinkat(dfd.as_raw_fd(), tmp.as_ptr(), 0) };
    };
    if let Err(e) = write_all(WRITE, &path, fd, bytes) {
        unlink_tmp();
        return Err(e);
    }
    // SAFETY: both names are NUL-terminated entries of the open directory `dfd`.
    let rc = unsafe { libc::renameat(dfd.as_raw_fd(), tmp.as_ptr(), dfd.as_raw_fd(), c.as_ptr()) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        unlink_tmp();
        return Err(match err.raw_os_error() {
            Some(libc::EISDIR) | Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => {
                SafeFsError::Refused {
                    op: WRITE,
                    path,
                    why: "it is a directory",
                }
            }
            _ => SafeFsError::Io {
                op: WRITE,
                path,
                source: err,
            },
        });
    }
    Ok(())
}

/// Read `fd` to its end or `cap` bytes, whichever comes first.
fn read_capped(path: &Path, fd: OwnedFd, cap: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    File::from(fd)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|source| SafeFsError::Io {
            op: READ,
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

/// At most `cap` bytes of the regular file `name` in `dir`. A link, a directory, a FIFO or a
/// device there is refused (opened without blocking and checked with `fstat`).
pub fn read_nofollow(dir: &Path, name: &str, cap: u64) -> Result<Vec<u8>> {
    let c = plain_name(READ, dir, name)?;
    let path = dir.join(name);
    let dfd = open_dir(READ, dir)?;
    let fd = open_at(
        READ,
        &path,
        dfd.as_raw_fd(),
        &c,
        libc::O_RDONLY | libc::O_NONBLOCK,
    )?;
    require_regular(READ, &path, &fstat(READ, &path, &fd)?)?;
    read_capped(&path, fd, cap)
}

/// The directory holding the last component of `rel` below `root`, opened one component at a
/// time without following links, and that last component's name.
fn walk_beneath(op: &'static str, root: &Path, rel: &Path) -> Result<(OwnedFd, CString, PathBuf)> {
    let path = root.join(rel);
    let refuse = |why| SafeFsError::Refused {
        op,
        path: path.clone(),
        why,
    };
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("the path contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("the path is not relative"))
            }
        }
    }
    let Some(last) = parts.pop() else {
        return Err(refuse("the path names no file"));
    };
    let mut dir = open_dir(op, root)?;
    let mut at = root.to_path_buf();
    for part in parts {
        at.push(part);
        let c = c_path(op, &at, part)?;
        dir = open_at(
            op,
            &at,
            dir.as_raw_fd(),
            &c,
            libc::O_RDONLY | libc::O_DIRECTORY,
        )?;
    }
    let name = c_path(op, &path, last)?;
    Ok((dir, name, path))
}

/// Write `bytes` to the file `rel` below `root` (created with mode 0644, or truncated). `rel`
/// must be relative, without `..`, and no component of it may be a link: it is opened one
/// component at a time with `O_NOFOLLOW`. Directories on the way must exist. A file that is not
/// a regular file, or that has other hard links, is refused.
pub fn write_beneath(root: &Path, rel: &Path, bytes: &[u8]) -> Result<()> {
    let (dir, name, path) = walk_beneath(WRITE, root, rel)?;
    let fd = open_at(
        WRITE,
        &path,
        dir.as_raw_fd(),
        &name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_NONBLOCK,
    )?;
    let st = fstat(WRITE, &path, &fd)?;
    require_regular(WRITE, &path, &st)?;
    if st.st_nlink > 1 {
        return Err(SafeFsError::Refused {
            op: WRITE,
            path,
            why: "it has other hard links",
        });
    }
    // SAFETY: `fd` is an open regular file.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), 0) } != 0 {
        return Err(SafeFsError::Io {
            op: WRITE,
            path,
            source: io::Error::last_os_error(),
        });
    }
    write_all(WRITE, &path, fd, bytes)
}

/// At most `cap` bytes of the regular file `rel` below `root`, opened like [`write_beneath`].
pub fn read_beneath(root: &Path, rel: &Path, cap: u64) -> Result<Vec<u8>> {
    let (dir, name, path) = walk_beneath(READ, root, rel)?;
    let fd = open_at(
        READ,
        &path,
        dir.as_raw_fd(),
        &name,
        libc::O_RDONLY | libc::O_NONBLOCK,
    )?;
    require_regular(READ, &path, &fstat(READ, &path, &fd)?)?;
    read_capped(&path, fd, cap)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;

    struct Fixture {
        _tmp: tempfile::TempDir,
        /// The directory the functions write into.
        dir: PathBuf,
        /// A file outside it that must never change.
        target: PathBuf,
    }

    const TARGET: &[u8] = b"precious bytes\n";

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dir");
        std::fs::create_dir(&dir).unwrap();
        let target = tmp.path().join("precious");
        std::fs::write(&target, TARGET).unwrap();
        Fixture {
            _tmp: tmp,
            dir,
            target,
        }
    }

    impl Fixture {
        fn target_untouched(&self) {
            assert_eq!(std::fs::read(&self.target).unwrap(), TARGET);
        }
    }

    fn is_symlink_err(e: &SafeFsError) -> bool {
        matches!(e, SafeFsError::Symlink { .. })
    }

    #[test]
    fn write_new_creates_once_and_refuses_links() {
        let f = fixture();
        write_new(&f.dir, "a.txt", b"one").unwrap();
        assert_eq!(std::fs::read(f.dir.join("a.txt")).unwrap(), b"one");
        let mode = std::fs::metadata(f.dir.join("a.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777 & !0o022, 0o644 & !0o022);
        // Already there: refused, not truncated.
        let e = write_new(&f.dir, "a.txt", b"two").unwrap_err();
        assert!(matches!(e, SafeFsError::Refused { .. }), "{e}");
        assert_eq!(std::fs::read(f.dir.join("a.txt")).unwrap(), b"one");
        // A link as the final component, to an existing file or to a missing one.
        symlink(&f.target, f.dir.join("link")).unwrap();
        let e = write_new(&f.dir, "link", b"evil").unwrap_err();
        assert!(is_symlink_err(&e), "{e}");
        assert!(e
            .to_string()
            .starts_with("refusing to write through a symlink: "));
        assert!(e.to_string().ends_with("/dir/link"), "{e}");
        let missing = f.dir.parent().unwrap().join("missing");
        symlink(&missing, f.dir.join("dangling")).unwrap();
        let e = write_new(&f.dir, "dangling", b"evil").unwrap_err();
        assert!(is_symlink_err(&e), "{e}");
        assert!(!missing.exists());
        f.target_untouched();
    }

    #[test]
    fn a_linked_directory_is_refused() {
        let f = fixture();
        let real = f.dir.parent().unwrap().join("elsewhere");
        std::fs::create_dir(&real).unwrap();
        let linked = f.dir.join("linked");
        symlink(&real, &linked).unwrap();
        for e in [
            write_new(&linked, "x", b"evil").unwrap_err(),
            replace_file(&linked, "x", b"evil").unwrap_err(),
            read_nofollow(&linked, "x", 10).unwrap_err(),
        ] {
            assert!(is_symlink_err(&e), "{e}");
        }
        assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    }

    #[test]
    fn names_must_be_single_components() {
        let f = fixture();
        for name in ["", ".", "..", "../precious", "a/b"] {
            let e = write_new(&f.dir, name, b"evil").unwrap_err();
            assert!(matches!(e, SafeFsError::Refused { .. }), "{name}: {e}");
            assert!(replace_file(&f.dir, name, b"evil").is_err(), "{name}");
            assert!(read_nofollow(&f.dir, name, 10).is_err(), "{name}");
        }
        f.target_untouched();
    }

    #[test]
    fn replace_file_renames_over_a_link_and_leaves_its_target() {
        let f = fixture();
        let link = f.dir.join("transcript.txt");
        symlink(&f.target, &link).unwrap();
        replace_file(&f.dir, "transcript.txt", b"the transcript").unwrap();
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_file(), "{meta:?}");
        assert_eq!(std::fs::read(&link).unwrap(), b"the transcript");
        f.target_untouched();
        // Over a plain file, and with nothing there.
        replace_file(&f.dir, "transcript.txt", b"again").unwrap();
        assert_eq!(std::fs::read(&link).unwrap(), b"again");
        replace_file(&f.dir, "new.txt", b"new").unwrap();
        assert_eq!(std::fs::read(f.dir.join("new.txt")).unwrap(), b"new");
        // A hard link to the target is replaced too, not written through.
        std::fs::hard_link(&f.target, f.dir.join("hard")).unwrap();
        replace_file(&f.dir, "hard", b"evil?").unwrap();
        f.target_untouched();
        // A directory is refused and kept; no temporary file is left behind.
        std::fs::create_dir(f.dir.join("sub")).unwrap();
        std::fs::write(f.dir.join("sub/keep"), "k").unwrap();
        let e = replace_file(&f.dir, "sub", b"x").unwrap_err();
        assert!(matches!(e, SafeFsError::Refused { .. }), "{e}");
        assert!(f.dir.join("sub/keep").is_file());
        let names: Vec<String> = std::fs::read_dir(&f.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn read_nofollow_reads_regular_files_only_and_caps() {
        let f = fixture();
        std::fs::write(f.dir.join("out"), b"0123456789").unwrap();
        assert_eq!(read_nofollow(&f.dir, "out", 4).unwrap(), b"0123");
        assert_eq!(read_nofollow(&f.dir, "out", 100).unwrap(), b"0123456789");
        symlink(&f.target, f.dir.join("link")).unwrap();
        let e = read_nofollow(&f.dir, "link", 100).unwrap_err();
        assert!(is_symlink_err(&e), "{e}");
        assert!(e
            .to_string()
            .starts_with("refusing to read through a symlink: "));
        std::fs::create_dir(f.dir.join("sub")).unwrap();
        let e = read_nofollow(&f.dir, "sub", 100).unwrap_err();
        assert!(matches!(e, SafeFsError::Refused { .. }), "{e}");
        // A FIFO neither blocks nor is read.
        let fifo = CString::new(f.dir.join("fifo").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let e = read_nofollow(&f.dir, "fifo", 100).unwrap_err();
        assert!(matches!(e, SafeFsError::Refused { .. }), "{e}");
        assert!(read_nofollow(&f.dir, "absent", 100)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn create_dir_fresh_and_recreate_dir() {
        let f = fixture();
        let d = f.dir.join("3");
        create_dir_fresh(&d).unwrap();
        let e = create_dir_fresh(&d).unwrap_err();
        assert!(matches!(e, SafeFsError::Refused { .. }), "{e}");
        // A planted directory full of links is removed without following them.
        symlink(&f.target, d.join("prompt.md")).unwrap();
        symlink(f.dir.parent().unwrap(), d.join("up")).unwrap();
        recreate_dir(&d).unwrap();
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        f.target_untouched();
        // A link where the directory goes: refused by create, removed (not followed) by
        // recreate.
        let elsewhere = f.dir.parent().unwrap().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("keep"), "k").unwrap();
        let l = f.dir.join("4");
        symlink(&elsewhere, &l).unwrap();
        let e = create_dir_fresh(&l).unwrap_err();
        assert!(is_symlink_err(&e), "{e}");
        recreate_dir(&l).unwrap();
        assert!(std::fs::symlink_metadata(&l).unwrap().is_dir());
        assert!(elsewhere.join("keep").is_file());
    }

    #[test]
    fn write_beneath_walks_without_following_links() {
        let f = fixture();
        let root = &f.dir;
        std::fs::create_dir_all(root.join("conf/deep")).unwrap();
        std::fs::write(root.join("conf/deep/params.yaml"), "lr: 1\nmore\n").unwrap();
        write_beneath(root, Path::new("conf/deep/params.yaml"), b"lr: 2\n").unwrap();
        assert_eq!(
            std::fs::read(root.join("conf/deep/params.yaml")).unwrap(),
            b"lr: 2\n"
        );
        assert_eq!(
            read_beneath(root, Path::new("./conf/deep/params.yaml"), 100).unwrap(),
            b"lr: 2\n"
        );
        write_beneath(root, Path::new("fresh.txt"), b"f").unwrap();
        assert_eq!(std::fs::read(root.join("fresh.txt")).unwrap(), b"f");

        // The final component a link.
        symlink(&f.target, root.join("params.yaml")).unwrap();
        let e = write_beneath(root, Path::new("params.yaml"), b"evil").unwrap_err();
        assert!(is_symlink_err(&e), "{e}");
        assert!(read_beneath(root, Path::new("params.yaml"), 100).is_err());
        // A directory on the way a link.
        let outside = f.dir.parent().unwrap().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("params.yaml"), TARGET).unwrap();
        symlink(&outside, root.join("cfg")).unwrap();
        let e = write_beneath(root, Path::new("cfg/params.yaml"), b"evil").unwrap_err();
        assert!(is_symlink_err(&e), "{e}");
        assert!(e.to_string().contains("/dir/cfg"), "{e}");
        let e = read_beneath(root, Path::new("cfg/params.yaml"), 100).unwrap_err();
        assert!(is_symlink_err(&e), "{e}");
        assert_eq!(std::fs::read(outside.join("params.yaml")).unwrap(), TARGET);
        // `..` and absolute paths, even where they would resolve inside.
        for rel in ["../precious", "conf/../../precious", "conf/.."] {
            let e = write_beneath(root, Path::new(rel), b"evil").unwrap_err();
            assert!(matches!(e, SafeFsError::Refused { .. }), "{rel}: {e}");
            assert!(e.to_string().contains("`..`"), "{e}");
        }
        let abs = f.target.clone();
        let e = write_beneath(root, &abs, b"evil").unwrap_err();
        assert!(matches!(e, SafeFsError::Refused { .. }), "{e}");
        assert!(write_beneath(root, Path::new(""), b"evil").is_err());
        // A hard link to a file outside is refused rather than truncated.
        std::fs::hard_link(&f.target, root.join("hard")).unwrap();
        let e = write_beneath(root, Path::new("hard"), b"evil").unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        // A missing directory on the way is an error, not created.
        let e = write_beneath(root, Path::new("nope/x"), b"x").unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(!root.join("nope").exists());
        f.target_untouched();
    }
}
