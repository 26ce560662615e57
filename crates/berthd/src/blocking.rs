//! Work that must not run on an async worker (mounts, cgroup and namespace changes, walks of a
//! tree, commits): it waits on kernel locks or the disk, and a burst of it would hold every
//! worker and stall the calls that only read.

/// A task berthd ran apart (on the blocking pool, or detached from its caller) panicked; the
/// panic itself was logged by the runtime's hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a task of berthd failed")]
pub struct TaskFailed;

/// Runs `work` on the blocking pool and waits for it.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TaskFailed> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| TaskFailed)
}
