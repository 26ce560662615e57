//! The node's own berth, as its Debian package installs it and systemd runs it: a `Type=notify`
//! service whose restarts, stops and upgrades leave every container, monitor and infra process
//! running and every record in place. These change the node's service and need systemd as init,
//! so they are ignored by default; `make test-node` runs them in its guest with `--ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_cri::v1 as cri;
use berth_testkit::{Clients, CtrConfig, ImageBuilder, PodConfig, Registry, connect, wait_until};

const SOCKET: &str = "/run/berth/berth.sock";
const UNIT: &str = "berth.service";

fn systemctl(args: &[&str]) -> String {
    let out = Command::new("systemctl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "systemctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A property of berth.service (`systemctl show -p NAME --value`).
fn unit(property: &str) -> String {
    systemctl(&["show", "-p", property, "--value", UNIT])
}

/// Clients of the node's berth once it answers every call (recovery done).
async fn ready() -> Clients {
    wait_until("the node's berth", Duration::from_secs(120), || async {
        let mut clients = connect(Path::new(SOCKET)).await.ok()?;
        let listed = clients
            .image
            .list_images(cri::ListImagesRequest::default())
            .await;
        listed.is_ok().then_some(clients)
    })
    .await
}

/// The node's berth with a CNI network, a registry holding busybox, and that image pulled.
struct NodeBerth {
    clients: Clients,
    image: String,
    _registry: Registry,
}

impl NodeBerth {
    async fn start() -> NodeBerth {
        let conf = Path::new("/etc/cni/net.d/10-berth-bridge.conflist");
        if !conf.exists() {
            std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
            std::fs::copy(
                "/usr/share/doc/berth/examples/10-berth-bridge.conflist",
                conf,
            )
            .unwrap();
        }
        let registry = Registry::start().await;
        ImageBuilder::busybox()
            .push(&registry, "busybox", &["1"])
            .await;
        let image = format!("{}/busybox:1", registry.host());
        let mut clients = ready().await;
        clients.pull(&image).await.unwrap();
        // The network is ready once berth has read the config.
        wait_until("berth's network", Duration::from_secs(30), || {
            let mut c = clients.clone();
            async move {
                let status = c
                    .runtime
                    .status(cri::StatusRequest { verbose: false })
                    .await
                    .ok()?
                    .into_inner();
                status
                    .status?
                    .conditions
                    .iter()
                    .all(|c| c.status)
                    .then_some(())
            }
        })
        .await;
        NodeBerth {
            clients,
            image,
            _registry: registry,
        }
    }

    /// A pod (its PID namespace shared, so it has an infra process) with a running container;
    /// (pod, container).
    async fn run(&mut self, name: &str) -> (String, String) {
        let pod = PodConfig::new(name).shared_pid();
        let pod_id = self
            .clients
            .runtime
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(pod.0.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id;
        let c = CtrConfig::new("sleeper", &self.image).sh("sleep 100000");
        let id = self
            .clients
            .runtime
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(c.0),
                sandbox_config: Some(pod.0),
            })
            .await
            .unwrap()
            .into_inner()
            .container_id;
        self.clients
            .runtime
            .start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap();
        (pod_id, id)
    }

    async fn remove(&mut self, pod: &str) {
        self.clients
            .runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod.into(),
            })
            .await
            .unwrap();
    }
}

/// What must outlive the daemon: a container's process and its monitor's, by PID, and that the
/// container is RUNNING by its record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Running {
    id: String,
    pid: u32,
    monitor: u32,
}

async fn running(clients: &mut Clients, id: &str) -> Running {
    let r = clients
        .runtime
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let status = r.status.unwrap();
    assert_eq!(
        status.state,
        cri::ContainerState::ContainerRunning as i32,
        "{id}"
    );
    let info: serde_json::Value = serde_json::from_str(&r.info["info"]).unwrap();
    let pid = |key: &str| info[key].as_u64().unwrap() as u32;
    let found = Running {
        id: id.to_owned(),
        pid: pid("pid"),
        monitor: pid("monitorPid"),
    };
    for p in [found.pid, found.monitor] {
        assert!(Path::new(&format!("/proc/{p}")).exists(), "{found:?}");
    }
    found
}

async fn exec_true(clients: &mut Clients, id: &str) -> Result<i32, tonic::Status> {
    clients
        .runtime
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["true".into()],
            timeout: 30,
        })
        .await
        .map(|r| r.into_inner().exit_code)
}

#[tokio::test]
#[ignore = "changes the node's berth.service (systemd as init): make test-node runs it"]
async fn restarts_and_stops_of_the_service_leave_every_container_running() {
    let mut node = NodeBerth::start().await;
    assert_eq!(unit("Type"), "notify");
    assert_eq!(unit("ActiveState"), "active");
    assert_eq!(
        unit("StatusText"),
        "serving CRI v1",
        "READY came from berthd"
    );
    let mut pods = Vec::new();
    let mut before = Vec::new();
    for n in 0..3 {
        let (pod, id) = node.run(&format!("survivor-{n}")).await;
        before.push(running(&mut node.clients, &id).await);
        pods.push(pod);
    }

    // Kubelet's traffic goes on while the service restarts: relists, exec probes, pods coming
    // and going. Calls fail while no daemon listens; the ones after must all work.
    let load = {
        let probed = before[0].id.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(40);
            let (mut ok, mut failed, mut n) = (0u32, 0u32, 0u32);
            while Instant::now() < deadline {
                n += 1;
                let round = async {
                    let mut c = connect(Path::new(SOCKET)).await.ok()?;
                    c.runtime
                        .list_containers(cri::ListContainersRequest::default())
                        .await
                        .ok()?;
                    (exec_true(&mut c, &probed).await.ok()? == 0).then_some(())?;
                    let pod = PodConfig::new(&format!("churn-{n}"));
                    let id = c
                        .runtime
                        .run_pod_sandbox(cri::RunPodSandboxRequest {
                            config: Some(pod.0),
                            runtime_handler: String::new(),
                        })
                        .await
                        .ok()?
                        .into_inner()
                        .pod_sandbox_id;
                    c.runtime
                        .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                        .await
                        .ok()
                };
                match round.await {
                    Some(_) => ok += 1,
                    None => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let main_before = unit("MainPID");
        systemctl(&["restart", UNIT]);
        assert_ne!(unit("MainPID"), main_before, "a new berthd");
        assert_eq!(unit("ActiveState"), "active");
    }
    let (ok, failed) = load.await.unwrap();
    assert!(ok > 0, "no round of load got through ({failed} failed)");
    let mut clients = ready().await;
    for was in &before {
        assert_eq!(
            &running(&mut clients, &was.id).await,
            was,
            "the same processes"
        );
        assert_eq!(exec_true(&mut clients, &was.id).await.unwrap(), 0);
    }
    // A stop signals berthd alone: containers and their monitors stay, and the next daemon
    // finds them.
    systemctl(&["stop", UNIT]);
    for was in &before {
        for p in [was.pid, was.monitor] {
            assert!(
                Path::new(&format!("/proc/{p}")).exists(),
                "{was:?} after the stop"
            );
        }
    }
    systemctl(&["start", UNIT]);
    let mut clients = ready().await;
    for was in &before {
        assert_eq!(&running(&mut clients, &was.id).await, was);
    }
    node.clients = clients;
    for pod in &pods {
        node.remove(pod).await;
    }
}

#[tokio::test]
#[ignore = "changes the node's berth.service (systemd as init): make test-node runs it"]
async fn an_upgrade_of_the_package_keeps_every_container_and_record() {
    let upgrade = std::env::var("BERTH_NODE_UPGRADE_DEB")
        .unwrap_or_else(|_| "/payload/debs/berth_0.1.0+node2_amd64.deb".into());
    let mut node = NodeBerth::start().await;
    let (pod, id) = node.run("upgraded").await;
    let was = running(&mut node.clients, &id).await;
    let main_before = unit("MainPID");
    let out = Command::new("dpkg")
        .args(["-i", &upgrade])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg -i {upgrade}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "berth"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout), "0.1.0+node2");
    let mut clients = ready().await;
    assert_ne!(unit("MainPID"), main_before, "the upgrade restarted berthd");
    assert_eq!(running(&mut clients, &id).await, was);
    assert_eq!(exec_true(&mut clients, &id).await.unwrap(), 0);
    node.clients = clients;
    node.remove(&pod).await;
}
