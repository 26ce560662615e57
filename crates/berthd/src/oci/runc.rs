//! The runc command line, for the calls berthd makes itself (create is the monitor's): start,
//! kill, delete, state, update and exec.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{OciError, OciRuntime};

/// How long one runtime call (other than exec) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl OciRuntime {
    fn command(&self) -> Result<tokio::process::Command, OciError> {
        let mut cmd = tokio::process::Command::new(self.resolve()?);
        cmd.arg("--root").arg(&self.state_root);
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        Ok(cmd)
    }

    /// Runs one call; its stderr becomes the error.
    async fn call(
        &self,
        what: &str,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<String, OciError> {
        self.call_within(what, args, input, CALL_TIMEOUT).await
    }

    /// [`Self::call`] with a time limit of its own.
    async fn call_within(
        &self,
        what: &str,
        args: &[&str],
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<String, OciError> {
        let mut cmd = self.command()?;
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let failed = |message: String| OciError::Call {
            handler: self.handler.clone(),
            what: what.to_owned(),
            message,
        };
        let mut child = cmd.spawn().map_err(|e| failed(e.to_string()))?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(bytes)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| failed(format!("no answer within {timeout:?}")))?
            .map_err(|e| failed(e.to_string()))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(failed(runc_message(&stderr).unwrap_or_else(|| {
                format!("exited with {}", output.status)
            })))
        }
    }

    pub async fn start(&self, id: &str) -> Result<(), OciError> {
        self.call("start", &["start", id], None).await.map(|_| ())
    }

    /// Sends `signal` (a name such as `TERM` or a number) to the container's init process.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), OciError> {
        self.call("kill", &["kill", id, signal], None)
            .await
            .map(|_| ())
    }

    /// Deletes the container's runtime state (killing it if needed). A container the runtime does
    /// not know is already deleted.
    pub async fn delete(&self, id: &str) -> Result<(), OciError> {
        match self.call("delete", &["delete", "--force", id], None).await {
            Err(OciError::Call { message, .. })
                if message.contains("does not exist") || message.contains("not found") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Every container the runtime has, with its status (`created`, `running`, `stopped`…).
    pub async fn list(&self) -> Result<Vec<(String, String)>, OciError> {
        #[derive(serde::Deserialize)]
        struct Listed {
            id: String,
            status: String,
        }
        let text = self
            .call("list", &["list", "--format", "json"], None)
            .await?;
        // runc prints `null` when it has none.
        let listed: Option<Vec<Listed>> =
            serde_json::from_str(text.trim()).map_err(|e| OciError::Call {
                handler: self.handler.clone(),
                what: "list".into(),
                message: format!("unreadable answer: {e}"),
            })?;
        Ok(listed
            .unwrap_or_default()
            .into_iter()
            .map(|l| (l.id, l.status))
            .collect())
    }

    /// Dumps the container's processes with CRIU into `image_path`, leaving them running
    /// (`work_path` gets CRIU's logs). A node without CRIU answers [`OciError::NoCriu`].
    pub async fn checkpoint(
        &self,
        id: &str,
        image_path: &Path,
        work_path: &Path,
        timeout: Duration,
    ) -> Result<(), OciError> {
        let criu_on_path = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("criu").is_file()));
        if !criu_on_path {
            return Err(OciError::NoCriu);
        }
        let (image, work) = (
            image_path.display().to_string(),
            work_path.display().to_string(),
        );
        let args = [
            "checkpoint",
            "--image-path",
            &image,
            "--work-path",
            &work,
            "--leave-running",
            id,
        ];
        self.call_within("checkpoint", &args, None, timeout)
            .await
            .map(|_| ())
    }

    /// Changes the container's cgroup limits (linux.resources JSON on stdin).
    pub async fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), OciError> {
        self.call(
            "update",
            &["update", "--resources", "-", id],
            Some(resources_json),
        )
        .await
        .map(|_| ())
    }
}

/// runc prints errors as `time="…" level=error msg="…"` lines (or plain text).
fn runc_message(stderr: &str) -> Option<String> {
    let line = stderr.lines().rev().find(|l| !l.trim().is_empty())?;
    if let Some(start) = line.find("msg=\"") {
        let rest = &line[start + 5..];
        let end = rest.rfind('"').unwrap_or(rest.len());
        return Some(rest[..end].replace("\\\"", "\""));
    }
    Some(line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn runc_messages_come_out_of_its_log_lines() {
        let stderr = "time=\"2024\" level=error msg=\"container \\\"x\\\" does not exist\"\n";
        assert_eq!(
            super::runc_message(stderr).unwrap(),
            "container \"x\" does not exist"
        );
        assert_eq!(
            super::runc_message("plain failure\n").unwrap(),
            "plain failure"
        );
    }
}
