//! ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor's container metrics, named and
//! labelled as kubelet's `/metrics/cadvisor` has them, from the same readings as the stats RPCs.
//! CRI carries whole numbers only, so times are whole seconds (as CRI-O reports them).

use berth_cri::v1 as cri;
use tonic::Status;

use super::Cri;
use crate::container::ContainerRecord;
use crate::pod::{PodRecord, PodState};
use crate::stats::cgroup::{CgroupStats, Stall};

/// Labels of every metric: the runtime's, then Kubernetes' (kubelet adds nothing of its own).
const BASE_LABELS: [&str; 5] = ["id", "image", "namespace", "pod", "container"];
const COUNTER: cri::MetricType = cri::MetricType::Counter;
const GAUGE: cri::MetricType = cri::MetricType::Gauge;

/// One metric family: name, help, the label after the base ones (if any), type.
struct Family(
    &'static str,
    &'static str,
    Option<&'static str>,
    cri::MetricType,
);

const FAMILIES: &[Family] = &[
    Family(
        "container_cpu_usage_seconds_total",
        "Cumulative CPU time consumed in seconds.",
        Some("cpu"),
        COUNTER,
    ),
    Family(
        "container_cpu_user_seconds_total",
        "Cumulative user CPU time consumed in seconds.",
        None,
        COUNTER,
    ),
    Family(
        "container_cpu_system_seconds_total",
        "Cumulative system CPU time consumed in seconds.",
        None,
        COUNTER,
    ),
    Family(
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        None,
        COUNTER,
    ),
    Family(
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        None,
        COUNTER,
    ),
    Family(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        None,
        COUNTER,
    ),
    Family(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        None,
        GAUGE,
    ),
    Family(
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        None,
        GAUGE,
    ),
    Family("container_memory_rss", "Size of RSS in bytes.", None, GAUGE),
    Family(
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        None,
        GAUGE,
    ),
    Family(
        "container_memory_mapped_file",
        "Size of memory mapped files in bytes.",
        None,
        GAUGE,
    ),
    Family(
        "container_memory_swap",
        "Container swap usage in bytes.",
        None,
        GAUGE,
    ),
    Family(
        "container_memory_failcnt",
        "Number of memory usage hits limits.",
        None,
        COUNTER,
    ),
    Family(
        "container_memory_max_usage_bytes",
        "Maximum memory usage recorded in bytes.",
        None,
        GAUGE,
    ),
    Family(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container in bytes.",
        None,
        GAUGE,
    ),
    Family(
        "container_processes",
        "Number of processes running inside the container.",
        None,
        GAUGE,
    ),
    Family(
        "container_fs_usage_bytes",
        "Number of bytes consumed by the container's writable layer.",
        None,
        GAUGE,
    ),
    Family(
        "container_fs_inodes_used",
        "Number of inodes used by the container's writable layer.",
        None,
        GAUGE,
    ),
    Family(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        None,
        GAUGE,
    ),
    Family(
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received.",
        Some("interface"),
        COUNTER,
    ),
    Family(
        "container_network_receive_packets_total",
        "Cumulative count of packets received.",
        Some("interface"),
        COUNTER,
    ),
    Family(
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving.",
        Some("interface"),
        COUNTER,
    ),
    Family(
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving.",
        Some("interface"),
        COUNTER,
    ),
    Family(
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted.",
        Some("interface"),
        COUNTER,
    ),
    Family(
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted.",
        Some("interface"),
        COUNTER,
    ),
    Family(
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting.",
        Some("interface"),
        COUNTER,
    ),
    Family(
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting.",
        Some("interface"),
        COUNTER,
    ),
    Family(
        "container_pressure_cpu_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to CPU congestion.",
        None,
        COUNTER,
    ),
    Family(
        "container_pressure_cpu_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to CPU congestion.",
        None,
        COUNTER,
    ),
    Family(
        "container_pressure_memory_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to memory congestion.",
        None,
        COUNTER,
    ),
    Family(
        "container_pressure_memory_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to memory congestion.",
        None,
        COUNTER,
    ),
    Family(
        "container_pressure_io_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to IO congestion.",
        None,
        COUNTER,
    ),
    Family(
        "container_pressure_io_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to IO congestion.",
        None,
        COUNTER,
    ),
];

const NS_PER_SECOND: u64 = 1_000_000_000;

impl Cri {
    pub(super) async fn list_metric_descriptors_of(
        &self,
        _req: cri::ListMetricDescriptorsRequest,
    ) -> Result<cri::ListMetricDescriptorsResponse, Status> {
        let descriptors = FAMILIES
            .iter()
            .map(|Family(name, help, extra, _)| cri::MetricDescriptor {
                name: (*name).to_owned(),
                help: (*help).to_owned(),
                label_keys: BASE_LABELS
                    .iter()
                    .chain(extra)
                    .map(|l| (*l).to_owned())
                    .collect(),
            })
            .collect();
        Ok(cri::ListMetricDescriptorsResponse { descriptors })
    }

    /// Every ready pod: its own figures (container label `POD`, with its network), then each
    /// running container's.
    pub(super) async fn list_pod_sandbox_metrics_of(
        &self,
        _req: cri::ListPodSandboxMetricsRequest,
    ) -> Result<cri::ListPodSandboxMetricsResponse, Status> {
        let mut pod_metrics = Vec::new();
        let ready = self
            .svc
            .pods
            .scan(|p| (p.state == PodState::Ready).then(|| p.clone()));
        for pod in ready {
            let sample = self.svc.stats.pod(&pod).await;
            let mut metrics = Metrics::new(
                sample.at,
                [
                    pod.id.clone(),
                    String::new(),
                    pod.namespace.clone(),
                    pod.name.clone(),
                    "POD".into(),
                ],
            );
            metrics.cgroup(&sample.cgroup);
            for i in &sample.interfaces {
                for (name, v) in [
                    ("container_network_receive_bytes_total", i.rx_bytes),
                    ("container_network_receive_packets_total", i.rx_packets),
                    (
                        "container_network_receive_packets_dropped_total",
                        i.rx_dropped,
                    ),
                    ("container_network_receive_errors_total", i.rx_errors),
                    ("container_network_transmit_bytes_total", i.tx_bytes),
                    ("container_network_transmit_packets_total", i.tx_packets),
                    (
                        "container_network_transmit_packets_dropped_total",
                        i.tx_dropped,
                    ),
                    ("container_network_transmit_errors_total", i.tx_errors),
                ] {
                    metrics.put_labelled(name, &i.name, v);
                }
            }
            let mut container_metrics = Vec::new();
            for c in self.running_containers_of(&pod.id) {
                container_metrics.push(self.container_metrics(&pod, &c).await);
            }
            pod_metrics.push(cri::PodSandboxMetrics {
                pod_sandbox_id: pod.id.clone(),
                metrics: metrics.done(),
                container_metrics,
            });
        }
        Ok(cri::ListPodSandboxMetricsResponse { pod_metrics })
    }

    async fn container_metrics(
        &self,
        pod: &PodRecord,
        c: &ContainerRecord,
    ) -> cri::ContainerMetrics {
        let sample = self.svc.stats.container(c).await;
        let mut metrics = Metrics::new(
            sample.at,
            [
                c.id.clone(),
                c.image.clone(),
                pod.namespace.clone(),
                pod.name.clone(),
                c.name.clone(),
            ],
        );
        metrics.cgroup(&sample.cgroup);
        if let Some(layer) = sample.writable_layer {
            metrics.put("container_fs_usage_bytes", layer.bytes);
            metrics.put("container_fs_inodes_used", layer.inodes);
        }
        if c.started_at > 0 {
            metrics.put(
                "container_start_time_seconds",
                c.started_at as u64 / NS_PER_SECOND,
            );
        }
        cri::ContainerMetrics {
            container_id: c.id.clone(),
            metrics: metrics.done(),
        }
    }
}

/// The metrics of one pod or container as they are put together.
struct Metrics {
    at: i64,
    labels: [String; 5],
    out: Vec<cri::Metric>,
}

impl Metrics {
    fn new(at: i64, labels: [String; 5]) -> Metrics {
        Metrics {
            at,
            labels,
            out: Vec::new(),
        }
    }

    fn put(&mut self, name: &'static str, value: u64) {
        self.push(name, None, value);
    }

    fn put_labelled(&mut self, name: &'static str, label: &str, value: u64) {
        self.push(name, Some(label), value);
    }

    fn push(&mut self, name: &'static str, label: Option<&str>, value: u64) {
        let kind = FAMILIES.iter().find(|f| f.0 == name).map_or(GAUGE, |f| f.3);
        self.out.push(cri::Metric {
            name: name.to_owned(),
            timestamp: self.at,
            metric_type: kind as i32,
            label_values: self
                .labels
                .iter()
                .cloned()
                .chain(label.map(str::to_owned))
                .collect(),
            value: Some(cri::UInt64Value { value }),
        });
    }

    fn cgroup(&mut self, stats: &CgroupStats) {
        if let Some(cpu) = stats.cpu {
            self.put_labelled(
                "container_cpu_usage_seconds_total",
                "total",
                cpu.usage_ns / NS_PER_SECOND,
            );
            self.put(
                "container_cpu_user_seconds_total",
                cpu.user_ns / NS_PER_SECOND,
            );
            self.put(
                "container_cpu_system_seconds_total",
                cpu.system_ns / NS_PER_SECOND,
            );
            self.put("container_cpu_cfs_periods_total", cpu.periods);
            self.put(
                "container_cpu_cfs_throttled_periods_total",
                cpu.throttled_periods,
            );
            self.put(
                "container_cpu_cfs_throttled_seconds_total",
                cpu.throttled_ns / NS_PER_SECOND,
            );
        }
        if let Some(m) = stats.memory {
            self.put("container_memory_usage_bytes", m.usage);
            self.put("container_memory_working_set_bytes", m.working_set);
            self.put("container_memory_rss", m.rss);
            self.put("container_memory_cache", m.cache);
            self.put("container_memory_mapped_file", m.mapped_file);
            self.put("container_memory_failcnt", m.failcnt);
            // cAdvisor reports no limit as 0.
            self.put("container_spec_memory_limit_bytes", m.limit.unwrap_or(0));
            if let Some(swap) = m.swap {
                self.put("container_memory_swap", swap);
            }
            if let Some(max) = m.max_usage {
                self.put("container_memory_max_usage_bytes", max);
            }
        }
        if let Some(pids) = stats.pids {
            self.put("container_processes", pids);
        }
        if let Some(p) = stats.pressure {
            let stalls = [
                (
                    "container_pressure_cpu_waiting_seconds_total",
                    "container_pressure_cpu_stalled_seconds_total",
                    p.cpu,
                ),
                (
                    "container_pressure_memory_waiting_seconds_total",
                    "container_pressure_memory_stalled_seconds_total",
                    p.memory,
                ),
                (
                    "container_pressure_io_waiting_seconds_total",
                    "container_pressure_io_stalled_seconds_total",
                    p.io,
                ),
            ];
            for (waiting, stalled, totals) in stalls {
                if let Some(Stall { some, full }) = totals {
                    self.put(waiting, some.total_us / 1_000_000);
                    self.put(stalled, full.total_us / 1_000_000);
                }
            }
        }
    }

    fn done(self) -> Vec<cri::Metric> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::cgroup::{CpuStats, MemoryStats, Pressure};

    #[test]
    fn every_metric_put_is_described_with_its_labels() {
        let mut m = Metrics::new(1, Default::default());
        m.cgroup(&CgroupStats {
            cpu: Some(CpuStats::default()),
            memory: Some(MemoryStats {
                swap: Some(1),
                max_usage: Some(2),
                ..Default::default()
            }),
            pids: Some(3),
            pressure: Some(Pressure {
                cpu: Some(Stall::default()),
                memory: Some(Stall::default()),
                io: Some(Stall::default()),
            }),
        });
        m.put_labelled("container_network_receive_bytes_total", "eth0", 9);
        m.put("container_fs_usage_bytes", 9);
        let metrics = m.done();
        assert!(metrics.len() > 20);
        for metric in metrics {
            let family = FAMILIES.iter().find(|f| f.0 == metric.name);
            let Some(Family(_, _, extra, kind)) = family else {
                panic!("{} is not described", metric.name);
            };
            assert_eq!(
                metric.label_values.len(),
                BASE_LABELS.len() + usize::from(extra.is_some()),
                "{}",
                metric.name
            );
            assert_eq!(metric.metric_type, *kind as i32, "{}", metric.name);
        }
    }
}
