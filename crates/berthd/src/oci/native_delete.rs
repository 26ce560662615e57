//! Deleting a stopped container's runtime state without a runc process, doing what `runc delete`
//! does for one: its cgroups removed, then its state dir. Only where that is all runc would do:
//! its init process is dead, no process is left in its cgroups (runc would kill them), it has
//! no poststop hook, and its cgroups are berth's to remove (the cgroupfs driver; under the
//! systemd driver, systemd owns the container's scope).

use super::OciRuntime;
use super::runc_state::{self, RuncState, StateError};

/// What became of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeDelete {
    /// Deleted, or there was none.
    Done,
    /// Left for `runc delete`, for this reason.
    NotSafe(String),
}

/// Deletes the state of stopped container `id`. Blocking.
pub fn delete_stopped(runtime: &OciRuntime, id: &str) -> NativeDelete {
    let not_safe = |why: &str| NativeDelete::NotSafe(why.to_owned());
    let state = match RuncState::read(runtime, id) {
        Ok(state) => state,
        Err(StateError::Missing(_)) => return NativeDelete::Done,
        Err(e) => return NativeDelete::NotSafe(e.to_string()),
    };
    if state.init_alive() {
        return not_safe("its init process runs");
    }
    if state.has_poststop_hooks() {
        return not_safe("it has poststop hooks");
    }
    let cgroups = state.cgroup_dirs();
    if cgroups.iter().any(|dir| runc_state::cgroup_populated(dir)) {
        return not_safe("processes are left in its cgroups");
    }
    for dir in &cgroups {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // EBUSY a moment after the last exit, for one: runc retries.
            Err(e) => return NativeDelete::NotSafe(format!("{}: {e}", dir.display())),
        }
    }
    match std::fs::remove_dir_all(runc_state::state_dir(runtime, id)) {
        Ok(()) => NativeDelete::Done,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => NativeDelete::Done,
        Err(e) => NativeDelete::NotSafe(format!("its state dir: {e}")),
    }
}
