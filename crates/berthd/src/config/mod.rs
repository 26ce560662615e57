//! The daemon's configuration: embedded defaults, `/etc/berth/berth.toml`, then the drop-ins of
//! `berth.d/*.toml` in lexical order, then the command-line flags. Every value is checked when it is
//! read, so a bad file stops the daemon at start with an error naming the file, the key and what is
//! wanted, never later in the middle of an RPC.

mod load;
mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use load::{ConfigError, load};
pub use values::{AbsPath, CgroupDriver, Duration, LogLevel, RegistryEndpoint, Secret};

/// Where the daemon looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/berth.toml";

/// The effective configuration of one daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Persistent state: metadata, images, container layers.
    pub root: AbsPath,
    /// Runtime state (a tmpfs in production): pinned namespaces, monitor sockets, exit records.
    pub state_dir: AbsPath,
    /// The CRI gRPC socket.
    pub socket: AbsPath,
    pub log_level: LogLevel,
    pub cgroup_driver: CgroupDriver,
    /// The cgroup (cgroupfs driver) under which pods that name no parent get theirs.
    pub pod_cgroup_parent: String,
    /// The runtime handler used when a pod names none; must be a key of `runtimes`.
    pub default_runtime: String,
    /// How long in-flight RPCs may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Runtime handlers by name (the CRI `runtime_handler` / Kubernetes RuntimeClass handler).
    pub runtimes: BTreeMap<String, RuntimeHandler>,
    pub cni: CniConfig,
    pub streaming: StreamingConfig,
    pub metrics: MetricsConfig,
    pub images: ImagesConfig,
    /// Per registry host (`docker.io`, `registry.k8s.io`, `127.0.0.1:5000`): mirrors, TLS, credentials.
    pub registries: BTreeMap<String, RegistryConfig>,
}

/// One OCI runtime binary (runc, crun, …) and how to call it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeHandler {
    /// A binary name looked up on PATH, or an absolute path.
    pub path: String,
    /// The runtime's own state directory (`--root`); by default `<state_dir>/runtimes/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<AbsPath>,
    /// How long `create` may take before it is killed and its container deleted.
    #[serde(default = "default_create_timeout")]
    pub create_timeout: Duration,
    /// berth reads this runtime's state (runc's format) and itself starts the processes of
    /// ExecSync and Exec and deletes stopped containers, with no runtime process; false makes
    /// the runtime's own `exec` and `delete` do it (a runtime whose state is not runc's). By
    /// default true for a binary named `runc`, false for any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<bool>,
}

impl RuntimeHandler {
    /// `native` as set, else whether the binary is runc.
    pub fn is_native(&self) -> bool {
        self.native
            .unwrap_or_else(|| self.path.rsplit('/').next() == Some("runc"))
    }
}

fn default_create_timeout() -> Duration {
    Duration::from_secs(120)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CniConfig {
    /// Where network configurations (`*.conflist`, `*.conf`, `*.json`) are read from.
    pub conf_dir: AbsPath,
    /// Where plugin binaries are looked up, in order.
    pub bin_dirs: Vec<AbsPath>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    /// Address of the exec/attach/port-forward server; port 0 picks a free port at start.
    pub address: SocketAddr,
    /// PEM certificate chain and key: the server speaks TLS with both, plain HTTP with neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<AbsPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<AbsPath>,
    /// A session with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once before their sessions start (one more is closed at once).
    pub max_connections: usize,
    /// How long a client has from connecting to its session's start (TLS handshake, request,
    /// upgrade): kubelet's own streaming server gives 30 s to create the streams.
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where the Prometheus endpoint (`/metrics`) listens; none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Layers downloaded at once, across all pulls.
    pub max_concurrent_downloads: usize,
    /// A transfer that receives no bytes for this long is aborted.
    pub stall_timeout: Duration,
    /// Keep the compressed layer blobs in the content store after unpacking them.
    pub keep_layer_blobs: bool,
    /// The most bytes one layer may unpack to (its tar stream); less when the disk has less free.
    pub max_layer_size: u64,
    /// The most entries (files, dirs, links) one layer may have.
    pub max_layer_entries: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Endpoints tried in order before the registry host itself, e.g. `http://127.0.0.1:5000`.
    pub mirrors: Vec<RegistryEndpoint>,
    /// Talk to the host over plain HTTP (and accept any TLS certificate on its mirrors).
    pub insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// base64 of `username:password`, as in a docker config.json.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_token: Option<Secret>,
}

impl Default for Config {
    fn default() -> Self {
        let runtimes = BTreeMap::from([(
            "runc".to_owned(),
            RuntimeHandler {
                path: "runc".to_owned(),
                root: None,
                create_timeout: default_create_timeout(),
                native: None,
            },
        )]);
        Config {
            root: AbsPath::new_static("/var/lib/berth"),
            state_dir: AbsPath::new_static("/run/berth"),
            socket: AbsPath::new_static("/run/berth/berth.sock"),
            log_level: LogLevel::Info,
            cgroup_driver: CgroupDriver::Cgroupfs,
            default_runtime: "runc".to_owned(),
            pod_cgroup_parent: "/berth".to_owned(),
            shutdown_timeout: Duration::from_secs(10),
            runtimes,
            cni: CniConfig::default(),
            streaming: StreamingConfig::default(),
            metrics: MetricsConfig::default(),
            images: ImagesConfig::default(),
            registries: BTreeMap::new(),
        }
    }
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            conf_dir: AbsPath::new_static("/etc/cni/net.d"),
            bin_dirs: vec![
                AbsPath::new_static("/opt/cni/bin"),
                AbsPath::new_static("/usr/lib/cni"),
            ],
        }
    }
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            max_concurrent_downloads: 3,
            stall_timeout: Duration::from_secs(300),
            keep_layer_blobs: false,
            max_layer_size: 64 << 30,
            max_layer_entries: 1 << 20,
        }
    }
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_cert: None,
            tls_key: None,
            idle_timeout: Duration::from_secs(4 * 3600),
            max_connections: 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// The effective configuration as TOML, as `berthd config` prints it (secrets redacted).
    pub fn to_toml(&self) -> String {
        // Serializing plain data to TOML cannot fail: every map key is a string.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// The effective configuration as JSON, for `Status` with `verbose` (secrets redacted).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn default_handler(&self) -> Option<&RuntimeHandler> {
        self.runtimes.get(&self.default_runtime)
    }
}

/// What the command line overrides, applied after every file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub root: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub log_level: Option<String>,
}

/// Where the configuration is read from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The main file; it may be missing only when it is the default one.
    pub file: PathBuf,
    pub file_required: bool,
    /// The drop-in directory, `berth.d` beside the main file.
    pub drop_in_dir: PathBuf,
}

impl Sources {
    pub fn new(file: Option<&Path>) -> Sources {
        let (file, file_required) = match file {
            Some(f) => (f.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let drop_in_dir = file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("berth.d");
        Sources {
            file,
            file_required,
            drop_in_dir,
        }
    }
}
