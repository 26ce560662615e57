//! ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats: the readings of
//! `stats` in CRI's shapes.

use berth_cri::v1 as cri;
use tonic::Status;

use super::Cri;
use super::filter::{Filter, to_hash};
use crate::container::{ContainerRecord, ContainerState};
use crate::pod::{POD_INTERFACE, PodRecord, PodState};
use crate::stats::cgroup::{CgroupStats, Stall, StallLine};
use crate::stats::{ContainerSample, PodSample};

impl Cri {
    pub(super) async fn container_stats_of(
        &self,
        req: cri::ContainerStatsRequest,
    ) -> Result<cri::ContainerStatsResponse, Status> {
        let record = self.svc.containers.get(&req.container_id)?.record();
        Ok(cri::ContainerStatsResponse {
            stats: Some(self.container_stats(&record).await),
        })
    }

    /// The running containers the filter matches (the CRI asks for running ones only).
    pub(super) async fn list_container_stats_of(
        &self,
        req: cri::ListContainerStatsRequest,
    ) -> Result<cri::ListContainerStatsResponse, Status> {
        let filter = req.filter.unwrap_or_default();
        let wanted = Filter {
            id: &filter.id,
            pod_id: &filter.pod_sandbox_id,
            state: Some(ContainerState::Running),
            labels: &filter.label_selector,
        };
        let records = self.svc.containers.scan(|r| {
            wanted
                .matches(&r.id, &r.pod_id, r.state, &r.labels)
                .then(|| r.clone())
        });
        let mut stats = Vec::new();
        for record in records {
            stats.push(self.container_stats(&record).await);
        }
        Ok(cri::ListContainerStatsResponse { stats })
    }

    pub(super) async fn pod_sandbox_stats_of(
        &self,
        req: cri::PodSandboxStatsRequest,
    ) -> Result<cri::PodSandboxStatsResponse, Status> {
        if req.pod_sandbox_id.is_empty() {
            return Err(Status::invalid_argument("missing required pod_sandbox_id"));
        }
        let record = self.svc.pods.get(&req.pod_sandbox_id)?.record();
        Ok(cri::PodSandboxStatsResponse {
            stats: Some(self.pod_stats(&record).await),
        })
    }

    /// The ready pods the filter matches.
    pub(super) async fn list_pod_sandbox_stats_of(
        &self,
        req: cri::ListPodSandboxStatsRequest,
    ) -> Result<cri::ListPodSandboxStatsResponse, Status> {
        let filter = req.filter.unwrap_or_default();
        let wanted = Filter {
            id: &filter.id,
            pod_id: "",
            state: Some(PodState::Ready),
            labels: &filter.label_selector,
        };
        let records = self.svc.pods.scan(|r| {
            wanted
                .matches(&r.id, "", r.state, &r.labels)
                .then(|| r.clone())
        });
        let mut stats = Vec::new();
        for record in records {
            stats.push(self.pod_stats(&record).await);
        }
        Ok(cri::ListPodSandboxStatsResponse { stats })
    }

    async fn container_stats(&self, record: &ContainerRecord) -> cri::ContainerStats {
        let sample = self.svc.stats.container(record).await;
        self.to_container_stats(record, &sample)
    }

    async fn pod_stats(&self, record: &PodRecord) -> cri::PodSandboxStats {
        let sample = self.svc.stats.pod(record).await;
        let mut containers = Vec::new();
        for c in self.running_containers_of(&record.id) {
            containers.push(self.container_stats(&c).await);
        }
        to_pod_stats(record, &sample, containers)
    }

    pub(super) fn running_containers_of(&self, pod_id: &str) -> Vec<ContainerRecord> {
        self.svc
            .containers
            .scan(|c| (c.pod_id == pod_id && c.state == ContainerState::Running).then(|| c.clone()))
    }

    pub(super) fn to_container_stats(
        &self,
        record: &ContainerRecord,
        sample: &ContainerSample,
    ) -> cri::ContainerStats {
        let memory = sample.cgroup.memory;
        cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: record.id.clone(),
                metadata: Some(super::container::metadata(record)),
                labels: to_hash(&record.labels),
                annotations: to_hash(&record.annotations),
            }),
            cpu: cpu_usage(sample.at, &sample.cgroup, sample.nano_cores),
            memory: memory_usage(sample.at, &sample.cgroup),
            writable_layer: sample.writable_layer.map(|u| cri::FilesystemUsage {
                timestamp: u.at,
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: self.svc.stats.layers_dir().to_string_lossy().into_owned(),
                }),
                used_bytes: value(u.bytes),
                inodes_used: value(u.inodes),
            }),
            io: io_usage(sample.at, &sample.cgroup),
            swap: memory.and_then(|m| {
                Some(cri::SwapUsage {
                    timestamp: sample.at,
                    swap_usage_bytes: value(m.swap?),
                    swap_available_bytes: m.swap_available().and_then(value),
                })
            }),
        }
    }
}

fn to_pod_stats(
    record: &PodRecord,
    sample: &PodSample,
    containers: Vec<cri::ContainerStats>,
) -> cri::PodSandboxStats {
    let interfaces: Vec<cri::NetworkInterfaceUsage> = sample
        .interfaces
        .iter()
        .map(|i| cri::NetworkInterfaceUsage {
            name: i.name.clone(),
            rx_bytes: value(i.rx_bytes),
            rx_errors: value(i.rx_errors),
            tx_bytes: value(i.tx_bytes),
            tx_errors: value(i.tx_errors),
        })
        .collect();
    let default_interface = interfaces
        .iter()
        .find(|i| i.name == POD_INTERFACE)
        .or(interfaces.first())
        .cloned();
    cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: record.id.clone(),
            metadata: Some(super::pod::metadata(record)),
            labels: to_hash(&record.labels),
            annotations: to_hash(&record.annotations),
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: cpu_usage(sample.at, &sample.cgroup, sample.nano_cores),
            memory: memory_usage(sample.at, &sample.cgroup),
            network: (!interfaces.is_empty()).then_some(cri::NetworkUsage {
                timestamp: sample.at,
                default_interface,
                interfaces,
            }),
            process: sample.cgroup.pids.map(|n| cri::ProcessUsage {
                timestamp: sample.at,
                process_count: value(n),
            }),
            containers,
            io: io_usage(sample.at, &sample.cgroup),
        }),
        windows: None,
    }
}

/// CRI's wrapper of a figure (absent and zero are different things to kubelet).
fn value(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

fn cpu_usage(at: i64, cgroup: &CgroupStats, nano_cores: Option<u64>) -> Option<cri::CpuUsage> {
    cgroup.cpu.map(|c| cri::CpuUsage {
        timestamp: at,
        usage_core_nano_seconds: value(c.usage_ns),
        usage_nano_cores: nano_cores.and_then(value),
        psi: psi(cgroup.pressure.and_then(|p| p.cpu)),
    })
}

fn memory_usage(at: i64, cgroup: &CgroupStats) -> Option<cri::MemoryUsage> {
    cgroup.memory.map(|m| cri::MemoryUsage {
        timestamp: at,
        working_set_bytes: value(m.working_set),
        available_bytes: m.available().and_then(value),
        usage_bytes: value(m.usage),
        rss_bytes: value(m.rss),
        page_faults: value(m.page_faults),
        major_page_faults: value(m.major_page_faults),
        psi: psi(cgroup.pressure.and_then(|p| p.memory)),
    })
}

/// IO pressure, where the kernel accounts it for the cgroup (absent, not zero, elsewhere).
fn io_usage(at: i64, cgroup: &CgroupStats) -> Option<cri::IoUsage> {
    let io = cgroup.pressure?.io?;
    Some(cri::IoUsage {
        timestamp: at,
        psi: psi(Some(io)),
    })
}

fn psi(stall: Option<Stall>) -> Option<cri::PsiStats> {
    let data = |l: StallLine| cri::PsiData {
        total: l.total_us,
        avg10: l.avg10,
        avg60: l.avg60,
        avg300: l.avg300,
    };
    stall.map(|s| cri::PsiStats {
        full: Some(data(s.full)),
        some: Some(data(s.some)),
    })
}
