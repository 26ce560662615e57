//! How berthd learns that a monitor is alive, when it ends, and how its container ended.

use std::path::Path;

use berth_monitor::proto::{self, ExitRecord};

use super::MonitorError;

/// The exit record of a container whose monitor has finished, if it wrote one.
pub fn exit_record(state_dir: &Path) -> Option<Result<ExitRecord, MonitorError>> {
    let text = std::fs::read_to_string(state_dir.join(proto::EXIT_RECORD)).ok()?;
    Some(ExitRecord::parse(&text).map_err(MonitorError::from))
}

/// Whether `pid` is still the monitor of `container_id` (and not a reused PID).
pub fn is_alive(pid: u32, container_id: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_monitor = args.first().is_some_and(|a| a.ends_with(b"berth-monitor"));
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(true);
    is_monitor && !zombie && args.contains(&container_id.as_bytes())
}

/// Resolves when process `pid` has exited (through a pidfd, so it works for any process, not
/// only children). Returns at once if it is already gone.
pub async fn wait_exit(pid: u32) {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::NONBLOCK) else {
        return;
    };
    let Ok(async_fd) = crate::async_fd::register(fd, tokio::io::Interest::READABLE) else {
        return;
    };
    let _ = async_fd.readable().await;
}
