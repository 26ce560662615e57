//! The OCI runtime binaries (runc, crun, …), one per runtime handler, and how to call them.

mod features;
mod native_delete;
mod runc;
pub mod runc_state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use features::RuntimeFeatures;
pub use native_delete::{NativeDelete, delete_stopped};

use crate::config::Config;
use crate::paths::Paths;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("runtime handler {handler}: binary `{binary}` is not on PATH")]
    NotFound { handler: String, binary: String },
    #[error("runtime handler {handler}: {what}: {message}")]
    Call {
        handler: String,
        what: String,
        message: String,
    },
    #[error("this node has no CRIU (the `criu` binary), which checkpoints need")]
    NoCriu,
    #[error("runtime handler {handler}: `{binary} --version` failed: {message}")]
    Broken {
        handler: String,
        binary: String,
        message: String,
    },
}

/// One runtime handler: a name, its binary and its state directory.
#[derive(Debug, Clone)]
pub struct OciRuntime {
    pub handler: String,
    /// As configured: a name looked up on PATH, or an absolute path.
    pub binary: String,
    /// Passed as `--root`, so that daemons side by side never share runtime state.
    pub state_root: PathBuf,
    /// How long `create` may take (the monitor kills and deletes one that takes longer).
    pub create_timeout: Duration,
    /// berth reads its state (runc's) and does exec and delete itself (see the config's
    /// `native`).
    pub native: bool,
    features: Arc<tokio::sync::OnceCell<RuntimeFeatures>>,
}

impl OciRuntime {
    pub fn from_config(config: &Config, paths: &Paths) -> Vec<OciRuntime> {
        config
            .runtimes
            .iter()
            .map(|(name, h)| OciRuntime {
                handler: name.clone(),
                binary: h.path.clone(),
                state_root: h
                    .root
                    .as_ref()
                    .map(|r| r.to_path_buf())
                    .unwrap_or_else(|| paths.runtime_state(name)),
                create_timeout: h.create_timeout.get(),
                native: h.is_native(),
                features: Arc::default(),
            })
            .collect()
    }

    /// The binary's full path, looked up on PATH when it is a bare name.
    pub fn resolve(&self) -> Result<PathBuf, OciError> {
        let not_found = || OciError::NotFound {
            handler: self.handler.clone(),
            binary: self.binary.clone(),
        };
        if self.binary.contains('/') {
            let p = PathBuf::from(&self.binary);
            return if is_executable(&p) {
                Ok(p)
            } else {
                Err(not_found())
            };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(&self.binary))
            .find(|p| is_executable(p))
            .ok_or_else(not_found)
    }

    /// Runs `<binary> --version`: proof that the runtime can run at all. Returns the first line.
    pub async fn probe(&self) -> Result<String, OciError> {
        let binary = self.resolve()?;
        let broken = |message: String| OciError::Broken {
            handler: self.handler.clone(),
            binary: self.binary.clone(),
            message,
        };
        let run = tokio::process::Command::new(&binary)
            .arg("--version")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .map_err(|_| broken("timed out after 10s".into()))?
            .map_err(|e| broken(e.to_string()))?;
        if !output.status.success() {
            return Err(broken(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(stdout.lines().next().unwrap_or_default().to_owned())
    }
}

fn is_executable(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok() && path.is_file()
}
