//! Pod sandboxes: their namespaces, network, files and infra process, from RunPodSandbox to
//! RemovePodSandbox. One file per verb; this one holds the service, its errors and its lookups.

pub mod cgroup;
mod files;
mod infra;
mod ns_pool;
mod record;
mod recover;
mod remove;
mod run;
mod stop;
mod update;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use berth_net::cni::{Attachment, CallContext, Cni, CniError};
use berth_net::netns::NetnsError;

pub use cgroup::CgroupParentError;
pub use infra::InfraError;
pub use record::{DnsConfig, NamespaceModes, NsMode, PodNetwork, PodRecord, PodState};
pub use run::{PodSpec, SecuritySpec};

use crate::blocking::TaskFailed;
use crate::events::{EventKind, Events};
use crate::objects::{Ambiguous, Object, Objects};
use crate::paths::Paths;
use crate::store::{Store, StoreError};

/// The store key of the pod CIDR kubelet sends with UpdateRuntimeConfig.
const POD_CIDR_SETTING: &str = "pod_cidr";

/// The interface CNI plugins are asked to make in each pod.
pub const POD_INTERFACE: &str = "eth0";

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    CgroupParent(#[from] CgroupParentError),
    #[error("pod sandbox {0} not found")]
    NotFound(String),
    #[error("pod sandbox {0}")]
    Ambiguous(#[from] Ambiguous),
    #[error("pod sandbox name {name} is reserved by pod {owner}")]
    NameReserved { name: String, owner: String },
    #[error("network not ready: {0}")]
    NetworkNotReady(CniError),
    #[error("{0}")]
    Network(#[from] CniError),
    #[error("{0}")]
    Namespaces(#[from] NetnsError),
    #[error("infra process: {0}")]
    Infra(#[from] InfraError),
    #[error(transparent)]
    LimitRefused(#[from] crate::cgroup_limits::LimitRefused),
    #[error(transparent)]
    Systemd(#[from] crate::systemd::SystemdError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

impl From<StoreError> for PodError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameReserved { name, owner } => PodError::NameReserved { name, owner },
            other => PodError::Store(other),
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PodError {
    let what = what.into();
    move |source| PodError::Io { what, source }
}

/// A pod in memory: its record, the lock that orders the operations on it, and the admission of
/// its container creates.
pub type Pod = Object<PodRecord, Admission>;

/// Container creates in a pod run side by side; StopPodSandbox and RemovePodSandbox wait for
/// those in flight and keep new ones out until they are done, so that no create can leave a
/// container in a pod that stopped or went.
#[derive(Debug, Default)]
pub struct Admission(Arc<tokio::sync::RwLock<()>>);

impl Admission {
    /// Held by one container create.
    pub async fn enter(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.0.clone().read_owned().await
    }

    /// Held by a pod-wide stop or removal.
    pub async fn close(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.0.clone().write_owned().await
    }
}

/// What the pod service is told at start.
#[derive(Debug, Clone)]
pub struct PodSettings {
    pub paths: Paths,
    pub infra_binary: PathBuf,
    /// The runtime handlers a pod may name, and the one it gets when it names none.
    pub handlers: BTreeSet<String>,
    pub default_handler: String,
    /// Who makes, limits and removes the pods' cgroups berth owns.
    pub cgroups: cgroup::Driver,
    /// The cgroup under which pods that name no parent get theirs (cgroupfs driver).
    pub own_cgroups: String,
}

#[derive(Debug)]
pub struct PodService {
    store: Arc<Store>,
    cni: Arc<Cni>,
    settings: PodSettings,
    events: Events,
    ns_pool: Arc<ns_pool::NamespacePool>,
    pods: Objects<Pod>,
}

impl PodService {
    pub fn new(
        store: Arc<Store>,
        cni: Arc<Cni>,
        settings: PodSettings,
        events: Events,
    ) -> PodService {
        PodService {
            store,
            cni,
            ns_pool: Arc::new(ns_pool::NamespacePool::new(
                settings.paths.spare_namespaces(),
            )),
            settings,
            events,
            pods: Objects::default(),
        }
    }

    fn emit(&self, kind: EventKind, pod_id: &str) {
        self.events.emit(kind, pod_id, pod_id);
    }

    /// The pod with this ID or unique ID prefix; an unknown one is NotFound.
    pub fn get(&self, id: &str) -> Result<Arc<Pod>, PodError> {
        self.pods.get(id, PodError::NotFound)
    }

    /// Like [`Self::get`], but an unknown pod is None.
    pub fn find(&self, id: &str) -> Result<Option<Arc<Pod>>, PodError> {
        Ok(self.pods.find(id)?)
    }

    /// What `pick` takes from each record, read in place (a relist copies only what it answers).
    pub fn scan<T>(&self, pick: impl FnMut(&PodRecord) -> Option<T>) -> Vec<T> {
        self.pods.scan_records(pick)
    }

    /// Whether the conf dir holds a usable network (for Status' NetworkReady).
    pub async fn network_status(&self) -> Result<(), CniError> {
        let net = self.cni.network()?;
        self.cni.status(&net).await
    }

    /// The pod CIDRs kubelet gave (one, or two for dual stack), handed to CNI as `ipRanges`.
    pub fn pod_cidrs(&self) -> Vec<String> {
        self.pod_cidr()
            .ok()
            .flatten()
            .map(|c| {
                c.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The CIDR text UpdateRuntimeConfig last gave, kept across restarts.
    pub fn pod_cidr(&self) -> Result<Option<String>, StoreError> {
        self.store.setting(POD_CIDR_SETTING)
    }

    pub async fn set_pod_cidr(&self, cidr: String) -> Result<(), StoreError> {
        self.store
            .off_worker(move |s| s.set_setting(POD_CIDR_SETTING, &cidr))
            .await
    }

    fn attachment(&self, record: &PodRecord, netns: PathBuf) -> Attachment {
        Attachment {
            context: CallContext {
                container_id: record.id.clone(),
                netns,
                ifname: POD_INTERFACE.into(),
                args: vec![
                    ("K8S_POD_NAMESPACE".into(), record.namespace.clone()),
                    ("K8S_POD_NAME".into(), record.name.clone()),
                    ("K8S_POD_INFRA_CONTAINER_ID".into(), record.id.clone()),
                    ("K8S_POD_UID".into(), record.uid.clone()),
                ],
            },
            port_mappings: record.port_mappings.clone(),
            pod_cidrs: self.pod_cidrs(),
        }
    }
}
