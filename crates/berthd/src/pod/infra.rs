//! The infra process of a pod that shares one PID namespace (see the berth-infra binary).

use std::path::Path;
use std::time::{Duration, Instant};

use berth_net::netns::Pinned;

/// Starts berth-infra as PID 1 of a new PID namespace in the pod's namespaces; returns its PID.
pub async fn start(binary: &Path, root_dir: &Path, pinned: &Pinned) -> Result<u32, String> {
    std::fs::create_dir_all(root_dir).map_err(|e| format!("{}: {e}", root_dir.display()))?;
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("start").arg(root_dir);
    for (flag, path) in [
        ("--net", &pinned.net),
        ("--ipc", &pinned.ipc),
        ("--uts", &pinned.uts),
    ] {
        if let Some(p) = path {
            cmd.arg(flag).arg(p);
        }
    }
    let out = cmd
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| "berth-infra printed no PID".to_owned())
}

/// Whether `pid` is still a live berth-infra (not another process that reused the PID).
pub fn is_alive(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_infra = cmdline
        .split(|b| *b == 0)
        .next()
        .is_some_and(|argv0| argv0.ends_with(b"berth-infra"));
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(") ").next().map(|rest| rest.starts_with('Z')))
        .unwrap_or(true);
    is_infra && !zombie
}

/// Kills the infra process (and with it every process of the pod's PID namespace) and waits for
/// it to be gone.
pub async fn kill(pid: u32) -> Result<(), String> {
    if !is_alive(pid) {
        return Ok(());
    }
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_alive(pid) {
        if Instant::now() > deadline {
            return Err(format!("infra process {pid} did not die"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
