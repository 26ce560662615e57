//! What a test daemon may leave behind when a test fails half-way: processes it started (infra,
//! monitors, containers) and mounts (pinned namespaces, shm, rootfs overlays) under its dir.

use std::path::Path;

/// Kills every process whose command line names `dir`, then unmounts everything below it.
pub fn leftovers(dir: &Path) {
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
