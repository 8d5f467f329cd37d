//! A run's checkout as a Ray working-directory package: a zip of what [`crate::upload`] lets
//! out of the checkout, named by its content (`_ray_pkg_<hash>.zip`) so that a checkout the
//! cluster already holds is not sent twice.

use std::fs;
use std::io::{Cursor, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use crate::upload::visible_entries;
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

/// Zips the visible entries of `dir` with fixed timestamps (the same tree gives the same
/// package).
pub(crate) fn package(dir: &Path) -> Result<Package, ExecError> {
    let (entries, links_skipped) = visible_entries(dir)?;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let zip_err = |path: &Path, e: zip::result::ZipError| {
        ExecError::InvalidRequest(format!("cannot zip {}: {e}", path.display()))
    };
    for e in entries {
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
                zip.write_all(&data).map_err(|err| ExecError::LocalIo {
                    path: e.path.clone(),
                    source: err,
                })?;
            }
        }
    }
    let bytes = zip.finish().map_err(|e| zip_err(dir, e))?.into_inner();
    let hash = hex::encode(Sha256::digest(&bytes));
    Ok(Package {
        name: format!("_ray_pkg_{}.zip", &hash[..32]),
        bytes,
        links_skipped,
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

        // The same selection copied as a workdir.
        let w = tempfile::tempdir().unwrap();
        let links = crate::upload::copy_visible(d.path(), &w.path().join("wd")).unwrap();
        assert_eq!(links, 1);
        assert!(w.path().join("wd/src/empty").is_dir());
        assert!(w.path().join("wd/src/model.py").is_file());
        assert!(!w.path().join("wd/.env").exists() && !w.path().join("wd/passwd").exists());
    }
}
