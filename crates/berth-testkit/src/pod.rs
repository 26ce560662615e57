//! Pod sandbox configs for tests.

use berth_cri::v1 as cri;

use crate::daemon::TestDaemon;

/// A PodSandboxConfig with a unique uid, a hostname and a log dir.
#[derive(Debug, Clone)]
pub struct PodConfig(pub cri::PodSandboxConfig);

impl PodConfig {
    pub fn new(name: &str) -> PodConfig {
        let mut uid = [0u8; 8];
        let _ = rustix::rand::getrandom(&mut uid, rustix::rand::GetRandomFlags::empty());
        let uid: String = uid.iter().map(|b| format!("{b:02x}")).collect();
        PodConfig(cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid,
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Container as i32,
                        ..cri::NamespaceOption::default()
                    }),
                    ..cri::LinuxSandboxSecurityContext::default()
                }),
                ..cri::LinuxPodSandboxConfig::default()
            }),
            ..cri::PodSandboxConfig::default()
        })
    }

    /// What critest and a hand-written crictl pod.json send: metadata and nothing else (no
    /// hostname, no log directory, no Linux options, so the pod's PID namespace mode is POD).
    pub fn minimal(name: &str) -> PodConfig {
        let mut full = Self::new(name);
        PodConfig(cri::PodSandboxConfig {
            metadata: full.0.metadata.take(),
            ..cri::PodSandboxConfig::default()
        })
    }

    fn ns(&mut self) -> &mut cri::NamespaceOption {
        self.0
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
            .namespace_options
            .get_or_insert_with(Default::default)
    }

    pub fn host_network(mut self) -> Self {
        self.ns().network = cri::NamespaceMode::Node as i32;
        self.0.hostname = String::new();
        self
    }

    /// A user namespace of the pod's own: `length` IDs from 0 are `host_id`… on the node.
    pub fn user_namespace(self, host_id: u32, length: u32) -> Self {
        let range = cri::IdMapping {
            container_id: 0,
            host_id,
            length,
        };
        self.userns_options(cri::UserNamespace {
            mode: cri::NamespaceMode::Pod as i32,
            uids: vec![range],
            gids: vec![range],
        })
    }

    pub fn userns_options(mut self, options: cri::UserNamespace) -> Self {
        self.ns().userns_options = Some(options);
        self
    }

    /// The pod's namespace options, as kubelet repeats them in its containers' configs.
    pub fn namespace_options(&self) -> Option<cri::NamespaceOption> {
        self.0
            .linux
            .as_ref()?
            .security_context
            .as_ref()?
            .namespace_options
            .clone()
    }

    /// A privileged pod (the only kind whose containers may be privileged).
    pub fn privileged(mut self) -> Self {
        self.0
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
            .privileged = true;
        self
    }

    pub fn shared_pid(mut self) -> Self {
        self.ns().pid = cri::NamespaceMode::Pod as i32;
        self
    }

    pub fn port(mut self, host: u16, container: u16) -> Self {
        self.0.port_mappings.push(cri::PortMapping {
            protocol: cri::Protocol::Tcp as i32,
            container_port: container.into(),
            host_port: host.into(),
            host_ip: String::new(),
        });
        self
    }

    pub fn dns(mut self, servers: &[&str], searches: &[&str], options: &[&str]) -> Self {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        self.0.dns_config = Some(cri::DnsConfig {
            servers: owned(servers),
            searches: owned(searches),
            options: owned(options),
        });
        self
    }

    pub fn sysctl(mut self, key: &str, value: &str) -> Self {
        self.0
            .linux
            .get_or_insert_with(Default::default)
            .sysctls
            .insert(key.into(), value.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.labels.insert(key.into(), value.into());
        self
    }

    pub fn log_directory(mut self, dir: &str) -> Self {
        self.0.log_directory = dir.into();
        self
    }

    pub fn metadata(&self) -> &cri::PodSandboxMetadata {
        self.0.metadata.as_ref().expect("metadata")
    }
}

/// Pod calls on a daemon.
impl TestDaemon {
    pub async fn run_pod(&self, config: &PodConfig) -> Result<String, tonic::Status> {
        self.clients()
            .await
            .runtime
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.0.clone()),
                runtime_handler: String::new(),
            })
            .await
            .map(|r| r.into_inner().pod_sandbox_id)
    }

    /// PodSandboxStatus (verbose): the status and the verbose info.
    pub async fn pod_status(
        &self,
        id: &str,
    ) -> Result<(cri::PodSandboxStatus, serde_json::Value), tonic::Status> {
        let r = self
            .clients()
            .await
            .runtime
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: true,
            })
            .await?
            .into_inner();
        let info = serde_json::from_str(r.info.get("info").map(String::as_str).unwrap_or("null"))
            .expect("info JSON");
        Ok((r.status.expect("status"), info))
    }

    /// PodSandboxStats of a pod that exists.
    pub async fn pod_stats(&self, id: &str) -> cri::PodSandboxStats {
        self.clients()
            .await
            .runtime
            .pod_sandbox_stats(cri::PodSandboxStatsRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .expect("PodSandboxStats")
            .into_inner()
            .stats
            .expect("stats")
    }

    pub async fn stop_pod(&self, id: &str) -> Result<(), tonic::Status> {
        self.clients()
            .await
            .runtime
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .map(|_| ())
    }

    pub async fn remove_pod(&self, id: &str) -> Result<(), tonic::Status> {
        self.clients()
            .await
            .runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .map(|_| ())
    }

    pub async fn list_pods(&self, filter: Option<cri::PodSandboxFilter>) -> Vec<cri::PodSandbox> {
        self.clients()
            .await
            .runtime
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter })
            .await
            .expect("ListPodSandbox")
            .into_inner()
            .items
    }
}
