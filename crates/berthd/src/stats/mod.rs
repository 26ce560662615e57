//! Resource figures of containers and pods: cgroup readers (v1 and v2), network counters read
//! inside a pod's network namespace, writable-layer usage measured off the request path, and CPU
//! rates between samples. The CRI stats and metrics RPCs and the Prometheus endpoint all read
//! through here.

pub mod cgroup;
pub mod layer;
mod rate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_net::counters::{self, InterfaceCounters};

use tokio::sync::broadcast;

use crate::container::ContainerRecord;
use crate::events::{EventKind, Events};
use crate::pod::PodRecord;
use cgroup::CgroupStats;
use layer::{DiskUsage, LayerUsage};
use rate::CpuRates;

/// One reading of a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerSample {
    /// Nanoseconds since the epoch.
    pub at: i64,
    pub cgroup: CgroupStats,
    /// CPU rate since the previous reading, in billionths of a core.
    pub nano_cores: Option<u64>,
    pub writable_layer: Option<DiskUsage>,
}

/// One reading of a pod sandbox (its containers are read on their own).
#[derive(Debug, Clone, Default)]
pub struct PodSample {
    pub at: i64,
    pub cgroup: CgroupStats,
    pub nano_cores: Option<u64>,
    /// Every interface of the pod's network namespace but loopback; empty for a pod on the
    /// node's network.
    pub interfaces: Vec<InterfaceCounters>,
}

#[derive(Debug)]
pub struct StatsService {
    /// `<root>/containers`: each container's `upper` dir is below it.
    containers_dir: PathBuf,
    layers: Arc<LayerUsage>,
    rates: CpuRates,
}

impl StatsService {
    pub fn new(containers_dir: PathBuf) -> StatsService {
        StatsService {
            containers_dir,
            layers: Arc::new(LayerUsage::default()),
            rates: CpuRates::default(),
        }
    }

    /// The directory the writable layers live in (their filesystem's identity for kubelet).
    pub fn layers_dir(&self) -> &Path {
        &self.containers_dir
    }

    pub async fn container(&self, record: &ContainerRecord) -> ContainerSample {
        let at = crate::clock::now_nanos();
        let cgroup = if record.cgroup.is_empty() {
            CgroupStats::default()
        } else {
            cgroup::read(&record.cgroup)
        };
        let nano_cores = cgroup.cpu.and_then(|c| {
            self.rates
                .rate(&record.id, at, c.usage_ns, record.started_at)
        });
        let upper = self.containers_dir.join(&record.id).join("upper");
        ContainerSample {
            at,
            cgroup,
            nano_cores,
            writable_layer: self.layers.get(&record.id, upper).await,
        }
    }

    pub async fn pod(&self, record: &PodRecord) -> PodSample {
        let at = crate::clock::now_nanos();
        let cgroup = cgroup::read(&record.cgroup_parent);
        let nano_cores = cgroup.cpu.and_then(|c| {
            self.rates
                .rate(&record.id, at, c.usage_ns, record.created_at)
        });
        let interfaces = match record.pinned.net.clone() {
            Some(netns) => crate::blocking::run(move || counters::read(&netns))
                .await
                .ok()
                .and_then(|r| {
                    r.map_err(|e| tracing::debug!(pod = %record.id, "network counters: {e}"))
                        .ok()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        PodSample {
            at,
            cgroup,
            nano_cores,
            interfaces,
        }
    }

    /// Keeps what it holds of each pod and container (CPU samples, layer figures) only while
    /// they exist: a task forgets each one as it is deleted.
    pub fn follow(self: &Arc<Self>, events: &Events) {
        let this = Arc::downgrade(self);
        let mut events = events.subscribe();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) if e.kind == EventKind::Deleted => match this.upgrade() {
                        Some(stats) => {
                            stats.rates.forget(&e.id);
                            stats.layers.forget(&e.id);
                        }
                        None => return,
                    },
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!("stats upkeep missed {n} events");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}
