//! Starting a container's monitor, which runs `runc create` and answers one line: `ok <pid>`,
//! `error <message>`, `log <message>` (the CRI log could not be opened; nothing was made), or
//! `timeout <ms>` (runc overstayed; the monitor killed and deleted it).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::MonitorError;
use crate::oci::OciRuntime;

/// How much longer than the runtime's create timeout berthd waits for the monitor's answer: the
/// monitor, which kills and deletes a create that overstays, answers first.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub container_id: &'a str,
    pub bundle: &'a Path,
    pub runtime: &'a OciRuntime,
    pub state_dir: &'a Path,
    /// The CRI log: a dir, and the file's path inside it.
    pub log_dir: &'a Path,
    pub log_file: &'a Path,
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
            .arg("--log-dir")
            .arg(self.log_dir)
            .arg("--log")
            .arg(self.log_file)
            .arg("--create-timeout-ms")
            .arg(self.runtime.create_timeout.as_millis().to_string());
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
    let wait = launch.runtime.create_timeout + ANSWER_MARGIN;
    let Ok(read) = tokio::time::timeout(wait, BufReader::new(stdout).read_line(&mut line)).await
    else {
        // A monitor that does not answer either is killed; the create's undo deletes the rest.
        if let Some(pid) = rustix::process::Pid::from_raw(monitor_pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        return Err(MonitorError::CreateTimeout(wait));
    };
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
        Some(("log", message)) => Err(MonitorError::LogRefused(message.to_owned())),
        Some(("timeout", ms)) => Err(MonitorError::CreateTimeout(Duration::from_millis(
            ms.parse().unwrap_or_default(),
        ))),
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
