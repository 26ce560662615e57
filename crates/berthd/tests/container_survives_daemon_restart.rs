//! Killing berthd harms no container: after a SIGKILL and a new start on the same root, running
//! containers still run and log, one that exited meanwhile has its real exit code, and every RPC
//! works on all of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use berth_cri::v1 as cri;
use berth_testkit::{Node, log_lines, wait_until};

#[tokio::test]
async fn containers_outlive_a_killed_daemon() {
    let mut node = Node::start().await;
    let (pod, pod_config) = node.pod("survivor").await;
    let d = &node.daemon;
    let ticker = d
        .run_container(
            &pod,
            &pod_config,
            &node
                .container("ticker")
                .sh("i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"),
        )
        .await;
    let quitter = d
        .run_container(
            &pod,
            &pod_config,
            &node.container("quitter").sh("sleep 3; exit 7"),
        )
        .await;
    let created = d
        .create_container(
            &pod,
            &pod_config,
            &node.container("waiting").sh("echo late"),
        )
        .await
        .unwrap();
    let log = d.container_status(&ticker).await.unwrap().0.log_path;

    node.daemon.kill().await;
    // The quitter exits while no berthd runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ticks_while_down = log_lines(&log).len();
    node.daemon.restart().await;
    let d = &node.daemon;

    let t = d.container_status(&ticker).await.unwrap().0;
    assert_eq!(t.state, cri::ContainerState::ContainerRunning as i32);
    wait_until(
        "the ticker to keep logging",
        Duration::from_secs(10),
        || async { (log_lines(&log).len() > ticks_while_down + 2).then_some(()) },
    )
    .await;
    let q = d.container_status(&quitter).await.unwrap().0;
    assert_eq!(
        (q.state, q.exit_code),
        (cri::ContainerState::ContainerExited as i32, 7),
        "{q:?}"
    );
    assert!(q.finished_at > q.started_at, "{q:?}");
    assert_eq!(
        d.container_status(&created).await.unwrap().0.state,
        cri::ContainerState::ContainerCreated as i32
    );

    assert_eq!(d.sh(&ticker, "echo alive").await, "alive");
    d.start_container(&created).await.unwrap();
    d.wait_container(&created, cri::ContainerState::ContainerExited)
        .await;
    // Exits are still noticed as they happen after the restart.
    d.stop_container(&ticker, 5).await.unwrap();
    assert_eq!(
        d.container_status(&ticker).await.unwrap().0.state,
        cri::ContainerState::ContainerExited as i32
    );
    let all = d.list_containers(cri::ContainerFilter::default()).await;
    assert_eq!(all.len(), 3, "no duplicate or lost record");
    for id in [&ticker, &quitter, &created] {
        d.remove_container(id).await.unwrap();
    }
    assert!(
        d.list_containers(cri::ContainerFilter::default())
            .await
            .is_empty()
    );
}
