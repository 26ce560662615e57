//! The node's cgroups as the kernel shows them, whichever hierarchy the node has: v1 (one tree
//! per controller, `/sys/fs/cgroup/<controller>/…`, as on this VM) or v2 (one tree, as on every
//! modern node and in `make test-node`'s guest). Tests read what the kernel enforces here, not
//! what berth says it asked for.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// A pure v2 hierarchy.
pub fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// Whether the node's cgroups have `controller` (on v1: a hierarchy mounted for it).
pub fn has_controller(controller: &str) -> bool {
    if is_v2() {
        std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == controller))
    } else {
        Path::new(ROOT)
            .join(controller)
            .join("cgroup.procs")
            .exists()
    }
}

/// The cgroup of a process as the node sees it (a path from the hierarchy's root): its v2 line,
/// or on v1 its memory controller's.
pub fn of_process(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = if is_v2() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == "memory")
        };
        wanted.then(|| path.to_owned())
    })
}

/// The directory of cgroup `rel` in the tree that has `controller`.
pub fn dir(controller: &str, rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if is_v2() {
        Path::new(ROOT).join(rel)
    } else {
        Path::new(ROOT).join(controller).join(rel)
    }
}

/// A file of cgroup `rel`, by its v1 name (in `controller`'s tree) or its v2 name; trimmed.
pub fn read(controller: &str, rel: &str, v1_file: &str, v2_file: &str) -> Option<String> {
    let file = if is_v2() { v2_file } else { v1_file };
    std::fs::read_to_string(dir(controller, rel).join(file))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The processes in cgroup `rel` (their PIDs as the node sees them).
pub fn procs(rel: &str) -> Vec<u32> {
    read("pids", rel, "cgroup.procs", "cgroup.procs")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// What the kernel enforces on cgroup `rel`, in the CRI's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforced {
    /// CFS quota and period in µs; None when unlimited.
    pub cpu_quota: Option<u64>,
    pub cpu_period: u64,
    /// v1 shares, or on v2 the weight they map to.
    pub cpu_shares_or_weight: u64,
    /// None when unlimited.
    pub memory_max: Option<u64>,
    /// None when unlimited.
    pub pids_max: Option<u64>,
    pub cpuset_cpus: String,
}

/// A limit file's number, None for `max` (v2) or the page-rounded 2^63 v1 writes for none.
fn limit(text: &str) -> Option<u64> {
    match text {
        "max" | "-1" => None,
        n => n.parse().ok().filter(|v: &u64| *v < 1 << 62),
    }
}

pub fn enforced(rel: &str) -> Enforced {
    let (cpu_quota, cpu_period) = if is_v2() {
        let max = read("cpu", rel, "", "cpu.max").unwrap_or_default();
        let mut parts = max.split_whitespace();
        let quota = parts.next().and_then(limit);
        let period = parts.next().and_then(|p| p.parse().ok()).unwrap_or(100_000);
        (quota, period)
    } else {
        let quota = read("cpu", rel, "cpu.cfs_quota_us", "").and_then(|q| limit(&q));
        let period = read("cpu", rel, "cpu.cfs_period_us", "")
            .and_then(|p| p.parse().ok())
            .unwrap_or(100_000);
        (quota, period)
    };
    let number = |controller, v1, v2| {
        read(controller, rel, v1, v2)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Enforced {
        cpu_quota,
        cpu_period,
        cpu_shares_or_weight: number("cpu", "cpu.shares", "cpu.weight"),
        memory_max: read("memory", rel, "memory.limit_in_bytes", "memory.max")
            .and_then(|m| limit(&m)),
        pids_max: read("pids", rel, "pids.max", "pids.max").and_then(|m| limit(&m)),
        cpuset_cpus: read("cpuset", rel, "cpuset.cpus", "cpuset.cpus").unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits_read_as_the_kernel_writes_them() {
        assert_eq!(super::limit("max"), None);
        assert_eq!(super::limit("9223372036854771712"), None);
        assert_eq!(super::limit("268435456"), Some(268435456));
        assert!(super::of_process(std::process::id()).is_some());
    }
}
