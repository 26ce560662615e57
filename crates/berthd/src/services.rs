//! The daemon's shared state: what every RPC handler reaches through one `Arc<Services>`, wired
//! once at start; start-up recovery.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_net::cni::Cni;

use crate::config::{CgroupDriver, Config};
use crate::container::{ContainerError, ContainerService, ContainerState, Settings};
use crate::events::Events;
use crate::health::Health;
use crate::helpers::helper_binary;
use crate::image::{ImageError, ImageService, SnapshotUsers};
use crate::oci::OciRuntime;
use crate::paths::Paths;
use crate::pod::{PodError, PodService, PodSettings, PodState};
use crate::sandbox::SandboxService;
use crate::stats::StatsService;
use crate::store::Store;
use crate::telemetry::{NodeCounts, Telemetry};

#[derive(Debug)]
pub struct Services {
    pub config: Config,
    pub paths: Paths,
    /// The OCI runtime of each runtime handler.
    pub runtimes: BTreeMap<String, OciRuntime>,
    pub health: Health,
    pub images: Arc<ImageService>,
    pub pods: Arc<PodService>,
    pub containers: Arc<ContainerService>,
    /// Pod-wide flows: a pod's containers, then the pod.
    pub sandboxes: SandboxService,
    /// Lifecycle events of pods and containers.
    pub events: Events,
    pub stats: Arc<StatsService>,
    pub telemetry: Telemetry,
    /// The exec/attach/port-forward server, started once the services exist.
    streaming: std::sync::OnceLock<berth_stream::StreamServer>,
    /// False while start-up recovery runs; RPCs then answer Unavailable.
    ready: AtomicBool,
}

impl Services {
    pub fn new(config: Config, paths: Paths, store: Store) -> Result<Services, ImageError> {
        let runtimes: BTreeMap<String, OciRuntime> = OciRuntime::from_config(&config, &paths)
            .into_iter()
            .map(|r| (r.handler.clone(), r))
            .collect();
        let store = Arc::new(store);
        let images = Arc::new(ImageService::open(&config, &paths, store.clone())?);
        let bin_dirs: Vec<_> = config
            .cni
            .bin_dirs
            .iter()
            .map(|d| d.to_path_buf())
            .collect();
        let cni = Arc::new(Cni::new(&config.cni.conf_dir, &bin_dirs));
        let events = Events::default();
        let systemd_cgroup = config.cgroup_driver == CgroupDriver::Systemd;
        let pod_cgroups = if systemd_cgroup {
            crate::pod::cgroup::Driver::Systemd(Arc::default())
        } else {
            crate::pod::cgroup::Driver::Cgroupfs
        };
        let pods = Arc::new(PodService::new(
            store.clone(),
            cni,
            PodSettings {
                paths: paths.clone(),
                infra_binary: helper_binary("berth-infra"),
                handlers: config.runtimes.keys().cloned().collect(),
                default_handler: config.default_runtime.clone(),
                cgroups: pod_cgroups,
                own_cgroups: config.pod_cgroup_parent.clone(),
            },
            events.clone(),
        ));
        let containers = Arc::new(ContainerService::new(
            store,
            images.clone(),
            pods.clone(),
            runtimes.clone(),
            Settings {
                paths: paths.clone(),
                monitor_binary: helper_binary("berth-monitor"),
                exec_binary: helper_binary("berth-exec"),
                infra_binary: helper_binary("berth-infra"),
                systemd_cgroup,
            },
            events.clone(),
        ));
        let users: Arc<dyn SnapshotUsers> = containers.clone();
        images.set_snapshot_users(Arc::downgrade(&users));
        Ok(Services {
            sandboxes: SandboxService::new(pods.clone(), containers.clone()),
            stats: Arc::new(StatsService::new(paths.containers())),
            config,
            paths,
            runtimes,
            health: Health::default(),
            images,
            pods,
            containers,
            events,
            telemetry: Telemetry::default(),
            streaming: std::sync::OnceLock::new(),
            ready: AtomicBool::new(false),
        })
    }

    /// Start-up recovery: pods, containers, then the services' own upkeep begins (the stats
    /// kept of what is deleted, disk space nothing owns any more).
    pub async fn recover(&self) -> Result<(), RecoverError> {
        self.pods.recover().await?;
        self.containers.recover().await?;
        self.stats.follow(&self.events);
        self.images.start_reclaimer();
        Ok(())
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
            limits: berth_stream::server::ConnectionLimits {
                max_connections: s.max_connections,
                serve_timeout: s.request_timeout.get(),
            },
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
        for state in self.pods.scan(|p| Some(p.state)) {
            let state = match state {
                PodState::Ready => "ready",
                PodState::NotReady => "notready",
            };
            *counts.pods_by_state.entry(state).or_default() += 1;
        }
        for state in self.containers.scan(|c| Some(c.state)) {
            let name = match state {
                ContainerState::Created => "created",
                ContainerState::Running => "running",
                ContainerState::Exited => "exited",
                ContainerState::Unknown => "unknown",
            };
            *counts.containers_by_state.entry(name).or_default() += 1;
            // A monitor lives exactly as long as its container is created or running.
            if matches!(state, ContainerState::Created | ContainerState::Running) {
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
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("recovering pods: {0}")]
    Pods(#[from] PodError),
    #[error("recovering containers: {0}")]
    Containers(#[from] ContainerError),
}
