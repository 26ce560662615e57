//! berth-monitor: the per-container monitor. Its work arrives with the containers issue; until then
//! it only answers `--version`, so that the workspace layout is the one the design describes.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--version") => {
            eprintln!("berth-monitor {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("berth-monitor is started by berthd");
            ExitCode::from(2)
        }
    }
}
