//! Containers: from CreateContainer to RemoveContainer, one file per verb. This one holds the
//! service, its errors, its lookups and the watch on each container's monitor, through which
//! exits are noticed as they happen.

mod checkpoint;
mod create;
mod exec;
mod id_view;
mod record;
mod recover;
mod remove;
mod spec;
mod start;
mod stop;
mod update;
mod volumes;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_image::Digest;
use tokio::sync::watch;

pub use exec::{ExecOutput, ExecProcess};
pub use record::{ContainerRecord, ContainerState, exit_reason};
pub use spec::{
    AppArmorProfile, CapabilityRequest, ContainerSpec, DeviceRequest, ImageVolume, MountRequest,
    SeccompProfile, SecuritySpec, UserNamespaceRequest, UserRequest,
};

use crate::blocking::TaskFailed;
use crate::events::{EventKind, Events};
use crate::exec::{ExecError, ExecHelper};
use crate::image::{ImageError, ImageService, SnapshotUsers};
use crate::monitor::MonitorError;
use crate::objects::{Ambiguous, Object, Objects};
use crate::oci::{OciError, OciRuntime, RuntimeFeatures};
use crate::paths::Paths;
use crate::pod::{PodError, PodService};
use crate::spec::SpecError;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{0}")]
    Invalid(String),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("container {0}")]
    Ambiguous(#[from] Ambiguous),
    #[error("container name {name} is reserved by container {owner}")]
    NameReserved { name: String, owner: String },
    #[error("container {id} is {state:?}, not {wanted}")]
    WrongState {
        id: String,
        state: ContainerState,
        wanted: &'static str,
    },
    #[error("pod sandbox {0} is not ready")]
    PodNotReady(String),
    #[error("image {0} not found: pull it first")]
    ImageNotFound(String),
    #[error("unknown runtime handler `{0}`")]
    UnknownHandler(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Runtime(#[from] OciError),
    #[error("the new limits do not fit the container: {0}")]
    LimitsRefused(OciError),
    #[error("creating the container: {0}")]
    Create(MonitorError),
    #[error("exec: {0}")]
    Exec(ExecError),
    #[error("reopening the log: {0}")]
    ReopenLog(MonitorError),
    #[error("command {command:?} timed out after {after:?} and was killed")]
    ExecTimedOut {
        command: Vec<String>,
        after: Duration,
    },
    #[error("container {id} did not exit within {after:?} of SIGKILL")]
    KillTimedOut { id: String, after: Duration },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
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

/// A container in memory: its record, and flags that turn true when it has exited.
pub type Container = Object<ContainerRecord, ExitFlags>;

#[derive(Debug)]
pub struct ExitFlags {
    /// Its process is dead: its monitor has reaped it and ended.
    dead: watch::Sender<bool>,
    /// Its exit is in its record (the event announced).
    recorded: watch::Sender<bool>,
}

impl Container {
    /// Waits until the container's exit is recorded; false if `timeout` passed first.
    async fn wait_exited(&self, timeout: Duration) -> bool {
        wait_flag(&self.extra.recorded, timeout).await
    }

    /// Waits until the container's process is dead, recorded or not; false if `timeout`
    /// passed first.
    async fn wait_dead(&self, timeout: Duration) -> bool {
        wait_flag(&self.extra.dead, timeout).await
    }
}

async fn wait_flag(flag: &watch::Sender<bool>, timeout: Duration) -> bool {
    let mut rx = flag.subscribe();
    tokio::time::timeout(timeout, rx.wait_for(|set| *set))
        .await
        .is_ok()
}

fn new_container(record: ContainerRecord) -> Arc<Container> {
    let exited = !record.state.may_run();
    Object::new(
        record,
        ExitFlags {
            dead: watch::Sender::new(exited),
            recorded: watch::Sender::new(exited),
        },
    )
}

#[derive(Debug)]
pub struct ContainerService {
    store: Arc<Store>,
    images: Arc<ImageService>,
    pods: Arc<PodService>,
    runtimes: BTreeMap<String, OciRuntime>,
    paths: Paths,
    monitor_binary: PathBuf,
    /// berth-exec, sealed in memory.
    exec_helper: ExecHelper,
    /// berth-infra, which holds the throwaway user namespace of the idmap probe.
    infra_binary: PathBuf,
    /// Whether the filesystem of the snapshots can be idmapped (asked once).
    idmap: tokio::sync::OnceCell<bool>,
    /// berth-env-exec has been written out (the first container that needs it does it).
    env_exec_installed: tokio::sync::OnceCell<()>,
    oom_floor: Option<i64>,
    cgroups: crate::cgroups::NodeCgroups,
    /// The node's AppArmor, if it has one.
    apparmor: crate::apparmor::AppArmor,
    systemd_cgroup: bool,
    events: Events,
    containers: Objects<Container>,
}

/// Where the service keeps things and how the node is, from the daemon's config.
#[derive(Debug)]
pub struct Settings {
    pub paths: Paths,
    pub monitor_binary: PathBuf,
    pub exec_binary: PathBuf,
    pub infra_binary: PathBuf,
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
        let apparmor = crate::apparmor::AppArmor::detect(&settings.paths.apparmor_profiles());
        ContainerService {
            store,
            images,
            pods,
            runtimes,
            paths: settings.paths,
            monitor_binary: settings.monitor_binary,
            exec_helper: ExecHelper::load(&settings.exec_binary),
            infra_binary: settings.infra_binary,
            idmap: tokio::sync::OnceCell::new(),
            env_exec_installed: tokio::sync::OnceCell::new(),
            oom_floor: crate::cgroups::oom_score_floor(),
            cgroups: crate::cgroups::NodeCgroups::detect(),
            apparmor,
            systemd_cgroup: settings.systemd_cgroup,
            events,
            containers: Objects::default(),
        }
    }

    /// The container with this ID or unique ID prefix; an unknown one is NotFound.
    pub fn get(&self, id: &str) -> Result<Arc<Container>, ContainerError> {
        self.containers.get(id, ContainerError::NotFound)
    }

    /// Like [`Self::get`], but an unknown container is None.
    pub fn find(&self, id: &str) -> Result<Option<Arc<Container>>, ContainerError> {
        Ok(self.containers.find(id)?)
    }

    /// What `pick` takes from each record, read in place (a relist copies only what it answers).
    pub fn scan<T>(&self, pick: impl FnMut(&ContainerRecord) -> Option<T>) -> Vec<T> {
        self.containers.scan_records(pick)
    }

    /// The IDs of a pod's containers.
    pub fn of_pod(&self, pod_id: &str) -> Vec<String> {
        self.scan(|r| (r.pod_id == pod_id).then(|| r.id.clone()))
    }

    /// What a handler can give a container: its runtime's features, as far as berth can use
    /// them on this node (user namespaces need idmapped mounts of the snapshots, which berth
    /// makes itself).
    pub async fn handler_features(&self, runtime: &OciRuntime) -> RuntimeFeatures {
        let features = runtime.features().await;
        RuntimeFeatures {
            recursive_read_only: features.recursive_read_only,
            user_namespaces: features.user_namespaces && self.idmap_supported().await,
        }
    }

    /// [`Self::handler_features`] of a handler by name.
    pub async fn features_of(&self, handler: &str) -> Result<RuntimeFeatures, ContainerError> {
        Ok(self.handler_features(self.runtime(handler)?).await)
    }

    async fn idmap_supported(&self) -> bool {
        *self
            .idmap
            .get_or_init(|| async {
                let (infra, snapshots) = (self.infra_binary.clone(), self.paths.snapshots());
                crate::blocking::run(move || {
                    let _ = std::fs::create_dir_all(&snapshots);
                    crate::userns::idmap_supported(&infra, &snapshots)
                })
                .await
                .unwrap_or(false)
            })
            .await
    }

    fn runtime(&self, handler: &str) -> Result<&OciRuntime, ContainerError> {
        self.runtimes
            .get(handler)
            .ok_or_else(|| ContainerError::UnknownHandler(handler.to_owned()))
    }

    /// A container's state dir: its monitor socket, exit record, pid files.
    pub fn state_dir_of(&self, id: &str) -> PathBuf {
        self.paths.container_state(id)
    }

    /// Changes a container's record and announces a change of state, in the order of changes.
    async fn update(
        &self,
        container: &Container,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord, ContainerError> {
        let (before, after) = container.update(&self.store, change).await?;
        let event = match (before.state, after.state) {
            (before, after) if before == after => None,
            (_, ContainerState::Running) => Some(EventKind::Started),
            (_, ContainerState::Exited | ContainerState::Unknown) => Some(EventKind::Stopped),
            (_, ContainerState::Created) => None,
        };
        if let Some(kind) = event {
            self.events.emit(kind, &after.id, &after.pod_id);
        }
        Ok(after)
    }

    /// Watches the container's monitor; when it exits, the exit record becomes the container's
    /// final state.
    fn watch_exit(self: &Arc<Self>, container: Arc<Container>) {
        let Some(monitor_pid) = container.with(|r| r.monitor_pid) else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            crate::monitor::wait_exit(monitor_pid).await;
            container.extra.dead.send_replace(true);
            this.on_monitor_exit(&container).await;
        });
    }

    async fn on_monitor_exit(&self, container: &Container) {
        let id = container.with(|r| r.id.clone());
        let exit = crate::monitor::exit_record(&self.state_dir_of(&id));
        let updated = match exit {
            Some(Ok(exit)) => {
                self.update(container, |r| {
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
            lost => {
                let why = match lost {
                    Some(Err(e)) => e.to_string(),
                    _ => "no exit record".to_owned(),
                };
                let message = format!("its monitor ended without recording the exit ({why})");
                self.update(container, |r| {
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
            Err(e) => tracing::error!(container = %id, "recording the exit: {e}"),
        }
        container.extra.dead.send_replace(true);
        container.extra.recorded.send_replace(true);
    }
}

/// Image GC keeps the snapshots containers stand on.
impl SnapshotUsers for ContainerService {
    fn snapshots_in_use(&self) -> HashSet<Digest> {
        self.containers
            .scan(|c| {
                Some(c.with(|r| {
                    let mut ids = r.chain_ids.clone();
                    ids.extend(r.volume_chain_ids.iter().cloned());
                    ids
                }))
            })
            .into_iter()
            .flatten()
            .collect()
    }
}
