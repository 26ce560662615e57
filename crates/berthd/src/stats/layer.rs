//! Disk use of containers' writable layers (their overlay upper dirs). A walk of a big tree is
//! slow, so a figure is measured once, then served from the cache and refreshed in the background
//! when it is older than `MAX_AGE`: no stats call waits for a walk but the very first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::LockRecovered;
use tokio::sync::Semaphore;

/// How old a figure may be before a stats call starts its refresh.
const MAX_AGE: Duration = Duration::from_secs(15);
/// Walks at once: they compete for the disk with the containers.
const WALKERS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Allocated bytes (blocks × 512; hard links counted once).
    pub bytes: u64,
    pub inodes: u64,
    /// When it was measured, nanoseconds since the epoch.
    pub at: i64,
}

#[derive(Debug)]
struct Entry {
    usage: DiskUsage,
    measured: Instant,
    refreshing: bool,
}

#[derive(Debug)]
pub struct LayerUsage {
    entries: Mutex<HashMap<String, Entry>>,
    walkers: Semaphore,
}

impl Default for LayerUsage {
    fn default() -> Self {
        LayerUsage {
            entries: Mutex::new(HashMap::new()),
            walkers: Semaphore::new(WALKERS),
        }
    }
}

impl LayerUsage {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock_recovered()
    }

    /// The usage of container `id`'s upper dir `dir`: cached, refreshed in the background when
    /// stale; measured now only when there is no figure yet. None when it cannot be read.
    pub async fn get(self: &Arc<Self>, id: &str, dir: PathBuf) -> Option<DiskUsage> {
        let cached = {
            let mut entries = self.entries();
            match entries.get_mut(id) {
                Some(e) if e.measured.elapsed() < MAX_AGE || e.refreshing => Some((e.usage, false)),
                Some(e) => {
                    e.refreshing = true;
                    Some((e.usage, true))
                }
                None => None,
            }
        };
        match cached {
            Some((usage, refresh)) => {
                if refresh {
                    let this = self.clone();
                    let id = id.to_owned();
                    tokio::spawn(async move { this.measure(&id, dir).await });
                }
                Some(usage)
            }
            None => self.measure(id, dir).await,
        }
    }

    async fn measure(&self, id: &str, dir: PathBuf) -> Option<DiskUsage> {
        let measured = match self.walkers.acquire().await {
            Ok(_permit) => crate::blocking::run(move || walk(&dir)).await.ok(),
            Err(_) => None,
        };
        let mut entries = self.entries();
        match measured {
            Some(Ok(usage)) => {
                entries.insert(
                    id.to_owned(),
                    Entry {
                        usage,
                        measured: Instant::now(),
                        refreshing: false,
                    },
                );
                Some(usage)
            }
            _ => {
                // Gone or unreadable: try again on the next call.
                entries.remove(id);
                None
            }
        }
    }

    /// Drops the figure of a container that no longer exists.
    pub fn forget(&self, id: &str) {
        self.entries().remove(id);
    }
}

/// Measures `dir` now.
fn walk(dir: &Path) -> std::io::Result<DiskUsage> {
    let usage = crate::disk_usage::measure(dir)?;
    Ok(DiskUsage {
        bytes: usage.bytes,
        inodes: usage.inodes,
        at: crate::clock::now_nanos(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_figure_is_measured_once_then_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(LayerUsage::default());
        let first = cache.get("c", dir.path().to_path_buf()).await.unwrap();
        std::fs::write(dir.path().join("new"), vec![1u8; 64 * 1024]).unwrap();
        let cached = cache.get("c", dir.path().to_path_buf()).await.unwrap();
        assert_eq!(cached, first, "fresh figures are not measured again");
        cache.forget("c");
        let measured = cache.get("c", dir.path().to_path_buf()).await.unwrap();
        assert_eq!(measured.inodes, first.inodes + 1);
    }
}
