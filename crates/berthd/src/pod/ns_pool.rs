//! Namespace sets (network, IPC, UTS) made ahead of time. Creating a network namespace is the
//! costliest step of RunPodSandbox after CNI ADD (about a millisecond of kernel work), so a pod
//! that wants all three takes a ready set, and a background task makes the next. A taken set stays
//! pinned where it was made (moving a mount costs as much as making the namespace); the pod's
//! record names it and the pod's `ns` is a symlink to it. A daemon that starts unpins every set no
//! pod owns.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::LockRecovered;
use berth_net::netns::{self, NamespaceRequest, Pinned};

/// Sets kept ready: enough for a few pods in a row; a burst beyond makes its own.
const SPARES: usize = 4;

#[derive(Debug)]
pub struct NamespacePool {
    dir: PathBuf,
    spares: Mutex<Vec<Pinned>>,
    filling: AtomicBool,
}

impl NamespacePool {
    pub fn new(dir: PathBuf) -> NamespacePool {
        NamespacePool {
            dir,
            spares: Mutex::new(Vec::new()),
            filling: AtomicBool::new(false),
        }
    }

    fn spares(&self) -> std::sync::MutexGuard<'_, Vec<Pinned>> {
        self.spares.lock_recovered()
    }

    /// Unpins the sets an earlier daemon left that no pod owns (spares, or taken by a pod whose
    /// create died with it), then starts filling the pool. Blocking.
    pub fn reset(self: &Arc<Self>, owned: &HashSet<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let set = entry.path();
                if owned.contains(&set) {
                    continue;
                }
                if let Err(e) = netns::remove(&Pinned::all_in(&set)) {
                    tracing::warn!("removing spare namespaces {}: {e}", set.display());
                }
            }
        }
        self.fill();
    }

    /// A ready set, if there is one.
    pub fn take(&self) -> Option<Pinned> {
        self.spares().pop()
    }

    /// Makes sets until there are `SPARES`, on a blocking thread; one filler at a time. Called
    /// once a pod is up rather than when it takes a set: making a namespace contends with CNI
    /// ADD for the kernel's network lock and would slow the very pod it is made for.
    pub fn fill(self: &Arc<Self>) {
        if self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            while this.spares().len() < SPARES {
                let request = NamespaceRequest {
                    dir: this.dir.join(&crate::ids::new_id()[..16]),
                    net: true,
                    ipc: true,
                    uts: true,
                    hostname: None,
                    sysctls: Vec::new(),
                };
                match netns::create(request) {
                    Ok(set) => this.spares().push(set),
                    Err(e) => {
                        tracing::warn!("making spare namespaces: {e}");
                        break;
                    }
                }
            }
            this.filling.store(false, Ordering::Release);
        });
    }
}

/// The dir a set's namespace files are pinned in.
pub fn set_dir(set: &Pinned) -> Option<&Path> {
    set.net.as_deref().and_then(Path::parent)
}

/// Makes the pod's `ns` path a symlink to the set it took (so that `<pod>/ns/net` is its netns,
/// whichever way it was made).
pub fn link(set: &Pinned, pod_ns: &Path) -> Result<(), netns::NetnsError> {
    let target = set_dir(set).ok_or_else(|| netns::NetnsError::Create {
        step: "link the pod's namespaces".into(),
        source: std::io::Error::other("the set has no network namespace"),
    })?;
    std::os::unix::fs::symlink(target, pod_ns).map_err(|source| netns::NetnsError::Create {
        step: "link the pod's namespaces".into(),
        source,
    })
}
