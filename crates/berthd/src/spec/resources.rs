//! Container resources as the request gives them (zero: not set), kept in the record
//! (ContainerStatus reports them), and their translation to the OCI spec and `runc update`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::oci::{Cpu, HugepageLimit, Memory, Resources};
use crate::cgroups::NodeCgroups;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit_in_bytes: i64,
    pub oom_score_adj: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// Page size (`2MB`) → limit in bytes.
    pub hugepage_limits: BTreeMap<String, u64>,
    pub unified: BTreeMap<String, String>,
    pub memory_swap_limit_in_bytes: i64,
}

impl ResourceLimits {
    /// The cgroup settings (devices apart). Zero means "not set", as in the CRI. `unified` keys
    /// exist on cgroup v2 only, so they are left out on v1; huge page limits are left out where
    /// the node has no hugetlb controller (as CRI-O does: runc would refuse the container).
    pub fn to_oci(&self, node: NodeCgroups) -> Resources {
        let positive = |v: i64| (v > 0).then_some(v);
        let memory =
            (self.memory_limit_in_bytes > 0 || self.memory_swap_limit_in_bytes > 0).then(|| {
                Memory {
                    limit: positive(self.memory_limit_in_bytes),
                    swap: positive(self.memory_swap_limit_in_bytes),
                }
            });
        let cpu = Cpu {
            shares: positive(self.cpu_shares).map(|v| v as u64),
            quota: positive(self.cpu_quota),
            period: positive(self.cpu_period).map(|v| v as u64),
            cpus: self.cpuset_cpus.clone(),
            mems: self.cpuset_mems.clone(),
        };
        Resources {
            devices: Vec::new(),
            memory,
            cpu: (cpu != Cpu::default()).then_some(cpu),
            hugepage_limits: self
                .hugepage_limits
                .iter()
                .filter(|_| node.hugetlb)
                .map(|(page_size, limit)| HugepageLimit {
                    page_size: page_size.clone(),
                    limit: *limit,
                })
                .collect(),
            unified: if node.v2 {
                self.unified.clone()
            } else {
                BTreeMap::new()
            },
        }
    }
}

/// The OOM score to ask for. A kernel without CAP_SYS_RESOURCE for us refuses scores below our
/// own: then the container gets our own score instead of failing (`floor`).
pub fn oom_score_adj(requested: i64, floor: Option<i64>) -> i64 {
    match floor {
        Some(floor) if requested < floor => floor,
        _ => requested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_unset() {
        let limits = ResourceLimits {
            cpu_quota: 50_000,
            cpu_period: 100_000,
            memory_limit_in_bytes: 64 << 20,
            unified: [("memory.high".to_string(), "1".to_string())].into(),
            ..ResourceLimits::default()
        };
        let oci = limits.to_oci(NodeCgroups {
            v2: false,
            hugetlb: true,
        });
        assert_eq!(oci.memory.unwrap().limit, Some(64 << 20));
        let cpu = oci.cpu.unwrap();
        assert_eq!(
            (cpu.quota, cpu.period, cpu.shares),
            (Some(50_000), Some(100_000), None)
        );
        assert!(oci.unified.is_empty(), "no unified keys on cgroup v1");
        let v2 = NodeCgroups {
            v2: true,
            hugetlb: false,
        };
        assert!(ResourceLimits::default().to_oci(v2).cpu.is_none());
    }

    /// kubelet sends a limit for each huge page size; a node without the hugetlb controller
    /// could not take one, and runc would refuse the container.
    #[test]
    fn huge_page_limits_go_only_where_the_node_has_hugetlb() {
        let limits = ResourceLimits {
            hugepage_limits: [("2MB".to_string(), 0)].into(),
            ..ResourceLimits::default()
        };
        let with = NodeCgroups {
            v2: true,
            hugetlb: true,
        };
        assert_eq!(limits.to_oci(with).hugepage_limits.len(), 1);
        let without = NodeCgroups {
            v2: true,
            hugetlb: false,
        };
        assert!(limits.to_oci(without).hugepage_limits.is_empty());
    }

    #[test]
    fn negative_oom_scores_clamp_to_the_floor() {
        assert_eq!(oom_score_adj(-998, Some(0)), 0);
        assert_eq!(oom_score_adj(1000, Some(0)), 1000);
        assert_eq!(oom_score_adj(-998, None), -998);
    }
}
