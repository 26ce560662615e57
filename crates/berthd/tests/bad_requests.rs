//! Requests the API allows but no container can have: each is InvalidArgument naming its field,
//! before anything is made (never Internal), and the missing executable of an exec is the
//! exit code and message a shell would give.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use berth_cri::v1 as cri;
use berth_testkit::{Node, PodConfig};

fn invalid(err: tonic::Status, field: &str) {
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{field}: {err:?}");
    assert!(err.message().contains(field), "{field}: {err:?}");
}

#[tokio::test]
async fn values_the_kernel_or_runc_would_refuse_are_invalid_arguments() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, config) = node.pod("bad").await;
    let id = d
        .run_container(&pod, &config, &node.container("target").sh("sleep 1000"))
        .await;
    let mut c = d.clients().await;
    for (field, resources) in [
        (
            "cpu_period",
            cri::LinuxContainerResources {
                cpu_period: 1 << 62,
                ..Default::default()
            },
        ),
        (
            "memory_limit_in_bytes",
            cri::LinuxContainerResources {
                memory_limit_in_bytes: 2,
                ..Default::default()
            },
        ),
        (
            "cpuset_cpus",
            cri::LinuxContainerResources {
                cpuset_cpus: "/dev/null".into(),
                ..Default::default()
            },
        ),
        (
            "cpuset_mems",
            cri::LinuxContainerResources {
                cpuset_mems: "NaN".into(),
                ..Default::default()
            },
        ),
    ] {
        let err = c
            .runtime
            .update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(resources),
                ..Default::default()
            })
            .await
            .unwrap_err();
        invalid(err, field);
    }

    let mut relative = node.container("relative").sh("true");
    relative.0.working_dir = "tmp".into();
    invalid(
        d.create_container(&pod, &config, &relative)
            .await
            .unwrap_err(),
        "working_dir",
    );
    let nul = node.container("nul").command(&["echo", "a\0b"]);
    invalid(
        d.create_container(&pod, &config, &nul).await.unwrap_err(),
        "command",
    );
    let bad_env = node.container("bad-env").sh("true").env("A=B", "x");
    invalid(
        d.create_container(&pod, &config, &bad_env)
            .await
            .unwrap_err(),
        "envs",
    );

    let mut long = PodConfig::new("long-hostname");
    long.0.hostname = "h".repeat(100);
    invalid(d.run_pod(&long).await.unwrap_err(), "hostname");
    let mut no_port = PodConfig::new("no-container-port");
    no_port.0.port_mappings.push(cri::PortMapping {
        container_port: 0,
        host_port: 30080,
        ..Default::default()
    });
    invalid(d.run_pod(&no_port).await.unwrap_err(), "container port");

    let nul_exec = c
        .runtime
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["echo".into(), "a\0b".into()],
            timeout: 10,
        })
        .await
        .unwrap_err();
    invalid(nul_exec, "cmd");
    let missing = d.exec_sync(&id, &["no-such-command"], 10).await.unwrap();
    assert_eq!(missing.exit_code, 127, "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no-such-command"),
        "{missing:?}"
    );
    // Nothing of the refused was made, and the node still serves.
    let listed = d.list_containers(cri::ContainerFilter::default()).await;
    assert_eq!(listed, [id]);
}
