//! The node critest needs, made for the run and gone after it: a local registry holding the
//! stand-in images under their upstream paths, a private CNI bridge, IP forwarding on, berthd on
//! private paths with a mirror for every upstream host (and, for the benchmark, containerd with
//! the same mirrors and network). Dropping a `Node` stops and removes all of it.

use std::path::{Path, PathBuf};

use berth_testkit::{
    CNI_BIN_DIR, CniNetwork, Containerd, ContainerdSettings, Registry, TestDaemon,
};

use crate::images;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

pub struct Node {
    // Dropped in this order: runtimes before the network and registry they use.
    pub berthd: TestDaemon,
    pub containerd: Option<Containerd>,
    /// Kept for the run: dropping it deletes the bridge.
    _net: CniNetwork,
    _registry: Registry,
    /// The forwarding setting found at start, put back at the end.
    ip_forward_before: Option<String>,
}

/// Which runtimes to start beside berthd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    BerthOnly,
    WithContainerd,
}

impl Node {
    pub async fn start(peers: Peers) -> Result<Node, String> {
        let ip_forward_before = std::fs::read_to_string(IP_FORWARD).ok();
        std::fs::write(IP_FORWARD, "1").map_err(|e| format!("turning on IP forwarding: {e}"))?;
        let registry = Registry::start().await;
        let probe = berth_testkit::workspace_bin("berth-probe");
        images::push_all(&registry, &probe).await;
        let net = CniNetwork::bridge();
        let mirror = registry.url();
        let mut config = net.config();
        for host in images::UPSTREAM_HOSTS {
            config.push_str(&format!(
                "[registries.\"{host}\"]\nmirrors = [\"{mirror}\"]\n"
            ));
        }
        let berthd = TestDaemon::builder()
            .log_level("info")
            .config(&config)
            .start()
            .await;
        let containerd = match peers {
            Peers::BerthOnly => None,
            Peers::WithContainerd => {
                let mirrors: Vec<(&str, &str)> = images::UPSTREAM_HOSTS
                    .iter()
                    .map(|h| (*h, mirror.as_str()))
                    .collect();
                Some(
                    Containerd::start(&ContainerdSettings {
                        cni_conf_dir: &net.conf_dir(),
                        cni_bin_dir: Path::new(CNI_BIN_DIR),
                        mirrors: &mirrors,
                        sandbox_image: "registry.k8s.io/pause:3.10",
                    })
                    .await?,
                )
            }
        };
        Ok(Node {
            berthd,
            containerd,
            _net: net,
            _registry: registry,
            ip_forward_before,
        })
    }

    /// berthd's socket as critest names an endpoint.
    pub fn berth_endpoint(&self) -> String {
        endpoint(&self.berthd.socket)
    }

    pub fn containerd_endpoint(&self) -> Option<String> {
        self.containerd.as_ref().map(|c| endpoint(&c.socket))
    }

    /// Where the run's files go (removed with the daemon).
    pub fn work_dir(&self) -> PathBuf {
        self.berthd.dir().join("conformance")
    }
}

fn endpoint(socket: &Path) -> String {
    format!("unix://{}", socket.display())
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(before) = &self.ip_forward_before {
            let _ = std::fs::write(IP_FORWARD, before.trim());
        }
    }
}
