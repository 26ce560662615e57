//! Container and pod cgroups as the kernel enforces them: on cgroup v1 (this VM) and v2 (every
//! modern node; `make test-node`'s guest), with the cgroupfs driver, and with the systemd driver
//! where systemd is init (ignored elsewhere: `make test-node` runs those in its guest, where
//! systemd makes the slices and scopes).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use berth_cri::v1 as cri;
use berth_testkit::cgroup::{self, Enforced};
use berth_testkit::{ImageBuilder, Node, PodConfig, TestDaemon};

/// The cgroup of container `id` (from its process, as the node sees it) and what the kernel
/// enforces there.
async fn container_cgroup(d: &TestDaemon, id: &str) -> (String, Enforced) {
    let pid = d.container_status(id).await.unwrap().1["pid"]
        .as_u64()
        .unwrap();
    let rel = cgroup::of_process(pid as u32).unwrap();
    let enforced = cgroup::enforced(&rel);
    (rel, enforced)
}

fn limits(f: impl FnOnce(&mut cri::LinuxContainerResources)) -> cri::LinuxContainerResources {
    let mut r = cri::LinuxContainerResources::default();
    f(&mut r);
    r
}

/// v1 shares as v2 reports them (runc's conversion to a weight).
fn shares(v: u64) -> u64 {
    if cgroup::is_v2() {
        1 + (v - 2) * 9999 / 262_142
    } else {
        v
    }
}

async fn update_container(d: &TestDaemon, id: &str, r: cri::LinuxContainerResources) {
    d.clients()
        .await
        .runtime
        .update_container_resources(cri::UpdateContainerResourcesRequest {
            container_id: id.into(),
            linux: Some(r),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn update_pod(d: &TestDaemon, id: &str, r: cri::LinuxContainerResources) {
    d.clients()
        .await
        .runtime
        .update_pod_sandbox_resources(cri::UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: id.into(),
            resources: Some(r),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Every limit the CRI can give a container, read back from the kernel, then changed.
async fn limits_are_enforced_and_follow_updates(node: &Node) {
    let d = &node.daemon;
    let (pod, config) = node.pod("limits").await;
    let c = node.container("limited").sh("sleep 100000").resources(|r| {
        r.cpu_shares = 512;
        r.cpu_quota = 50_000;
        r.cpu_period = 100_000;
        r.memory_limit_in_bytes = 256 << 20;
        r.memory_swap_limit_in_bytes = 384 << 20;
        r.cpuset_cpus = "0".into();
        r.hugepage_limits = vec![cri::HugepageLimit {
            page_size: "2MB".into(),
            limit: 0,
        }];
        if cgroup::is_v2() {
            r.unified = [
                ("memory.high".to_owned(), (200u64 << 20).to_string()),
                ("pids.max".to_owned(), "64".to_owned()),
            ]
            .into();
        }
    });
    let id = d.run_container(&pod, &config, &c).await;
    let (rel, enforced) = container_cgroup(d, &id).await;
    assert_eq!(
        enforced,
        Enforced {
            cpu_quota: Some(50_000),
            cpu_period: 100_000,
            cpu_shares_or_weight: shares(512),
            memory_max: Some(256 << 20),
            pids_max: enforced.pids_max,
            cpuset_cpus: "0".into(),
        }
    );
    // Where the node has a hugetlb controller (this VM mounts none: berth leaves the limit out).
    if cgroup::has_controller("hugetlb") {
        let hugetlb = cgroup::read(
            "hugetlb",
            &rel,
            "hugetlb.2MB.limit_in_bytes",
            "hugetlb.2MB.max",
        );
        assert_eq!(hugetlb.as_deref(), Some("0"));
    }
    // Memory and swap together (the CRI's figure): v2 keeps the swap part alone.
    let (swap_file, swap) = if cgroup::is_v2() {
        ("memory.swap.max", 128u64 << 20)
    } else {
        ("memory.memsw.limit_in_bytes", 384u64 << 20)
    };
    if cgroup::dir("memory", &rel).join(swap_file).exists() {
        let read = cgroup::read("memory", &rel, swap_file, swap_file);
        assert_eq!(read, Some(swap.to_string()), "{swap_file}");
    }
    if cgroup::is_v2() {
        assert_eq!(enforced.pids_max, Some(64), "unified pids.max");
        let high = cgroup::read("memory", &rel, "", "memory.high");
        assert_eq!(
            high,
            Some((200u64 << 20).to_string()),
            "unified memory.high"
        );
    }

    update_container(
        d,
        &id,
        limits(|r| {
            r.cpu_shares = 1024;
            r.cpu_quota = 20_000;
            r.cpu_period = 100_000;
            r.memory_limit_in_bytes = 128 << 20;
        }),
    )
    .await;
    let (_, after) = container_cgroup(d, &id).await;
    assert_eq!(
        (
            after.cpu_quota,
            after.cpu_shares_or_weight,
            after.memory_max
        ),
        (Some(20_000), shares(1024), Some(128 << 20))
    );
    let status = d.container_status(&id).await.unwrap().0;
    let reported = status.resources.unwrap().linux.unwrap();
    assert_eq!(
        (reported.cpu_quota, reported.memory_limit_in_bytes),
        (20_000, 128 << 20)
    );

    // The figures come from the same cgroup: memory in use, below the new limit; pressure and
    // I/O where the kernel keeps them (cgroup v2).
    let stats = d.container_stats(&id).await;
    let memory = stats.memory.unwrap();
    assert!(memory.working_set_bytes.unwrap().value > 0);
    assert!(memory.available_bytes.unwrap().value <= 128 << 20);
    if cgroup::is_v2() {
        assert!(stats.cpu.unwrap().psi.is_some(), "cpu pressure");
        assert!(memory.psi.is_some(), "memory pressure");
        assert!(stats.io.is_some(), "io usage");
    }
}

/// A pod's own cgroup holds its containers' and takes the pod's limits.
async fn pod_cgroups_hold_their_containers(node: &Node) {
    let d = &node.daemon;
    let (pod, config) = node.pod("pod-limits").await;
    let id = d
        .run_container(&pod, &config, &node.container("in-pod").sh("sleep 100000"))
        .await;
    let pod_cgroup = d.pod_status(&pod).await.unwrap().1["cgroupParent"]
        .as_str()
        .unwrap()
        .to_owned();
    let (rel, _) = container_cgroup(d, &id).await;
    assert!(
        rel.starts_with(&format!("{pod_cgroup}/")),
        "{rel} is below {pod_cgroup}"
    );
    update_pod(
        d,
        &pod,
        limits(|r| {
            r.cpu_quota = 30_000;
            r.cpu_period = 100_000;
            r.memory_limit_in_bytes = 512 << 20;
        }),
    )
    .await;
    let enforced = cgroup::enforced(&pod_cgroup);
    assert_eq!(
        (enforced.cpu_quota, enforced.memory_max),
        (Some(30_000), Some(512 << 20))
    );
    d.remove_pod(&pod).await.unwrap();
    assert!(
        !cgroup::dir("memory", &pod_cgroup).exists(),
        "{pod_cgroup} removed with the pod"
    );
}

#[tokio::test]
async fn cgroupfs_container_limits_are_enforced_and_follow_updates() {
    limits_are_enforced_and_follow_updates(&Node::start().await).await;
}

#[tokio::test]
async fn cgroupfs_pod_cgroups_hold_their_containers_and_take_pod_limits() {
    pod_cgroups_hold_their_containers(&Node::start().await).await;
}

/// A property of a systemd unit.
fn unit(name: &str, property: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", property, "--value", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn systemd_node() -> Node {
    Node::start_with(
        TestDaemon::builder().config("cgroup_driver = \"systemd\""),
        ImageBuilder::busybox(),
    )
    .await
}

#[tokio::test]
#[ignore = "needs systemd as init and cgroup v2: make test-node runs it"]
async fn systemd_container_limits_are_enforced_and_follow_updates() {
    limits_are_enforced_and_follow_updates(&systemd_node().await).await;
}

#[tokio::test]
#[ignore = "needs systemd as init and cgroup v2: make test-node runs it"]
async fn systemd_pod_cgroups_hold_their_containers_and_take_pod_limits() {
    pod_cgroups_hold_their_containers(&systemd_node().await).await;
}

/// Under the systemd driver the cgroups are systemd's units: berth's pod slice, runc's container
/// scope in it (or in the slice kubelet names), limits as their properties, all gone with the
/// pod.
#[tokio::test]
#[ignore = "needs systemd as init and cgroup v2: make test-node runs it"]
async fn the_systemd_driver_makes_slices_and_scopes_through_systemd() {
    let node = systemd_node().await;
    let d = &node.daemon;
    assert_eq!(d.cgroup_driver().await, cri::CgroupDriver::Systemd);

    let (pod, config) = node.pod("slices").await;
    let slice = format!("berth-pod{pod}.slice");
    assert_eq!(unit(&slice, "ActiveState"), "active");
    let c = node
        .container("scoped")
        .sh("sleep 100000")
        .resources(|r| r.memory_limit_in_bytes = 256 << 20);
    let id = d.run_container(&pod, &config, &c).await;
    let scope = format!("berth-{id}.scope");
    assert_eq!(unit(&scope, "Slice"), slice);
    assert_eq!(unit(&scope, "MemoryMax"), (256u64 << 20).to_string());
    let (rel, enforced) = container_cgroup(d, &id).await;
    assert_eq!(rel, format!("/berth.slice/{slice}/{scope}"));
    assert_eq!(enforced.memory_max, Some(256 << 20));

    update_pod(
        d,
        &pod,
        limits(|r| {
            r.cpu_quota = 50_000;
            r.cpu_period = 100_000;
            r.memory_limit_in_bytes = 512 << 20;
        }),
    )
    .await;
    assert_eq!(unit(&slice, "MemoryMax"), (512u64 << 20).to_string());
    assert_eq!(unit(&slice, "CPUQuotaPerSecUSec"), "500ms");
    let enforced = cgroup::enforced(&format!("/berth.slice/{slice}"));
    assert_eq!(
        (enforced.cpu_quota, enforced.memory_max),
        (Some(50_000), Some(512 << 20))
    );

    // A pod in the slice kubelet's systemd driver names.
    let uid = &config.metadata().uid;
    let kubelet_slice = format!("kubepods-besteffort-pod{uid}.slice");
    let mut kubelet_pod = PodConfig::new("kubelets");
    kubelet_pod.0.linux.as_mut().unwrap().cgroup_parent = kubelet_slice.clone();
    let (kpod, kconfig) = node.pod_with(kubelet_pod).await;
    let kid = d
        .run_container(&kpod, &kconfig, &node.container("k").sh("sleep 100000"))
        .await;
    let (krel, _) = container_cgroup(d, &kid).await;
    assert_eq!(
        krel,
        format!("/kubepods.slice/kubepods-besteffort.slice/{kubelet_slice}/berth-{kid}.scope")
    );

    d.remove_pod(&pod).await.unwrap();
    d.remove_pod(&kpod).await.unwrap();
    for gone in [&slice, &scope] {
        assert_ne!(
            unit(gone, "ActiveState"),
            "active",
            "{gone} after the removal"
        );
    }
}
