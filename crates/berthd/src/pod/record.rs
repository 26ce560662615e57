//! The stored pod sandbox and its states.
//!
//! ```text
//!   RunPodSandbox ──▶ READY ──StopPodSandbox──▶ NOTREADY ──RemovePodSandbox──▶ (gone)
//!                       │                                        ▲
//!                       └──────────── RemovePodSandbox ──────────┘  (stops it first)
//! ```
//! A pod also turns NOTREADY when berthd finds at start that its namespaces or its infra process
//! are gone (after a reboot, say).

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_net::cni::{NetworkList, PortMapping};
use berth_net::netns::Pinned;
use serde::{Deserialize, Serialize};

use crate::store::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodState {
    Ready,
    NotReady,
}

/// Where a pod's namespace of one kind comes from (the CRI NamespaceMode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NsMode {
    /// One namespace for the whole pod.
    #[default]
    Pod,
    /// One per container.
    Container,
    /// The node's own.
    Node,
    /// Another container's (PID only).
    Target,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceModes {
    pub network: NsMode,
    pub pid: NsMode,
    pub ipc: NsMode,
    /// The container whose PID namespace `pid = Target` joins.
    pub target_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// The pod's network as CNI set it up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodNetwork {
    /// The network list ADD used, so that DEL uses the same even if the conf dir changed.
    pub list: Option<NetworkList>,
    /// The ADD result, handed to DEL and CHECK as `prevResult`.
    pub result: Option<serde_json::Value>,
    /// Primary IP first.
    pub ips: Vec<String>,
    /// Whether the network is still attached (false after StopPodSandbox).
    pub attached: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub state: PodState,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub runtime_handler: String,
    pub namespaces: NamespaceModes,
    pub hostname: String,
    pub log_directory: String,
    /// The pod's cgroup, its containers' parent, as a cgroupfs path (systemd slice names
    /// expanded): kubelet's, or one of berth's own.
    pub cgroup_parent: String,
    /// berth made the cgroup (the pod named no parent) and removes it with the pod.
    #[serde(default)]
    pub owns_cgroup: bool,
    pub port_mappings: Vec<PortMapping>,
    pub sysctls: BTreeMap<String, String>,
    pub privileged: bool,
    pub dns: Option<DnsConfig>,
    /// The pod's state directory: pinned namespaces, shm, hostname, hosts, resolv.conf.
    pub dir: PathBuf,
    pub pinned: Pinned,
    /// The pod's /dev/shm mount (None when it shares the node's IPC namespace).
    pub shm: Option<PathBuf>,
    pub network: PodNetwork,
    /// PID 1 of the pod's PID namespace, when the pod shares one and it runs (cleared when the
    /// pod stops).
    #[serde(default)]
    pub infra: Option<super::infra::InfraProcess>,
    /// The bare PID an earlier berth recorded in place of `infra`; recovery adopts it.
    #[serde(default, rename = "infra_pid", skip_serializing)]
    pub legacy_infra_pid: Option<u32>,
    /// The ID mappings of the pod's own user namespace (None: the node's).
    #[serde(default)]
    pub user_namespace: Option<crate::userns::IdMappings>,
    /// The limits UpdatePodSandboxResources last gave the pod's cgroup.
    #[serde(default)]
    pub resources: Option<crate::spec::ResourceLimits>,
}

impl Record for PodRecord {
    const TABLE: &'static str = "pods";
    fn key(&self) -> &str {
        &self.id
    }
}

impl PodRecord {
    /// The key its name is reserved under: the same metadata cannot make two pods.
    pub fn name_key(name: &str, namespace: &str, uid: &str, attempt: u32) -> String {
        format!("pod/{name}_{namespace}_{uid}_{attempt}")
    }

    pub fn host_network(&self) -> bool {
        self.namespaces.network == NsMode::Node
    }

    pub fn hostname_file(&self) -> PathBuf {
        self.dir.join("hostname")
    }

    pub fn hosts_file(&self) -> PathBuf {
        self.dir.join("hosts")
    }

    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }
}
