//! The helper binaries berthd starts (berth-infra, berth-monitor): next to berthd's own binary
//! (how the workspace builds and installs them), else on PATH.

use std::path::PathBuf;

pub fn helper_binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(name)
}
