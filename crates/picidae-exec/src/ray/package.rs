//! A run's checkout as a Ray working-directory package: a zip of what [`crate::upload`] lets
//! out of the checkout, named by its content (`_ray_pkg_<hash>.zip`), with one file of its own
//! ([`MARKER`], holding that hash) by which the job checks that it runs in this package and
//! not, say, in the node's own directory.

use std::fs;
use std::io::{Cursor, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use crate::upload::visible_entries;
use crate::ExecError;

/// The file in the package that names it; the job's script checks it before anything runs.
pub(crate) const MARKER: &str = ".picidae-package";

/// A zipped working directory.
#[derive(Debug)]
pub(crate) struct Package {
    /// `_ray_pkg_<hash>.zip`; the runtime environment names it `gcs://<name>`.
    pub(crate) name: String,
    /// The hash of the checkout's files, also in [`MARKER`].
    pub(crate) hash: String,
    pub(crate) bytes: Vec<u8>,
    /// Links found in the checkout and left out.
    pub(crate) links_skipped: usize,
    /// Regular files in the package.
    pub(crate) files: usize,
}

/// Zips the visible entries of `dir` with fixed timestamps (the same tree gives the same
/// package).
pub(crate) fn package(dir: &Path) -> Result<Package, ExecError> {
    let (entries, links_skipped) = visible_entries(dir)?;
    let files = entries.iter().filter(|e| e.mode.is_some()).count();
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let zip_err = |path: &Path, e: zip::result::ZipError| {
        ExecError::InvalidRequest(format!("cannot zip {}: {e}", path.display()))
    };
    // The hash covers every entry's path, mode and bytes: the same tree, the same package.
    let mut hasher = Sha256::new();
    for e in entries {
        hasher.update(e.rel.as_bytes());
        hasher.update([0]);
        hasher.update(e.mode.unwrap_or(0).to_le_bytes());
        match e.mode {
            None => zip
                .add_directory(e.rel.as_str(), SimpleFileOptions::default())
                .map_err(|err| zip_err(&e.path, err))?,
            Some(mode) => {
                let opts = SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .unix_permissions(mode);
                zip.start_file(e.rel.as_str(), opts)
                    .map_err(|err| zip_err(&e.path, err))?;
                let data = fs::read(&e.path).map_err(|err| ExecError::LocalIo {
                    path: e.path.clone(),
                    source: err,
                })?;
                hasher.update((data.len() as u64).to_le_bytes());
                hasher.update(&data);
                zip.write_all(&data).map_err(|err| ExecError::LocalIo {
                    path: e.path.clone(),
                    source: err,
                })?;
            }
        }
    }
    let hash = hex::encode(hasher.finalize())[..32].to_string();
    zip.start_file(MARKER, SimpleFileOptions::default())
        .map_err(|e| zip_err(dir, e))?;
    zip.write_all(hash.as_bytes())
        .map_err(|e| ExecError::LocalIo {
            path: dir.join(MARKER),
            source: e,
        })?;
    let bytes = zip.finish().map_err(|e| zip_err(dir, e))?.into_inner();
    Ok(Package {
        name: format!("_ray_pkg_{hash}.zip"),
        hash,
        bytes,
        links_skipped,
        files,
    })
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
        assert_eq!((p.links_skipped, p.files), (1, 2));
        let mut z = zip::ZipArchive::new(Cursor::new(p.bytes.clone())).unwrap();
        let mut names: Vec<String> = z.file_names().map(|n| n.unwrap().to_string()).collect();
        names.sort();
        assert_eq!(
            names,
            [".picidae-package", "src/empty/", "src/model.py", "train.py"]
        );
        let mut marker = String::new();
        z.by_name(MARKER)
            .unwrap()
            .read_to_string(&mut marker)
            .unwrap();
        assert_eq!(marker, p.hash);
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

        // The same selection copied as a workdir.
        let w = tempfile::tempdir().unwrap();
        let links = crate::upload::copy_visible(d.path(), &w.path().join("wd")).unwrap();
        assert_eq!(links, 1);
        assert!(w.path().join("wd/src/empty").is_dir());
        assert!(w.path().join("wd/src/model.py").is_file());
        assert!(!w.path().join("wd/.env").exists() && !w.path().join("wd/passwd").exists());
    }
}
