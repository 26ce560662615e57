//! A private CNI network per test: its own conf dir, bridge name, subnet and IPAM data dir, so
//! tests never collide with each other or with a host config. The bridge is deleted on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// The Debian package's plugin dir.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

pub struct CniNetwork {
    dir: tempfile::TempDir,
    pub bridge: String,
    /// `10.x.y.0/24`.
    pub subnet: String,
    /// `10.x.y.`: the subnet's first three octets and a dot.
    pub prefix: String,
}

impl std::fmt::Debug for CniNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CniNetwork({} {})", self.bridge, self.subnet)
    }
}

fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    u16::from_le_bytes(b)
}

impl CniNetwork {
    /// bridge + host-local + portmap, written as the only config of a new conf dir.
    pub fn bridge() -> CniNetwork {
        Self::with_plugins(|_| Vec::new())
    }

    /// The bridge network with extra plugins chained after it (given the network's temp dir).
    pub fn with_plugins(extra: impl FnOnce(&Path) -> Vec<Value>) -> CniNetwork {
        let dir = tempfile::Builder::new()
            .prefix("berth-cni-")
            .tempdir_in("/var/tmp")
            .expect("cni dir");
        let n = random_u16();
        let (a, b) = (200 + (n % 50) as u8, (n >> 8) as u8);
        let bridge = format!("bth{:04x}", n);
        let prefix = format!("10.{a}.{b}.");
        let subnet = format!("{prefix}0/24");
        std::fs::create_dir_all(dir.path().join("net.d")).expect("net.d");
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin");
        let mut plugins = vec![
            json!({
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": dir.path().join("ipam"),
                },
            }),
            json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}),
        ];
        plugins.extend(extra(dir.path()));
        let conf = json!({"cniVersion": "1.0.0", "name": format!("berth-test-{bridge}"), "plugins": plugins});
        let net = CniNetwork {
            dir,
            bridge,
            subnet,
            prefix,
        };
        net.write_conf("10-berth-test.conflist", &conf);
        net
    }

    pub fn write_conf(&self, name: &str, conf: &Value) {
        std::fs::write(
            self.conf_dir().join(name),
            serde_json::to_vec_pretty(conf).expect("json"),
        )
        .expect("conf");
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }

    /// A dir for test plugins, searched before the Debian plugins.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// IPs host-local has handed out and not released.
    pub fn leased_ips(&self) -> Vec<String> {
        let Ok(entries) =
            std::fs::read_dir(self.ipam_dir().join(format!("berth-test-{}", self.bridge)))
        else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&self.prefix))
            .collect()
    }

    /// The node-side veths plugged into this network's bridge (one per attached pod).
    pub fn veths(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.split(':')
                    .nth(1)
                    .map(|s| s.trim().split('@').next().unwrap_or("").to_owned())
            })
            .collect()
    }

    /// The `[cni]` table for a daemon's config.
    pub fn config(&self) -> String {
        format!(
            "[cni]\nconf_dir = \"{}\"\nbin_dirs = [\"{}\", \"{CNI_BIN_DIR}\"]\n",
            self.conf_dir().display(),
            self.bin_dir().display()
        )
    }

    /// A test plugin: a shell script in the network's bin dir.
    pub fn add_plugin(&self, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.bin_dir().join(name);
        std::fs::write(&path, script).expect("plugin");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

impl Drop for CniNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// Mount points at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Runs a command inside the network namespace at `netns` (with `nsenter`).
pub fn in_netns(netns: &str, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .arg("--")
        .args(args)
        .output()
        .expect("nsenter")
}
