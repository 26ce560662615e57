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

/// What an unprivileged user on the node gets for `command` (exit status, output).
fn as_nobody(command: &str) -> (bool, String) {
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            command,
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn container_configs_snapshots_and_records_are_root_only() {
    let mut node = berth_testkit::Node::start().await;
    // Only berth's own modes stand between other users and its files: the test's dir is open.
    std::fs::set_permissions(node.daemon.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (pod, config) = node.pod("secrets").await;
    let c = node
        .container("holder")
        .sh("sleep 1000")
        .env("SECRET", "hunter2");
    let id = node.daemon.run_container(&pod, &config, &c).await;
    let d = &node.daemon;
    let (_, info) = d.clients().await.image_status(&node.image).await.unwrap();
    let busybox = d.snapshot_dirs(&info)[0].join("bin/busybox");
    let bundle = d
        .root
        .join("containers")
        .join(&id)
        .join("bundle/config.json");
    assert!(
        std::fs::read_to_string(&bundle)
            .unwrap()
            .contains("hunter2")
    );
    let root = d.root.display().to_string();
    let state = d.state_dir.display().to_string();
    for probe in [
        format!("cat {}", bundle.display()),
        format!("ls {root}/containers"),
        format!("ls {root}/containers/{id}"),
        format!("stat {}", busybox.display()),
        format!("ls {root}/snapshots"),
        format!("ls {root}/content"),
        format!("cat {root}/metadata.redb"),
        format!("ls {state}/pods"),
        format!("ls {state}/pods/{pod}"),
        format!("ls {state}/containers/{id}"),
    ] {
        let (ok, text) = as_nobody(&probe);
        assert!(!ok && text.contains("Permission denied"), "{probe}: {text}");
    }
    // The root dir itself is traversable, as containerd's is, but not listable.
    assert!(!as_nobody(&format!("ls {root}")).0);
    // A user namespace container's dir lets its pod's root group pass (runc walks it to the
    // rootfs from inside the namespace), and no one else.
    let userns_pod = node
        .pod_with(berth_testkit::PodConfig::new("userns-modes").user_namespace(500_000, 65536))
        .await;
    let mapped = node
        .daemon
        .run_container(
            &userns_pod.0,
            &userns_pod.1,
            &node.container("mapped").sh("sleep 1000"),
        )
        .await;
    let mapped_dir = node.daemon.root.join("containers").join(&mapped);
    let meta = std::fs::metadata(&mapped_dir).unwrap();
    assert_eq!(
        (meta.permissions().mode() & 0o777, meta.gid()),
        (0o710, 500_000)
    );
    let (ok, text) = as_nobody(&format!("ls {}/rootfs", mapped_dir.display()));
    assert!(!ok && text.contains("Permission denied"), "{text}");

    // A node an older berth left more open is repaired at start.
    node.daemon.kill().await;
    let container_dir = node.daemon.root.join("containers").join(&id);
    for (path, mode) in [(&container_dir, 0o755), (&bundle, 0o644)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(
        node.daemon.root.join("snapshots"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    node.daemon.restart().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&container_dir), 0o700);
    assert_eq!(mode(&bundle), 0o600);
    assert_eq!(mode(&node.daemon.root.join("snapshots")), 0o700);
    assert_eq!(mode(&node.daemon.root), 0o711);
}
