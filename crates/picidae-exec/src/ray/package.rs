//! A run's checkout as a Ray working-directory package: a zip of its files (hidden files and
//! directories never included, links never followed), named by its content
//! (`_ray_pkg_<hash>.zip`) so that a checkout the cluster already holds is not sent twice.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use crate::ExecError;

/// A zipped working directory.
#[derive(Debug)]
pub(crate) struct Package {
    /// `_ray_pkg_<hash>.zip`; the runtime environment names it `gcs://<name>`.
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
    /// Links found in the checkout and left out.
    pub(crate) links_skipped: usize,
}

fn io_err(path: &Path, source: std::io::Error) -> ExecError {
    ExecError::LocalIo {
        path: path.to_path_buf(),
        source,
    }
}

/// Zips `dir`: every regular file and empty directory below it whose path has no component
/// starting with `.`, in name order, with fixed timestamps (the same tree gives the same
/// package).
pub(crate) fn package(dir: &Path) -> Result<Package, ExecError> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut links_skipped = 0;
    add_dir(&mut zip, dir, "", &mut links_skipped)?;
    let bytes = zip
        .finish()
        .map_err(|e| ExecError::InvalidRequest(format!("cannot zip {}: {e}", dir.display())))?
        .into_inner();
    let hash = hex::encode(Sha256::digest(&bytes));
    Ok(Package {
        name: format!("_ray_pkg_{}.zip", &hash[..32]),
        bytes,
        links_skipped,
    })
}

fn add_dir(
    zip: &mut zip::ZipWriter<Cursor<Vec<u8>>>,
    dir: &Path,
    prefix: &str,
    links_skipped: &mut usize,
) -> Result<(), ExecError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    let zip_err = |path: &Path, e: zip::result::ZipError| {
        ExecError::InvalidRequest(format!("cannot zip {}: {e}", path.display()))
    };
    if entries.is_empty() && !prefix.is_empty() {
        zip.add_directory(prefix, SimpleFileOptions::default())
            .map_err(|e| zip_err(dir, e))?;
    }
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(ExecError::InvalidRequest(format!(
                "{}: a file name that is not UTF-8",
                entry.path().display()
            )));
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| io_err(&path, e))?;
        let inner = format!("{prefix}{name}");
        if meta.file_type().is_symlink() {
            *links_skipped += 1;
            tracing::warn!(path = %path.display(), "a link in a run's checkout is not sent to Ray");
        } else if meta.is_dir() {
            add_dir(zip, &path, &format!("{inner}/"), links_skipped)?;
        } else if meta.is_file() {
            let opts = SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(meta.permissions().mode() & 0o777);
            zip.start_file(inner.as_str(), opts)
                .map_err(|e| zip_err(&path, e))?;
            let data = fs::read(&path).map_err(|e| io_err(&path, e))?;
            zip.write_all(&data).map_err(|e| io_err(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn hidden_files_and_links_stay_out_and_names_follow_content() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("train.py"), "print(1)\n").unwrap();
        fs::create_dir_all(d.path().join("src/empty")).unwrap();
        fs::write(d.path().join("src/model.py"), "x = 2\n").unwrap();
        fs::write(d.path().join(".env"), "SECRET=1\n").unwrap();
        fs::create_dir_all(d.path().join(".git")).unwrap();
        fs::write(d.path().join(".git/config"), "[core]\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("passwd")).unwrap();
        let p = package(d.path()).unwrap();
        assert_eq!(p.links_skipped, 1);
        let mut z = zip::ZipArchive::new(Cursor::new(p.bytes.clone())).unwrap();
        let mut names: Vec<String> = z.file_names().map(|n| n.unwrap().to_string()).collect();
        names.sort();
        assert_eq!(names, ["src/empty/", "src/model.py", "train.py"]);
        let mut text = String::new();
        z.by_name("train.py")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "print(1)\n");
        // Same tree, same name; a changed file, a new name.
        assert_eq!(package(d.path()).unwrap().name, p.name);
        fs::write(d.path().join("train.py"), "print(2)\n").unwrap();
        assert_ne!(package(d.path()).unwrap().name, p.name);
        assert!(p.name.starts_with("_ray_pkg_") && p.name.ends_with(".zip"));
    }
}
