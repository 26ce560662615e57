//! The floor: the same work without any CRI runtime. `runc create` + `start` of the bench's
//! container from a bundle on disk, and its stop as a runtime does it (`runc kill` TERM, wait for
//! the process to end, `runc delete`); CNI ADD and DEL (loopback, then the network) of the bench's
//! network on a fresh namespace, through berth's CNI invoker.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_net::cni::{Attachment, CallContext, Cni};
use berth_net::netns::{self, NamespaceRequest};
use serde_json::json;

use crate::runtime::{Res, timed};
use crate::samples::Samples;

#[derive(Debug, Default)]
pub struct Floor {
    pub runc_create_start: Samples,
    pub runc_stop_delete: Samples,
    pub cni_add: Samples,
    pub cni_del: Samples,
}

/// Runs runc with its stdio on /dev/null (a pipe would be held open by the container's process,
/// which inherits it); its complaints go to a log file read on failure.
fn runc(root: &Path, args: &[&str]) -> Res<()> {
    let log = root.with_extension("log");
    let status = Command::new("runc")
        .arg("--root")
        .arg(root)
        .arg("--log")
        .arg(&log)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("runc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let complaint = std::fs::read_to_string(&log).unwrap_or_default();
        Err(format!("runc {args:?}: {status}: {}", complaint.trim()))
    }
}

/// The container's init process, from `runc state`.
fn init_pid(root: &Path, id: &str) -> Res<u32> {
    let out = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["state", id])
        .output()
        .map_err(|e| format!("runc state: {e}"))?;
    let state: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("runc state: {e}"))?;
    state["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| format!("runc state of {id}: no pid"))
}

/// Whether the process runs (a zombie has ended).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(") ").next().map(|rest| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// A bundle of the bench's container: busybox as its rootfs, its command as the process.
fn bundle(dir: &Path, rootfs_tar: &[u8]) -> Res<PathBuf> {
    let bundle = dir.join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| format!("bundle: {e}"))?;
    tar::Archive::new(rootfs_tar)
        .unpack(&rootfs)
        .map_err(|e| format!("unpack busybox: {e}"))?;
    let out = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .output()
        .map_err(|e| format!("runc spec: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "runc spec: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| format!("config.json: {e}"))?;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("config.json: {e}"))?;
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]);
    spec["root"]["readonly"] = json!(false);
    let text = serde_json::to_vec_pretty(&spec).map_err(|e| format!("config.json: {e}"))?;
    std::fs::write(&path, text).map_err(|e| format!("config.json: {e}"))?;
    Ok(bundle)
}

/// What a floor sample needs, made once: a bundle, a runc root, the CNI network.
pub struct FloorRig {
    dir: tempfile::TempDir,
    bundle: String,
    root: PathBuf,
    cni: Cni,
    net: berth_net::cni::NetworkList,
    taken: usize,
    pub floor: Floor,
}

impl FloorRig {
    pub fn new(rootfs_tar: &[u8], cni_conf_dir: &Path, cni_bin_dirs: &[PathBuf]) -> Res<FloorRig> {
        let dir = tempfile::Builder::new()
            .prefix("berth-bench-floor-")
            .tempdir_in("/var/tmp")
            .map_err(|e| format!("floor dir: {e}"))?;
        let bundle = bundle(dir.path(), rootfs_tar)?
            .to_string_lossy()
            .into_owned();
        let root = dir.path().join("runc-root");
        let cni = Cni::new(cni_conf_dir, cni_bin_dirs);
        let net = cni.network().map_err(|e| e.to_string())?;
        Ok(FloorRig {
            dir,
            bundle,
            root,
            cni,
            net,
            taken: 0,
            floor: Floor::default(),
        })
    }

    /// One sample of each floor figure.
    pub async fn sample(&mut self) -> Res<()> {
        let i = self.taken;
        self.taken += 1;
        let (root, floor) = (&self.root, &mut self.floor);
        let id = format!("berth-bench-floor-{}-{i}", std::process::id());
        let ((), t) = timed(async {
            runc(root, &["create", "--bundle", &self.bundle, &id])?;
            runc(root, &["start", &id])
        })
        .await?;
        floor.runc_create_start.push(t);
        tokio::time::sleep(crate::runtime::TRAP_SET).await;
        let ((), t) = timed(async {
            let pid = init_pid(root, &id)?;
            runc(root, &["kill", &id, "TERM"])?;
            while alive(pid) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            runc(root, &["delete", &id])
        })
        .await?;
        floor.runc_stop_delete.push(t);

        let pinned = netns::create(NamespaceRequest {
            dir: self.dir.path().join(format!("ns-{i}")),
            net: true,
            ipc: false,
            uts: false,
            hostname: None,
            sysctls: Vec::new(),
        })
        .map_err(|e| e.to_string())?;
        let id = format!("floor{i}");
        let att = Attachment {
            context: CallContext {
                container_id: id.clone(),
                netns: pinned.net.clone().unwrap_or_default(),
                ifname: "eth0".into(),
                args: vec![
                    ("K8S_POD_NAMESPACE".into(), "bench".into()),
                    ("K8S_POD_NAME".into(), id),
                ],
            },
            port_mappings: Vec::new(),
            pod_cidrs: Vec::new(),
        };
        let (cni, net) = (&self.cni, &self.net);
        let (result, t) =
            timed(async { cni.add(net, &att).await.map_err(|e| e.to_string()) }).await?;
        floor.cni_add.push(t);
        let ((), t) = timed(async {
            cni.del(net, &att, Some(&result))
                .await
                .map_err(|e| e.to_string())
        })
        .await?;
        floor.cni_del.push(t);
        netns::remove(&pinned).map_err(|e| e.to_string())
    }
}
