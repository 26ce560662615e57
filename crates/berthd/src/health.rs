//! The node conditions reported by `Status`: RuntimeReady and NetworkReady.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::oci::OciRuntime;

/// How long a RuntimeReady answer is reused: kubelet asks every few seconds, and running the
/// runtime binary each time would cost a fork and exec per call for no news.
const RUNTIME_CHECK_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub ready: bool,
    /// CamelCase machine-readable reason when not ready, as kubelet shows it.
    pub reason: String,
    pub message: String,
}

impl Condition {
    pub fn ready() -> Condition {
        Condition {
            ready: true,
            reason: String::new(),
            message: String::new(),
        }
    }

    pub fn not_ready(reason: &str, message: String) -> Condition {
        Condition {
            ready: false,
            reason: reason.to_owned(),
            message,
        }
    }
}

#[derive(Debug, Default)]
pub struct Health {
    runtime: Mutex<Option<(Instant, Condition)>>,
}

impl Health {
    /// RuntimeReady: the default handler's binary runs and the root is writable.
    pub async fn runtime(&self, runtime: &OciRuntime, root: &Path) -> Condition {
        if let Ok(guard) = self.runtime.lock() {
            if let Some((at, cond)) = guard.as_ref() {
                if at.elapsed() < RUNTIME_CHECK_TTL {
                    return cond.clone();
                }
            }
        }
        let cond = match runtime.probe().await {
            Err(e) => Condition::not_ready("RuntimeBinaryNotReady", e.to_string()),
            Ok(_) => match check_writable(root) {
                Ok(()) => Condition::ready(),
                Err(e) => Condition::not_ready("RootNotWritable", e.to_string()),
            },
        };
        if let Ok(mut guard) = self.runtime.lock() {
            *guard = Some((Instant::now(), cond.clone()));
        }
        cond
    }
}

/// Why berth's root cannot take writes.
#[derive(Debug, thiserror::Error)]
enum NotWritable {
    #[error("{root}: {source}")]
    Unreadable {
        root: String,
        source: rustix::io::Errno,
    },
    #[error("{0} is on a read-only filesystem")]
    ReadOnly(String),
    #[error("{root} is not writable: {source}")]
    Denied {
        root: String,
        source: rustix::io::Errno,
    },
}

fn check_writable(root: &Path) -> Result<(), NotWritable> {
    let name = || root.display().to_string();
    let stat = rustix::fs::statvfs(root).map_err(|source| NotWritable::Unreadable {
        root: name(),
        source,
    })?;
    if stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Err(NotWritable::ReadOnly(name()));
    }
    rustix::fs::access(root, rustix::fs::Access::WRITE_OK).map_err(|source| NotWritable::Denied {
        root: name(),
        source,
    })
}
