//! ExecSync: `runc exec` of a command in a running container, its stdout and stderr (each capped
//! at 16 MiB) and its exit code. With a timeout, the call fails when it passes and the exec'd
//! process and its children are killed; a child that keeps the output pipes open (a background
//! job) never holds the call past the process's own exit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::record::ContainerState;
use super::{ContainerError, ContainerService};

/// Output kept of each stream.
pub const OUTPUT_CAP: usize = 16 * 1024 * 1024;
/// After the process exits, output still arriving within this window is kept.
const DRAIN_WINDOW: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

impl ContainerService {
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, ContainerError> {
        if cmd.is_empty() {
            return Err(ContainerError::Invalid("ExecSync needs a command".into()));
        }
        let record = self.get(id)?.record();
        if record.state != ContainerState::Running {
            return Err(ContainerError::Precondition(format!(
                "container {} is {:?}, not running",
                record.id, record.state
            )));
        }
        let runtime = self.runtime(&record.runtime_handler)?;
        let name = format!("exec-{}", &crate::ids::new_id()[..16]);
        let state_dir = self.container_state_dir(&record.id);
        let (pid_file, result) = (
            state_dir.join(format!("{name}.pid")),
            state_dir.join(format!("{name}.result")),
        );
        let mut child = crate::monitor::exec_command(
            &self.monitor_binary,
            runtime,
            &record.id,
            &pid_file,
            &result,
            &cmd,
        )
        .map_err(ContainerError::Create)?
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(io_err_exec)?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = [
            child
                .stdout
                .take()
                .map(|s| tokio::spawn(read_capped(s, stdout.clone()))),
            child
                .stderr
                .take()
                .map(|s| tokio::spawn(read_capped(s, stderr.clone()))),
        ];
        let waited = match timeout {
            Some(t) => match tokio::time::timeout(t, child.wait()).await {
                Ok(waited) => waited,
                Err(_) => {
                    kill_exec(&pid_file).await;
                    let _ = child.kill().await;
                    for r in readers.into_iter().flatten() {
                        r.abort();
                    }
                    let _ = std::fs::remove_file(&pid_file);
                    let _ = std::fs::remove_file(&result);
                    return Err(ContainerError::Timeout(format!(
                        "command {cmd:?} timed out after {t:?} and was killed"
                    )));
                }
            },
            None => child.wait().await,
        };
        waited.map_err(io_err_exec)?;
        let exit_code = crate::monitor::exec_result(&result);
        let _ = std::fs::remove_file(&result);
        let exit_code = match exit_code {
            Ok(code) => code,
            Err(e) => {
                let _ = std::fs::remove_file(&pid_file);
                return Err(ContainerError::Exec(e));
            }
        };
        for mut r in readers.into_iter().flatten() {
            if tokio::time::timeout(DRAIN_WINDOW, &mut r).await.is_err() {
                // Held open by a background child: keep what arrived, stop reading.
                r.abort();
            }
        }
        let _ = std::fs::remove_file(&pid_file);
        let take = |buf: &Arc<Mutex<Vec<u8>>>| {
            std::mem::take(&mut *buf.lock().unwrap_or_else(|p| p.into_inner()))
        };
        Ok(ExecOutput {
            stdout: take(&stdout),
            stderr: take(&stderr),
            exit_code,
        })
    }
}

fn io_err_exec(e: std::io::Error) -> ContainerError {
    ContainerError::Io {
        what: "running runc exec".into(),
        source: e,
    }
}

/// Reads a stream to its end, keeping the first OUTPUT_CAP bytes.
async fn read_capped(mut stream: impl tokio::io::AsyncRead + Unpin, keep: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut kept = keep.lock().unwrap_or_else(|p| p.into_inner());
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Kills the exec'd process and every process below it.
async fn kill_exec(pid_file: &std::path::Path) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return;
    };
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        tree.extend(children(tree[i]));
        i += 1;
    }
    for p in tree {
        if let Some(p) = rustix::process::Pid::from_raw(p as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
