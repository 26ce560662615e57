//! Pod sandboxes as kubelet drives them: what RunPodSandbox sets up inside the pod, names,
//! handlers, filters, and the idempotence of StopPodSandbox and RemovePodSandbox.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Command;

use berth_cri::v1 as cri;
use berth_testkit::{CniNetwork, PodConfig, TestDaemon};

async fn daemon_on(net: &CniNetwork) -> TestDaemon {
    TestDaemon::builder().config(&net.config()).start().await
}

fn nsenter(flag: &str, path: &str, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("{flag}={path}"))
        .arg("--")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn hostname_hosts_and_resolv_conf_are_as_requested() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let logs = d.dir().join("logs/default_web");
    let config = PodConfig::new("web-0")
        .dns(
            &["10.96.0.10"],
            &["default.svc.cluster.local"],
            &["ndots:5"],
        )
        .log_directory(logs.to_str().unwrap());
    let id = d.run_pod(&config).await.unwrap();
    let (status, _) = d.pod_status(&id).await.unwrap();
    let ip = status.network.unwrap().ip;
    let dir = d.state_dir.join("pods").join(&id);
    assert_eq!(
        std::fs::read_to_string(dir.join("hostname")).unwrap(),
        "web-0\n"
    );
    assert!(
        std::fs::read_to_string(dir.join("hosts"))
            .unwrap()
            .contains(&format!("{ip}\tweb-0\n"))
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("resolv.conf")).unwrap(),
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local\noptions ndots:5\n"
    );
    let uts = dir.join("ns/uts");
    assert_eq!(
        nsenter("--uts", uts.to_str().unwrap(), &["hostname"]),
        "web-0"
    );
    assert!(logs.is_dir(), "the log directory is created");

    let plain = d.run_pod(&PodConfig::new("plain")).await.unwrap();
    let resolv = std::fs::read(d.state_dir.join("pods").join(&plain).join("resolv.conf")).unwrap();
    assert_eq!(
        resolv,
        std::fs::read("/etc/resolv.conf").unwrap(),
        "no DNS config: the node's"
    );
}

#[tokio::test]
async fn a_pod_that_names_no_hostname_gets_the_nodes() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    // Metadata alone (the first pod takes a spare namespace set), and with a sysctl (the pod's
    // namespaces are then made for it): both ways get the node's hostname.
    for config in [
        PodConfig::minimal("bare"),
        PodConfig::minimal("bare-tuned").sysctl("net.ipv4.ip_unprivileged_port_start", "80"),
    ] {
        let id = d
            .run_pod(&config)
            .await
            .expect("a pod without a hostname runs");
        let dir = d.state_dir.join("pods").join(&id);
        let uts = dir.join("ns/uts");
        assert_eq!(nsenter("--uts", uts.to_str().unwrap(), &["hostname"]), node);
        assert_eq!(
            std::fs::read_to_string(dir.join("hostname")).unwrap(),
            format!("{node}\n")
        );
        let (status, _) = d.pod_status(&id).await.unwrap();
        let ip = status.network.unwrap().ip;
        assert!(
            std::fs::read_to_string(dir.join("hosts"))
                .unwrap()
                .contains(&format!("{ip}\t{node}\n"))
        );
    }
}

#[tokio::test]
async fn namespaced_sysctls_are_set_and_others_refused() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let id = d
        .run_pod(
            &PodConfig::new("tuned")
                .sysctl("net.ipv4.ip_unprivileged_port_start", "53")
                .sysctl("kernel.shmmni", "1234"),
        )
        .await
        .unwrap();
    let ns = d.state_dir.join("pods").join(&id).join("ns");
    let net_ns = ns.join("net");
    let ipc_ns = ns.join("ipc");
    assert_eq!(
        nsenter(
            "--net",
            net_ns.to_str().unwrap(),
            &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]
        ),
        "53"
    );
    assert_eq!(
        nsenter(
            "--ipc",
            ipc_ns.to_str().unwrap(),
            &["cat", "/proc/sys/kernel/shmmni"]
        ),
        "1234"
    );
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni")
            .unwrap()
            .trim(),
        "1234"
    );

    for (key, value) in [("kernel.panic", "1"), ("vm.swappiness", "1")] {
        let err = d
            .run_pod(&PodConfig::new("node-wide").sysctl(key, value))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{key}: {err:?}");
    }
    let err = d
        .run_pod(
            &PodConfig::new("hostnet-sysctl")
                .host_network()
                .sysctl("net.core.somaxconn", "100"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn a_shared_pid_namespace_has_a_harmless_infra_process_as_pid_1() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let id = d
        .run_pod(&PodConfig::new("shared").shared_pid())
        .await
        .unwrap();
    let (_, info) = d.pod_status(&id).await.unwrap();
    let pid = info["infraPid"].as_u64().expect("infra pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap()
    };
    assert!(
        field("NSpid:").ends_with("\t1") || field("NSpid:").ends_with(" 1"),
        "{}",
        field("NSpid:")
    );
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("CapBnd:"), "0000000000000000");
    assert!(field("Uid:").starts_with("65534"));
    let root: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/root"))
        .unwrap()
        .collect();
    assert!(root.is_empty(), "the infra process sees no host files");
    use std::os::unix::fs::MetadataExt;
    let infra_net = std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino();
    let pod_net = std::fs::metadata(d.state_dir.join("pods").join(&id).join("ns/net"))
        .unwrap()
        .ino();
    assert_eq!(
        infra_net, pod_net,
        "the infra process is in the pod's network namespace"
    );

    d.stop_pod(&id).await.unwrap();
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "stop kills the infra process: {state}"
    );

    let plain = d.run_pod(&PodConfig::new("own-pids")).await.unwrap();
    assert!(d.pod_status(&plain).await.unwrap().1["infraPid"].is_null());
}

#[tokio::test]
async fn stop_and_remove_are_idempotent() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let id = d.run_pod(&PodConfig::new("twice")).await.unwrap();
    for _ in 0..2 {
        d.stop_pod(&id).await.unwrap();
    }
    let (status, _) = d.pod_status(&id).await.unwrap();
    assert_eq!(status.state, cri::PodSandboxState::SandboxNotready as i32);
    for _ in 0..2 {
        d.remove_pod(&id).await.unwrap();
    }
    let unknown = "f".repeat(64);
    d.stop_pod(&unknown).await.unwrap();
    d.remove_pod(&unknown).await.unwrap();
    assert_eq!(
        d.pod_status(&id).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    assert!(!d.state_dir.join("pods").join(&id).exists());
}

#[tokio::test]
async fn update_pod_sandbox_resources_sizes_the_pods_cgroup() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let id = d.run_pod(&PodConfig::new("resize")).await.unwrap();
    let (_, info) = d.pod_status(&id).await.unwrap();
    let cgroup = info["cgroupParent"].as_str().unwrap().to_owned();
    let mut c = d.clients().await;
    c.runtime
        .update_pod_sandbox_resources(cri::UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: id.clone(),
            resources: Some(cri::LinuxContainerResources {
                cpu_quota: 30_000,
                cpu_period: 100_000,
                memory_limit_in_bytes: 64 << 20,
                ..cri::LinuxContainerResources::default()
            }),
            ..cri::UpdatePodSandboxResourcesRequest::default()
        })
        .await
        .unwrap();
    let read = |path: String| {
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim()
            .to_owned()
    };
    let memory = (64u64 << 20).to_string();
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(
            read(format!("/sys/fs/cgroup{cgroup}/cpu.max")),
            "30000 100000"
        );
        assert_eq!(read(format!("/sys/fs/cgroup{cgroup}/memory.max")), memory);
    } else {
        let v1 = |hierarchy: &str, file: &str| format!("/sys/fs/cgroup/{hierarchy}{cgroup}/{file}");
        assert_eq!(read(v1("cpu", "cpu.cfs_quota_us")), "30000");
        assert_eq!(read(v1("memory", "memory.limit_in_bytes")), memory);
    }
    let unknown = c
        .runtime
        .update_pod_sandbox_resources(cri::UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: "f".repeat(64),
            ..cri::UpdatePodSandboxResourcesRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn a_name_is_reserved_until_its_pod_is_removed_even_across_restarts() {
    let net = CniNetwork::bridge();
    let mut d = daemon_on(&net).await;
    let config = PodConfig::new("unique");
    let id = d.run_pod(&config).await.unwrap();
    let err = d.run_pod(&config).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&id), "{err:?}");
    d.kill().await;
    d.restart().await;
    assert_eq!(
        d.run_pod(&config).await.unwrap_err().code(),
        tonic::Code::AlreadyExists
    );
    d.remove_pod(&id).await.unwrap();
    let again = d.run_pod(&config).await.unwrap();
    assert_ne!(again, id);
}

#[tokio::test]
async fn unknown_runtime_handlers_and_bad_configs_are_invalid_arguments() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let mut c = d.clients().await;
    let err = c
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(PodConfig::new("kata").0),
            runtime_handler: "kata".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("kata"), "{err:?}");
    let err = c
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let handled = c
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(PodConfig::new("runc").0),
            runtime_handler: "runc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let (status, _) = d.pod_status(&handled.pod_sandbox_id).await.unwrap();
    assert_eq!(status.runtime_handler, "runc");
}

#[tokio::test]
async fn list_filters_by_id_prefix_state_and_labels() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let a = d
        .run_pod(
            &PodConfig::new("a")
                .label("app", "web")
                .label("tier", "front"),
        )
        .await
        .unwrap();
    let b = d
        .run_pod(&PodConfig::new("b").label("app", "web"))
        .await
        .unwrap();
    let c = d
        .run_pod(&PodConfig::new("c").label("app", "db"))
        .await
        .unwrap();
    d.stop_pod(&c).await.unwrap();
    let ids = |items: Vec<cri::PodSandbox>| {
        let mut ids: Vec<String> = items.into_iter().map(|p| p.id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(ids(d.list_pods(None).await).len(), 3);
    let by_label = |labels: &[(&str, &str)]| cri::PodSandboxFilter {
        label_selector: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        ..cri::PodSandboxFilter::default()
    };
    assert_eq!(
        ids(d.list_pods(Some(by_label(&[("app", "web")]))).await),
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        ids(d
            .list_pods(Some(by_label(&[("app", "web"), ("tier", "front")])))
            .await),
        std::slice::from_ref(&a)
    );
    let ready = cri::PodSandboxFilter {
        state: Some(cri::PodSandboxStateValue {
            state: cri::PodSandboxState::SandboxNotready as i32,
        }),
        ..cri::PodSandboxFilter::default()
    };
    assert_eq!(
        ids(d.list_pods(Some(ready)).await),
        std::slice::from_ref(&c)
    );
    let by_prefix = cri::PodSandboxFilter {
        id: b[..12].to_owned(),
        ..cri::PodSandboxFilter::default()
    };
    assert_eq!(
        ids(d.list_pods(Some(by_prefix)).await),
        std::slice::from_ref(&b)
    );
    // Status by prefix too, as crictl users type it.
    assert_eq!(d.pod_status(&a[..10]).await.unwrap().0.id, a);
}

#[tokio::test]
async fn a_retry_after_a_deadline_gets_the_pod_the_first_call_made() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let config = PodConfig::new("impatient");
    let mut c = d.clients().await;
    let mut req = tonic::Request::new(cri::RunPodSandboxRequest {
        config: Some(config.0.clone()),
        runtime_handler: String::new(),
    });
    req.set_timeout(std::time::Duration::from_millis(5));
    let err = c.runtime.run_pod_sandbox(req).await.unwrap_err();
    // Whichever timer fires first: the server's (DeadlineExceeded) or the client's own.
    assert!(
        matches!(
            err.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{err:?}"
    );
    let id = berth_testkit::wait_until(
        "the retry to get the pod",
        std::time::Duration::from_secs(20),
        || async {
            match d.run_pod(&config).await {
                Ok(id) => Some(id),
                Err(e) if e.code() == tonic::Code::AlreadyExists => None,
                Err(e) => panic!("{e:?}"),
            }
        },
    )
    .await;
    let pods = d.list_pods(None).await;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].id, id);
}

#[tokio::test]
async fn pods_take_namespaces_made_ahead_and_a_restart_keeps_only_what_pods_own() {
    let net = CniNetwork::bridge();
    let mut d = daemon_on(&net).await;
    let spares = d.state_dir.join("spare-namespaces");
    // Three pinned namespaces a set: four spare sets, plus one per pod that took one.
    let sets = |pods: usize| {
        let spares = spares.clone();
        move || {
            let spares = spares.clone();
            async move { (berth_testkit::mounts_under(&spares).len() == 3 * (4 + pods)).then_some(()) }
        }
    };
    let a_while = std::time::Duration::from_secs(10);
    berth_testkit::wait_until("four spare sets", a_while, sets(0)).await;
    let mut pods = Vec::new();
    let mut net_inodes = Vec::new();
    // With sysctls (set before CNI ADD) and without (the hostname is set beside it).
    for (name, port) in [("first", Some("1000")), ("second", None)] {
        let config = match port {
            Some(port) => PodConfig::new(name).sysctl("net.ipv4.ip_unprivileged_port_start", port),
            None => PodConfig::new(name),
        };
        let id = d.run_pod(&config).await.unwrap();
        let ns = d.state_dir.join("pods").join(&id).join("ns");
        let path = |kind: &str| ns.join(kind).to_string_lossy().into_owned();
        assert_eq!(nsenter("--uts", &path("uts"), &["hostname"]), name);
        let sysctl = ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"];
        let node_default =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
        assert_eq!(
            nsenter("--net", &path("net"), &sysctl),
            port.unwrap_or(node_default.trim())
        );
        net_inodes.push(nsenter(
            "--net",
            &path("net"),
            &["readlink", "/proc/self/ns/net"],
        ));
        pods.push(id);
    }
    assert_ne!(
        net_inodes[0], net_inodes[1],
        "each pod has its own network namespace"
    );
    berth_testkit::wait_until("the spares topped up", a_while, sets(2)).await;

    d.kill().await;
    d.restart().await;
    berth_testkit::wait_until("the pods' sets kept, four new spares", a_while, sets(2)).await;
    let ns = d.state_dir.join("pods").join(&pods[0]).join("ns/uts");
    assert_eq!(
        nsenter("--uts", ns.to_str().unwrap(), &["hostname"]),
        "first"
    );
    for id in &pods {
        d.remove_pod(id).await.unwrap();
    }
    berth_testkit::wait_until("only the spares left", a_while, sets(0)).await;
}

#[tokio::test]
async fn a_record_that_cannot_be_decoded_is_moved_aside_and_the_daemon_starts() {
    let net = CniNetwork::bridge();
    let mut d = daemon_on(&net).await;
    let damaged_config = PodConfig::new("damaged");
    let damaged = d.run_pod(&damaged_config).await.unwrap();
    let intact = d.run_pod(&PodConfig::new("intact")).await.unwrap();
    d.kill().await;
    {
        let db = redb::Database::open(d.root.join("metadata.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let pods: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("pods");
            let mut table = txn.open_table(pods).unwrap();
            table
                .insert(damaged.as_str(), &b"{\"v\":1,\"record\":{\"id\":"[..])
                .unwrap();
        }
        txn.commit().unwrap();
    }
    d.restart().await;
    assert!(d.pod_status(&intact).await.is_ok());
    assert_eq!(
        d.pod_status(&damaged).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    assert!(d.log().contains("quarantine"), "the move is told");
    // Its name is free again, and what it had made was torn down as an orphan's.
    d.run_pod(&damaged_config).await.unwrap();
    assert!(!d.state_dir.join("pods").join(&damaged).exists());
}
