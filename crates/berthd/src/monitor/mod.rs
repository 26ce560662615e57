//! berth-monitor, from berthd's side: starting one for a container (`launch.rs`), the client of
//! its socket that alone speaks the protocol (`client.rs`, docs/monitor-protocol.md) and the exit
//! records and liveness of monitors (`exit.rs`).

mod client;
mod exit;
mod launch;

use std::time::Duration;

pub use client::{AttachInput, AttachOutput, Attachment, MonitorClient, OutputStream};
pub use exit::{exit_record, is_alive, wait_exit};
pub use launch::{Launch, Started, start};

use berth_monitor::proto::ProtoError;

use crate::oci::OciError;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Runtime(#[from] OciError),
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("the monitor's log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("runc create took over {0:?}; it was killed and its container deleted")]
    CreateTimeout(Duration),
    /// What the OCI runtime said when it refused (its own words).
    #[error("{0}")]
    Refused(String),
    /// The container's CRI log cannot be opened where it goes (the monitor's words).
    #[error("{0}")]
    LogRefused(String),
    #[error("the monitor failed before creating the container: {log}")]
    Died { log: String },
    #[error("the monitor said `{0}`")]
    Garbled(String),
    #[error("cannot reach the monitor: {0}")]
    Unreachable(std::io::Error),
    #[error("talking to the monitor: {0}")]
    Io(std::io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtoError),
}

impl MonitorError {
    /// The OCI runtime refused because the container's process cannot be run: its executable
    /// is not in the image, or is not one. The request named it, so the request is at fault.
    pub fn is_unrunnable_process(&self) -> bool {
        matches!(self, MonitorError::Refused(words)
            if words.contains("unable to start container process: exec: "))
    }
}
