//! Every filesystem path the daemon uses, derived from the root, the state dir and the socket alone,
//! so that several daemons can run side by side (as the tests do).

use std::path::PathBuf;

use crate::config::Config;

#[derive(Debug, Clone)]
pub struct Paths {
    /// Persistent state (metadata, images, container layers).
    pub root: PathBuf,
    /// Runtime state, lost at reboot by design.
    pub state_dir: PathBuf,
    /// The CRI gRPC socket.
    pub socket: PathBuf,
}

impl Paths {
    pub fn new(config: &Config) -> Paths {
        Paths {
            root: config.root.to_path_buf(),
            state_dir: config.state_dir.to_path_buf(),
            socket: config.socket.to_path_buf(),
        }
    }

    pub fn metadata_db(&self) -> PathBuf {
        self.root.join("metadata.redb")
    }

    /// The lock files a daemon holds while it runs: one per root, state dir and socket, so that a
    /// second daemon sharing any of them refuses to start.
    pub fn lock_files(&self) -> Vec<PathBuf> {
        let mut socket_lock = self.socket.clone().into_os_string();
        socket_lock.push(".lock");
        let mut locks = vec![
            self.root.join("berth.lock"),
            self.state_dir.join("berth.lock"),
            PathBuf::from(socket_lock),
        ];
        locks.sort();
        locks.dedup();
        locks
    }

    /// The state directory of one runtime handler's OCI runtime (`runc --root`).
    pub fn runtime_state(&self, handler: &str) -> PathBuf {
        self.state_dir.join("runtimes").join(handler)
    }

    /// Manifests, indexes, configs (and layer blobs when kept), by digest.
    pub fn content(&self) -> PathBuf {
        self.root.join("content")
    }

    /// Unpacked layers, one per chain ID.
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// `<root>/containers`: each container's rootfs, upper, work and bundle dirs.
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub fn container(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }

    /// The OCI bundle berthd writes for a container (config.json).
    pub fn container_bundle(&self, id: &str) -> PathBuf {
        self.container(id).join("bundle")
    }

    /// A container's exec plan (see `crate::exec`), in its state dir; named by its format, so
    /// that a berthd of another format builds its own.
    pub fn exec_plan(&self, id: &str) -> PathBuf {
        self.container_state(id)
            .join(format!("exec-plan.v{}.json", berth_exec::plan::VERSION))
    }

    /// A container's runtime state: its monitor's socket, exit record and pid files.
    pub fn container_state(&self, id: &str) -> PathBuf {
        self.state_dir.join("containers").join(id)
    }

    /// Where container state dirs are (recovery scans it).
    pub fn container_states(&self) -> PathBuf {
        self.state_dir.join("containers")
    }

    /// `<state_dir>/pods`: one directory per pod sandbox.
    pub fn pods(&self) -> PathBuf {
        self.state_dir.join("pods")
    }

    /// The AppArmor profiles berth writes before it loads them.
    pub fn apparmor_profiles(&self) -> PathBuf {
        self.state_dir.join("apparmor")
    }

    /// berth-env-exec, written out of berthd's binary when a container first needs it.
    pub fn env_exec(&self) -> PathBuf {
        self.state_dir.join("bin").join("berth-env-exec")
    }

    /// Namespace sets made ahead of time.
    pub fn spare_namespaces(&self) -> PathBuf {
        self.state_dir.join("spare-namespaces")
    }
}
