//! Pods on a real bridge network from real CNI plugins: IPs, reachability, host ports, host
//! network, and failures that leave nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use berth_cri::v1 as cri;
use berth_testkit::{
    CniNetwork, PodConfig, TestDaemon, free_port, in_netns, mounts_under, wait_until,
};

async fn daemon_on(net: &CniNetwork) -> TestDaemon {
    TestDaemon::builder().config(&net.config()).start().await
}

fn netns_of(info: &serde_json::Value) -> String {
    info["netnsPath"].as_str().expect("netnsPath").to_owned()
}

#[tokio::test]
async fn a_pod_gets_an_ip_on_its_own_eth0() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let id = d.run_pod(&PodConfig::new("ip")).await.unwrap();
    let (status, info) = d.pod_status(&id).await.unwrap();
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    let ip = status.network.unwrap().ip;
    assert!(ip.starts_with(&net.prefix), "{ip} not in {}", net.subnet);
    let out = in_netns(
        &netns_of(&info),
        &["ip", "-o", "-4", "addr", "show", "eth0"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{ip}/24")),
        "{out:?}"
    );
    let lo = in_netns(&netns_of(&info), &["ip", "-o", "link", "show", "lo"]);
    assert!(
        String::from_utf8_lossy(&lo.stdout).contains("UP"),
        "loopback is up: {lo:?}"
    );
    assert_eq!(net.leased_ips(), std::slice::from_ref(&ip));

    d.stop_pod(&id).await.unwrap();
    assert!(
        net.leased_ips().is_empty(),
        "StopPodSandbox releases the IP"
    );
    d.remove_pod(&id).await.unwrap();
}

#[tokio::test]
async fn two_pods_reach_each_other() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let a = d.run_pod(&PodConfig::new("a")).await.unwrap();
    let b = d.run_pod(&PodConfig::new("b")).await.unwrap();
    let (_, a_info) = d.pod_status(&a).await.unwrap();
    let b_ip = d.pod_status(&b).await.unwrap().0.network.unwrap().ip;
    let out = in_netns(
        &netns_of(&a_info),
        &["busybox", "ping", "-c", "1", "-W", "5", &b_ip],
    );
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn a_host_network_pod_uses_the_node_network() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let id = d
        .run_pod(&PodConfig::new("hostnet").host_network())
        .await
        .unwrap();
    let (status, info) = d.pod_status(&id).await.unwrap();
    assert!(status.network.is_none());
    assert!(info["netnsPath"].is_null());
    assert!(net.leased_ips().is_empty(), "no CNI for host-network pods");
    assert!(net.veths().is_empty());
    let hosts = std::fs::read(d.state_dir.join("pods").join(&id).join("hosts")).unwrap();
    assert_eq!(hosts, std::fs::read("/etc/hosts").unwrap());
}

#[tokio::test]
async fn a_host_port_answers_on_the_node() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let host_port = free_port();
    let id = d
        // A container port published on no host port (host_port 0, as cri-api v0.36 says) is
        // no concern of the network's.
        .run_pod(&PodConfig::new("web").port(host_port, 8080).port(0, 9090))
        .await
        .unwrap();
    let (_, info) = d.pod_status(&id).await.unwrap();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hello from the pod").unwrap();
    let mut httpd = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns_of(&info)))
        .args(["--", "busybox", "httpd", "-f", "-p", "8080", "-h"])
        .arg(www.path())
        .spawn()
        .unwrap();
    let body = wait_until(
        "the pod's httpd on the host port",
        Duration::from_secs(10),
        || async {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", host_port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            text.contains("200").then_some(text)
        },
    )
    .await;
    let _ = httpd.kill();
    let _ = httpd.wait();
    assert!(body.contains("hello from the pod"), "{body}");
    d.remove_pod(&id).await.unwrap();
    let after = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], host_port).into(),
        Duration::from_secs(1),
    );
    assert!(after.is_err(), "the mapping is gone with the pod");
}

#[tokio::test]
async fn a_failing_plugin_fails_the_pod_and_leaves_nothing() {
    let net = CniNetwork::with_plugins(|_| vec![serde_json::json!({"type": "berth-refuse"})]);
    net.add_plugin(
        "berth-refuse",
        "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n\
         ADD) echo '{\"code\":7,\"msg\":\"berth-refuse says no\",\"details\":\"as the test asked\"}'; exit 1;;\n\
         VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\nesac\nexit 0\n",
    );
    let d = daemon_on(&net).await;
    let config = PodConfig::new("refused");
    for _ in 0..2 {
        // The retry fails the same way: no name was left reserved.
        let err = d.run_pod(&config).await.unwrap_err();
        assert!(
            err.message()
                .contains("berth-refuse says no: as the test asked"),
            "{err:?}"
        );
    }
    assert!(d.list_pods(None).await.is_empty());
    assert!(
        net.veths().is_empty(),
        "the bridge plugin's veth is deleted"
    );
    assert!(
        net.leased_ips().is_empty(),
        "the bridge plugin's IP is released"
    );
    let left = mounts_under(&d.state_dir.join("pods"));
    assert!(left.is_empty(), "{left:?}");
    let pods_dir: Vec<_> = std::fs::read_dir(d.state_dir.join("pods"))
        .unwrap()
        .collect();
    assert!(pods_dir.is_empty());
}

#[tokio::test]
async fn network_ready_follows_the_conf_dir() {
    let net = CniNetwork::bridge();
    let conf = net.conf_dir().join("10-berth-test.conflist");
    let saved = std::fs::read(&conf).unwrap();
    std::fs::remove_file(&conf).unwrap();
    let d = daemon_on(&net).await;
    let network_ready = |d: &TestDaemon| {
        let socket = d.socket.clone();
        async move {
            let mut c = berth_testkit::connect(&socket).await.unwrap();
            let s = c
                .runtime
                .status(cri::StatusRequest::default())
                .await
                .unwrap()
                .into_inner();
            s.status
                .unwrap()
                .conditions
                .into_iter()
                .find(|c| c.r#type == "NetworkReady")
                .unwrap()
        }
    };
    let c = network_ready(&d).await;
    assert!(!c.status);
    assert_eq!(c.reason, "NetworkPluginNotReady");
    assert!(c.message.contains("no network config found"), "{c:?}");
    let err = d.run_pod(&PodConfig::new("early")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    std::fs::write(&conf, &saved).unwrap();
    wait_until("NetworkReady", Duration::from_secs(10), || async {
        network_ready(&d).await.status.then_some(())
    })
    .await;
    std::fs::write(&conf, "{broken").unwrap();
    wait_until("NetworkReady false", Duration::from_secs(10), || async {
        (!network_ready(&d).await.status).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_plugin_speaking_cni_1_1_is_asked_for_its_status() {
    let net = CniNetwork::bridge();
    net.add_plugin(
        "berth-status",
        "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n\
         VERSION) echo '{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"1.0.0\",\"1.1.0\"]}';;\n\
         STATUS) echo '{\"code\":50,\"msg\":\"berth-status: no addresses left\"}'; exit 1;;\nesac\nexit 0\n",
    );
    net.write_conf(
        "00-status.conflist",
        &serde_json::json!({"cniVersion": "1.1.0", "name": "status", "plugins": [{"type": "berth-status"}]}),
    );
    let d = daemon_on(&net).await;
    let s = d
        .clients()
        .await
        .runtime
        .status(cri::StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let c = s
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.r#type == "NetworkReady")
        .unwrap();
    assert!(!c.status);
    assert!(c.message.contains("no addresses left"), "{c:?}");
}

#[tokio::test]
async fn twenty_pods_at_once_all_get_distinct_ips() {
    let net = CniNetwork::bridge();
    let d = daemon_on(&net).await;
    let mut runs = Vec::new();
    for n in 0..20 {
        let socket = d.socket.clone();
        runs.push(tokio::spawn(async move {
            let mut c = berth_testkit::connect(&socket).await.unwrap();
            c.runtime
                .run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(PodConfig::new(&format!("burst-{n}")).0),
                    runtime_handler: String::new(),
                })
                .await
                .map(|r| r.into_inner().pod_sandbox_id)
        }));
    }
    let mut ips = std::collections::BTreeSet::new();
    for run in runs {
        let id = run.await.unwrap().unwrap();
        ips.insert(d.pod_status(&id).await.unwrap().0.network.unwrap().ip);
    }
    assert_eq!(ips.len(), 20);
}

#[tokio::test]
async fn ready_pods_stay_ready_across_a_daemon_crash() {
    let net = CniNetwork::bridge();
    let mut d = daemon_on(&net).await;
    let a = d.run_pod(&PodConfig::new("a").shared_pid()).await.unwrap();
    let b = d.run_pod(&PodConfig::new("b")).await.unwrap();
    let before = d.pod_status(&a).await.unwrap();
    d.kill().await;
    d.restart().await;
    let after = d.pod_status(&a).await.unwrap();
    assert_eq!(after.0, before.0);
    assert_eq!(after.0.state, cri::PodSandboxState::SandboxReady as i32);
    let b_ip = d.pod_status(&b).await.unwrap().0.network.unwrap().ip;
    let out = in_netns(
        &netns_of(&after.1),
        &["busybox", "ping", "-c", "1", "-W", "5", &b_ip],
    );
    assert!(out.status.success(), "the network survived: {out:?}");
    d.stop_pod(&a).await.unwrap();
    d.remove_pod(&a).await.unwrap();
    assert_eq!(net.leased_ips().len(), 1);
}
