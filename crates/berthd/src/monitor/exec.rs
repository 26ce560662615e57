//! `berth-monitor exec`: the helper that runs one command in a container and waits for that
//! process alone (see the monitor's exec.rs); its pid goes to a pid file, its exit code or
//! runc's error to a result file.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::MonitorError;
use crate::oci::OciRuntime;

/// One exec through the helper.
#[derive(Debug, Clone)]
pub struct ExecHelper<'a> {
    pub binary: &'a Path,
    pub runtime: &'a OciRuntime,
    pub container_id: &'a str,
    pub pid_file: &'a Path,
    pub result: &'a Path,
    /// The socket runc sends a TTY's master to, when the command gets a terminal.
    pub console_socket: Option<&'a str>,
}

impl ExecHelper<'_> {
    /// The helper's command line for `args`.
    pub fn command(&self, args: &[String]) -> Result<tokio::process::Command, MonitorError> {
        let runc: PathBuf = self.runtime.resolve()?;
        let mut cmd = tokio::process::Command::new(self.binary);
        cmd.arg("exec")
            .arg("--runtime")
            .arg(runc)
            .arg("--runtime-root")
            .arg(&self.runtime.state_root)
            .arg("--id")
            .arg(self.container_id)
            .arg("--pid-file")
            .arg(self.pid_file)
            .arg("--result")
            .arg(self.result);
        if let Some(socket) = self.console_socket {
            cmd.arg("--console-socket").arg(socket);
        }
        cmd.arg("--")
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Ok(cmd)
    }
}

/// What the helper wrote: the exit code, or runc's error.
pub fn exec_result(result: &Path) -> Result<i32, MonitorError> {
    let text = std::fs::read_to_string(result).map_err(MonitorError::NoExecResult)?;
    match text.trim().split_once(' ') {
        Some(("exit", code)) => code
            .parse()
            .map_err(|_| MonitorError::Garbled(text.trim().to_owned())),
        Some(("error", message)) => Err(MonitorError::Refused(message.to_owned())),
        _ => Err(MonitorError::Garbled(text.trim().to_owned())),
    }
}
