//! Writing a pod's own cgroup limits (UpdatePodSandboxResources, in-place pod resize): the CPU
//! and memory files of cgroup v1's hierarchies or of the v2 tree, as runc writes a container's.
//! Zero means "not set", as in the CRI: such a limit is left as it is.

use std::io;
use std::path::Path;

use crate::spec::ResourceLimits;

const ROOT: &str = "/sys/fs/cgroup";

/// A value the kernel refused for a cgroup file.
#[derive(Debug, thiserror::Error)]
#[error("cgroup {file} = {value}: {source}")]
pub struct LimitRefused {
    pub file: String,
    pub value: String,
    pub source: io::Error,
}

/// The files and values `limits` asks for, relative to the cgroupfs root: `(dir, file, value)`.
fn writes(rel: &str, limits: &ResourceLimits, v2: bool) -> Vec<(String, &'static str, String)> {
    let rel = rel.trim_start_matches('/');
    let at = |hierarchy: &str| {
        if v2 {
            rel.to_owned()
        } else {
            format!("{hierarchy}/{rel}")
        }
    };
    let mut out = Vec::new();
    let mut put = |dir: String, file, value: String| out.push((dir, file, value));
    if v2 {
        if limits.cpu_shares > 0 {
            put(
                at("cpu"),
                "cpu.weight",
                shares_to_weight(limits.cpu_shares).to_string(),
            );
        }
        if limits.cpu_quota > 0 || limits.cpu_period > 0 {
            let quota = if limits.cpu_quota > 0 {
                limits.cpu_quota.to_string()
            } else {
                "max".to_owned()
            };
            let period = if limits.cpu_period > 0 {
                limits.cpu_period
            } else {
                100_000
            };
            put(at("cpu"), "cpu.max", format!("{quota} {period}"));
        }
        if limits.memory_limit_in_bytes > 0 {
            put(
                at("memory"),
                "memory.max",
                limits.memory_limit_in_bytes.to_string(),
            );
        }
    } else {
        for (value, hierarchy, file) in [
            (limits.cpu_shares, "cpu", "cpu.shares"),
            (limits.cpu_period, "cpu", "cpu.cfs_period_us"),
            (limits.cpu_quota, "cpu", "cpu.cfs_quota_us"),
            (
                limits.memory_limit_in_bytes,
                "memory",
                "memory.limit_in_bytes",
            ),
        ] {
            if value > 0 {
                put(at(hierarchy), file, value.to_string());
            }
        }
    }
    out
}

/// cgroup v1 shares (2–262144) to v2 weight (1–10000), as runc and the kernel docs convert.
/// cgroup v1 shares (2–262144) as a v2 weight (1–10000), as runc and kubelet convert them.
pub fn shares_to_weight(shares: i64) -> i64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Writes the limits into the cgroup at `rel` (a cgroupfs path).
pub fn apply(rel: &str, limits: &ResourceLimits) -> Result<(), LimitRefused> {
    let v2 = crate::cgroups::is_v2();
    for (dir, file, value) in writes(rel, limits, v2) {
        let path = Path::new(ROOT).join(&dir).join(file);
        std::fs::write(&path, &value).map_err(|source| LimitRefused {
            file: path.display().to_string(),
            value,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_files_for_cpu_and_memory() {
        let limits = ResourceLimits {
            cpu_shares: 1024,
            cpu_quota: 50_000,
            memory_limit_in_bytes: 256 << 20,
            ..ResourceLimits::default()
        };
        let files = |v2| -> Vec<String> {
            writes("/kubepods/pod1", &limits, v2)
                .into_iter()
                .map(|(d, f, v)| format!("{d}/{f}={v}"))
                .collect()
        };
        assert_eq!(
            files(false),
            [
                "cpu/kubepods/pod1/cpu.shares=1024",
                "cpu/kubepods/pod1/cpu.cfs_quota_us=50000",
                "memory/kubepods/pod1/memory.limit_in_bytes=268435456",
            ]
        );
        assert_eq!(
            files(true),
            [
                "kubepods/pod1/cpu.weight=39",
                "kubepods/pod1/cpu.max=50000 100000",
                "kubepods/pod1/memory.max=268435456",
            ]
        );
        assert!(writes("/p", &ResourceLimits::default(), true).is_empty());
    }
}
