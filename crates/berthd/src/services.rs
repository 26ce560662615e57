//! The daemon's shared state: what every RPC handler reaches through one `Arc<Services>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_net::cni::Cni;

use crate::config::{CgroupDriver, Config};
use crate::container::{ContainerError, ContainerService, ContainerState, Settings};
use crate::events::Events;
use crate::health::Health;
use crate::helpers::helper_binary;
use crate::image::{ImageError, ImageService};
use crate::oci::OciRuntime;
use crate::paths::Paths;
use crate::pod::{PodError, PodService, PodSettings, PodState};
use crate::stats::StatsService;
use crate::store::{Store, StoreError};
use crate::telemetry::{NodeCounts, Telemetry};

/// The store key of the pod CIDR kubelet sends with UpdateRuntimeConfig.
const POD_CIDR_SETTING: &str = "pod_cidr";

#[derive(Debug)]
pub struct Services {
    pub config: Config,
    pub paths: Paths,
    pub store: Arc<Store>,
    pub runtimes: BTreeMap<String, OciRuntime>,
    pub health: Health,
    pub images: Arc<ImageService>,
    pub cni: Arc<Cni>,
    pub pods: Arc<PodService>,
    pub containers: Arc<ContainerService>,
    /// Lifecycle events of pods and containers.
    pub events: Events,
    pub stats: StatsService,
    pub telemetry: Telemetry,
    /// The exec/attach/port-forward server, started once the services exist.
    streaming: std::sync::OnceLock<berth_stream::StreamServer>,
    /// False while start-up recovery runs; RPCs then answer Unavailable.
    ready: AtomicBool,
}

impl Services {
    pub fn new(config: Config, paths: Paths, store: Store) -> Result<Services, ImageError> {
        let runtimes = runtimes_by_handler(&config, &paths);
        let store = Arc::new(store);
        let images = Arc::new(ImageService::open(&config, store.clone())?);
        let bin_dirs: Vec<_> = config
            .cni
            .bin_dirs
            .iter()
            .map(|d| d.to_path_buf())
            .collect();
        let cni = Arc::new(Cni::new(&config.cni.conf_dir, &bin_dirs));
        let events = Events::default();
        let containers_dir = paths.root.join("containers");
        let systemd_cgroup = config.cgroup_driver == CgroupDriver::Systemd;
        let pods = Arc::new(PodService::new(
            store.clone(),
            cni.clone(),
            PodSettings {
                pods_dir: paths.state_dir.join("pods"),
                spare_namespaces_dir: paths.state_dir.join("spare-namespaces"),
                infra_binary: helper_binary("berth-infra"),
                handlers: config.runtimes.keys().cloned().collect(),
                default_handler: config.default_runtime.clone(),
                systemd_cgroup,
            },
            events.clone(),
        ));
        let containers = Arc::new(ContainerService::new(
            store.clone(),
            images.clone(),
            pods.clone(),
            runtimes_by_handler(&config, &paths),
            Settings {
                root_dir: containers_dir.clone(),
                state_dir: paths.state_dir.join("containers"),
                monitor_binary: helper_binary("berth-monitor"),
                systemd_cgroup,
            },
            events.clone(),
        ));
        Ok(Services {
            config,
            paths,
            store,
            runtimes,
            health: Health::default(),
            images,
            cni,
            pods,
            containers,
            events,
            stats: StatsService::new(containers_dir),
            telemetry: Telemetry::default(),
            streaming: std::sync::OnceLock::new(),
            ready: AtomicBool::new(false),
        })
    }

    /// Start-up recovery: pods, containers, then disk space nothing owns any more.
    pub async fn recover(&self) -> Result<(), RecoverError> {
        self.pods.recover().await?;
        self.containers.recover().await?;
        self.collect_image_garbage().await;
        Ok(())
    }

    /// The pod CIDRs kubelet gave (one, or two for dual stack).
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

    /// Reclaims the disk space of snapshots and blobs no image and no container uses any more.
    pub async fn collect_image_garbage(&self) {
        if let Err(e) = self
            .images
            .collect_garbage(self.containers.snapshots_in_use())
            .await
        {
            tracing::warn!("reclaiming image space: {e}");
        }
    }

    pub fn default_runtime(&self) -> Option<&OciRuntime> {
        self.runtimes.get(&self.config.default_runtime)
    }

    /// Starts the streaming server on the configured address.
    pub async fn start_streaming(&self) -> Result<std::net::SocketAddr, berth_stream::ServerError> {
        let s = &self.config.streaming;
        let config = berth_stream::ServerConfig {
            address: s.address,
            tls: s
                .tls_cert
                .as_ref()
                .zip(s.tls_key.as_ref())
                .map(|(c, k)| (c.to_path_buf(), k.to_path_buf())),
            idle_timeout: s.idle_timeout.get(),
            session: berth_stream::spdy::session::SessionConfig::default(),
        };
        let backend = Arc::new(crate::streaming::RuntimeBackend {
            containers: self.containers.clone(),
            pods: self.pods.clone(),
        });
        let server = berth_stream::StreamServer::start(config, backend).await?;
        let address = server.address();
        let _ = self.streaming.set(server);
        Ok(address)
    }

    /// The Prometheus exposition of this moment.
    pub fn scrape(&self) -> String {
        let mut counts = NodeCounts::default();
        for pod in self.pods.list() {
            let state = match pod.state {
                PodState::Ready => "ready",
                PodState::NotReady => "notready",
            };
            *counts.pods_by_state.entry(state).or_default() += 1;
        }
        for container in self.containers.list() {
            let state = match container.state {
                ContainerState::Created => "created",
                ContainerState::Running => "running",
                ContainerState::Exited => "exited",
                ContainerState::Unknown => "unknown",
            };
            *counts.containers_by_state.entry(state).or_default() += 1;
            // A monitor lives exactly as long as its container is created or running.
            if matches!(
                container.state,
                ContainerState::Created | ContainerState::Running
            ) {
                counts.monitors += 1;
            }
        }
        self.telemetry.render(&counts)
    }

    pub fn streaming(&self) -> Option<&berth_stream::StreamServer> {
        self.streaming.get()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn pod_cidr(&self) -> Result<Option<String>, StoreError> {
        self.store.setting(POD_CIDR_SETTING)
    }

    pub fn set_pod_cidr(&self, cidr: &str) -> Result<(), StoreError> {
        self.store.set_setting(POD_CIDR_SETTING, cidr)
    }
}

fn runtimes_by_handler(config: &Config, paths: &Paths) -> BTreeMap<String, OciRuntime> {
    OciRuntime::from_config(config, paths)
        .into_iter()
        .map(|r| (r.handler.clone(), r))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("recovering pods: {0}")]
    Pods(#[from] PodError),
    #[error("recovering containers: {0}")]
    Containers(#[from] ContainerError),
}
