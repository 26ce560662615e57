//! The protocol between berthd and berth-monitor, shared by both sides and free of dependencies
//! (docs/monitor-protocol.md describes it for humans), the reading of runc's log, which
//! berth-exec shares, and RFC 3339 time stamps, which berthd shares.

#![forbid(unsafe_code)]

pub mod proto;
pub mod rfc3339;
pub mod runc_log;
