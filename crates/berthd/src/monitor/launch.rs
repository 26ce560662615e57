//! Starting a container's monitor, which runs `runc create` and answers one line: `ok <pid>` or
//! `error <message>`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::MonitorError;
use crate::oci::OciRuntime;

/// How long runc create (through the monitor) may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub container_id: &'a str,
    pub bundle: &'a Path,
    pub runtime: &'a OciRuntime,
    pub state_dir: &'a Path,
    pub log_path: &'a Path,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub systemd_cgroup: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub monitor_pid: u32,
    pub container_pid: u32,
}

impl Launch<'_> {
    fn command(&self) -> Result<tokio::process::Command, MonitorError> {
        let runtime = self.runtime.resolve()?;
        let monitor_log = self.state_dir.join("monitor.log");
        let stderr = std::fs::File::create(&monitor_log).map_err(|source| MonitorError::Log {
            path: monitor_log.display().to_string(),
            source,
        })?;
        let mut cmd = tokio::process::Command::new(self.binary);
        cmd.arg("--id")
            .arg(self.container_id)
            .arg("--bundle")
            .arg(self.bundle)
            .arg("--runtime")
            .arg(&runtime)
            .arg("--runtime-root")
            .arg(&self.runtime.state_root)
            .arg("--log")
            .arg(self.log_path);
        for (flag, on) in [
            ("--tty", self.tty),
            ("--stdin", self.stdin),
            ("--stdin-once", self.stdin_once),
            ("--systemd-cgroup", self.systemd_cgroup),
        ] {
            if on {
                cmd.arg(flag);
            }
        }
        cmd.current_dir(self.state_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        Ok(cmd)
    }
}

/// Starts the monitor; returns once the container exists (or with runc's error).
pub async fn start(launch: &Launch<'_>) -> Result<Started, MonitorError> {
    let mut child = launch
        .command()?
        .spawn()
        .map_err(|source| MonitorError::Spawn {
            binary: launch.binary.display().to_string(),
            source,
        })?;
    let stdout = child.stdout.take();
    let monitor_pid = child.id();
    // The monitor is our child until it exits: reap it then, whenever that is.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let (Some(monitor_pid), Some(stdout)) = (monitor_pid, stdout) else {
        return Err(died(launch));
    };
    crate::cgroups::adopt_monitor(monitor_pid);
    let mut line = String::new();
    let read = tokio::time::timeout(CREATE_TIMEOUT, BufReader::new(stdout).read_line(&mut line))
        .await
        .map_err(|_| MonitorError::CreateTimeout(CREATE_TIMEOUT))?;
    read.map_err(MonitorError::Io)?;
    match line.trim().split_once(' ') {
        Some(("ok", pid)) => pid
            .parse()
            .map(|container_pid| Started {
                monitor_pid,
                container_pid,
            })
            .map_err(|_| MonitorError::Garbled(line.trim().to_owned())),
        Some(("error", message)) => Err(MonitorError::Refused(message.to_owned())),
        _ => Err(died(launch)),
    }
}

/// The monitor ended before its answer: what it logged says why.
fn died(launch: &Launch<'_>) -> MonitorError {
    let log = std::fs::read_to_string(launch.state_dir.join("monitor.log")).unwrap_or_default();
    MonitorError::Died {
        log: log.trim().to_owned(),
    }
}
