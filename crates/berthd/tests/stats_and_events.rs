//! ContainerStats, PodSandboxStats and their lists, the CRI metrics, GetContainerEvents and the
//! Prometheus endpoint, against real containers on this node's cgroups (v1 here; the v2 reader is
//! tested against fixture trees in the daemon's unit tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use berth_cri::v1 as cri;
use berth_testkit::{Node, PodConfig, TestDaemon, free_port, wait_until};
use tokio_stream::StreamExt;

const MIB: u64 = 1024 * 1024;

async fn list_container_stats(d: &TestDaemon, filter: cri::ContainerStatsFilter) -> Vec<String> {
    let mut ids: Vec<String> = d
        .clients()
        .await
        .runtime
        .list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(filter),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .into_iter()
        .map(|s| s.attributes.unwrap().id)
        .collect();
    ids.sort();
    ids
}

fn figure(v: &Option<cri::UInt64Value>) -> u64 {
    v.as_ref().expect("figure present").value
}

fn cpu_ns(s: &cri::ContainerStats) -> u64 {
    figure(&s.cpu.as_ref().unwrap().usage_core_nano_seconds)
}

#[tokio::test]
async fn cpu_memory_and_writable_layer_figures_follow_what_containers_do() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, config) = node.pod("figures").await;
    let burner = d
        .run_container(
            &pod,
            &config,
            &node.container("burner").sh("while :; do :; done"),
        )
        .await;
    let idler = d
        .run_container(&pod, &config, &node.container("idler").sh("sleep 1000"))
        .await;
    let hog = node
        .container("hog")
        .sh("dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; dd if=/dev/zero of=/layer-file bs=1M count=6 2>/dev/null; touch /done; sleep 1000");
    let hog = d.run_container(&pod, &config, &hog).await;

    let first = d.container_stats(&burner).await;
    let attributes = first.attributes.as_ref().unwrap();
    assert_eq!(attributes.id, burner);
    assert_eq!(attributes.metadata.as_ref().unwrap().name, "burner");
    wait_until(
        "the burner to use a tenth of a second of CPU",
        Duration::from_secs(30),
        || async {
            (cpu_ns(&d.container_stats(&burner).await) > cpu_ns(&first) + 100_000_000).then_some(())
        },
    )
    .await;
    let burning = d.container_stats(&burner).await;
    let idle = d.container_stats(&idler).await;
    assert!(
        figure(&burning.cpu.as_ref().unwrap().usage_nano_cores)
            > figure(&idle.cpu.as_ref().unwrap().usage_nano_cores),
        "the burner's rate is above the idler's: {burning:?} {idle:?}"
    );

    wait_until(
        "the hog to fill its memory and layer",
        Duration::from_secs(30),
        || async {
            d.exec_sync(&hog, &["test", "-e", "/done"], 10)
                .await
                .ok()
                .filter(|r| r.exit_code == 0)
        },
    )
    .await;
    let hogging = d.container_stats(&hog).await;
    let memory = hogging.memory.as_ref().unwrap();
    assert!(figure(&memory.working_set_bytes) >= 40 * MIB, "{memory:?}");
    assert!(figure(&memory.usage_bytes) >= figure(&memory.working_set_bytes));
    assert!(
        memory.available_bytes.is_none(),
        "no limit, nothing to be available under"
    );
    let idle_memory = figure(&idle.memory.as_ref().unwrap().working_set_bytes);
    assert!(idle_memory < 10 * MIB, "{idle_memory}");
    let layer = hogging.writable_layer.as_ref().unwrap();
    assert!(figure(&layer.used_bytes) >= 6 * MIB, "{layer:?}");
    assert!(
        figure(&layer.inodes_used) >= 3,
        "the upper dir, the file, /done: {layer:?}"
    );
    assert!(!layer.fs_id.as_ref().unwrap().mountpoint.is_empty());
    // PSI and IO figures come from the pressure files of the container's cgroup in the v2 tree
    // (on a hybrid node, the unified hierarchy's): absent, not zero, where the kernel has none.
    let pid = d.container_status(&hog).await.unwrap().1["pid"].clone();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2_path = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_owned();
    let has_psi = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .any(|root| std::path::Path::new(&format!("{root}{v2_path}/cpu.pressure")).exists());
    assert_eq!(
        hogging.cpu.as_ref().unwrap().psi.is_some(),
        has_psi,
        "{hogging:?}"
    );
    assert_eq!(memory.psi.is_some(), has_psi, "{memory:?}");
    assert_eq!(hogging.io.is_some(), has_psi, "{hogging:?}");

    // The pod's own cgroup holds its containers' figures.
    let pod_figures = d.pod_stats(&pod).await;
    let linux = pod_figures.linux.as_ref().unwrap();
    assert_eq!(linux.containers.len(), 3);
    assert!(figure(&linux.memory.as_ref().unwrap().working_set_bytes) >= 40 * MIB);
    assert!(figure(&linux.cpu.as_ref().unwrap().usage_core_nano_seconds) >= cpu_ns(&burning));
    assert!(figure(&linux.process.as_ref().unwrap().process_count) >= 3);
    assert_eq!(linux.io.is_some(), has_psi, "{linux:?}");

    // A limit makes memory available under it.
    let limited = node
        .container("limited")
        .sh("sleep 1000")
        .resources(|r| r.memory_limit_in_bytes = 64 * MIB as i64);
    let limited = d.run_container(&pod, &config, &limited).await;
    let available = d
        .container_stats(&limited)
        .await
        .memory
        .unwrap()
        .available_bytes;
    assert!(
        figure(&available) > 50 * MIB && figure(&available) <= 64 * MIB,
        "{available:?}"
    );
}

#[tokio::test]
async fn lists_filter_by_id_pod_and_label_and_unknown_ids_are_not_found() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (a, a_config) = node.pod("list-a").await;
    let (b, b_config) = node.pod("list-b").await;
    let a1 = d
        .run_container(
            &a,
            &a_config,
            &node.container("a1").sh("sleep 1000").label("tier", "web"),
        )
        .await;
    let a2 = d
        .run_container(&a, &a_config, &node.container("a2").sh("sleep 1000"))
        .await;
    let b1 = d
        .run_container(
            &b,
            &b_config,
            &node.container("b1").sh("sleep 1000").label("tier", "web"),
        )
        .await;
    let exited = d
        .run_container(&b, &b_config, &node.container("done").sh("true"))
        .await;
    d.wait_container(&exited, cri::ContainerState::ContainerExited)
        .await;

    let mut running = vec![a1.clone(), a2.clone(), b1.clone()];
    running.sort();
    assert_eq!(
        list_container_stats(d, Default::default()).await,
        running,
        "running ones only"
    );
    let by_pod = cri::ContainerStatsFilter {
        pod_sandbox_id: a.clone(),
        ..Default::default()
    };
    let mut in_a = vec![a1.clone(), a2.clone()];
    in_a.sort();
    assert_eq!(list_container_stats(d, by_pod).await, in_a);
    let by_id = cri::ContainerStatsFilter {
        id: b1[..12].to_owned(),
        ..Default::default()
    };
    assert_eq!(list_container_stats(d, by_id).await, vec![b1.clone()]);
    let by_label = cri::ContainerStatsFilter {
        label_selector: HashMap::from([("tier".to_owned(), "web".to_owned())]),
        ..Default::default()
    };
    let mut web = vec![a1.clone(), b1.clone()];
    web.sort();
    assert_eq!(list_container_stats(d, by_label).await, web);

    let pods = d
        .clients()
        .await
        .runtime
        .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest {
            filter: Some(cri::PodSandboxStatsFilter {
                id: b.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(pods.len(), 1);
    let containers = &pods[0].linux.as_ref().unwrap().containers;
    assert_eq!(containers.len(), 1, "the running one of pod b");

    let mut c = d.clients().await;
    let unknown = "f".repeat(64);
    let err = c
        .runtime
        .container_stats(cri::ContainerStatsRequest {
            container_id: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = c
        .runtime
        .pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: unknown,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

/// The pod's cgroup dir (the memory hierarchy's on v1), under the daemon's parent.
fn pod_memory_cgroup(d: &TestDaemon, pod: &str) -> std::path::PathBuf {
    berth_testkit::cgroup::dir("memory", &format!("{}/pod{pod}", d.cgroup_parent))
}

#[tokio::test]
async fn a_pod_without_a_cgroup_parent_gets_its_own_cgroup_and_network_counters() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, config) = node.pod("net").await;
    assert!(pod_memory_cgroup(d, &pod).is_dir(), "made with the pod");
    let before_any_container = d.pod_stats(&pod).await;
    let linux = before_any_container.linux.unwrap();
    assert!(
        linux.cpu.is_some() && linux.memory.is_some(),
        "figures before any container"
    );

    let script = "mkdir /www; head -c 204800 /dev/zero > /www/page; httpd -f -p 8080 -h /www";
    d.run_container(&pod, &config, &node.container("httpd").sh(script))
        .await;
    let ip = d.pod_status(&pod).await.unwrap().0.network.unwrap().ip;
    let counters = |stats: cri::PodSandboxStats| {
        let network = stats.linux.unwrap().network.unwrap();
        let eth0 = network.default_interface.unwrap();
        assert_eq!(eth0.name, "eth0");
        assert!(network.interfaces.iter().all(|i| i.name != "lo"));
        (figure(&eth0.rx_bytes), figure(&eth0.tx_bytes))
    };
    let (rx, tx) = counters(d.pod_stats(&pod).await);
    let body = wait_until("the page from the pod", Duration::from_secs(10), || async {
        let mut s = std::net::TcpStream::connect((ip.as_str(), 8080)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /page HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.contains("200 OK").then_some(text)
    })
    .await;
    assert!(body.len() > 200 * 1024);
    let (rx_after, tx_after) = counters(d.pod_stats(&pod).await);
    assert!(
        tx_after >= tx + 200 * 1024,
        "the page went out: {tx} -> {tx_after}"
    );
    assert!(rx_after > rx, "the request came in: {rx} -> {rx_after}");

    d.remove_pod(&pod).await.unwrap();
    assert!(!pod_memory_cgroup(d, &pod).exists(), "removed with the pod");
}

#[tokio::test]
async fn cri_metrics_are_described_and_carry_the_same_figures() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, config) = node.pod("metrics").await;
    let id = d
        .run_container(
            &pod,
            &config,
            &node.container("filler").sh(
                "dd if=/dev/zero of=/dev/shm/f bs=1M count=20 2>/dev/null; touch /done; sleep 1000",
            ),
        )
        .await;
    wait_until("the filler", Duration::from_secs(30), || async {
        d.exec_sync(&id, &["test", "-e", "/done"], 10)
            .await
            .ok()
            .filter(|r| r.exit_code == 0)
    })
    .await;
    let mut c = d.clients().await;
    let descriptors = c
        .runtime
        .list_metric_descriptors(cri::ListMetricDescriptorsRequest {})
        .await
        .unwrap()
        .into_inner()
        .descriptors;
    let labels: HashMap<String, Vec<String>> = descriptors
        .into_iter()
        .map(|d| (d.name, d.label_keys))
        .collect();
    for name in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_network_receive_bytes_total",
    ] {
        assert!(labels.contains_key(name), "{name} is described");
    }
    assert_eq!(
        labels["container_network_receive_bytes_total"],
        ["id", "image", "namespace", "pod", "container", "interface"]
    );

    let all = c
        .runtime
        .list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {})
        .await
        .unwrap()
        .into_inner()
        .pod_metrics;
    let ours = all.iter().find(|m| m.pod_sandbox_id == pod).unwrap();
    for m in &ours.metrics {
        assert_eq!(m.label_values.len(), labels[&m.name].len(), "{}", m.name);
        assert_eq!(m.label_values[4], "POD");
    }
    let received = ours
        .metrics
        .iter()
        .find(|m| m.name == "container_network_receive_bytes_total")
        .unwrap();
    assert_eq!(received.label_values[5], "eth0");
    let container = &ours.container_metrics[0];
    assert_eq!(container.container_id, id);
    let working_set = container
        .metrics
        .iter()
        .find(|m| m.name == "container_memory_working_set_bytes")
        .unwrap();
    assert_eq!(
        working_set.label_values,
        [
            id.as_str(),
            node.image.as_str(),
            "default",
            "metrics",
            "filler"
        ]
    );
    assert!(working_set.value.as_ref().unwrap().value >= 20 * MIB);
}

#[tokio::test]
async fn events_of_a_whole_lifecycle_reach_every_subscriber_in_order() {
    let node = Node::start().await;
    let d = &node.daemon;
    let subscribe = || async {
        d.clients()
            .await
            .runtime
            .get_container_events(cri::GetEventsRequest {})
            .await
            .unwrap()
            .into_inner()
    };
    let mut first = subscribe().await;
    let mut second = subscribe().await;

    let config = PodConfig::new("events");
    let pod = d.run_pod(&config).await.unwrap();
    let ctr = d
        .create_container(&pod, &config, &node.container("c").sh("sleep 1000"))
        .await
        .unwrap();
    d.start_container(&ctr).await.unwrap();
    d.stop_container(&ctr, 0).await.unwrap();
    d.remove_container(&ctr).await.unwrap();
    d.stop_pod(&pod).await.unwrap();
    d.remove_pod(&pod).await.unwrap();

    use cri::ContainerEventType::*;
    let want = [
        (pod.clone(), ContainerCreatedEvent),
        (pod.clone(), ContainerStartedEvent),
        (ctr.clone(), ContainerCreatedEvent),
        (ctr.clone(), ContainerStartedEvent),
        (ctr.clone(), ContainerStoppedEvent),
        (ctr.clone(), ContainerDeletedEvent),
        (pod.clone(), ContainerStoppedEvent),
        (pod.clone(), ContainerDeletedEvent),
    ];
    for stream in [&mut first, &mut second] {
        let mut got = Vec::new();
        let mut last_at = 0;
        for _ in 0..want.len() {
            let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("an event")
                .unwrap()
                .unwrap();
            assert!(event.created_at >= last_at, "in the order they happened");
            last_at = event.created_at;
            let kind = cri::ContainerEventType::try_from(event.container_event_type).unwrap();
            if event.container_id == ctr && kind == ContainerStartedEvent {
                let pod_status = event.pod_sandbox_status.as_ref().unwrap();
                assert_eq!(pod_status.id, pod);
                let status = event
                    .containers_statuses
                    .iter()
                    .find(|s| s.id == ctr)
                    .unwrap();
                assert_eq!(status.state, cri::ContainerState::ContainerRunning as i32);
            }
            if event.container_id == pod && kind == ContainerDeletedEvent {
                assert!(event.pod_sandbox_status.is_none(), "the pod is gone");
            }
            got.push((event.container_id, kind));
        }
        assert_eq!(got, want);
    }
}

/// GET `path` from `address` over plain HTTP/1.0: the status line, headers and body as text.
fn http_get(address: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// Checks the OpenMetrics text format (every sample in a family declared before it, labels
/// well-formed, values numbers, `# EOF` last) and returns the samples by name and labels.
fn parse_openmetrics(body: &str) -> HashMap<String, f64> {
    let mut families: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            families.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let name = series.split('{').next().unwrap();
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(!v.is_empty() || pair.ends_with("=\""), "{line}");
                }
            }
        }
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| families.contains_key(*f)))
            .unwrap_or(name);
        let kind = families
            .get(family)
            .unwrap_or_else(|| panic!("{name} belongs to a declared family"));
        if name.ends_with("_total") {
            assert_eq!(kind, "counter", "{line}");
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

#[tokio::test]
async fn the_prometheus_endpoint_counts_calls_pulls_and_containers() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let node = Node::start_with(
        TestDaemon::builder().config(&format!("[metrics]\naddress = \"{address}\"\n")),
        berth_testkit::ImageBuilder::busybox(),
    )
    .await;
    let d = &node.daemon;
    let (pod, config) = node.pod("scraped").await;
    d.run_container(&pod, &config, &node.container("c").sh("sleep 1000"))
        .await;
    let missing = d.container_status(&"e".repeat(64)).await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);

    let reply = http_get(&address, "/metrics");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let samples = parse_openmetrics(body);
    let get = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} in:\n{body}"))
    };
    assert_eq!(
        get(r#"berth_cri_requests_total{method="RunPodSandbox",code="Ok"}"#),
        1.0
    );
    assert_eq!(
        get(r#"berth_cri_requests_total{method="ContainerStatus",code="NotFound"}"#),
        1.0
    );
    assert_eq!(get(r#"berth_image_pulls_total{result="success"}"#), 1.0);
    assert!(
        get("berth_image_pull_bytes_total") > 100_000.0,
        "busybox's layer"
    );
    assert_eq!(get(r#"berth_containers{state="running"}"#), 1.0);
    assert_eq!(get(r#"berth_pod_sandboxes{state="ready"}"#), 1.0);
    assert_eq!(get("berth_monitors"), 1.0);
    let calls = get(r#"berth_cri_request_duration_seconds_count{method="RunPodSandbox"}"#);
    assert_eq!(
        get(r#"berth_cri_request_duration_seconds_bucket{method="RunPodSandbox",le="+Inf"}"#),
        calls
    );
    assert!(http_get(&address, "/other").contains(" 404 "));
}

/// Every item of a server stream, and that it ended (EOF) rather than broke; no message empty.
async fn drain<M>(
    stream: tonic::Response<tonic::Streaming<M>>,
    items: impl Fn(M) -> Vec<String>,
) -> Vec<String> {
    let mut stream = stream.into_inner();
    let mut all = Vec::new();
    while let Some(message) = stream.message().await.expect("a stream that ends cleanly") {
        let ids = items(message);
        assert!(!ids.is_empty(), "each message carries at least one item");
        all.extend(ids);
    }
    all.sort();
    all
}

#[tokio::test]
async fn stream_rpcs_answer_each_item_once_then_end() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, config) = node.pod("streams").await;
    let mut containers = Vec::new();
    for name in ["a", "b", "c"] {
        let c = node.container(name).sh("sleep 1000");
        containers.push(d.run_container(&pod, &config, &c).await);
    }
    containers.sort();
    let mut c = d.clients().await;
    let r = &mut c.runtime;
    let streamed = drain(
        r.stream_containers(cri::StreamContainersRequest::default())
            .await
            .unwrap(),
        |m| m.containers.into_iter().map(|c| c.id).collect(),
    )
    .await;
    assert_eq!(streamed, containers);
    let stats = drain(
        r.stream_container_stats(cri::StreamContainerStatsRequest::default())
            .await
            .unwrap(),
        |m| {
            m.container_stats
                .into_iter()
                .filter_map(|s| s.attributes.map(|a| a.id))
                .collect()
        },
    )
    .await;
    assert_eq!(stats, containers);
    let pods = drain(
        r.stream_pod_sandboxes(cri::StreamPodSandboxesRequest::default())
            .await
            .unwrap(),
        |m| m.pod_sandboxes.into_iter().map(|p| p.id).collect(),
    )
    .await;
    assert_eq!(pods, [pod.as_str()]);
    let pod_stats = drain(
        r.stream_pod_sandbox_stats(cri::StreamPodSandboxStatsRequest::default())
            .await
            .unwrap(),
        |m| {
            m.pod_sandbox_stats
                .into_iter()
                .filter_map(|s| s.attributes.map(|a| a.id))
                .collect()
        },
    )
    .await;
    assert_eq!(pod_stats, [pod.as_str()]);
    let metrics = drain(
        r.stream_pod_sandbox_metrics(cri::StreamPodSandboxMetricsRequest::default())
            .await
            .unwrap(),
        |m| {
            m.pod_sandbox_metrics
                .into_iter()
                .map(|p| p.pod_sandbox_id)
                .collect()
        },
    )
    .await;
    assert_eq!(metrics, [pod.as_str()]);
    let images = drain(
        c.image
            .stream_images(cri::StreamImagesRequest::default())
            .await
            .unwrap(),
        |m| m.images.into_iter().map(|i| i.id).collect(),
    )
    .await;
    let listed = d
        .clients()
        .await
        .image
        .list_images(cri::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    let mut listed: Vec<String> = listed.into_iter().map(|i| i.id).collect();
    listed.sort();
    assert_eq!(images, listed);
    assert!(!images.is_empty());
}
