//! The daemon as a process: its socket, its locks, its signals, its store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::time::Duration;

use berth_cri::v1 as cri;
use berth_testkit::TestDaemon;

#[tokio::test]
async fn socket_is_root_only() {
    let d = TestDaemon::start().await;
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
}

#[tokio::test]
async fn a_second_daemon_on_the_same_socket_is_refused_and_the_first_keeps_serving() {
    let d = TestDaemon::start().await;
    let other_root = d.dir().join("other-root");
    let output = d.command().arg("--root").arg(&other_root).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another berthd"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", d.pid().unwrap())),
        "{stderr}"
    );

    // Same root, other socket: refused as well.
    let output = d
        .command()
        .arg("--socket")
        .arg(d.dir().join("other.sock"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!d.dir().join("other.sock").exists());

    let mut c = d.clients().await;
    c.runtime
        .version(cri::VersionRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let mut d = TestDaemon::start().await;
    d.kill().await;
    assert!(
        d.socket.exists(),
        "a killed daemon leaves its socket behind"
    );
    d.restart().await;
    let mut c = d.clients().await;
    c.runtime
        .version(cri::VersionRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_the_store_reopens_intact() {
    let mut d = TestDaemon::start().await;
    let mut c = d.clients().await;
    c.runtime
        .update_runtime_config(cri::UpdateRuntimeConfigRequest {
            runtime_config: Some(cri::RuntimeConfig {
                network_config: Some(cri::NetworkConfig {
                    pod_cidr: "10.99.0.0/16".into(),
                }),
            }),
        })
        .await
        .unwrap();
    drop(c);
    let status = d.terminate().await;
    assert!(status.success(), "exit status {status}\n{}", d.log());
    assert!(!d.socket.exists(), "a clean exit removes the socket");
    assert!(d.log().contains("berthd stopped"));
    d.restart().await;
    let s = d
        .clients()
        .await
        .runtime
        .status(cri::StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.info["podCIDR"], "\"10.99.0.0/16\"");
}

#[tokio::test]
async fn sigterm_with_an_open_client_connection_still_exits() {
    let mut d = TestDaemon::start().await;
    // kubelet keeps its connection open; shutdown must not wait for it to go away.
    let mut c = d.clients().await;
    c.runtime
        .version(cri::VersionRequest::default())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let status = d.terminate().await;
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(c);
}
