//! The infra process of a pod that shares one PID namespace (see the berth-infra binary).

use std::path::Path;
use std::time::{Duration, Instant};

use berth_net::netns::Pinned;
use serde::{Deserialize, Serialize};

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

/// An infra process, told from whatever may later have its PID by its start time too (the
/// kernel's, in clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfraProcess {
    pub pid: u32,
    pub start_time: u64,
}

/// The environment variable berth-infra keeps its pod's dir in.
pub const OWNER_ENV: &str = "BERTH_INFRA_OWNER";

/// Starts berth-infra as PID 1 of a new PID namespace in the pod's namespaces, owned by the pod
/// whose dir is `owner`.
pub async fn start(
    binary: &Path,
    owner: &Path,
    pinned: &Pinned,
) -> Result<InfraProcess, InfraError> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("start").arg("--owner").arg(owner);
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
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| InfraError::NoPid)?;
    // Init is alive (it reported ready) and is our child's child: the PID is still its.
    let start_time = start_time(pid).ok_or(InfraError::NoPid)?;
    Ok(InfraProcess { pid, start_time })
}

/// Field 22 of /proc/<pid>/stat; the fields after the command (which may hold anything) are
/// counted from its closing parenthesis.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(19)?.parse().ok()
}

impl InfraProcess {
    /// The berth-infra that has `pid` now, if one has (for records that kept the PID alone).
    pub fn adopt(pid: u32) -> Option<InfraProcess> {
        let infra = InfraProcess {
            pid,
            start_time: start_time(pid)?,
        };
        infra.is_alive().then_some(infra)
    }

    /// Whether it still runs: the PID is a berth-infra that started when this one did, and not a
    /// zombie.
    pub fn is_alive(&self) -> bool {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        let is_infra = cmdline
            .split(|b| *b == 0)
            .next()
            .is_some_and(|argv0| argv0.ends_with(b"berth-infra"));
        let zombie = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| s.rsplit(") ").next().map(|rest| rest.starts_with('Z')))
            .unwrap_or(true);
        is_infra && !zombie && start_time(self.pid) == Some(self.start_time)
    }

    /// Its PID namespace, for a container that joins it; None when it is gone.
    pub fn pid_namespace(&self) -> Option<String> {
        self.is_alive()
            .then(|| format!("/proc/{}/ns/pid", self.pid))
    }

    /// Kills it (and with it every process of the pod's PID namespace) and waits for it to be
    /// gone. One that is gone already is left alone, whatever now has its PID.
    pub async fn kill(&self) -> Result<(), InfraError> {
        if !self.is_alive() {
            return Ok(());
        }
        if let Some(p) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
        let deadline = Instant::now() + KILL_WAIT;
        while self.is_alive() {
            if Instant::now() > deadline {
                return Err(InfraError::Undying(self.pid));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}
