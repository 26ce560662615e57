//! runc's state of one container (`<runtime root>/<id>/state.json`), the part berth reads for the
//! handlers it runs natively: the init process and its start time, the cgroups, the hooks. The
//! exec plan is built from it, and a stopped container's state is deleted by it without a runc
//! process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::OciRuntime;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No state: the runtime has no such container.
    #[error("the runtime has no container {0}")]
    Missing(String),
    /// Not runc's state, or not readable: the runtime's own commands must do.
    #[error("the runtime's state {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

#[derive(Debug, Deserialize)]
pub struct RuncState {
    pub init_process_pid: u32,
    /// Field 22 of `/proc/<pid>/stat` when runc started the process.
    pub init_process_start: u64,
    /// Per controller (v1) or `""` (v2): the container's cgroup directories.
    #[serde(default)]
    pub cgroup_paths: BTreeMap<String, PathBuf>,
    #[serde(default)]
    config: StateConfig,
}

#[derive(Debug, Default, Deserialize)]
struct StateConfig {
    /// Hook lists by name; runc writes `null` for an empty one.
    #[serde(default, rename = "Hooks")]
    hooks: Option<BTreeMap<String, Option<Vec<serde_json::Value>>>>,
}

impl RuncState {
    /// The state of container `id` of `runtime`. Blocking.
    pub fn read(runtime: &OciRuntime, id: &str) -> Result<RuncState, StateError> {
        let path = state_dir(runtime, id).join("state.json");
        let unreadable = |reason: String| StateError::Unreadable {
            path: path.display().to_string(),
            reason,
        };
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing(id.to_owned()));
            }
            Err(e) => return Err(unreadable(e.to_string())),
        };
        serde_json::from_slice(&text).map_err(|e| unreadable(e.to_string()))
    }

    /// The distinct cgroup directories, in order.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.cgroup_paths.values().cloned().collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Whether the container's init process still runs (the process with its PID is the one
    /// runc started, by its start time, and is not a zombie).
    pub fn init_alive(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.init_process_pid))
        else {
            return false;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (the state); the start time is field 22.
        let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
        let start = fields.get(22 - 3).and_then(|s| s.parse::<u64>().ok());
        !zombie && start == Some(self.init_process_start)
    }

    /// Whether runc would run hooks when the container is deleted.
    pub fn has_poststop_hooks(&self) -> bool {
        self.config
            .hooks
            .as_ref()
            .and_then(|h| h.get("poststop"))
            .is_some_and(|list| list.as_ref().is_some_and(|l| !l.is_empty()))
    }
}

/// runc's directory of container `id`.
pub fn state_dir(runtime: &OciRuntime, id: &str) -> PathBuf {
    runtime.state_root.join(id)
}

/// Whether a cgroup directory still holds a process.
pub fn cgroup_populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> RuncState {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn runcs_state_is_read_for_what_berth_needs() {
        let state = parse(
            r#"{"id":"c","init_process_pid":1,"init_process_start":7,
            "cgroup_paths":{"cpu":"/sys/fs/cgroup/cpu/x","cpuacct":"/sys/fs/cgroup/cpu/x","":"/sys/fs/cgroup/unified/x"},
            "config":{"Hooks":{"poststop":null,"prestart":null}},"namespace_paths":{}}"#,
        );
        assert_eq!(state.cgroup_dirs().len(), 2);
        assert!(!state.has_poststop_hooks());
        assert!(!state.init_alive(), "PID 1 did not start at tick 7");
        let hooked = parse(
            r#"{"init_process_pid":1,"init_process_start":7,"config":{"Hooks":{"poststop":[{"path":"/bin/true"}]}}}"#,
        );
        assert!(hooked.has_poststop_hooks());
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let start: u64 = own
            .rsplit_once(") ")
            .unwrap()
            .1
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        let me = parse(&format!(
            r#"{{"init_process_pid":{},"init_process_start":{start}}}"#,
            std::process::id()
        ));
        assert!(me.init_alive());
    }
}
