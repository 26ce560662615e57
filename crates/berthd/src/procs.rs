//! The node's processes, as start-up recovery looks for those a crashed berthd left: monitors
//! and runc creates of containers with no record (found by their working dir, a container's
//! state dir) and infra processes of pods with no record (found by the owner berth-infra
//! records in its environment).

use std::path::PathBuf;

/// A process of the node, by PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process(pub u32);

impl Process {
    /// Every process there is now.
    pub fn all() -> Vec<Process> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .map(Process)
            .collect()
    }

    pub fn cwd(&self) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/{}/cwd", self.0)).ok()
    }

    /// The name of its executable (at most 15 bytes, as the kernel keeps it).
    pub fn comm(&self) -> Option<String> {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.0)).ok()?;
        Some(comm.trim_end().to_owned())
    }

    /// A variable of the environment it started with.
    pub fn env(&self, key: &str) -> Option<String> {
        let environ = std::fs::read(format!("/proc/{}/environ", self.0)).ok()?;
        environ.split(|b| *b == 0).find_map(|entry| {
            let entry = std::str::from_utf8(entry).ok()?;
            entry
                .strip_prefix(key)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
    }

    /// SIGKILL to it, and to its process group when it leads one (a runc create leads its own).
    pub fn kill(&self) {
        let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) else {
            return;
        };
        if rustix::process::getpgid(Some(pid)).is_ok_and(|g| g == pid) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}
