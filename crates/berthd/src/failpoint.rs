//! Failpoints: named places between the steps of multi-step operations where a test makes
//! berthd die as `kill -9` would, to check that start-up recovery finds and undoes what the step
//! before left. `BERTH_FAILPOINT=<name>` in berthd's environment arms one; only debug builds
//! (which the tests use) read it, so a release build never dies here.

use std::sync::OnceLock;

/// The armed failpoint, read once.
fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            if cfg!(debug_assertions) {
                std::env::var("BERTH_FAILPOINT").ok()
            } else {
                None
            }
        })
        .as_deref()
}

/// Dies here, with SIGKILL, if `name` is the armed failpoint.
pub fn reached(name: &'static str) {
    if armed() == Some(name) {
        tracing::warn!(
            failpoint = name,
            "failpoint reached: dying as kill -9 would"
        );
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}
