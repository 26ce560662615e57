//! Debian's containerd with its CRI plugin, on a socket, root and state of its own, pulling
//! through registry mirrors and attaching pods to a given CNI network: the runtime berth is
//! measured against. Stopped, and everything it made removed, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Settings<'a> {
    pub cni_conf_dir: &'a Path,
    pub cni_bin_dir: &'a Path,
    /// Registry hosts the images are named under, each with the mirror that serves them.
    pub mirrors: &'a [(&'a str, &'a str)],
    pub sandbox_image: &'a str,
}

pub struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
    pub socket: PathBuf,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "containerd on {}", self.socket.display())
    }
}

impl Containerd {
    pub async fn start(s: &Settings<'_>) -> Result<Containerd, String> {
        let dir = tempfile::Builder::new()
            .prefix("berth-bench-containerd-")
            .tempdir_in("/var/tmp")
            .map_err(|e| format!("containerd dir: {e}"))?;
        let socket = dir.path().join("containerd.sock");
        // This node refuses negative OOM scores, hence restrict_oom_score_adj.
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
"#,
            root = dir.path().join("root").display(),
            state = dir.path().join("state").display(),
            socket = socket.display(),
            sandbox = s.sandbox_image,
            bin = s.cni_bin_dir.display(),
            conf = s.cni_conf_dir.display(),
        );
        let mut config = config;
        for (host, mirror) in s.mirrors {
            config.push_str(&format!(
                "  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{host}\"]\n    endpoint = [\"{mirror}\"]\n"
            ));
        }
        let config_file = dir.path().join("config.toml");
        std::fs::write(&config_file, config).map_err(|e| format!("containerd config: {e}"))?;
        let log = std::fs::File::create(dir.path().join("containerd.log"))
            .map_err(|e| format!("containerd log: {e}"))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("containerd log: {e}"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run containerd (apt-get install containerd): {e}"))?;
        let containerd = Containerd { dir, child, socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = crate::connect(&containerd.socket).await {
                if c.runtime
                    .version(berth_cri::v1::VersionRequest::default())
                    .await
                    .is_ok()
                {
                    return Ok(containerd);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "containerd did not answer; its log: {}",
                    containerd.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims of pods that were not ended outlive containerd: end them and what they run.
        let marker = self.socket.to_string_lossy().into_owned();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &marker])
            .status();
        for mount in crate::mounts_under(self.dir.path()).into_iter().rev() {
            let _ = rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH);
        }
    }
}
