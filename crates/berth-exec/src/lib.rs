//! berth-exec runs one process in a running container and waits for that process alone; berthd
//! starts one per ExecSync or streaming Exec. This library is what berthd and the helper share:
//! the plan of the native path (`plan`), the capability numbers it is written in (`caps`), and
//! the result file the helper leaves (`outcome`).

#![deny(unsafe_code)]

pub mod caps;
pub mod outcome;
pub mod plan;
