//! What CreateContainer asks for, free of the CRI's types: `cri/container.rs` makes it from the
//! request (checking what it can without the node), the container service and the OCI spec
//! builder read it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::pod::NsMode;
use crate::spec::{Propagation, ResourceLimits};
use crate::userns::IdMappings;

#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub attempt: u32,
    /// The image as the request names it (tag, digest or ID).
    pub image: String,
    /// Replaces the image's Entrypoint (and drops its Cmd) when not empty.
    pub command: Vec<String>,
    /// Replaces the image's Cmd when not empty.
    pub args: Vec<String>,
    /// Empty: the image's, else `/`.
    pub working_dir: String,
    /// Values are bytes: the CRI's, which need not be UTF-8.
    pub env: Vec<(String, Vec<u8>)>,
    pub mounts: Vec<MountRequest>,
    pub devices: Vec<DeviceRequest>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Relative to the pod's log directory (kubelet sends both).
    pub log_path: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub resources: ResourceLimits,
    pub security: SecuritySpec,
    /// The signal StopContainer sends first (`SIGTERM`…); None: the image's, else SIGTERM.
    pub stop_signal: Option<String>,
}

/// A host path (or a file of one), or an image, to mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    pub container_path: String,
    /// Empty when `image` is set.
    pub host_path: String,
    /// An image volume: the image's filesystem, read-only.
    pub image: Option<ImageVolume>,
    /// What berth mounted for it (an image volume, an idmapped view of the host path), which
    /// the bind is then made from; never from the CRI.
    pub source: Option<PathBuf>,
    /// The ID mappings the mount is to be seen through (they must be the pod's).
    pub id_mappings: Option<IdMappings>,
    pub readonly: bool,
    /// Its submounts read-only too (`readonly` is then true and propagation private).
    pub recursive_read_only: bool,
    pub propagation: Propagation,
}

/// The image an image volume mounts, and the part of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageVolume {
    /// As kubelet names it: the `image_ref` its PullImage returned.
    pub image: String,
    /// A path inside the image; empty: its root.
    pub sub_path: String,
    /// The ID of the image that was mounted (known once it is), which status reports as the
    /// volume's `image_ref`.
    #[serde(default)]
    pub image_id: String,
}

/// A host device node for the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequest {
    pub host_path: String,
    /// Empty: the host path.
    pub container_path: String,
    /// A subset of `rwm`; empty: all three.
    pub permissions: String,
}

#[derive(Debug, Clone, Default)]
pub struct SecuritySpec {
    pub privileged: bool,
    pub user: UserRequest,
    pub capabilities: CapabilityRequest,
    pub no_new_privs: bool,
    pub readonly_rootfs: bool,
    /// /proc and /sys paths hidden from the container, and those it may only read: as given
    /// (empty: none, the Unmasked proc mount).
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub seccomp: SeccompProfile,
    pub apparmor: AppArmorProfile,
    /// The container's PID namespace when it says (else the pod's mode).
    pub pid_mode: Option<NsMode>,
    /// The container whose PID namespace a `Target` mode joins.
    pub target_id: String,
    pub user_namespace: UserNamespaceRequest,
}

/// The user namespace a container names (kubelet repeats its pod's); a container lives in its
/// pod's either way, so what it names must be that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserNamespaceRequest {
    #[default]
    Unsaid,
    Node,
    Pod(IdMappings),
}

/// Who the process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRequest {
    pub run_as_user: Option<u32>,
    /// Looked up in the container's /etc/passwd; wins over `run_as_user`.
    pub run_as_username: String,
    pub run_as_group: Option<u32>,
    pub supplemental_groups: Vec<u32>,
    /// Strict: only these groups, not those /etc/group gives the user.
    pub strict_groups: bool,
}

/// Capability names as given (`NET_RAW`, `CAP_NET_RAW`, `ALL`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilityRequest {
    pub add: Vec<String>,
    pub drop: Vec<String>,
    pub add_ambient: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompProfile {
    /// The CRI's default.
    #[default]
    Unconfined,
    RuntimeDefault,
    /// A profile file on the node.
    Localhost(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AppArmorProfile {
    /// The runtime's default, or none: the same on a node without AppArmor.
    #[default]
    Default,
    Unconfined,
    Localhost(String),
}
