//! Containers: from CreateContainer to RemoveContainer, one file per verb. This one holds the
//! service, its errors, its lookups and the watch on each container's monitor, through which
//! exits are noticed as they happen.

mod create;
mod exec;
mod record;
mod recover;
mod remove;
mod start;
mod stop;
mod update;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use berth_image::Digest;
use tokio::sync::watch;

pub use exec::{ExecOutput, ExecProcess};
pub use record::{ContainerRecord, ContainerState, exit_reason};

use crate::detach::Unclaimed;
use crate::events::{EventKind, Events};
use crate::ids::{self, Lookup};
use crate::image::ImageService;
use crate::oci::{OciError, OciRuntime};
use crate::pod::{PodError, PodService};
use crate::spec::SpecError;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{0}")]
    Invalid(String),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("container ID prefix `{prefix}` is ambiguous: {matches} containers match")]
    Ambiguous { prefix: String, matches: usize },
    #[error("container name {name} is reserved by container {owner}")]
    NameReserved { name: String, owner: String },
    #[error("{0}")]
    Precondition(String),
    #[error("image {0} not found: pull it first")]
    ImageNotFound(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Runtime(#[from] OciError),
    #[error("creating the container: {0}")]
    Create(String),
    #[error("exec: {0}")]
    Exec(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error("{0}")]
    Image(#[from] crate::image::ImageError),
    #[error("the container task failed")]
    Task,
}

impl From<StoreError> for ContainerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameReserved { name, owner } => {
                ContainerError::NameReserved { name, owner }
            }
            other => ContainerError::Store(other),
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}

/// A container in memory: its record, the lock that orders operations on it, and a flag that
/// turns true when it has exited.
#[derive(Debug)]
pub struct Container {
    record: RwLock<ContainerRecord>,
    /// Orders record changes (and their events) without making readers wait for a commit.
    updating: tokio::sync::Mutex<()>,
    op: tokio::sync::Mutex<()>,
    exited: watch::Sender<bool>,
}

impl Container {
    fn new(record: ContainerRecord) -> Arc<Container> {
        let exited = !record.state.may_run();
        Arc::new(Container {
            record: RwLock::new(record),
            updating: tokio::sync::Mutex::new(()),
            op: tokio::sync::Mutex::new(()),
            exited: watch::Sender::new(exited),
        })
    }

    pub fn record(&self) -> ContainerRecord {
        self.record
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads, changes and persists the record as one step (no other change can slip between),
    /// and announces a change of state, in the order of the changes. Readers see the old record
    /// until the new one is committed; they never wait for the disk.
    async fn update(
        &self,
        store: &Arc<Store>,
        events: &Events,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord, ContainerError> {
        let _updating = self.updating.lock().await;
        let before = self.record();
        let mut next = before.clone();
        change(&mut next);
        let written = next.clone();
        store.off_worker(move |s| s.put(&written)).await?;
        *self.record.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        let event = match (before.state, next.state) {
            (before, after) if before == after => None,
            (_, ContainerState::Running) => Some(EventKind::Started),
            (_, ContainerState::Exited | ContainerState::Unknown) => Some(EventKind::Stopped),
            (_, ContainerState::Created) => None,
        };
        if let Some(kind) = event {
            events.emit(kind, &next.id, &next.pod_id);
        }
        Ok(next)
    }

    /// Waits until the container has exited; false if `timeout` passed first.
    async fn wait_exited(&self, timeout: std::time::Duration) -> bool {
        let mut rx = self.exited.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|exited| *exited))
            .await
            .is_ok()
    }
}

#[derive(Debug)]
pub struct ContainerService {
    store: Arc<Store>,
    images: Arc<ImageService>,
    pods: Arc<PodService>,
    runtimes: BTreeMap<String, OciRuntime>,
    /// `<root>/containers`: rootfs, upper, work and bundle of each container.
    root_dir: PathBuf,
    /// `<state_dir>/containers`: monitor socket, exit record, pid file.
    state_dir: PathBuf,
    monitor_binary: PathBuf,
    oom_floor: Option<i64>,
    cgroup_v2: bool,
    systemd_cgroup: bool,
    events: Events,
    containers: RwLock<BTreeMap<String, Arc<Container>>>,
    unclaimed: Arc<Unclaimed>,
}

/// Where the service keeps things and how the node is, from the daemon's config.
#[derive(Debug)]
pub struct Settings {
    pub root_dir: PathBuf,
    pub state_dir: PathBuf,
    pub monitor_binary: PathBuf,
    pub systemd_cgroup: bool,
}

impl ContainerService {
    pub fn new(
        store: Arc<Store>,
        images: Arc<ImageService>,
        pods: Arc<PodService>,
        runtimes: BTreeMap<String, OciRuntime>,
        settings: Settings,
        events: Events,
    ) -> ContainerService {
        ContainerService {
            store,
            images,
            pods,
            runtimes,
            root_dir: settings.root_dir,
            state_dir: settings.state_dir,
            monitor_binary: settings.monitor_binary,
            oom_floor: crate::cgroups::oom_score_floor(),
            cgroup_v2: crate::cgroups::is_v2(),
            systemd_cgroup: settings.systemd_cgroup,
            events,
            containers: RwLock::new(BTreeMap::new()),
            unclaimed: Arc::new(Unclaimed::default()),
        }
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Container>>> {
        self.containers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Container>>> {
        self.containers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The container with this ID or unique ID prefix.
    pub fn find(&self, id: &str) -> Result<Option<Arc<Container>>, ContainerError> {
        match ids::lookup(&self.map(), id) {
            Lookup::Found(c) => Ok(Some(c.clone())),
            Lookup::NotFound => Ok(None),
            Lookup::Ambiguous(matches) => Err(ContainerError::Ambiguous {
                prefix: id.to_owned(),
                matches,
            }),
        }
    }

    /// Like [`ContainerService::find`], but an unknown container is NotFound.
    pub fn get(&self, id: &str) -> Result<Arc<Container>, ContainerError> {
        self.find(id)?
            .ok_or_else(|| ContainerError::NotFound(id.to_owned()))
    }

    pub fn list(&self) -> Vec<ContainerRecord> {
        self.map().values().map(|c| c.record()).collect()
    }

    /// What `pick` takes from each record, read in place (a relist copies only what it answers).
    pub fn scan<T>(&self, mut pick: impl FnMut(&ContainerRecord) -> Option<T>) -> Vec<T> {
        self.map()
            .values()
            .filter_map(|c| pick(&c.record.read().unwrap_or_else(|e| e.into_inner())))
            .collect()
    }

    pub fn ids(&self) -> HashSet<String> {
        self.map().keys().cloned().collect()
    }

    /// The IDs of a pod's containers.
    pub fn of_pod(&self, pod_id: &str) -> Vec<String> {
        self.map()
            .values()
            .map(|c| c.record())
            .filter(|r| r.pod_id == pod_id)
            .map(|r| r.id)
            .collect()
    }

    /// Snapshots containers still stand on (image GC keeps them).
    pub fn snapshots_in_use(&self) -> HashSet<Digest> {
        self.map()
            .values()
            .flat_map(|c| c.record().chain_ids)
            .collect()
    }

    fn runtime(&self, handler: &str) -> Result<&OciRuntime, ContainerError> {
        self.runtimes
            .get(handler)
            .ok_or_else(|| ContainerError::Invalid(format!("unknown runtime handler `{handler}`")))
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root_dir.join(id)
    }

    /// A container's state dir: its monitor socket, exit record, pid files.
    pub fn state_dir_of(&self, id: &str) -> PathBuf {
        self.state_dir.join(id)
    }

    /// Watches the container's monitor; when it exits, the exit record becomes the container's
    /// final state.
    fn watch_exit(self: &Arc<Self>, container: Arc<Container>) {
        let Some(monitor_pid) = container.record().monitor_pid else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            crate::monitor::wait_exit(monitor_pid).await;
            this.on_monitor_exit(&container).await;
        });
    }

    async fn on_monitor_exit(&self, container: &Container) {
        let record = container.record();
        let state_dir = self.state_dir_of(&record.id);
        let exit = crate::monitor::exit_record(&state_dir)
            .unwrap_or_else(|| Err("no exit record".to_owned()));
        let updated = match exit {
            Ok(exit) => {
                container
                    .update(&self.store, &self.events, |r| {
                        r.state = ContainerState::Exited;
                        r.exit_code = exit.exit_code;
                        r.finished_at = exit.finished_at;
                        r.reason = exit_reason(exit.exit_code, exit.oom_killed).to_owned();
                        r.message = if exit.oom_killed {
                            "the container ran out of memory and was killed".into()
                        } else {
                            String::new()
                        };
                    })
                    .await
            }
            Err(e) => {
                let message = format!("its monitor ended without recording the exit ({e})");
                container
                    .update(&self.store, &self.events, |r| {
                        r.state = ContainerState::Unknown;
                        r.reason = "Unknown".into();
                        r.message = message;
                    })
                    .await
            }
        };
        match updated {
            Ok(r) => {
                tracing::info!(container = %r.id, exit_code = r.exit_code, reason = %r.reason, "container exited")
            }
            Err(e) => tracing::error!(container = %record.id, "recording the exit: {e}"),
        }
        container.exited.send_replace(true);
    }
}
