//! Debian's containerd with its CRI plugin, on a socket, root and state of its own, pulling
//! through the same mirror and attaching pods to the same CNI network as berthd. Stopped, and
//! everything it made removed, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::runtime::{Processes, Res};

pub struct Settings<'a> {
    pub cni_conf_dir: &'a Path,
    pub cni_bin_dir: &'a Path,
    /// The registry host the images are named under, and the mirror that serves them.
    pub mirror_host: &'a str,
    pub mirror_endpoint: &'a str,
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
    pub async fn start(s: &Settings<'_>) -> Res<Containerd> {
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
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{host}"]
    endpoint = ["{mirror}"]
"#,
            root = dir.path().join("root").display(),
            state = dir.path().join("state").display(),
            socket = socket.display(),
            sandbox = s.sandbox_image,
            bin = s.cni_bin_dir.display(),
            conf = s.cni_conf_dir.display(),
            host = s.mirror_host,
            mirror = s.mirror_endpoint,
        );
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
            if let Ok(mut c) = berth_testkit::connect(&containerd.socket).await {
                if c.runtime
                    .version(k8s_cri::v1::VersionRequest::default())
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

    pub fn processes(&self) -> Processes {
        Processes {
            daemon_pid: self.child.id(),
            helper_comm: "containerd-shim".into(),
            helper_marker: self.socket.to_string_lossy().into_owned(),
        }
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
        for mount in berth_testkit::mounts_under(self.dir.path())
            .into_iter()
            .rev()
        {
            let _ = rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH);
        }
    }
}
