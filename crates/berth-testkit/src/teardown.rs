//! What a test daemon may leave behind when a test fails half-way: processes it started (infra,
//! monitors, containers) and mounts (pinned namespaces, shm, rootfs overlays) under its dir.

use std::path::Path;

/// Deletes every container runc still knows under `dir`'s runtime roots, kills every process whose
/// command line names `dir`, then unmounts everything below it.
pub fn leftovers(dir: &Path) {
    delete_runc_containers(&dir.join("state/runtimes/runc"));
    let needle = dir.to_string_lossy().into_owned();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
    }
    let mut mounts = crate::cni::mounts_under(dir);
    // Deepest first, so that a mount is never hidden under one unmounted before it.
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
    }
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
