//! What berth needs to know of the node's cgroups: v1 or v2, and the cgroup its monitors live in
//! (away from berthd's own, so that stopping berthd's service never takes them down).

use std::path::Path;

const ROOT: &str = "/sys/fs/cgroup";
const MONITORS: &str = "berth-monitors";

/// A unified (v2-only) hierarchy.
pub fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// Moves a monitor process into the monitors' cgroup (in every v1 hierarchy, or in v2).
/// Best effort: a monitor left in berthd's cgroup still works.
pub fn adopt_monitor(pid: u32) {
    let dirs: Vec<std::path::PathBuf> = if is_v2() {
        vec![Path::new(ROOT).join(MONITORS)]
    } else {
        std::fs::read_dir(ROOT)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    // cpuset wants cpus and mems set before it takes a process; unified holds no
                    // controller on a hybrid node.
                    .filter(|p| {
                        !matches!(
                            p.file_name().and_then(|n| n.to_str()),
                            Some("cpuset" | "unified")
                        )
                    })
                    .filter(|p| p.join("cgroup.procs").exists())
                    .map(|p| p.join(MONITORS))
                    .collect()
            })
            .unwrap_or_default()
    };
    for dir in dirs {
        if std::fs::create_dir_all(&dir).is_ok() {
            if let Err(e) = std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
                tracing::debug!("moving monitor {pid} to {}: {e}", dir.display());
            }
        }
    }
}

/// The lowest OOM score berthd may give a container: its own when the kernel refuses lower ones
/// (no CAP_SYS_RESOURCE), else None (any score).
pub fn oom_score_floor() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_RESOURCE: u32 = 24;
    if caps & (1 << CAP_SYS_RESOURCE) != 0 {
        return None;
    }
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}
