//! A run's artifacts as the hidden evaluator may see them.
//!
//! A run writes its artifacts where it likes, and what it leaves is hostile: a symbolic link
//! dangles inside the run's sandbox but resolves for the evaluator, which runs beside the
//! hidden files (`artifacts/pred.txt -> .../hidden/labels.txt`, or a path through
//! `/proc/self/`), so the evaluator would score the hidden labels against themselves. So the
//! evaluator never reads a run's directory: [`snapshot`] builds a fresh tree of its own from
//! the artifacts' regular files and directories only, walking without following any link,
//! and refuses the whole set if it meets a symbolic link, a device, a socket or a FIFO
//! ([`Refused`]). [`scan`] finds the same things, so the run itself is recorded invalid, with
//! the reason, when its contract has a hidden evaluator.
//!
//! Files are hard-linked into the snapshot when the file system allows it (no copy of a large
//! checkpoint) and copied otherwise; a hard link names the same regular file, so the
//! evaluator reads what the run wrote, and nothing else.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why a set of artifacts is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("artifacts/{0} is a symbolic link (artifacts must be regular files and directories)")]
    Symlink(String),
    #[error("artifacts/{0} is not a regular file or directory")]
    Special(String),
    #[error("artifacts: more than {MAX_ENTRIES} entries")]
    TooMany,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The most entries a set of artifacts may have.
pub const MAX_ENTRIES: usize = 100_000;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Refused + '_ {
    move |source| Refused::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Walk `root` without following links, calling `visit(relative path, file type)` for each
/// entry, parents before children.
fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&Path, &fs::FileType) -> Result<(), Refused>,
) -> Result<(), Refused> {
    let mut stack = vec![PathBuf::new()];
    let mut seen = 0usize;
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(Refused::TooMany);
            }
            // `DirEntry::file_type` does not follow a link.
            let ft = entry.file_type().map_err(io_err(&entry.path()))?;
            let child = rel.join(entry.file_name());
            visit(&child, &ft)?;
            if ft.is_dir() {
                stack.push(child);
            }
        }
    }
    Ok(())
}

fn check(rel: &Path, ft: &fs::FileType) -> Result<(), Refused> {
    let name = rel.display().to_string();
    if ft.is_symlink() {
        Err(Refused::Symlink(name))
    } else if !(ft.is_file() || ft.is_dir()) {
        Err(Refused::Special(name))
    } else {
        Ok(())
    }
}

/// The first thing in a run's `artifacts/` directory that the hidden evaluator must not be
/// given, if any. A missing directory is an empty set.
pub fn scan(artifacts: &Path) -> Result<(), Refused> {
    match fs::symlink_metadata(artifacts) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(artifacts)(e)),
        Ok(m) if m.file_type().is_symlink() => return Err(Refused::Symlink(".".into())),
        Ok(m) if !m.is_dir() => return Err(Refused::Special(".".into())),
        Ok(_) => {}
    }
    walk(artifacts, &mut |rel, ft| check(rel, ft))
}

/// A hash of the artifacts' names and bytes (SHA-256 over the sorted relative paths and each
/// file's length and content), so identical sets are evaluated once; refused like [`scan`].
pub fn content_hash(artifacts: &Path) -> Result<String, Refused> {
    use sha2::{Digest, Sha256};
    scan(artifacts)?;
    let mut files = Vec::new();
    if artifacts.is_dir() {
        walk(artifacts, &mut |rel, ft| {
            if ft.is_file() {
                files.push(rel.to_path_buf());
            }
            Ok(())
        })?;
    }
    files.sort();
    let mut h = Sha256::new();
    for rel in &files {
        let path = artifacts.join(rel);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let name = rel.to_string_lossy();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex::encode(h.finalize()))
}

/// Rebuild `src`'s regular files and directories under `dst` (which must not exist), or
/// refuse. Each file is opened without following links and checked to be regular before it
/// is linked or copied.
pub fn snapshot(src: &Path, dst: &Path) -> Result<(), Refused> {
    scan(src)?;
    fs::create_dir(dst).map_err(io_err(dst))?;
    if !src.is_dir() {
        return Ok(());
    }
    walk(src, &mut |rel, ft| {
        check(rel, ft)?;
        let from = src.join(rel);
        let to = dst.join(rel);
        if ft.is_dir() {
            return fs::create_dir(&to).map_err(io_err(&to));
        }
        if fs::hard_link(&from, &to).is_ok() && fs::symlink_metadata(&to).is_ok_and(|m| m.is_file())
        {
            return Ok(());
        }
        let _ = fs::remove_file(&to);
        copy_nofollow(&from, &to)
    })
}

fn copy_nofollow(from: &Path, to: &Path) -> Result<(), Refused> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut input = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)
        .map_err(io_err(from))?;
    if !input.metadata().map_err(io_err(from))?.is_file() {
        return Err(Refused::Special(from.display().to_string()));
    }
    let mut output = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io_err(to))?;
    io::copy(&mut input, &mut output).map_err(io_err(to))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_and_special_files_are_refused_wherever_they_are() {
        let tmp = tempfile::TempDir::new().unwrap();
        let secret = tmp.path().join("secret.txt");
        fs::write(&secret, "labels").unwrap();
        let art = tmp.path().join("artifacts");
        fs::create_dir_all(art.join("deep/er")).unwrap();
        fs::write(art.join("pred.txt"), "1 2 3").unwrap();
        assert!(scan(&art).is_ok());

        symlink(&secret, art.join("deep/er/pred.txt")).unwrap();
        let e = scan(&art).unwrap_err();
        assert!(
            matches!(&e, Refused::Symlink(p) if p == "deep/er/pred.txt"),
            "{e}"
        );
        let dst = tmp.path().join("snap");
        assert!(matches!(snapshot(&art, &dst), Err(Refused::Symlink(_))));
        assert!(!dst.exists(), "nothing is built from a refused set");
        fs::remove_file(art.join("deep/er/pred.txt")).unwrap();

        symlink("/proc/self/root", art.join("root")).unwrap();
        assert!(matches!(scan(&art), Err(Refused::Symlink(_))));
        fs::remove_file(art.join("root")).unwrap();

        let fifo = art.join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(matches!(scan(&art), Err(Refused::Special(_))));
        fs::remove_file(&fifo).unwrap();

        // The artifacts directory itself replaced by a link.
        let link = tmp.path().join("linked");
        symlink(tmp.path(), &link).unwrap();
        assert!(matches!(scan(&link), Err(Refused::Symlink(_))));
    }

    #[test]
    fn content_hash_names_the_files_and_their_bytes() {
        let tmp = tempfile::TempDir::new().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        for d in [&a, &b] {
            fs::create_dir_all(d.join("sub")).unwrap();
            fs::write(d.join("sub/x"), "1").unwrap();
        }
        assert_eq!(content_hash(&a).unwrap(), content_hash(&b).unwrap());
        fs::write(b.join("sub/x"), "2").unwrap();
        assert_ne!(content_hash(&a).unwrap(), content_hash(&b).unwrap());
        fs::write(b.join("sub/x"), "1").unwrap();
        fs::rename(b.join("sub/x"), b.join("sub/y")).unwrap();
        assert_ne!(content_hash(&a).unwrap(), content_hash(&b).unwrap());
    }

    #[test]
    fn snapshot_holds_the_regular_files_and_nothing_else() {
        let tmp = tempfile::TempDir::new().unwrap();
        let art = tmp.path().join("artifacts");
        fs::create_dir_all(art.join("sub")).unwrap();
        fs::write(art.join("a.txt"), "a").unwrap();
        fs::write(art.join("sub/b.txt"), "b").unwrap();
        let dst = tmp.path().join("snap");
        snapshot(&art, &dst).unwrap();
        assert_eq!(fs::read_to_string(dst.join("a.txt")).unwrap(), "a");
        assert_eq!(fs::read_to_string(dst.join("sub/b.txt")).unwrap(), "b");
        // A missing artifacts directory gives an empty snapshot.
        let empty = tmp.path().join("empty");
        snapshot(&tmp.path().join("none"), &empty).unwrap();
        assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
    }
}
