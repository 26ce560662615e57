//! Snapshot directories: one unpacked layer each, keyed by its chain ID (so a layer shared by
//! images, with the same layers below it, is unpacked once). A snapshot is made in a temporary
//! directory and appears under its final name by one rename, so a half-made one is never seen.
//!
//! Garbage collection and its users meet at one short lock, never across I/O or a transfer: a
//! pull or a create takes a [`Lease`] on the snapshots it stands on before it looks for them, and
//! [`Snapshots::remove_unused`] decides under the same lock, renaming its victims away (one
//! syscall each) before it deletes them outside it. A lease therefore either comes first, and
//! its snapshots stay, or comes after a removal, and finds them gone (a pull then makes them
//! again; a create reports the image gone).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::digest::Digest;

const TEMP_PREFIX: &str = "tmp-";

#[derive(Debug)]
pub struct Snapshots {
    dir: PathBuf,
    leases: Mutex<Leases>,
}

#[derive(Debug, Default)]
struct Leases {
    next: u64,
    held: HashMap<u64, Vec<Digest>>,
}

/// Keeps snapshots from garbage collection while it lives.
#[derive(Debug)]
pub struct Lease {
    id: u64,
    snapshots: Arc<Snapshots>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.snapshots.leases().held.remove(&self.id);
    }
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
            leases: Mutex::new(Leases::default()),
        })
    }

    fn leases(&self) -> MutexGuard<'_, Leases> {
        // The table stays whole through a panic elsewhere: every change is one map operation.
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `chains` from garbage collection until the lease drops.
    pub fn lease(self: &Arc<Self>, chains: &[Digest]) -> Lease {
        let mut leases = self.leases();
        leases.next += 1;
        let id = leases.next;
        leases.held.insert(id, chains.to_vec());
        Lease {
            id,
            snapshots: self.clone(),
        }
    }

    /// Removes every snapshot neither leased nor in `keep` (asked for under the lease lock, so
    /// that a user who registers and then drops its lease cannot fall between the two);
    /// `renamed` runs between the renames and the deletes, when there were any. Blocking. The
    /// number removed.
    pub fn remove_unused(
        &self,
        keep: impl FnOnce() -> HashSet<Digest>,
        renamed: impl FnOnce(),
    ) -> io::Result<usize> {
        let doomed: Vec<PathBuf> = {
            let leases = self.leases();
            let mut keep = keep();
            keep.extend(leases.held.values().flatten().cloned());
            let mut doomed = Vec::new();
            for chain in self.list()? {
                if keep.contains(&chain) {
                    continue;
                }
                let away = self.dir.join(format!("{TEMP_PREFIX}rm-{}", chain.hex()));
                match std::fs::rename(self.dir.join(chain.hex()), &away) {
                    Ok(()) => doomed.push(away),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            doomed
        };
        if !doomed.is_empty() {
            renamed();
        }
        for path in &doomed {
            std::fs::remove_dir_all(path)?;
        }
        Ok(doomed.len())
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

    /// Makes the snapshot visible under its chain ID, once its files are on disk: a power loss
    /// after the rename must not leave a snapshot with truncated files that nothing re-pulls.
    /// One `syncfs` writes every file of it (and whatever else the filesystem holds dirty) at
    /// once, which thousands of fsyncs would not do faster; the rename is then made durable too.
    pub fn commit(mut self) -> io::Result<()> {
        let made = std::fs::File::open(&self.temp)?;
        rustix::fs::syncfs(&made)?;
        match std::fs::rename(&self.temp, &self.target) {
            Ok(()) => {}
            // Made meanwhile by someone else: theirs is as good as ours.
            Err(e) if self.target.is_dir() && e.raw_os_error().is_some() => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = self.target.parent() {
            std::fs::File::open(parent)?.sync_all()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn made(snapshots: &Snapshots, data: &[u8]) -> Digest {
        let chain = Digest::of(data);
        snapshots.begin(&chain).unwrap().commit().unwrap();
        chain
    }

    #[test]
    fn leased_and_kept_snapshots_stay_the_rest_go() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = Arc::new(Snapshots::open(dir.path()).unwrap());
        let (leased, kept, unused) = (
            made(&snapshots, b"leased"),
            made(&snapshots, b"kept"),
            made(&snapshots, b"unused"),
        );
        let lease = snapshots.lease(std::slice::from_ref(&leased));
        let keep = HashSet::from([kept.clone()]);
        assert_eq!(snapshots.remove_unused(|| keep.clone(), || {}).unwrap(), 1);
        assert!(snapshots.exists(&leased) && snapshots.exists(&kept));
        assert!(!snapshots.exists(&unused));
        drop(lease);
        assert_eq!(snapshots.remove_unused(|| keep.clone(), || {}).unwrap(), 1);
        assert!(!snapshots.exists(&leased));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the kept one, no leftovers of removals");
    }
}
