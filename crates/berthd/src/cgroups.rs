//! What berth needs to know of the node's cgroups: v1 or v2, the cgroup its monitors live in
//! (away from berthd's own, so that stopping berthd's service never takes them down), and the
//! pod cgroups berth makes itself.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const MONITORS: &str = "berth-monitors";

/// A unified (v2-only) hierarchy.
pub fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// What the node's cgroups can take, as the spec of a container needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCgroups {
    pub v2: bool,
    /// The hugetlb controller is there (a kernel can have it but no hierarchy mounted for it,
    /// as this project's v1 VM has; kubelet still sends a limit for every huge page size).
    pub hugetlb: bool,
}

impl NodeCgroups {
    pub fn detect() -> NodeCgroups {
        let v2 = is_v2();
        let hugetlb = if v2 {
            std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"))
        } else {
            Path::new(ROOT)
                .join("hugetlb")
                .join("cgroup.procs")
                .exists()
        };
        NodeCgroups { v2, hugetlb }
    }
}

/// The v1 hierarchies (every mounted one, named or not), or the v2 root.
fn hierarchies() -> Vec<PathBuf> {
    if is_v2() {
        return vec![PathBuf::from(ROOT)];
    }
    std::fs::read_dir(ROOT)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default()
}

/// The hierarchies berth may make a cgroup in and move a process to itself: not cpuset (it wants
/// cpus and mems written first; runc fills them in for the cgroups it makes) and not the
/// hybrid node's empty unified tree or systemd's named one, which runc manages.
fn plain_hierarchies() -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .filter(|p| {
            is_v2()
                || !matches!(
                    p.file_name().and_then(|n| n.to_str()),
                    Some("cpuset" | "unified" | "systemd")
                )
        })
        .collect()
}

/// Moves a monitor process into the monitors' cgroup (in every v1 hierarchy, or in v2).
/// Best effort: a monitor left in berthd's cgroup still works.
pub fn adopt_monitor(pid: u32) {
    for dir in plain_hierarchies().into_iter().map(|h| h.join(MONITORS)) {
        if std::fs::create_dir_all(&dir).is_ok() {
            if let Err(e) = std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
                tracing::debug!("moving monitor {pid} to {}: {e}", dir.display());
            }
        }
    }
}

/// Makes the cgroup at `rel` (a cgroupfs path) so that its figures exist before any container
/// is in it; on v2 with the controllers its containers' limits need enabled on the way down.
pub fn create(rel: &str) -> std::io::Result<()> {
    let rel = rel.trim_start_matches('/');
    for hierarchy in plain_hierarchies() {
        if is_v2() {
            enable_controllers(&hierarchy, rel);
        }
        std::fs::create_dir_all(hierarchy.join(rel))?;
    }
    Ok(())
}

/// Writes `+controller` into the `cgroup.subtree_control` of `root` and of each cgroup on the
/// way to `rel`, for the controllers each has. Best effort: a controller that cannot be enabled
/// only costs the figures it would give.
fn enable_controllers(root: &Path, rel: &str) {
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts
        .iter()
        .take(parts.len().saturating_sub(1))
        .chain([&""])
    {
        let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        for controller in ["cpu", "memory", "pids", "io"] {
            if available.split_whitespace().any(|c| c == controller) {
                let _ =
                    std::fs::write(dir.join("cgroup.subtree_control"), format!("+{controller}"));
            }
        }
        if part.is_empty() {
            break;
        }
        dir.push(part);
        let _ = std::fs::create_dir(&dir);
    }
}

/// Removes the cgroup at `rel` from every hierarchy it can (its children must be gone); the
/// first failure. Idempotent.
pub fn remove(rel: &str) -> std::io::Result<()> {
    let rel = rel.trim_start_matches('/');
    let mut first_failure = Ok(());
    for hierarchy in hierarchies() {
        let dir = hierarchy.join(rel);
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound && first_failure.is_ok() => {
                first_failure = Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", dir.display()),
                ));
            }
            _ => {}
        }
    }
    first_failure
}

/// [`remove`], tried again while a cgroup is busy for up to `wait`: the processes a removal
/// killed leave it only once they are reaped. Blocking.
pub fn remove_when_empty(rel: &str, wait: std::time::Duration) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match remove(rel) {
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
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
