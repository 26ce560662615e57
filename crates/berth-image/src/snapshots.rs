//! Snapshot directories: one unpacked layer each, keyed by its chain ID (so a layer shared by
//! images, with the same layers below it, is unpacked once). A snapshot is made in a temporary
//! directory and appears under its final name by one rename, so a half-made one is never seen.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::Digest;

const TEMP_PREFIX: &str = "tmp-";

#[derive(Debug)]
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    /// Opens the snapshot directory, removing what a crash left half made.
    pub fn open(dir: &Path) -> io::Result<Snapshots> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(Snapshots {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The unpacked files of a snapshot (an overlay lower dir).
    pub fn fs_path(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex()).join("fs")
    }

    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.dir.join(chain_id.hex()).is_dir()
    }

    /// Starts a snapshot; it is removed when dropped uncommitted.
    pub fn begin(&self, chain_id: &Digest) -> io::Result<PendingSnapshot> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let temp = self.dir.join(format!(
            "{TEMP_PREFIX}{}-{}-{}",
            &chain_id.hex()[..12],
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&temp)?;
        std::fs::create_dir(temp.join("fs"))?;
        Ok(PendingSnapshot {
            temp,
            target: self.dir.join(chain_id.hex()),
            committed: false,
        })
    }

    /// Removes a snapshot: first renamed away (so it vanishes at once), then deleted.
    pub fn remove(&self, chain_id: &Digest) -> io::Result<()> {
        let path = self.dir.join(chain_id.hex());
        let doomed = self.dir.join(format!("{TEMP_PREFIX}rm-{}", chain_id.hex()));
        match std::fs::rename(&path, &doomed) {
            Ok(()) => std::fs::remove_dir_all(&doomed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The chain IDs of every committed snapshot.
    pub fn list(&self) -> io::Result<Vec<Digest>> {
        Digest::named_in(&self.dir)
    }
}

/// A snapshot being made.
#[derive(Debug)]
pub struct PendingSnapshot {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PendingSnapshot {
    pub fn fs(&self) -> PathBuf {
        self.temp.join("fs")
    }

    /// Where entries wait that depend on lower layers (outside `fs`, on the same filesystem).
    pub fn staging(&self) -> PathBuf {
        self.temp.join("staging")
    }

    /// Makes the snapshot visible under its chain ID.
    pub fn commit(mut self) -> io::Result<()> {
        match std::fs::rename(&self.temp, &self.target) {
            Ok(()) => {}
            // Made meanwhile by someone else: theirs is as good as ours.
            Err(e) if self.target.is_dir() && e.raw_os_error().is_some() => {}
            Err(e) => return Err(e),
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingSnapshot {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
}
