//! The protocol between berthd and berth-monitor, shared by both sides and free of dependencies
//! (docs/monitor-protocol.md describes it for humans), and the reading of runc's log, which
//! berth-exec shares.

#![forbid(unsafe_code)]

pub mod proto;
pub mod runc_log;
