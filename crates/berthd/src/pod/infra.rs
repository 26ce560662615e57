//! The infra process of a pod that shares one PID namespace (see the berth-infra binary).

use std::path::Path;
use std::time::{Duration, Instant};

use berth_net::netns::Pinned;

/// How long a killed infra process may take to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("cannot run {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    /// berth-infra's own words on why it could not start.
    #[error("{0}")]
    Failed(String),
    #[error("berth-infra printed no PID")]
    NoPid,
    #[error("infra process {0} did not die")]
    Undying(u32),
}

/// Starts berth-infra as PID 1 of a new PID namespace in the pod's namespaces; returns its PID.
pub async fn start(binary: &Path, pinned: &Pinned) -> Result<u32, InfraError> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("start");
    // The user namespace first: the others and the new PID namespace are then the pod's.
    for (flag, path) in [
        ("--user", &pinned.user),
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
        .map_err(|source| InfraError::Spawn {
            binary: binary.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(InfraError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| InfraError::NoPid)
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
pub async fn kill(pid: u32) -> Result<(), InfraError> {
    if !is_alive(pid) {
        return Ok(());
    }
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
    let deadline = Instant::now() + KILL_WAIT;
    while is_alive(pid) {
        if Instant::now() > deadline {
            return Err(InfraError::Undying(pid));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
