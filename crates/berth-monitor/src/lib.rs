//! The protocol between berthd and berth-monitor, shared by both sides and free of dependencies.
//! docs/monitor-protocol.md describes it for humans.

#![forbid(unsafe_code)]

pub mod proto;
