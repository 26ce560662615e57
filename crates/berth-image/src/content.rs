//! The content store: manifests, indexes and configs (and layer blobs when kept), by digest,
//! written whole and verified before they appear.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::Digest;

#[derive(Debug)]
pub struct ContentStore {
    dir: PathBuf,
}

impl ContentStore {
    /// Opens the store, removing temporary files a crash left behind.
    pub fn open(dir: &Path) -> io::Result<ContentStore> {
        let dir = dir.join("sha256");
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(ContentStore { dir })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// Stores `bytes`, which the caller has verified to have `digest`.
    pub fn write(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(digest);
        if path.exists() {
            return Ok(());
        }
        let temp = self.temp_path(digest);
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)
    }

    /// A file to write a blob into as it streams; [`ContentStore::commit_file`] moves it in place.
    pub fn temp_file(&self, digest: &Digest) -> io::Result<(PathBuf, std::fs::File)> {
        let temp = self.temp_path(digest);
        Ok((temp.clone(), std::fs::File::create(&temp)?))
    }

    /// A unique temporary name beside the final one (concurrent writers never share one).
    fn temp_path(&self, digest: &Digest) -> PathBuf {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        self.dir.join(format!(
            ".tmp-{}-{}-{}",
            digest.hex(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Makes a blob written to `temp` (a kept layer) visible, once it is on disk.
    pub fn commit_file(&self, temp: &Path, digest: &Digest) -> io::Result<()> {
        std::fs::File::open(temp)?.sync_all()?;
        std::fs::rename(temp, self.path(digest))
    }

    pub fn read(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(digest))
    }

    pub fn remove(&self, digest: &Digest) -> io::Result<()> {
        match std::fs::remove_file(self.path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn list(&self) -> io::Result<Vec<Digest>> {
        Digest::named_in(&self.dir)
    }
}
