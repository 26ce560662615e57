//! Running one CNI plugin binary, as the CNI spec defines the call: the command and its context in
//! `CNI_*` environment variables, the network configuration on stdin, the result (or an error
//! object) on stdout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CniError;

/// How long one plugin call may take.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// The per-call context of a plugin invocation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CallContext {
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    /// `CNI_ARGS` pairs (K8S_POD_NAMESPACE, …); `IgnoreUnknown=1` is added.
    pub args: Vec<(String, String)>,
}

/// The full path of plugin `kind` in the first bin dir that has it.
pub fn find_plugin(bin_dirs: &[PathBuf], kind: &str) -> Result<PathBuf, CniError> {
    bin_dirs
        .iter()
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| CniError::PluginNotFound {
            plugin: kind.to_owned(),
            dirs: bin_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Runs `command` of plugin `kind` with `stdin`; returns its parsed stdout (Null when empty).
pub async fn call(
    bin_dirs: &[PathBuf],
    kind: &str,
    command: &'static str,
    context: Option<&CallContext>,
    stdin: &Value,
) -> Result<Value, CniError> {
    let binary = find_plugin(bin_dirs, kind)?;
    let failed = |message: String| CniError::Plugin {
        plugin: kind.to_owned(),
        command,
        message,
    };
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_PATH", join_paths(bin_dirs))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ctx) = context {
        let mut args = vec!["IgnoreUnknown=1".to_owned()];
        args.extend(ctx.args.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.env("CNI_CONTAINERID", &ctx.container_id)
            .env("CNI_NETNS", &ctx.netns)
            .env("CNI_IFNAME", &ctx.ifname)
            .env("CNI_ARGS", args.join(";"));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", binary.display())))?;
    let input = serde_json::to_vec(stdin).map_err(|e| failed(e.to_string()))?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let run = async {
        if let Some(mut pipe) = child.stdin.take() {
            // A plugin that exits without reading its stdin is judged by its exit status.
            let _ = pipe.write_all(&input).await;
        }
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let read_out = async {
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut stdout).await;
            }
        };
        let read_err = async {
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut stderr).await;
            }
        };
        tokio::join!(read_out, read_err);
        child.wait().await
    };
    let status = tokio::time::timeout(PLUGIN_TIMEOUT, run)
        .await
        .map_err(|_| failed(format!("no answer within {PLUGIN_TIMEOUT:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Err(failed(error_message(&stdout, &stderr, status)));
    }
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&stdout).map_err(|e| failed(format!("unreadable result: {e}")))
}

/// The plugin's error object (`msg` and `details`), else its stderr.
fn error_message(stdout: &[u8], stderr: &[u8], status: std::process::ExitStatus) -> String {
    if let Ok(err) = serde_json::from_slice::<Value>(stdout) {
        let msg = err.get("msg").and_then(Value::as_str).unwrap_or_default();
        let details = err
            .get("details")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (msg.is_empty(), details.is_empty()) {
            (false, false) => return format!("{msg}: {details}"),
            (false, true) => return msg.to_owned(),
            _ => {}
        }
    }
    let stderr = String::from_utf8_lossy(stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        format!("exited with {status}")
    } else {
        stderr.to_owned()
    }
}

fn join_paths(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.as_path())
        .map(Path::to_string_lossy)
        .collect::<Vec<_>>()
        .join(":")
}
