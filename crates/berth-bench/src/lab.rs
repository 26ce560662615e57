//! Everything `make bench` needs on a bare node, made for the run and gone after it: a registry
//! with the bench images, a private CNI network, berthd and containerd pulling through the same
//! mirror.

use std::path::PathBuf;
use std::sync::Arc;

use berth_testkit::{
    CNI_BIN_DIR, CniNetwork, Compression, Containerd, ContainerdSettings, ImageBuilder,
    LayerBuilder, Registry, TestDaemon,
};
use serde_json::json;

use crate::runtime::{Processes, Res, Runtime};

/// The host the bench images are named under; both runtimes reach it through their mirror config.
pub const IMAGE_HOST: &str = "registry.k8s.io";

#[derive(Debug, Clone)]
pub struct Images {
    /// Busybox: what every bench container runs.
    pub busybox: String,
    /// containerd's sandbox ("pause") image: busybox sleeping forever.
    pub pause: String,
    /// A few hundred kB in one layer.
    pub small: String,
    /// `big_mb` MB of incompressible data in five gzip layers.
    pub big: String,
}

pub struct Lab {
    // Dropped in this order: runtimes before the network and registry they use.
    pub berthd: Option<TestDaemon>,
    pub containerd: Option<Containerd>,
    pub net: CniNetwork,
    /// Serves the images for the whole run (stopped when dropped).
    _registry: Registry,
    pub images: Images,
    pub logs: tempfile::TempDir,
    /// The busybox layer, for the runc floor's rootfs.
    pub busybox_tar: Vec<u8>,
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut data = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        match rustix::rand::getrandom(&mut data[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(k) => filled += k,
            Err(_) => break,
        }
    }
    data
}

impl Lab {
    pub async fn start(runtimes: &[String], big_mb: usize) -> Res<Lab> {
        let registry = Registry::start().await;
        let busybox_tar = LayerBuilder::busybox().tar();
        let repo = |name: &str| format!("berth-bench/{name}");
        ImageBuilder::busybox()
            .push(&registry, &repo("busybox"), &["1"])
            .await;
        ImageBuilder::busybox()
            .config("Entrypoint", json!(["/bin/sleep", "2147483647"]))
            .config("Cmd", json!(null))
            .push(&registry, &repo("pause"), &["1"])
            .await;
        let small = LayerBuilder::new()
            .file("data/small", &random_bytes(300 * 1024))
            .tar();
        ImageBuilder::new()
            .layer(small, Compression::Gzip)
            .push(&registry, &repo("small"), &["1"])
            .await;
        let mut big = ImageBuilder::new();
        for i in 0..5 {
            let layer = LayerBuilder::new()
                .file(
                    &format!("data/part{i}"),
                    &random_bytes(big_mb * 1024 * 1024 / 5),
                )
                .tar();
            big = big.layer(layer, Compression::Gzip);
        }
        big.push(&registry, &repo("big"), &["1"]).await;
        let named = |name: &str| format!("{IMAGE_HOST}/berth-bench/{name}:1");
        let images = Images {
            busybox: named("busybox"),
            pause: named("pause"),
            small: named("small"),
            big: named("big"),
        };
        let net = CniNetwork::bridge();
        let mirror = registry.url();
        let berthd = if runtimes.iter().any(|r| r == "berth") {
            Some(
                TestDaemon::builder()
                    .log_level("info")
                    .config(&net.config())
                    .config(&format!(
                        "[registries.\"{IMAGE_HOST}\"]\nmirrors = [\"{mirror}\"]\n"
                    ))
                    .start()
                    .await,
            )
        } else {
            None
        };
        let containerd = if runtimes.iter().any(|r| r == "containerd") {
            Some(
                Containerd::start(&ContainerdSettings {
                    cni_conf_dir: &net.conf_dir(),
                    cni_bin_dir: std::path::Path::new(CNI_BIN_DIR),
                    mirrors: &[(IMAGE_HOST, &mirror)],
                    sandbox_image: &images.pause,
                })
                .await?,
            )
        } else {
            None
        };
        let logs = tempfile::Builder::new()
            .prefix("berth-bench-logs-")
            .tempdir_in("/var/tmp")
            .map_err(|e| format!("log dir: {e}"))?;
        Ok(Lab {
            berthd,
            containerd,
            net,
            _registry: registry,
            images,
            logs,
            busybox_tar,
        })
    }

    /// The runtimes, in the order asked for, with the images they need pulled.
    pub async fn runtimes(&self, order: &[String]) -> Res<Vec<Arc<Runtime>>> {
        let mut out = Vec::new();
        for name in order {
            let logs = self.logs.path().join(name);
            let rt = match name.as_str() {
                "berth" => {
                    let d = self.berthd.as_ref().ok_or("berthd was not started")?;
                    let processes = d.pid().map(|pid| Processes {
                        daemon_pid: pid,
                        helper_comm: "berth-monitor".into(),
                        helper_marker: d.state_dir.to_string_lossy().into_owned(),
                    });
                    Runtime::connect(name, &d.socket, &logs, processes).await?
                }
                "containerd" => {
                    let c = self
                        .containerd
                        .as_ref()
                        .ok_or("containerd was not started")?;
                    let processes = Processes {
                        daemon_pid: c.pid(),
                        helper_comm: "containerd-shim".into(),
                        helper_marker: c.socket.to_string_lossy().into_owned(),
                    };
                    let rt = Runtime::connect(name, &c.socket, &logs, Some(processes)).await?;
                    rt.pull(&self.images.pause).await?;
                    rt
                }
                other => return Err(format!("unknown runtime {other}: berth or containerd")),
            };
            rt.pull(&self.images.busybox).await?;
            out.push(Arc::new(rt));
        }
        Ok(out)
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.net.conf_dir()
    }
}
