//! One CRI runtime as the bench drives it: the calls kubelet makes, with the pod and container
//! configs kubelet would send for a one-container pod.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_cri::v1 as cri;
use berth_testkit::Clients;

pub type Res<T> = Result<T, String>;

/// How long the bench's container may take from StartContainer's answer to its shell's TERM
/// trap. A TERM before it finds PID 1 of a PID namespace without a handler, which ignores it, and
/// the stop would wait out its grace period instead of measuring an honoured TERM. Waited
/// untimed before each measured stop, the floor's included.
pub const TRAP_SET: Duration = Duration::from_millis(100);

/// How to find a runtime's processes for the memory figures.
#[derive(Debug, Clone)]
pub struct Processes {
    pub daemon_pid: u32,
    /// The per-pod helper's command name (`berth-monitor`, `containerd-shim`).
    pub helper_comm: String,
    /// A string in every helper's command line that tells this runtime's helpers from others'.
    pub helper_marker: String,
}

#[derive(Debug)]
pub struct Runtime {
    pub name: String,
    clients: Clients,
    pub processes: Option<Processes>,
    /// Pod log directories go below it.
    logs: PathBuf,
    serial: AtomicU64,
}

/// A pod and its config (CreateContainer sends the config again, as kubelet does).
#[derive(Debug, Clone)]
pub struct Pod {
    pub id: String,
    pub config: cri::PodSandboxConfig,
}

fn status(what: &str) -> impl FnOnce(tonic::Status) -> String + '_ {
    move |s| format!("{what}: {:?} {}", s.code(), s.message())
}

/// Runs `f`, returning its value and how long it took.
pub async fn timed<T>(f: impl Future<Output = Res<T>>) -> Res<(T, Duration)> {
    let started = Instant::now();
    let v = f.await?;
    Ok((v, started.elapsed()))
}

impl Runtime {
    pub async fn connect(
        name: &str,
        socket: &Path,
        logs: &Path,
        processes: Option<Processes>,
    ) -> Res<Runtime> {
        let clients = berth_testkit::connect(socket)
            .await
            .map_err(|e| format!("{name}: connect to {}: {e}", socket.display()))?;
        std::fs::create_dir_all(logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        Ok(Runtime {
            name: name.to_owned(),
            clients,
            processes,
            logs: logs.to_path_buf(),
            serial: AtomicU64::new(0),
        })
    }

    fn rt(
        &self,
    ) -> berth_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>
    {
        self.clients.runtime.clone()
    }

    fn pod_config(&self) -> cri::PodSandboxConfig {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let name = format!("bench-{n}");
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.clone(),
                uid: format!("{}-{n}-{}", self.name, std::process::id()),
                namespace: "bench".into(),
                attempt: 0,
            }),
            hostname: name.clone(),
            log_directory: self.logs.join(&name).to_string_lossy().into_owned(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub async fn run_pod(&self) -> Res<Pod> {
        let config = self.pod_config();
        let id = self
            .rt()
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .map_err(status("RunPodSandbox"))?
            .into_inner()
            .pod_sandbox_id;
        Ok(Pod { id, config })
    }

    /// A container that ends at SIGTERM, as a well-behaved workload does, once its shell has set
    /// the trap (see [`TRAP_SET`]).
    pub async fn create_container(&self, pod: &Pod, name: &str, image: &str) -> Res<String> {
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            command: vec![
                "sh".into(),
                "-c".into(),
                "trap 'exit 0' TERM; sleep 3600 & wait".into(),
            ],
            log_path: format!("{name}.log"),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        };
        Ok(self
            .rt()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.config.clone()),
            })
            .await
            .map_err(status("CreateContainer"))?
            .into_inner()
            .container_id)
    }

    pub async fn start_container(&self, id: &str) -> Res<()> {
        self.rt()
            .start_container(cri::StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .map_err(status("StartContainer"))?;
        Ok(())
    }

    pub async fn stop_container(&self, id: &str) -> Res<()> {
        self.rt()
            .stop_container(cri::StopContainerRequest {
                container_id: id.into(),
                timeout: 10,
            })
            .await
            .map_err(status("StopContainer"))?;
        Ok(())
    }

    pub async fn remove_container(&self, id: &str) -> Res<()> {
        self.rt()
            .remove_container(cri::RemoveContainerRequest {
                container_id: id.into(),
            })
            .await
            .map_err(status("RemoveContainer"))?;
        Ok(())
    }

    pub async fn stop_pod(&self, id: &str) -> Res<()> {
        self.rt()
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .map_err(status("StopPodSandbox"))?;
        Ok(())
    }

    pub async fn remove_pod(&self, id: &str) -> Res<()> {
        self.rt()
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .map_err(status("RemovePodSandbox"))?;
        Ok(())
    }

    /// A pod with `containers` running containers; its ID.
    pub async fn running_pod(&self, containers: usize, image: &str) -> Res<String> {
        let pod = self.run_pod().await?;
        for i in 0..containers {
            let id = self.create_container(&pod, &format!("c{i}"), image).await?;
            self.start_container(&id).await?;
        }
        Ok(pod.id)
    }

    /// StopPodSandbox then RemovePodSandbox, as kubelet ends a pod.
    pub async fn end_pod(&self, id: &str) -> Res<()> {
        self.stop_pod(id).await?;
        self.remove_pod(id).await
    }

    pub async fn list_pods(&self) -> Res<usize> {
        Ok(self
            .rt()
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await
            .map_err(status("ListPodSandbox"))?
            .into_inner()
            .items
            .len())
    }

    pub async fn list_containers(&self) -> Res<usize> {
        Ok(self
            .rt()
            .list_containers(cri::ListContainersRequest::default())
            .await
            .map_err(status("ListContainers"))?
            .into_inner()
            .containers
            .len())
    }

    pub async fn exec_sync(&self, id: &str, cmd: &[&str]) -> Res<i32> {
        Ok(self
            .rt()
            .exec_sync(cri::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
                timeout: 10,
            })
            .await
            .map_err(status("ExecSync"))?
            .into_inner()
            .exit_code)
    }

    pub async fn pull(&self, image: &str) -> Res<()> {
        self.clients
            .clone()
            .pull(image)
            .await
            .map_err(status(&format!("PullImage {image}")))?;
        Ok(())
    }

    pub async fn remove_image(&self, image: &str) -> Res<()> {
        self.clients
            .clone()
            .remove_image(image)
            .await
            .map_err(status(&format!("RemoveImage {image}")))
    }

    /// Ends every pod of this runtime (what a run that failed half-way left).
    pub async fn end_all_pods(&self) {
        let pods = self
            .rt()
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await
            .map(|r| r.into_inner().items)
            .unwrap_or_default();
        for pod in pods {
            let _ = self.end_pod(&pod.id).await;
        }
    }
}
