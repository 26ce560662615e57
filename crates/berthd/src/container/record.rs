//! The stored container and its states.
//!
//! ```text
//!   CreateContainer ──▶ CREATED ──StartContainer──▶ RUNNING ──(exit, StopContainer)──▶ EXITED
//!                          │                                                            ▲
//!                          └──────────────(killed before it started)─────────────────────┘
//!   Any state ──RemoveContainer──▶ (gone)        UNKNOWN: its monitor vanished without an exit record
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_image::Digest;
use serde::{Deserialize, Serialize};

use crate::spec::{BindMount, ResolvedUser, ResourceLimits};
use crate::store::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

impl ContainerState {
    pub fn can_start(self) -> bool {
        self == ContainerState::Created
    }

    /// Whether a process of the container may still be alive (and needs a signal to stop).
    pub fn may_run(self) -> bool {
        matches!(
            self,
            ContainerState::Created | ContainerState::Running | ContainerState::Unknown
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub pod_id: String,
    pub name: String,
    pub attempt: u32,
    pub state: ContainerState,
    /// Nanoseconds since the epoch; 0 when it did not happen.
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled` once exited.
    pub reason: String,
    pub message: String,
    /// The image as the config named it.
    pub image: String,
    /// The image's ID (its config digest).
    pub image_id: String,
    /// A digest reference of the image when it has one, else its ID.
    pub image_ref: String,
    /// The snapshots the rootfs is made of: kept until the container is removed.
    pub chain_ids: Vec<Digest>,
    /// The snapshots of its image volumes, kept as long.
    #[serde(default)]
    pub volume_chain_ids: Vec<Digest>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The CRI log file (absolute).
    pub log_path: PathBuf,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub mounts: Vec<BindMount>,
    pub resources: ResourceLimits,
    pub user: ResolvedUser,
    pub runtime_handler: String,
    /// The signal StopContainer sends first: the config's, else the image's StopSignal (empty:
    /// SIGTERM).
    pub stop_signal: String,
    /// The container's init process, as the node sees it.
    pub pid: Option<u32>,
    pub monitor_pid: Option<u32>,
    /// The container's cgroup as a cgroupfs path (where its figures are read).
    #[serde(default)]
    pub cgroup: String,
}

impl Record for ContainerRecord {
    const TABLE: &'static str = "containers";
    fn key(&self) -> &str {
        &self.id
    }
}

impl ContainerRecord {
    /// WrongState unless the container is running: what needs its processes (exec, attach,
    /// checkpoint) asks this first.
    pub fn must_be_running(&self) -> Result<(), super::ContainerError> {
        if self.state == ContainerState::Running {
            return Ok(());
        }
        Err(super::ContainerError::WrongState {
            id: self.id.clone(),
            state: self.state,
            wanted: "running",
        })
    }

    pub fn name_key(pod_id: &str, name: &str, attempt: u32) -> String {
        format!("container/{pod_id}/{name}_{attempt}")
    }
}

/// The CRI `reason` of an exit.
pub fn exit_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_allow_what_the_cri_allows() {
        assert!(ContainerState::Created.can_start());
        assert!(!ContainerState::Running.can_start());
        assert!(!ContainerState::Exited.can_start());
        assert!(ContainerState::Running.may_run() && ContainerState::Created.may_run());
        assert!(!ContainerState::Exited.may_run());
    }

    #[test]
    fn exit_reasons() {
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(3, false), "Error");
        assert_eq!(exit_reason(137, true), "OOMKilled");
    }
}
