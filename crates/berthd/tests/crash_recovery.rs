//! berthd killed at any step of any multi-step operation, then started again: nothing it
//! acknowledged is lost or in a false state, nothing half made survives, and once the pods are
//! removed the leak audit finds nothing. Each failpoint (see `failpoint.rs`) gets a run; the kill
//! loop kills at random moments of whole lifecycles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use berth_cri::v1 as cri;
use berth_testkit::{Compression, ImageBuilder, LayerBuilder, Node, PodConfig};

/// What the daemon acknowledged before it died.
#[derive(Debug, Default)]
struct Acked {
    pods: Vec<String>,
    containers: Vec<String>,
    removed_containers: Vec<String>,
    /// Pods whose removal was asked for (answered or not): their containers may be gone.
    removing_pods: Vec<String>,
    removed_pods: Vec<String>,
}

/// Drives `node` through the operation `point` lies in, up to the point where berthd dies.
async fn exercise(node: &Node, point: &str) -> Acked {
    let d = &node.daemon;
    let mut acked = Acked::default();
    let config = PodConfig::new("crash").shared_pid();
    if point.starts_with("image-") {
        let reference = format!("{}/crash-image:1", node.registry.host());
        // A layer of its own, for GC to reclaim once the image is removed.
        ImageBuilder::busybox()
            .layer(
                LayerBuilder::new().file("crash", b"only here").tar(),
                Compression::Gzip,
            )
            .push(&node.registry, "crash-image", &["1"])
            .await;
        let mut c = d.clients().await;
        if c.pull(&reference).await.is_ok() && point == "image-gc-after-rename" {
            let _ = c.remove_image(&reference).await;
        }
        return acked;
    }
    let Ok(pod) = d.run_pod(&config).await else {
        return acked;
    };
    acked.pods.push(pod.clone());
    let c = node
        .container("worker")
        .sh("while true; do echo tick; sleep 0.1; done");
    let Ok(id) = d.create_container(&pod, &config, &c).await else {
        return acked;
    };
    acked.containers.push(id.clone());
    if d.start_container(&id).await.is_err() {
        return acked;
    }
    if point.starts_with("container-remove") {
        if d.stop_container(&id, 0).await.is_ok() && d.remove_container(&id).await.is_ok() {
            acked.removed_containers.push(id);
        }
        return acked;
    }
    if point.starts_with("pod-stop") {
        let _ = d.stop_pod(&pod).await;
    }
    if point.starts_with("pod-remove") {
        acked.removing_pods.push(pod.clone());
        if d.remove_pod(&pod).await.is_ok() {
            acked.removed_pods.push(pod);
        }
    }
    acked
}

/// The invariants after a restart: what was acknowledged is there (or gone, if its removal was),
/// and every container's state is true.
async fn check_states(node: &Node, acked: &Acked) {
    let d = &node.daemon;
    for pod in &acked.pods {
        let listed = d.pod_status(pod).await;
        if acked.removed_pods.contains(pod) {
            assert_eq!(listed.unwrap_err().code(), tonic::Code::NotFound);
        } else {
            assert!(listed.is_ok(), "acknowledged pod {pod} is lost");
        }
    }
    for id in &acked.containers {
        let status = d.container_status(id).await;
        if acked.removed_containers.contains(id) || !acked.removing_pods.is_empty() {
            continue;
        }
        assert!(status.is_ok(), "acknowledged container {id} is lost");
    }
    for id in d.list_containers(cri::ContainerFilter::default()).await {
        let (status, info) = d.container_status(&id).await.unwrap();
        match cri::ContainerState::try_from(status.state) {
            Ok(cri::ContainerState::ContainerRunning) => {
                let pid = info["pid"].as_u64().unwrap();
                assert!(
                    std::path::Path::new(&format!("/proc/{pid}")).exists(),
                    "{id} is RUNNING but its process {pid} is gone"
                );
            }
            Ok(cri::ContainerState::ContainerExited) => {
                assert!(status.finished_at > 0, "{id} is EXITED with no finish time");
            }
            _ => {}
        }
    }
}

/// Removes every pod, as `crictl rmp -a -f` does.
async fn remove_all(node: &Node) {
    let d = &node.daemon;
    let pods = d
        .clients()
        .await
        .runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    for pod in pods {
        d.stop_pod(&pod.id).await.unwrap();
        d.remove_pod(&pod.id).await.unwrap();
    }
}

async fn crash_at(point: &str) {
    let mut node = Node::start().await;
    node.daemon.kill().await;
    node.daemon.failpoint = Some(point.to_owned());
    node.daemon.restart().await;
    let acked = exercise(&node, point).await;
    assert!(
        node.daemon.died_within(Duration::from_secs(30)).await,
        "berthd never reached {point}"
    );
    node.daemon.failpoint = None;
    node.daemon.restart().await;
    check_states(&node, &acked).await;
    remove_all(&node).await;
    let leaks = node.daemon.leaks(&node.net);
    assert!(leaks.is_empty(), "after a crash at {point}: {leaks:#?}");
}

macro_rules! failpoint_tests {
    ($($name:ident => $point:literal,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                crash_at($point).await;
            }
        )*
    };
}

failpoint_tests! {
    crash_after_the_pod_dir => "pod-run-after-dir",
    crash_after_the_pod_namespaces => "pod-run-after-namespaces",
    crash_before_cni_add => "pod-run-before-cni-add",
    crash_after_the_infra_process => "pod-run-after-infra",
    crash_after_the_pod_network => "pod-run-after-network",
    crash_before_the_pod_commit => "pod-run-before-commit",
    crash_after_the_container_dirs => "container-create-after-dirs",
    crash_after_the_container_mounts => "container-create-after-mounts",
    crash_after_runc_create => "container-create-after-runc-create",
    crash_before_the_start_commit => "container-start-before-commit",
    crash_after_stopping_the_pods_containers => "pod-stop-after-containers",
    crash_after_killing_the_infra_process => "pod-stop-after-infra",
    crash_after_cni_del => "pod-stop-after-cni-del",
    crash_after_removing_the_pods_containers => "pod-remove-after-containers",
    crash_before_the_pod_removal_commit => "pod-remove-before-commit",
    crash_after_runc_delete => "container-remove-after-runtime-delete",
    crash_before_the_container_removal_commit => "container-remove-before-commit",
    crash_before_the_pull_commit => "image-pull-before-commit",
    crash_in_image_gc => "image-gc-after-rename",
}

/// A number from the kernel's random pool below `bound`.
fn random_below(bound: u64) -> u64 {
    let mut bytes = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty());
    u64::from_le_bytes(bytes) % bound.max(1)
}

/// One pod's whole life, as kubelet drives it.
async fn lifecycle(node: &Node, n: usize) {
    let d = &node.daemon;
    let config = PodConfig::new(&format!("loop-{n}")).shared_pid();
    let Ok(pod) = d.run_pod(&config).await else {
        return;
    };
    let c = node.container("life").sh("echo started; sleep 1000");
    let Ok(id) = d.create_container(&pod, &config, &c).await else {
        return;
    };
    if d.start_container(&id).await.is_err() {
        return;
    }
    let _ = d.exec_sync(&id, &["true"], 10).await;
    let _ = d.stop_container(&id, 0).await;
    let _ = d.remove_container(&id).await;
    let _ = d.stop_pod(&pod).await;
    let _ = d.remove_pod(&pod).await;
}

#[tokio::test]
async fn a_kill_at_any_moment_of_a_lifecycle_leaks_nothing() {
    // BERTH_KILL_LOOP sets the number of crashes for a long local run.
    let rounds: usize = std::env::var("BERTH_KILL_LOOP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut node = Node::start().await;
    for n in 0..rounds {
        let delay = Duration::from_millis(random_below(400));
        tokio::select! {
            () = lifecycle(&node, n) => {}
            () = tokio::time::sleep(delay) => {}
        }
        node.daemon.kill().await;
        node.daemon.restart().await;
        check_states(&node, &Acked::default()).await;
        remove_all(&node).await;
        let leaks = node.daemon.leaks(&node.net);
        assert!(
            leaks.is_empty(),
            "round {n}, killed after {delay:?}: {leaks:#?}"
        );
    }
}
