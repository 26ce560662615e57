//! Running a process in a running container, from berthd's side: the way it is started (berth's
//! native path, or the runtime's own exec for handlers whose state berth cannot read), the
//! container's exec plan the native path follows (`plan.rs`, with the seccomp filter compiled by
//! `seccomp.rs`), and the command line of the helper, berth-exec, which berthd runs from a
//! sealed copy in memory (`sealed.rs`). The helper's result file is `berth_exec::outcome`.

mod plan;
mod sealed;
mod seccomp;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_exec::outcome::Outcome;

pub use plan::{PlanError, PlanSources, ensure as ensure_plan};
pub use sealed::SealedBinary;

use crate::oci::{OciError, OciRuntime};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the exec helper cannot run: {0}")]
    NoHelper(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Runtime(#[from] OciError),
    /// The process never ran: the helper's or the runtime's words.
    #[error("{0}")]
    Refused(String),
    #[error("the exec helper left no result: {0}")]
    NoResult(std::io::Error),
    #[error("the exec helper's result says `{0}`")]
    Garbled(String),
}

/// How a process gets into the container.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    /// berth-exec itself, following the container's plan.
    Native { plan: &'a Path },
    /// The runtime's exec (`runc exec --detach`), waited for by berth-exec.
    Runtime {
        runtime: &'a OciRuntime,
        container_id: &'a str,
    },
}

/// The files of one exec, in the container's state dir.
#[derive(Debug, Clone, Copy)]
pub struct ExecFiles<'a> {
    /// Where the helper writes the process's PID.
    pub pid_file: &'a Path,
    /// Where the helper writes how it ended.
    pub result: &'a Path,
    /// The socket a TTY's master is sent to, when the process gets a terminal.
    pub console_socket: Option<&'a str>,
}

/// berth-exec, copied into a sealed memfd at start.
#[derive(Debug)]
pub struct ExecHelper {
    binary: Result<SealedBinary, String>,
}

impl ExecHelper {
    /// Seals a copy of the helper at `path`; a failure is kept and answered at each exec (the
    /// daemon runs without exec rather than not at all).
    pub fn load(path: &Path) -> ExecHelper {
        let binary = SealedBinary::copy(path).map_err(|e| format!("{}: {e}", path.display()));
        if let Err(e) = &binary {
            tracing::error!("the exec helper is unavailable, ExecSync and Exec will fail: {e}");
        }
        ExecHelper { binary }
    }

    /// The helper's command line for one exec of `args`. Its stdin is null until the caller
    /// sets it; it is killed if the handle is dropped.
    pub fn command(
        &self,
        backend: Backend<'_>,
        files: ExecFiles<'_>,
        args: &[String],
    ) -> Result<tokio::process::Command, ExecError> {
        let binary = self
            .binary
            .as_ref()
            .map_err(|e| ExecError::NoHelper(e.clone()))?;
        let mut cmd = tokio::process::Command::new(binary.path());
        cmd.arg0("berth-exec");
        match backend {
            Backend::Native { plan } => {
                cmd.arg("native").arg("--plan").arg(plan);
            }
            Backend::Runtime {
                runtime,
                container_id,
            } => {
                let binary: PathBuf = runtime.resolve()?;
                cmd.arg("runtime")
                    .arg("--runtime")
                    .arg(binary)
                    .arg("--runtime-root")
                    .arg(&runtime.state_root)
                    .arg("--id")
                    .arg(container_id);
            }
        }
        cmd.arg("--pid-file")
            .arg(files.pid_file)
            .arg("--result")
            .arg(files.result);
        if let Some(socket) = files.console_socket {
            cmd.arg("--console-socket").arg(socket);
        }
        cmd.arg("--")
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Ok(cmd)
    }
}

/// The exit code the helper left in `result`; why the process never ran, if it did not.
pub fn exit_code(result: &Path) -> Result<i32, ExecError> {
    let text = std::fs::read_to_string(result).map_err(ExecError::NoResult)?;
    match Outcome::parse(&text) {
        Some(Outcome::Exited(code)) => Ok(code),
        Some(Outcome::Failed(why)) => Err(ExecError::Refused(why)),
        None => Err(ExecError::Garbled(text.trim().to_owned())),
    }
}
