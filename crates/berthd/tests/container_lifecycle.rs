//! Containers through their life: create, start, status, logs, exec, update, stop, remove, and
//! the failures that must leave nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use berth_cri::v1 as cri;
use berth_testkit::{Node, log_lines, mounts_under, wait_until};

#[tokio::test]
async fn a_container_runs_logs_and_exits_with_its_code() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("life").await;
    let c = node
        .container("app")
        .sh("echo to-stdout; echo to-stderr >&2; exit 3");
    let id = d.create_container(&pod, &pod_config, &c).await.unwrap();
    let (created, info) = d.container_status(&id).await.unwrap();
    assert_eq!(created.state, cri::ContainerState::ContainerCreated as i32);
    assert_eq!(info["sandboxID"], pod);
    d.start_container(&id).await.unwrap();
    let exited = d
        .wait_container(&id, cri::ContainerState::ContainerExited)
        .await;
    assert_eq!(exited.exit_code, 3);
    assert_eq!(exited.reason, "Error");
    assert!(
        exited.started_at > 0 && exited.finished_at >= exited.started_at,
        "{exited:?}"
    );
    assert_eq!(exited.image.unwrap().image, node.image);
    assert!(
        exited.image_ref.contains("@sha256:"),
        "{}",
        exited.image_ref
    );
    let lines = log_lines(&exited.log_path);
    assert!(
        lines.contains(&("stdout".into(), "F".into(), "to-stdout".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("stderr".into(), "F".into(), "to-stderr".into())),
        "{lines:?}"
    );

    let ok = d
        .run_container(&pod, &pod_config, &node.container("ok").sh("true"))
        .await;
    let done = d
        .wait_container(&ok, cri::ContainerState::ContainerExited)
        .await;
    assert_eq!((done.exit_code, done.reason.as_str()), (0, "Completed"));
}

/// Runs `c` and waits for its `ready` line: its shell has set its traps by then. A signal
/// before them finds PID 1 of a PID namespace without a handler, which ignores it, and the stop
/// would wait out its grace period.
async fn run_trapping(
    d: &berth_testkit::TestDaemon,
    pod: &str,
    pod_config: &berth_testkit::PodConfig,
    c: &berth_testkit::CtrConfig,
) -> String {
    let id = d.run_container(pod, pod_config, c).await;
    let log = d.container_status(&id).await.unwrap().0.log_path;
    wait_until("the container's traps", Duration::from_secs(20), || {
        let ready = log_lines(&log).iter().any(|l| l.2 == "ready");
        async move { ready.then_some(()) }
    })
    .await;
    id
}

#[tokio::test]
async fn stop_sends_the_stop_signal_then_sigkill_and_both_verbs_are_idempotent() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("stop").await;
    let polite = node
        .container("polite")
        .sh("trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done");
    let id = run_trapping(d, &pod, &pod_config, &polite).await;
    d.stop_container(&id, 10).await.unwrap();
    let s = d.container_status(&id).await.unwrap().0;
    assert_eq!(
        (s.state, s.exit_code),
        (cri::ContainerState::ContainerExited as i32, 0),
        "{s:?}"
    );
    assert!(log_lines(&s.log_path).iter().any(|l| l.2 == "got TERM"));

    let stubborn = node
        .container("stubborn")
        .sh("trap '' TERM; echo ready; while true; do sleep 0.1; done");
    let id2 = run_trapping(d, &pod, &pod_config, &stubborn).await;
    let started = std::time::Instant::now();
    d.stop_container(&id2, 1).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let s2 = d.container_status(&id2).await.unwrap().0;
    assert_eq!(s2.exit_code, 137);

    // A stop signal of the config's, then one of the image's, each reported by status.
    let mut usr1 = node
        .container("usr1")
        .sh("trap 'echo got USR1; exit 0' USR1; echo ready; while true; do sleep 0.1; done");
    usr1.0.stop_signal = cri::Signal::Sigusr1 as i32;
    let id3 = run_trapping(d, &pod, &pod_config, &usr1).await;
    d.stop_container(&id3, 10).await.unwrap();
    let s3 = d.container_status(&id3).await.unwrap().0;
    assert_eq!(
        (s3.exit_code, s3.stop_signal),
        (0, cri::Signal::Sigusr1 as i32)
    );
    assert!(log_lines(&s3.log_path).iter().any(|l| l.2 == "got USR1"));
    let sigint = node
        .image(
            berth_testkit::ImageBuilder::busybox()
                .config("StopSignal", serde_json::json!("SIGINT")),
            "stop-signal",
        )
        .await;
    let by_image = berth_testkit::CtrConfig::new("image-signal", &sigint)
        .sh("trap 'echo got INT; exit 0' INT; echo ready; while true; do sleep 0.1; done");
    let id4 = run_trapping(d, &pod, &pod_config, &by_image).await;
    assert_eq!(
        d.container_status(&id4).await.unwrap().0.stop_signal,
        cri::Signal::Sigint as i32
    );
    d.stop_container(&id4, 10).await.unwrap();
    let s4 = d.container_status(&id4).await.unwrap().0;
    assert!(
        log_lines(&s4.log_path).iter().any(|l| l.2 == "got INT"),
        "{s4:?}"
    );
    // A real-time stop signal, which runc kill delivers by number.
    let mut realtime = node
        .container("realtime")
        .sh("trap 'echo got RT; exit 0' 36; echo ready; while true; do sleep 0.1; done");
    realtime.0.stop_signal = cri::Signal::Sigrtminplus2 as i32;
    let id5 = run_trapping(d, &pod, &pod_config, &realtime).await;
    d.stop_container(&id5, 10).await.unwrap();
    let s5 = d.container_status(&id5).await.unwrap().0;
    assert!(
        log_lines(&s5.log_path).iter().any(|l| l.2 == "got RT"),
        "{s5:?}"
    );
    // The standard signals went through each container's monitor, none needed runc kill.
    assert!(!d.log().contains("through the monitor"), "{}", d.log());

    for _ in 0..2 {
        d.stop_container(&id, 0).await.unwrap();
        d.remove_container(&id).await.unwrap();
    }
    let unknown = "e".repeat(64);
    d.stop_container(&unknown, 0).await.unwrap();
    d.remove_container(&unknown).await.unwrap();
    assert_eq!(
        d.container_status(&id).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    assert!(!d.root.join("containers").join(&id).exists());
}

#[tokio::test]
async fn long_lines_are_split_into_partial_records_and_tty_output_is_stdout() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("logs").await;
    let long = node
        .container("long")
        .sh("head -c 20000 /dev/zero | tr '\\0' x; echo; echo short");
    let id = d.run_container(&pod, &pod_config, &long).await;
    let s = d
        .wait_container(&id, cri::ContainerState::ContainerExited)
        .await;
    let lines = log_lines(&s.log_path);
    assert_eq!(
        lines.len(),
        3,
        "{:?}",
        lines
            .iter()
            .map(|l| (&l.0, &l.1, l.2.len()))
            .collect::<Vec<_>>()
    );
    assert_eq!((lines[0].1.as_str(), lines[0].2.len()), ("P", 16 * 1024));
    assert_eq!(
        (lines[1].1.as_str(), lines[1].2.len()),
        ("F", 20000 - 16 * 1024)
    );
    assert_eq!(lines[2], ("stdout".into(), "F".into(), "short".into()));

    let tty = node
        .container("tty")
        .tty()
        .sh("echo on the terminal; echo err >&2");
    let id = d.run_container(&pod, &pod_config, &tty).await;
    let s = d
        .wait_container(&id, cri::ContainerState::ContainerExited)
        .await;
    let lines = log_lines(&s.log_path);
    assert!(lines.iter().all(|l| l.0 == "stdout"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.2.trim_end_matches('\r') == "on the terminal"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn reopen_follows_a_rotated_log_and_fails_for_a_stopped_container() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("rotate").await;
    let ticker = node
        .container("ticker")
        .sh("i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done");
    let id = d.run_container(&pod, &pod_config, &ticker).await;
    let log = d.container_status(&id).await.unwrap().0.log_path;
    wait_until("ticks", Duration::from_secs(10), || async {
        (!log_lines(&log).is_empty()).then_some(())
    })
    .await;
    std::fs::rename(&log, format!("{log}.1")).unwrap();
    let mut c = d.clients().await;
    c.runtime
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    wait_until("ticks in the new file", Duration::from_secs(10), || async {
        log_lines(&log)
            .iter()
            .any(|l| l.2.starts_with("tick"))
            .then_some(())
    })
    .await;

    d.stop_container(&id, 0).await.unwrap();
    std::fs::remove_file(&log).unwrap();
    let err = c
        .runtime
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        !std::path::Path::new(&log).exists(),
        "no file is created for a stopped container"
    );
}

#[tokio::test]
async fn exec_sync_returns_output_and_code_and_honours_its_timeout() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("exec").await;
    let id = d
        .run_container(
            &pod,
            &pod_config,
            &node.container("idle").command(&["tail", "-f", "/dev/null"]),
        )
        .await;
    let r = d
        .exec_sync(&id, &["sh", "-c", "echo out; echo err >&2; exit 3"], 0)
        .await
        .unwrap();
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 3)
    );

    // What critest does: the timed-out process must be gone, not even a zombie, when the
    // answer arrives.
    let err = d.exec_sync(&id, &["sleep", "4321"], 1).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    let comms = d.sh(&id, "cat /proc/[0-9]*/comm").await;
    assert!(
        !comms.lines().any(|c| c == "sleep"),
        "the timed-out sleep is dead and reaped:\n{comms}"
    );

    // A tree: the command and its background child are both killed. The child was reparented to
    // the container's init (which never reaps here), so it may linger as a zombie, never alive.
    let started = std::time::Instant::now();
    let err = d
        .exec_sync(&id, &["sh", "-c", "sleep 45 & sleep 30"], 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let stats = d.sh(&id, "cat /proc/[0-9]*/stat").await;
    let alive: Vec<&str> = stats
        .lines()
        .filter(|l| l.contains("(sleep)") && !l.contains("(sleep) Z"))
        .collect();
    assert!(alive.is_empty(), "no sleep of the tree runs: {alive:?}");

    // A background child keeps the pipes open; the call returns once the command itself exits.
    let started = std::time::Instant::now();
    let r = d
        .exec_sync(&id, &["sh", "-c", "sleep 60 & echo started"], 0)
        .await
        .unwrap();
    assert_eq!(r.stdout, b"started\n");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let big = d
        .exec_sync(&id, &["sh", "-c", "head -c 20000000 /dev/zero"], 0)
        .await
        .unwrap();
    let cap = 16 * 1024 * 1024;
    assert!(
        big.stdout.len() <= cap && big.stdout.len() > cap - 1024,
        "capped to fit 16 MiB: {}",
        big.stdout.len()
    );

    d.stop_container(&id, 0).await.unwrap();
    let err = d.exec_sync(&id, &["true"], 0).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn resources_apply_update_and_are_reported() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("limits").await;
    let c = node.container("limited").sh("sleep 1000").resources(|r| {
        r.cpu_quota = 50_000;
        r.cpu_period = 100_000;
        r.memory_limit_in_bytes = 256 << 20;
    });
    let id = d.run_container(&pod, &pod_config, &c).await;
    let available =
        |stats: cri::ContainerStats| stats.memory.unwrap().available_bytes.unwrap().value;
    assert!(available(d.container_stats(&id).await) > 128 << 20);
    let pid = d.container_status(&id).await.unwrap().1["pid"]
        .as_u64()
        .unwrap();
    let cgroup = berth_testkit::cgroup::of_process(pid as u32).unwrap();
    let quota = |path: &str| berth_testkit::cgroup::enforced(path).cpu_quota;
    assert_eq!(quota(&cgroup), Some(50_000));
    let mut client = d.clients().await;
    client
        .runtime
        .update_container_resources(cri::UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(cri::LinuxContainerResources {
                cpu_quota: 20_000,
                cpu_period: 100_000,
                memory_limit_in_bytes: 128 << 20,
                ..cri::LinuxContainerResources::default()
            }),
            ..cri::UpdateContainerResourcesRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(quota(&cgroup), Some(20_000));
    let s = d.container_status(&id).await.unwrap().0;
    let reported = s.resources.unwrap().linux.unwrap();
    assert_eq!(
        (reported.cpu_quota, reported.memory_limit_in_bytes),
        (20_000, 128 << 20)
    );
    // Stats see the new limit: what is left below it.
    let left = available(d.container_stats(&id).await);
    assert!(left > 0 && left <= 128 << 20, "{left}");
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed_with_137() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("oom").await;
    let hog = node
        .container("hog")
        .sh("head -c 300000000 /dev/zero | tail")
        .resources(|r| r.memory_limit_in_bytes = 32 << 20);
    let id = d.run_container(&pod, &pod_config, &hog).await;
    let s = d
        .wait_container(&id, cri::ContainerState::ContainerExited)
        .await;
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (137, "OOMKilled"),
        "{s:?}"
    );
}

#[tokio::test]
async fn names_are_reserved_per_pod_and_attempt() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("names").await;
    let c = node.container("same").sh("sleep 1000");
    let first = d.create_container(&pod, &pod_config, &c).await.unwrap();
    let err = d.create_container(&pod, &pod_config, &c).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    let mut next = c.clone();
    next.0.metadata.as_mut().unwrap().attempt = 1;
    d.create_container(&pod, &pod_config, &next).await.unwrap();
    d.remove_container(&first).await.unwrap();
    d.create_container(&pod, &pod_config, &c).await.unwrap();
}

#[tokio::test]
async fn a_failed_create_leaves_nothing_behind() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("undo").await;
    let bad = node.container("bad").sh("true").security(|s| {
        s.seccomp = Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Localhost as i32,
            localhost_ref: "/nonexistent/profile.json".into(),
        });
    });
    let err = d
        .create_container(&pod, &pod_config, &bad)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("/nonexistent/profile.json"));
    let missing = node.container("missing").command(&["/no/such/binary"]);
    let id = d.create_container(&pod, &pod_config, &missing).await;
    // runc only finds out at start that the binary is missing; either way nothing may leak.
    if let Ok(id) = id {
        let _ = d.start_container(&id).await;
        d.remove_container(&id).await.unwrap();
    }
    let entries: Vec<_> = std::fs::read_dir(d.root.join("containers"))
        .unwrap()
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
    assert!(
        mounts_under(&d.root).is_empty(),
        "{:?}",
        mounts_under(&d.root)
    );
    let left = d.runtime_containers("runc");
    assert!(left.is_empty(), "{left:?}");
    // The name is free again.
    d.create_container(&pod, &pod_config, &node.container("bad").sh("true"))
        .await
        .unwrap();
}

#[tokio::test]
async fn creates_need_a_ready_pod_and_a_pulled_image() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("gone").await;
    let err = d
        .create_container(
            &"0".repeat(64),
            &pod_config,
            &node.container("x").sh("true"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = d
        .create_container(
            &pod,
            &pod_config,
            &berth_testkit::CtrConfig::new("x", "never-pulled:v1").sh("true"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    d.stop_pod(&pod).await.unwrap();
    let err = d
        .create_container(&pod, &pod_config, &node.container("x").sh("true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn list_filters_by_pod_state_and_labels() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (a, a_config) = node.pod("a").await;
    let (b, b_config) = node.pod("b").await;
    let web = d
        .run_container(
            &a,
            &a_config,
            &node.container("web").label("tier", "web").sh("sleep 1000"),
        )
        .await;
    let job = d
        .create_container(
            &b,
            &b_config,
            &node.container("job").label("tier", "batch").sh("true"),
        )
        .await
        .unwrap();
    assert_eq!(
        d.list_containers(cri::ContainerFilter {
            pod_sandbox_id: a[..8].into(),
            ..Default::default()
        })
        .await,
        vec![web.clone()]
    );
    assert_eq!(
        d.list_containers(cri::ContainerFilter {
            state: Some(cri::ContainerStateValue {
                state: cri::ContainerState::ContainerCreated as i32
            }),
            ..Default::default()
        })
        .await,
        vec![job.clone()]
    );
    let batch = cri::ContainerFilter {
        label_selector: [("tier".to_string(), "batch".to_string())].into(),
        ..Default::default()
    };
    assert_eq!(d.list_containers(batch).await, vec![job.clone()]);
    assert_eq!(
        d.list_containers(cri::ContainerFilter {
            id: web[..10].into(),
            ..Default::default()
        })
        .await,
        vec![web.clone()]
    );
    // Removing the pod removes its containers.
    d.stop_pod(&a).await.unwrap();
    assert_eq!(
        d.container_status(&web).await.unwrap().0.state,
        cri::ContainerState::ContainerExited as i32
    );
    d.remove_pod(&a).await.unwrap();
    assert_eq!(
        d.container_status(&web).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn a_stalled_pull_during_a_removal_does_not_hold_up_creates() {
    let node = Node::start().await;
    let d = &node.daemon;
    let spare = node
        .image(
            berth_testkit::ImageBuilder::busybox().config("Env", serde_json::json!(["X=1"])),
            "spare",
        )
        .await;
    let stalling = berth_testkit::StallingServer::start().await;
    let mut stalled = d.clients().await;
    let reference = format!("127.0.0.1:{}/never:v1", stalling.port);
    let pull = tokio::spawn(async move { stalled.pull(&reference).await });
    // The removal asks for garbage collection while the pull hangs.
    d.clients().await.remove_image(&spare).await.unwrap();
    let (pod, pod_config) = node.pod("beside-a-stall").await;
    let created = tokio::time::timeout(Duration::from_secs(60), async {
        for n in 0..3 {
            let c = node.container(&format!("c{n}")).sh("sleep 1000");
            d.run_container(&pod, &pod_config, &c).await;
        }
    })
    .await;
    assert!(
        created.is_ok(),
        "creates of a local image finish while a pull stalls"
    );
    assert!(!pull.is_finished(), "the pull is still stalled");
    pull.abort();
}

/// A process named berth-infra (a copy of sleep) that has exactly `pid`, made the next PID of the
/// node with ns_last_pid (retried: other tests start processes too).
fn impostor_with_pid(pid: u32, dir: &std::path::Path) -> std::process::Child {
    let binary = dir.join("berth-infra");
    std::fs::copy("/bin/sleep", &binary).unwrap();
    for _ in 0..500 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut child = std::process::Command::new(&binary)
            .arg("1000")
            .spawn()
            .unwrap();
        if child.id() == pid {
            return child;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not take PID {pid}");
}

#[tokio::test]
async fn a_dead_infra_process_pid_taken_by_another_is_never_joined_or_killed() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, config) = node
        .pod_with(berth_testkit::PodConfig::new("old-infra").shared_pid())
        .await;
    let pid = d.pod_status(&pod).await.unwrap().1["infraPid"]
        .as_u64()
        .unwrap() as u32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    wait_until(
        "the infra process to be reaped",
        Duration::from_secs(10),
        || async { (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(()) },
    )
    .await;
    let mut impostor = impostor_with_pid(pid, d.dir());

    let err = d
        .create_container(&pod, &config, &node.container("joiner").sh("sleep 1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    d.stop_pod(&pod).await.unwrap();
    d.remove_pod(&pod).await.unwrap();
    assert!(
        impostor.try_wait().unwrap().is_none(),
        "the process that has the old infra PID now is left alone"
    );
    let _ = impostor.kill();
    let _ = impostor.wait();
}

#[tokio::test]
async fn creates_racing_a_pod_stop_or_removal_leave_no_container_running() {
    let node = Node::start().await;
    let d = &node.daemon;
    for verb in ["stop", "remove"] {
        let (pod, config) = node.pod(&format!("race-{verb}")).await;
        let mut creates = tokio::task::JoinSet::new();
        for n in 0..6 {
            let request = cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(node.container(&format!("c{n}")).sh("sleep 1000").0),
                sandbox_config: Some(config.0.clone()),
            };
            let mut runtime = d.clients().await.runtime;
            creates.spawn(async move {
                let id = runtime
                    .create_container(request)
                    .await?
                    .into_inner()
                    .container_id;
                runtime
                    .start_container(cri::StartContainerRequest { container_id: id })
                    .await
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        match verb {
            "stop" => d.stop_pod(&pod).await.unwrap(),
            _ => d.remove_pod(&pod).await.unwrap(),
        }
        creates.join_all().await;
        let left = d
            .list_containers(cri::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                ..cri::ContainerFilter::default()
            })
            .await;
        for id in &left {
            let state = d.container_status(id).await.unwrap().0.state;
            assert_ne!(
                state,
                cri::ContainerState::ContainerRunning as i32,
                "{verb}: {id} runs"
            );
        }
        if verb == "remove" {
            assert!(left.is_empty(), "a removed pod has no containers: {left:?}");
        }
        for id in &d.runtime_containers("runc") {
            let state = d.container_status(id).await.map(|s| s.0.state);
            assert!(
                matches!(state, Ok(s) if s != cri::ContainerState::ContainerRunning as i32),
                "{verb}: runc has {id}, which berth does not account for: {state:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_runc_create_that_overstays_is_killed_and_leaves_no_container() {
    let scripts = tempfile::tempdir().unwrap();
    let slow = scripts.path().join("slow-runc");
    std::fs::write(
        &slow,
        "#!/bin/sh\nfor a; do [ \"$a\" = create ] && sleep 20; done\nexec runc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let node = Node::start_with(
        berth_testkit::TestDaemon::builder().config(&format!(
            "[runtimes.slow]\npath = \"{}\"\ncreate_timeout = \"2s\"",
            slow.display()
        )),
        berth_testkit::ImageBuilder::busybox(),
    )
    .await;
    let d = &node.daemon;
    let config = berth_testkit::PodConfig::new("slow-pod");
    let pod = d
        .clients()
        .await
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.0.clone()),
            runtime_handler: "slow".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let err = d
        .create_container(&pod, &config, &node.container("late").sh("sleep 1000"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("killed and its container deleted"),
        "{err:?}"
    );
    assert!(d.runtime_containers("slow").is_empty());
    let sleeping = std::process::Command::new("pgrep")
        .args(["-f", &slow.display().to_string()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&sleeping.stdout).trim().is_empty(),
        "the overstaying runc and what it started are gone"
    );
    assert!(
        d.list_containers(cri::ContainerFilter::default())
            .await
            .is_empty(),
        "no record"
    );
    let left: Vec<_> = std::fs::read_dir(d.root.join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "no container dirs: {left:?}");
}

#[tokio::test]
async fn log_paths_stay_in_the_pods_log_directory_and_follow_no_symlink() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, pod_config) = node.pod("logs-confined").await;
    for bad in [
        "../../escaped.log",
        "/etc/escaped.log",
        "a/../../escaped.log",
    ] {
        let mut c = node.container("bad-log").sh("true");
        c.0.log_path = bad.into();
        let err = d.create_container(&pod, &pod_config, &c).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}: {err:?}");
        assert!(err.message().contains("log_path"), "{err:?}");
    }
    let log_dir = std::path::PathBuf::from(&pod_config.0.log_directory);
    let target = d.dir().join("not-a-log");
    std::fs::create_dir_all(&log_dir).unwrap();
    std::os::unix::fs::symlink(&target, log_dir.join("planted.log")).unwrap();
    let mut planted = node.container("planted").sh("echo written");
    planted.0.log_path = "planted.log".into();
    assert!(
        d.create_container(&pod, &pod_config, &planted)
            .await
            .is_err()
    );
    assert!(
        !target.exists(),
        "nothing is written through a planted symlink"
    );

    // A reopen does not follow a symlink put where the log was either.
    let ticker = node
        .container("ticker")
        .sh("while true; do echo tick; sleep 0.1; done");
    let id = d.run_container(&pod, &pod_config, &ticker).await;
    let log = d.container_status(&id).await.unwrap().0.log_path;
    std::fs::rename(&log, format!("{log}.1")).unwrap();
    std::os::unix::fs::symlink(&target, &log).unwrap();
    let reopened = d
        .clients()
        .await
        .runtime
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await;
    assert!(reopened.is_err());
    assert!(
        !target.exists(),
        "nothing is written through a planted symlink"
    );
}

/// The processes of the node whose command line is exactly `args`.
fn processes(args: &[&str]) -> Vec<u32> {
    let wanted: String = args.iter().map(|a| format!("{a}\0")).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted)
        })
        .collect()
}

/// A removed container leaves no runtime state and no cgroup. berth deletes them itself when
/// nothing else is left; a process the container left behind (its PID namespace is the pod's,
/// so the death of its first process did not end it) makes it leave the job to runc, which
/// kills that process too.
#[tokio::test]
async fn removal_leaves_no_runtime_state_cgroup_or_straggler() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, config) = node
        .pod_with(berth_testkit::PodConfig::new("strays").shared_pid())
        .await;
    let cgroup = |id: &str| {
        berth_testkit::cgroup::dir("pids", &format!("{}/pod{pod}/{id}", d.cgroup_parent))
    };

    let plain = d
        .run_container(&pod, &config, &node.container("plain").sh("sleep 1000"))
        .await;
    d.stop_container(&plain, 0).await.unwrap();
    d.remove_container(&plain).await.unwrap();
    assert!(!cgroup(&plain).exists());
    assert!(!d.runtime_containers("runc").contains(&plain));
    let runc_deleted = |id: &str| {
        d.log()
            .lines()
            .any(|l| l.contains(id) && l.contains("runc delete, since"))
    };
    assert!(!runc_deleted(&plain), "berth deleted it without runc");

    let leaving = d
        .run_container(
            &pod,
            &config,
            &node
                .container("leaving")
                .sh("sleep 1002 & echo ready; exec sleep 1003"),
        )
        .await;
    let status_log = d.container_status(&leaving).await.unwrap().0.log_path;
    wait_until("the straggler", Duration::from_secs(20), || {
        let ready = log_lines(&status_log).iter().any(|l| l.2 == "ready");
        async move { ready.then_some(()) }
    })
    .await;
    d.stop_container(&leaving, 0).await.unwrap();
    assert_eq!(
        processes(&["sleep", "1002"]).len(),
        1,
        "the straggler outlives the stop"
    );
    d.remove_container(&leaving).await.unwrap();
    assert!(
        processes(&["sleep", "1002"]).is_empty(),
        "the removal killed it"
    );
    assert!(!cgroup(&leaving).exists());
    assert!(!d.runtime_containers("runc").contains(&leaving));
    assert!(
        d.log()
            .contains("runc delete, since processes are left in its cgroups"),
        "runc deleted the one with a straggler"
    );
    d.remove_pod(&pod).await.unwrap();
    assert_eq!(d.leaks(&node.net), Vec::<String>::new());
}
