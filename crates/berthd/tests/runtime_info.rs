//! Version, Status, RuntimeConfig and UpdateRuntimeConfig through a real daemon and socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use berth_cri::v1 as cri;
use berth_testkit::TestDaemon;

#[tokio::test]
async fn version_names_berth_and_api_v1() {
    let d = TestDaemon::start().await;
    let v = d
        .clients()
        .await
        .runtime
        .version(cri::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.runtime_name, "berth");
    assert_eq!(v.runtime_api_version, "v1");
    assert_eq!(v.runtime_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(v.version, "0.1.0");
}

fn condition<'a>(s: &'a cri::StatusResponse, kind: &str) -> &'a cri::RuntimeCondition {
    s.status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.r#type == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {s:?}"))
}

#[tokio::test]
async fn status_reports_runtime_ready_and_verbose_config() {
    let d = TestDaemon::start().await;
    let mut c = d.clients().await;
    let s = c
        .runtime
        .status(cri::StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let runtime = condition(&s, "RuntimeReady");
    assert!(runtime.status, "{runtime:?}");
    let config: serde_json::Value = serde_json::from_str(&s.info["config"]).unwrap();
    assert_eq!(config["default_runtime"], "runc");
    assert_eq!(config["socket"], d.socket.to_str().unwrap());
    assert!(s.runtime_handlers.iter().any(|h| h.name == "runc"));
    assert!(s.runtime_handlers.iter().any(|h| h.name.is_empty()));

    let quiet = c
        .runtime
        .status(cri::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    assert!(quiet.info.is_empty(), "info only with verbose");
}

#[tokio::test]
async fn status_is_not_runtime_ready_when_the_runtime_binary_is_missing() {
    let d = TestDaemon::builder()
        .config("[runtimes.runc]\npath = \"/nonexistent/runc\"")
        .start()
        .await;
    let s = d
        .clients()
        .await
        .runtime
        .status(cri::StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let runtime = condition(&s, "RuntimeReady");
    assert!(!runtime.status);
    assert_eq!(runtime.reason, "RuntimeBinaryNotReady");
    assert!(runtime.message.contains("/nonexistent/runc"), "{runtime:?}");
}

#[tokio::test]
async fn runtime_config_reports_the_cgroupfs_driver() {
    let d = TestDaemon::start().await;
    assert_eq!(d.cgroup_driver().await, cri::CgroupDriver::Cgroupfs);
}

#[tokio::test]
async fn update_runtime_config_keeps_the_pod_cidr_across_restarts() {
    let mut d = TestDaemon::start().await;
    let update = |cidr: &str| cri::UpdateRuntimeConfigRequest {
        runtime_config: Some(cri::RuntimeConfig {
            network_config: Some(cri::NetworkConfig {
                pod_cidr: cidr.into(),
            }),
        }),
    };
    let mut c = d.clients().await;
    c.runtime
        .update_runtime_config(update("10.88.0.0/16"))
        .await
        .unwrap();
    let err = c
        .runtime
        .update_runtime_config(update("10.88.0.0/99"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    d.terminate().await;
    d.restart().await;
    let s = d
        .clients()
        .await
        .runtime
        .status(cri::StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        s.info.get("podCIDR").map(String::as_str),
        Some("\"10.88.0.0/16\"")
    );
}

/// CheckpointContainer checks what it is asked before CRIU is involved; on a node without CRIU
/// (this VM has none: Debian's 3.17 fails on its kernel) a running container's checkpoint is
/// Unimplemented, which kubelet reports as "not supported". tests/checkpoint.rs checkpoints for
/// real where CRIU works.
#[tokio::test]
async fn checkpoint_requests_are_checked_and_a_node_without_criu_says_so() {
    let node = berth_testkit::Node::start().await;
    let d = &node.daemon;
    let (pod, config) = node.pod("checkpoint").await;
    let created = d
        .create_container(&pod, &config, &node.container("created").sh("sleep 1000"))
        .await
        .unwrap();
    let running = d
        .run_container(&pod, &config, &node.container("running").sh("sleep 1000"))
        .await;
    let location = d.dir().join("checkpoint.tar").display().to_string();
    let checkpoint = |id: &str, location: &str| {
        let (id, location) = (id.to_owned(), location.to_owned());
        async move {
            d.clients()
                .await
                .runtime
                .checkpoint_container(cri::CheckpointContainerRequest {
                    container_id: id,
                    location,
                    timeout: 10,
                })
                .await
                .unwrap_err()
        }
    };
    let err = checkpoint(&running, "").await;
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("location"), "{err:?}");
    let err = checkpoint(&running, "relative.tar").await;
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let err = checkpoint(&"f".repeat(64), &location).await;
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let err = checkpoint(&created, &location).await;
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    let criu = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join("criu").is_file());
    if !criu {
        let err = checkpoint(&running, &location).await;
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
        assert!(err.message().contains("CRIU"), "{err:?}");
        assert!(!std::path::Path::new(&location).exists());
    }
}
