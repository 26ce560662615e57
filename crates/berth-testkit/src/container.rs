//! Container configs for tests, container calls on a daemon, and a ready-made node: a registry
//! with the busybox image, a CNI network and a daemon that has pulled the image.

use std::time::Duration;

use berth_cri::v1 as cri;

use crate::cni::CniNetwork;
use crate::daemon::{DaemonBuilder, TestDaemon};
use crate::image::ImageBuilder;
use crate::layer::{Compression, LayerBuilder};
use crate::pod::PodConfig;
use crate::registry::Registry;
use crate::wait::wait_until;

/// What kubelet masks for the Default proc mount (k8s.io/kubernetes pkg/securitycontext).
pub const KUBELET_MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// What kubelet makes read-only for the Default proc mount.
pub const KUBELET_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A ContainerConfig under construction.
#[derive(Debug, Clone)]
pub struct CtrConfig(pub cri::ContainerConfig);

impl CtrConfig {
    pub fn new(name: &str, image: &str) -> CtrConfig {
        CtrConfig(cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(crate::client::spec(image)),
            log_path: format!("{name}/0.log"),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..cri::ContainerConfig::default()
        })
    }

    /// `sh -c <script>`.
    pub fn sh(self, script: &str) -> Self {
        self.command(&["sh", "-c", script])
    }

    pub fn command(mut self, cmd: &[&str]) -> Self {
        self.0.command = cmd.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.0.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.0.envs.push(cri::KeyValue {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// An environment variable whose value may be any bytes (the CRI's are bytes).
    pub fn env_bytes(mut self, key: &str, value: &[u8]) -> Self {
        self.0.envs.push(cri::KeyValue {
            key: key.into(),
            value: value.to_vec(),
        });
        self
    }

    pub fn working_dir(mut self, dir: &str) -> Self {
        self.0.working_dir = dir.into();
        self
    }

    pub fn tty(mut self) -> Self {
        self.0.tty = true;
        self
    }

    pub fn stdin(mut self, once: bool) -> Self {
        self.0.stdin = true;
        self.0.stdin_once = once;
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.labels.insert(key.into(), value.into());
        self
    }

    pub fn mount(
        mut self,
        host: &str,
        container: &str,
        readonly: bool,
        propagation: cri::MountPropagation,
    ) -> Self {
        self.0.mounts.push(cri::Mount {
            container_path: container.into(),
            host_path: host.into(),
            readonly,
            propagation: propagation as i32,
            ..cri::Mount::default()
        });
        self
    }

    /// An image volume: `image` (a reference or ID), or the `sub_path` of it, at `container`.
    pub fn image_mount(mut self, image: &str, sub_path: &str, container: &str) -> Self {
        self.0.mounts.push(cri::Mount {
            container_path: container.into(),
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..cri::ImageSpec::default()
            }),
            image_sub_path: sub_path.into(),
            ..cri::Mount::default()
        });
        self
    }

    pub fn security(mut self, f: impl FnOnce(&mut cri::LinuxContainerSecurityContext)) -> Self {
        let linux = self.0.linux.get_or_insert_with(Default::default);
        f(linux.security_context.get_or_insert_with(Default::default));
        self
    }

    /// The masked and read-only paths kubelet sends for the Default proc mount.
    pub fn default_proc_mount(self) -> Self {
        let paths = |list: &[&str]| list.iter().map(|p| p.to_string()).collect();
        self.security(|s| {
            s.masked_paths = paths(&KUBELET_MASKED_PATHS);
            s.readonly_paths = paths(&KUBELET_READONLY_PATHS);
        })
    }

    pub fn resources(mut self, f: impl FnOnce(&mut cri::LinuxContainerResources)) -> Self {
        let linux = self.0.linux.get_or_insert_with(Default::default);
        f(linux.resources.get_or_insert_with(Default::default));
        self
    }
}

/// Container calls on a daemon.
impl TestDaemon {
    pub async fn create_container(
        &self,
        pod: &str,
        pod_config: &PodConfig,
        c: &CtrConfig,
    ) -> Result<String, tonic::Status> {
        self.clients()
            .await
            .runtime
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(c.0.clone()),
                sandbox_config: Some(pod_config.0.clone()),
            })
            .await
            .map(|r| r.into_inner().container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), tonic::Status> {
        self.clients()
            .await
            .runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .map(|_| ())
    }

    /// Create and start; panics on failure.
    pub async fn run_container(&self, pod: &str, pod_config: &PodConfig, c: &CtrConfig) -> String {
        let id = self
            .create_container(pod, pod_config, c)
            .await
            .expect("CreateContainer");
        self.start_container(&id).await.expect("StartContainer");
        id
    }

    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), tonic::Status> {
        self.clients()
            .await
            .runtime
            .stop_container(cri::StopContainerRequest {
                container_id: id.into(),
                timeout,
            })
            .await
            .map(|_| ())
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), tonic::Status> {
        self.clients()
            .await
            .runtime
            .remove_container(cri::RemoveContainerRequest {
                container_id: id.into(),
            })
            .await
            .map(|_| ())
    }

    /// ContainerStatus (verbose): the status and the verbose info.
    pub async fn container_status(
        &self,
        id: &str,
    ) -> Result<(cri::ContainerStatus, serde_json::Value), tonic::Status> {
        let r = self
            .clients()
            .await
            .runtime
            .container_status(cri::ContainerStatusRequest {
                container_id: id.into(),
                verbose: true,
            })
            .await?
            .into_inner();
        let info = serde_json::from_str(r.info.get("info").map(String::as_str).unwrap_or("null"))
            .expect("info JSON");
        Ok((r.status.expect("status"), info))
    }

    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<cri::ExecSyncResponse, tonic::Status> {
        self.clients()
            .await
            .runtime
            .exec_sync(cri::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout,
            })
            .await
            .map(|r| r.into_inner())
    }

    /// ContainerStats of a container that exists.
    pub async fn container_stats(&self, id: &str) -> cri::ContainerStats {
        self.clients()
            .await
            .runtime
            .container_stats(cri::ContainerStatsRequest {
                container_id: id.into(),
            })
            .await
            .expect("ContainerStats")
            .into_inner()
            .stats
            .expect("stats")
    }

    /// `sh -c <script>` in the container; its stdout (trimmed) when it exits 0, else panics.
    pub async fn sh(&self, id: &str, script: &str) -> String {
        let r = self
            .exec_sync(id, &["sh", "-c", script], 30)
            .await
            .expect("ExecSync");
        assert_eq!(
            r.exit_code,
            0,
            "`{script}` failed: {}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8_lossy(&r.stdout).trim().to_owned()
    }

    /// The URL an Exec RPC answers.
    pub async fn exec_url(
        &self,
        id: &str,
        cmd: &[&str],
        tty: bool,
        stdin: bool,
    ) -> Result<String, tonic::Status> {
        self.clients()
            .await
            .runtime
            .exec(cri::ExecRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                tty,
                stdin,
                stdout: true,
                stderr: !tty,
            })
            .await
            .map(|r| r.into_inner().url)
    }

    /// The URL an Attach RPC answers.
    pub async fn attach_url(
        &self,
        id: &str,
        tty: bool,
        stdin: bool,
    ) -> Result<String, tonic::Status> {
        self.clients()
            .await
            .runtime
            .attach(cri::AttachRequest {
                container_id: id.into(),
                tty,
                stdin,
                stdout: true,
                stderr: !tty,
            })
            .await
            .map(|r| r.into_inner().url)
    }

    /// The URL a PortForward RPC answers.
    pub async fn port_forward_url(
        &self,
        pod: &str,
        ports: &[i32],
    ) -> Result<String, tonic::Status> {
        self.clients()
            .await
            .runtime
            .port_forward(cri::PortForwardRequest {
                pod_sandbox_id: pod.into(),
                port: ports.to_vec(),
            })
            .await
            .map(|r| r.into_inner().url)
    }

    /// ListContainers' IDs.
    pub async fn list_containers(&self, filter: cri::ContainerFilter) -> Vec<String> {
        self.clients()
            .await
            .runtime
            .list_containers(cri::ListContainersRequest {
                filter: Some(filter),
            })
            .await
            .expect("ListContainers")
            .into_inner()
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    /// Waits for the container to reach `state`; its status then.
    pub async fn wait_container(
        &self,
        id: &str,
        state: cri::ContainerState,
    ) -> cri::ContainerStatus {
        wait_until(
            &format!("container {id} {state:?}"),
            Duration::from_secs(30),
            || async {
                let (s, _) = self.container_status(id).await.ok()?;
                (s.state == state as i32).then_some(s)
            },
        )
        .await
    }
}

/// The lines of a CRI log file: (stream, tag, text).
pub fn log_lines(path: &str) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (_time, stream, tag) = (parts.next()?, parts.next()?, parts.next()?);
            Some((
                stream.to_owned(),
                tag.to_owned(),
                parts.next().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

/// A node ready to run containers: a registry holding busybox, a CNI network, a daemon on both
/// that has pulled the image.
pub struct Node {
    pub daemon: TestDaemon,
    pub net: CniNetwork,
    pub registry: Registry,
    /// The busybox image reference.
    pub image: String,
}

impl Node {
    pub async fn start() -> Node {
        Self::start_with(TestDaemon::builder(), ImageBuilder::busybox()).await
    }

    /// With the daemon's config and the image as given.
    pub async fn start_with(builder: DaemonBuilder, image: ImageBuilder) -> Node {
        let registry = Registry::start().await;
        image.push(&registry, "busybox", &["1"]).await;
        let net = CniNetwork::bridge();
        let daemon = builder.config(&net.config()).start().await;
        let image = format!("{}/busybox:1", registry.host());
        daemon
            .clients()
            .await
            .pull(&image)
            .await
            .expect("pull busybox");
        Node {
            daemon,
            net,
            registry,
            image,
        }
    }

    /// A pod (with a log directory under the daemon's dir) and its config.
    pub async fn pod(&self, name: &str) -> (String, PodConfig) {
        self.pod_with(PodConfig::new(name)).await
    }

    pub async fn pod_with(&self, config: PodConfig) -> (String, PodConfig) {
        let logs = self.daemon.dir().join("logs").join(&config.metadata().uid);
        let config = config.log_directory(logs.to_str().expect("utf-8 path"));
        let id = self.daemon.run_pod(&config).await.expect("RunPodSandbox");
        (id, config)
    }

    /// Pushes another image to the node's registry and pulls it; its reference.
    pub async fn image(&self, image: ImageBuilder, repo: &str) -> String {
        image.push(&self.registry, repo, &["1"]).await;
        let reference = format!("{}/{repo}:1", self.registry.host());
        self.daemon
            .clients()
            .await
            .pull(&reference)
            .await
            .expect("pull");
        reference
    }

    /// Busybox with `/usr/local/bin/probe`, a setuid-root program that prints its real and
    /// effective uid (`uid=N euid=M`), pushed and pulled.
    pub async fn setuid_probe_image(&self) -> String {
        let probe = crate::workspace_bin("berth-probe");
        let layer = LayerBuilder::new()
            .binary(&probe, "usr/local/bin/probe", 0o4755)
            .tar();
        self.image(
            ImageBuilder::busybox().layer(layer, Compression::Gzip),
            "setuid-probe",
        )
        .await
    }

    /// A container config of the node's busybox image.
    pub fn container(&self, name: &str) -> CtrConfig {
        CtrConfig::new(name, &self.image)
    }
}
