//! What a test daemon may leave behind when a test fails half-way: processes it started (infra,
//! monitors, containers), mounts (pinned namespaces, shm, rootfs overlays) under its dir, and the
//! cgroups of its pods. The leak audit finds the same things, to report them instead.

use std::path::{Path, PathBuf};

/// Deletes every container runc still knows under `dir`'s runtime roots, kills every process of
/// the daemon's (see [`processes_of`]), unmounts everything below `dir`, and removes the pods'
/// cgroups under `cgroup_parent`.
pub fn leftovers(dir: &Path, cgroup_parent: &str) {
    delete_runc_containers(&dir.join("state/runtimes/runc"));
    for pid in processes_of(dir) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    let mut mounts = crate::cni::mounts_under(dir);
    // Deepest first, so that a mount is never hidden under one unmounted before it.
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
    }
    for cgroup in cgroups_under(cgroup_parent) {
        // Children first: a cgroup dir goes only once it has none.
        let _ = std::fs::remove_dir(&cgroup);
    }
    for hierarchy in hierarchies() {
        let _ = std::fs::remove_dir(hierarchy.join(cgroup_parent.trim_start_matches('/')));
    }
}

/// The processes a daemon under `dir` started: those whose command line names it, whose working
/// dir is below it (monitors, runc creates), or whose infra owner is one of its pods.
pub fn processes_of(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let in_dir =
                std::fs::read_link(entry.path().join("cwd")).is_ok_and(|c| c.starts_with(dir));
            let ours = String::from_utf8_lossy(&cmdline).contains(&needle)
                || String::from_utf8_lossy(&environ)
                    .contains(&format!("BERTH_INFRA_OWNER={needle}"))
                || in_dir;
            (ours && pid != std::process::id()).then_some(pid)
        })
        .collect()
}

/// The cgroup v1 hierarchies and the v2 tree of this node.
pub fn hierarchies() -> Vec<PathBuf> {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return vec![PathBuf::from("/sys/fs/cgroup")];
    }
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Every cgroup below `parent` in every hierarchy, deepest first.
pub fn cgroups_under(parent: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for hierarchy in hierarchies() {
        let mut stack = vec![hierarchy.join(parent.trim_start_matches('/'))];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    found.push(entry.path());
                    stack.push(entry.path());
                }
            }
        }
    }
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}
/// A container created and never started is a `runc init` waiting forever: only runc can end it.
fn delete_runc_containers(root: &Path) {
    if !root.is_dir() {
        return;
    }
    let Ok(out) = std::process::Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["list", "-q"])
        .output()
    else {
        return;
    };
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = std::process::Command::new("runc")
            .arg("--root")
            .arg(root)
            .args(["delete", "--force", id])
            .output();
    }
}
