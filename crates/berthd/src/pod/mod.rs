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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use berth_net::cni::{Attachment, CallContext, Cni, CniError};
use berth_net::netns::NetnsError;

pub use record::{DnsConfig, NamespaceModes, NsMode, PodNetwork, PodRecord, PodState};
pub use run::{PodSpec, SecuritySpec};

use crate::detach::Unclaimed;
use crate::events::{EventKind, Events};
use crate::ids::{self, Lookup};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("{0}")]
    Invalid(String),
    #[error("pod sandbox {0} not found")]
    NotFound(String),
    #[error("pod sandbox ID prefix `{prefix}` is ambiguous: {matches} pods match")]
    Ambiguous { prefix: String, matches: usize },
    #[error("pod sandbox name {name} is reserved by pod {owner}")]
    NameReserved { name: String, owner: String },
    #[error("network not ready: {0}")]
    NetworkNotReady(String),
    #[error("{0}")]
    Network(#[from] CniError),
    #[error("{0}")]
    Namespaces(#[from] NetnsError),
    #[error("infra process: {0}")]
    Infra(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(StoreError),
    #[error("the pod task failed")]
    Task,
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

/// A pod in memory: its record, and a lock that orders the operations on it.
#[derive(Debug)]
pub struct Pod {
    record: RwLock<PodRecord>,
    op: tokio::sync::Mutex<()>,
}

impl Pod {
    fn new(record: PodRecord) -> Arc<Pod> {
        Arc::new(Pod {
            record: RwLock::new(record),
            op: tokio::sync::Mutex::new(()),
        })
    }

    /// A copy of the current record.
    pub fn record(&self) -> PodRecord {
        self.record
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the record in the store, then in memory (callers hold the pod's operation lock).
    async fn update(
        &self,
        store: &Arc<Store>,
        change: impl FnOnce(&mut PodRecord),
    ) -> Result<PodRecord, PodError> {
        let mut next = self.record();
        change(&mut next);
        let written = next.clone();
        store.off_worker(move |s| s.put(&written)).await?;
        *self.record.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        Ok(next)
    }
}

/// What the pod service is told at start.
#[derive(Debug, Clone)]
pub struct PodSettings {
    /// `<state_dir>/pods`: one directory per pod.
    pub pods_dir: PathBuf,
    /// `<state_dir>/spare-namespaces`: namespace sets made ahead of time.
    pub spare_namespaces_dir: PathBuf,
    pub infra_binary: PathBuf,
    /// The runtime handlers a pod may name, and the one it gets when it names none.
    pub handlers: BTreeSet<String>,
    pub default_handler: String,
    pub systemd_cgroup: bool,
}

#[derive(Debug)]
pub struct PodService {
    store: Arc<Store>,
    cni: Arc<Cni>,
    settings: PodSettings,
    events: Events,
    ns_pool: Arc<ns_pool::NamespacePool>,
    pods: RwLock<BTreeMap<String, Arc<Pod>>>,
    unclaimed: Arc<Unclaimed>,
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
                settings.spare_namespaces_dir.clone(),
            )),
            settings,
            events,
            pods: RwLock::new(BTreeMap::new()),
            unclaimed: Arc::new(Unclaimed::default()),
        }
    }

    fn emit(&self, kind: EventKind, pod_id: &str) {
        self.events.emit(kind, pod_id, pod_id);
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Pod>>> {
        self.pods.read().unwrap_or_else(|p| p.into_inner())
    }

    fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Pod>>> {
        self.pods.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The pod with this ID or unique ID prefix.
    pub fn find(&self, id: &str) -> Result<Option<Arc<Pod>>, PodError> {
        match ids::lookup(&self.map(), id) {
            Lookup::Found(pod) => Ok(Some(pod.clone())),
            Lookup::NotFound => Ok(None),
            Lookup::Ambiguous(matches) => Err(PodError::Ambiguous {
                prefix: id.to_owned(),
                matches,
            }),
        }
    }

    /// Like [`PodService::find`], but an unknown pod is NotFound.
    pub fn get(&self, id: &str) -> Result<Arc<Pod>, PodError> {
        self.find(id)?
            .ok_or_else(|| PodError::NotFound(id.to_owned()))
    }

    /// Every pod's record.
    pub fn list(&self) -> Vec<PodRecord> {
        self.map().values().map(|p| p.record()).collect()
    }

    /// What `pick` takes from each record, read in place (a relist copies only what it answers).
    pub fn scan<T>(&self, mut pick: impl FnMut(&PodRecord) -> Option<T>) -> Vec<T> {
        self.map()
            .values()
            .filter_map(|p| pick(&p.record.read().unwrap_or_else(|e| e.into_inner())))
            .collect()
    }

    pub fn ids(&self) -> BTreeSet<String> {
        self.map().keys().cloned().collect()
    }

    /// Whether the conf dir holds a usable network (for Status' NetworkReady).
    pub async fn network_status(&self) -> Result<(), CniError> {
        let net = self.cni.network()?;
        self.cni.status(&net).await
    }

    fn attachment(record: &PodRecord, netns: PathBuf, pod_cidrs: Vec<String>) -> Attachment {
        Attachment {
            context: CallContext {
                container_id: record.id.clone(),
                netns,
                ifname: "eth0".into(),
                args: vec![
                    ("K8S_POD_NAMESPACE".into(), record.namespace.clone()),
                    ("K8S_POD_NAME".into(), record.name.clone()),
                    ("K8S_POD_INFRA_CONTAINER_ID".into(), record.id.clone()),
                    ("K8S_POD_UID".into(), record.uid.clone()),
                ],
            },
            port_mappings: record.port_mappings.clone(),
            pod_cidrs,
        }
    }
}
