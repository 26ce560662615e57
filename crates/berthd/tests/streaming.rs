//! Exec, attach and port-forward through the streaming server, with the test kit's own SPDY and
//! WebSocket clients against real containers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use berth_cri::v1 as cri;
use berth_testkit::{Node, PodConfig, SpdyClient, WsClient, WsIn, free_port, wait_until};

const V4: &str = "v4.channel.k8s.io";
/// What client-go (crictl, kubelet's proxy) offers for exec and attach.
const CLIENT_GO: [&str; 5] = [
    "v5.channel.k8s.io",
    V4,
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

async fn running(node: &Node, name: &str, script: &str) -> (String, String, PodConfig) {
    let (pod, config) = node.pod(name).await;
    let id = node
        .daemon
        .run_container(&pod, &config, &node.container(name).sh(script))
        .await;
    (pod, id, config)
}

#[tokio::test]
async fn exec_reports_output_and_exit_codes_over_spdy() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (_, id, _) = running(&node, "exec", "sleep 1000").await;
    let url = d
        .exec_url(&id, &["sh", "-c", "echo out; echo err >&2"], false, false)
        .await
        .unwrap();
    let client = SpdyClient::connect(&url, &CLIENT_GO).await;
    assert_eq!(
        client.protocol, "v4.channel.k8s.io",
        "over SPDY v4 is the newest, as kubelet answers"
    );
    let out = client.remotecommand(None, true, true, None).await;
    assert_eq!(
        (out.stdout(), out.stderr(), out.exit_code()),
        ("out\n".into(), "err\n".into(), 0)
    );
    assert_eq!(out.status()["status"], "Success");

    let url = d
        .exec_url(&id, &["sh", "-c", "exit 3"], false, false)
        .await
        .unwrap();
    let out = SpdyClient::connect(&url, &[V4])
        .await
        .remotecommand(None, true, true, None)
        .await;
    assert_eq!(out.exit_code(), 3);
    assert_eq!(out.status()["reason"], "NonZeroExitCode");

    // Input reaches the process, and its end is delivered.
    let url = d.exec_url(&id, &["cat"], false, true).await.unwrap();
    let out = SpdyClient::connect(&url, &[V4])
        .await
        .remotecommand(Some(b"via stdin\n"), true, true, None)
        .await;
    assert_eq!(out.stdout(), "via stdin\n");

    // Far past 64 KiB: no flow-control stall, nothing truncated.
    let url = d
        .exec_url(
            &id,
            &["sh", "-c", "head -c 5000000 /dev/zero"],
            false,
            false,
        )
        .await
        .unwrap();
    let out = SpdyClient::connect(&url, &[V4])
        .await
        .remotecommand(None, true, true, None)
        .await;
    assert_eq!(out.stdout.len(), 5_000_000);

    // An older protocol: no status on success, text on failure.
    let url = d
        .exec_url(&id, &["sh", "-c", "exit 4"], false, false)
        .await
        .unwrap();
    let client = SpdyClient::connect(&url, &["v2.channel.k8s.io"]).await;
    assert_eq!(client.protocol, "v2.channel.k8s.io");
    let out = client.remotecommand(None, true, true, None).await;
    assert!(
        String::from_utf8_lossy(&out.error).contains("non-zero exit code"),
        "{out:?}"
    );
}

#[tokio::test]
async fn exec_with_a_tty_takes_input_and_the_window_size() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (_, id, _) = running(&node, "tty", "sleep 1000").await;
    let url = d.exec_url(&id, &["sh"], true, true).await.unwrap();
    let client = SpdyClient::connect(&url, &CLIENT_GO).await;
    let out = client
        .remotecommand(
            // The size and the input travel on separate streams: wait for the size to land.
            Some(
                b"for i in 1 2 3 4 5 6 7 8 9 10; do s=$(stty size 2>/dev/null); \
                  [ -n \"$s\" ] && [ \"$s\" != \"0 0\" ] && break; sleep 0.2; done; \
                  echo size $s; tty; exit 7\n",
            ),
            true,
            false,
            Some((123, 45)),
        )
        .await;
    let text = out.stdout();
    assert!(
        text.contains("size 45 123"),
        "the pty has the client's size: {text:?}"
    );
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert_eq!(out.exit_code(), 7);
}

#[tokio::test]
async fn attach_echoes_through_a_cat_container_and_detaching_leaves_it_running() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, config) = node.pod("attach").await;
    let cat = node.container("cat").command(&["cat"]).stdin(false);
    let id = d.run_container(&pod, &config, &cat).await;
    let url = d.attach_url(&id, false, true).await.unwrap();
    let mut client = SpdyClient::connect(&url, &[V4]).await;
    let _error = client.open(&[("streamtype", "error")]).await;
    let stdin = client.open(&[("streamtype", "stdin")]).await;
    let stdout = client.open(&[("streamtype", "stdout")]).await;
    let _stderr = client.open(&[("streamtype", "stderr")]).await;
    client.send(stdin, b"hello through attach\n").await;
    let mut got = Vec::new();
    while !got.ends_with(b"hello through attach\n") {
        match client.next().await.expect("output") {
            berth_stream::spdy::frame::Frame::Data { id, data, .. } if id == stdout => {
                got.extend_from_slice(&data)
            }
            _ => {}
        }
    }
    client.vanish();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = d.container_status(&id).await.unwrap().0;
    assert_eq!(
        s.state,
        cri::ContainerState::ContainerRunning as i32,
        "detaching never stops the container"
    );
    // The echo went to the log too.
    assert!(
        berth_testkit::log_lines(&s.log_path)
            .iter()
            .any(|l| l.2 == "hello through attach")
    );
}

#[tokio::test]
async fn port_forward_reaches_an_httpd_in_the_pod_and_in_a_host_network_pod() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, _id, _) = running(
        &node,
        "web",
        "echo pod-index > /tmp/index.html; httpd -f -p 8080 -h /tmp",
    )
    .await;
    let fetch = |url: String, port: u16| async move {
        let mut c = SpdyClient::connect(&url, &["portforward.k8s.io"]).await;
        let port = port.to_string();
        let mut bodies = Vec::new();
        // Several connections on one session.
        for request in ["0", "1", "2"] {
            let error = c
                .open(&[
                    ("streamtype", "error"),
                    ("port", &port),
                    ("requestid", request),
                ])
                .await;
            c.fin(error).await;
            let data = c
                .open(&[
                    ("streamtype", "data"),
                    ("port", &port),
                    ("requestid", request),
                ])
                .await;
            c.send(data, b"GET /index.html HTTP/1.0\r\n\r\n").await;
            c.fin(data).await;
            let got = c.collect(&[data, error]).await;
            bodies.push(String::from_utf8_lossy(&got[&data]).into_owned());
            assert!(
                got[&error].is_empty(),
                "{:?}",
                String::from_utf8_lossy(&got[&error])
            );
        }
        bodies
    };
    let url = d.port_forward_url(&pod, &[]).await.unwrap();
    wait_until("the pod's httpd", Duration::from_secs(10), || async {
        let url = d.port_forward_url(&pod, &[]).await.unwrap();
        let mut c = SpdyClient::connect(&url, &["portforward.k8s.io"]).await;
        let e = c
            .open(&[
                ("streamtype", "error"),
                ("port", "8080"),
                ("requestid", "0"),
            ])
            .await;
        let data = c
            .open(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")])
            .await;
        c.send(data, b"GET / HTTP/1.0\r\n\r\n").await;
        c.fin(data).await;
        let got = c.collect(&[data, e]).await;
        (!got[&data].is_empty()).then_some(())
    })
    .await;
    for body in fetch(url, 8080).await {
        assert!(
            body.contains("200 OK") && body.contains("pod-index"),
            "{body}"
        );
    }

    // Nobody listens: the error stream says why.
    let url = d.port_forward_url(&pod, &[]).await.unwrap();
    let mut c = SpdyClient::connect(&url, &["portforward.k8s.io"]).await;
    let error = c
        .open(&[("streamtype", "error"), ("port", "9"), ("requestid", "0")])
        .await;
    let data = c
        .open(&[("streamtype", "data"), ("port", "9"), ("requestid", "0")])
        .await;
    let got = c.collect(&[error, data]).await;
    let message = String::from_utf8_lossy(&got[&error]).into_owned();
    assert!(
        message.contains("IPv4") && message.contains("IPv6"),
        "{message}"
    );

    let host_port = free_port();
    let (host_pod, host_config) = node
        .pod_with(PodConfig::new("hostweb").host_network())
        .await;
    let script = format!("echo host-index > /tmp/index.html; httpd -f -p {host_port} -h /tmp");
    d.run_container(
        &host_pod,
        &host_config,
        &node.container("hostweb").sh(&script),
    )
    .await;
    wait_until(
        "the host-network httpd",
        Duration::from_secs(10),
        || async { std::net::TcpStream::connect(("127.0.0.1", host_port)).ok() },
    )
    .await;
    let url = d.port_forward_url(&host_pod, &[]).await.unwrap();
    for body in fetch(url, host_port).await {
        assert!(body.contains("host-index"), "{body}");
    }
}

#[tokio::test]
async fn websocket_exec_attach_and_port_forward() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (pod, id, _) = running(
        &node,
        "ws",
        "echo ws-index > /tmp/index.html; httpd -f -p 8080 -h /tmp",
    )
    .await;

    // v5 (crictl --transport websocket): stdin ends with the CLOSE signal.
    let url = d
        .exec_url(&id, &["sh", "-c", "cat; exit 6"], false, true)
        .await
        .unwrap();
    let mut ws = WsClient::connect(&url, &["v5.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(ws.protocol, "v5.channel.k8s.io");
    assert_eq!(
        ws.next().await,
        Some(WsIn::Binary(vec![1])),
        "the connected message"
    );
    ws.send_binary(b"\x00over websocket\n").await;
    ws.send_binary(&[255, 0]).await;
    let (channels, close) = ws.collect().await;
    assert_eq!(close, Some(1000));
    assert_eq!(channels[&1], b"over websocket\n");
    let status: serde_json::Value = serde_json::from_slice(&channels[&3]).unwrap();
    assert_eq!(status["details"]["causes"][0]["message"], "6");

    // v4 base64 (third-party clients).
    let url = d
        .exec_url(&id, &["echo", "in base64"], false, false)
        .await
        .unwrap();
    let mut ws = WsClient::connect(&url, &["v4.base64.channel.k8s.io"])
        .await
        .unwrap();
    let (channels, _) = ws.collect().await;
    assert_eq!(channels[&1], b"in base64\n");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&channels[&3]).unwrap()["status"],
        "Success"
    );

    // v4 port-forward: ports from the request, data on channel 0, errors on 1.
    let url = d.port_forward_url(&pod, &[8080]).await.unwrap();
    let mut ws = WsClient::connect(&url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(
        ws.next().await,
        Some(WsIn::Binary(vec![0, 0x90, 0x1f])),
        "port 8080 little-endian"
    );
    assert_eq!(ws.next().await, Some(WsIn::Binary(vec![1, 0x90, 0x1f])));
    ws.send_binary(b"\x00GET /index.html HTTP/1.0\r\n\r\n")
        .await;
    let (channels, _) = ws.collect().await;
    assert!(String::from_utf8_lossy(&channels[&0]).contains("ws-index"));

    // An unknown sub-protocol is refused.
    let url = d.exec_url(&id, &["true"], false, false).await.unwrap();
    let refused = WsClient::connect(&url, &["v9.channel.k8s.io"])
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn tokens_are_single_use_paths_are_checked_and_protocols_negotiated() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (_, id, _) = running(&node, "tokens", "sleep 1000").await;
    let url = d.exec_url(&id, &["true"], false, false).await.unwrap();
    SpdyClient::connect(&url, &[V4])
        .await
        .remotecommand(None, true, true, None)
        .await;
    let upgrade = [
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", V4),
    ];
    let (_, reused, _) = berth_testkit::stream_request(&url, "POST", &upgrade).await;
    assert_eq!(reused.status, 404, "a token is good once");
    let attach_path = url.replace("/exec/", "/attach/");
    let fresh = d.exec_url(&id, &["true"], false, false).await.unwrap();
    let (_, wrong_kind, _) =
        berth_testkit::stream_request(&fresh.replace("/exec/", "/attach/"), "POST", &upgrade).await;
    assert_eq!(wrong_kind.status, 404, "an exec token on the attach path");
    let (_, spent, _) = berth_testkit::stream_request(&fresh, "POST", &upgrade).await;
    assert_eq!(spent.status, 404, "and it was spent");
    let (_, unknown, _) =
        berth_testkit::stream_request(&attach_path.replace("/attach/", "/nothing/"), "GET", &[])
            .await;
    assert_eq!(unknown.status, 404);

    let url = d.exec_url(&id, &["true"], false, false).await.unwrap();
    let (_, none, _) = berth_testkit::stream_request(&url, "POST", &upgrade[..2]).await;
    assert_eq!(none.status, 400, "X-Stream-Protocol-Version is required");
    let url = d.exec_url(&id, &["true"], false, false).await.unwrap();
    let bad = [
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "v9.channel.k8s.io"),
    ];
    let (_, mismatch, _) = berth_testkit::stream_request(&url, "POST", &bad).await;
    assert_eq!(mismatch.status, 403);
    assert!(
        mismatch
            .header("x-accepted-stream-protocol-versions")
            .is_some()
    );

    let url = d.exec_url(&id, &["true"], false, false).await.unwrap();
    let huge = "x".repeat(64 * 1024);
    let (_, oversized, _) = berth_testkit::stream_request(&url, "POST", &[("X-Huge", &huge)]).await;
    assert!(
        oversized.status == 431 || oversized.status == 400 || oversized.status == 0,
        "{oversized:?}"
    );

    // The RPCs check what they are asked.
    let mut c = d.clients().await;
    let tty_stderr = cri::ExecRequest {
        container_id: id.clone(),
        cmd: vec!["true".into()],
        tty: true,
        stderr: true,
        stdout: true,
        ..cri::ExecRequest::default()
    };
    assert_eq!(
        c.runtime.exec(tty_stderr).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let unknown = d
        .exec_url(&"a".repeat(64), &["true"], false, false)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    d.stop_container(&id, 0).await.unwrap();
    let stopped = d.exec_url(&id, &["true"], false, false).await.unwrap_err();
    assert_eq!(stopped.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn a_client_that_vanishes_mid_exec_leaves_no_process_behind() {
    let node = Node::start().await;
    let d = &node.daemon;
    let (_, id, _) = running(&node, "vanish", "sleep 1000").await;
    let url = d
        .exec_url(&id, &["sleep", "777"], false, false)
        .await
        .unwrap();
    let mut client = SpdyClient::connect(&url, &[V4]).await;
    client.open(&[("streamtype", "error")]).await;
    client.open(&[("streamtype", "stdout")]).await;
    client.open(&[("streamtype", "stderr")]).await;
    wait_until("the exec'd sleep", Duration::from_secs(10), || async {
        d.sh(&id, "ps -o args")
            .await
            .contains("sleep 777")
            .then_some(())
    })
    .await;
    client.vanish();
    wait_until(
        "the exec'd sleep to be gone",
        Duration::from_secs(10),
        || async { (!d.sh(&id, "ps -o args").await.contains("sleep 777")).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn clients_that_stall_or_crowd_the_streaming_server_are_cut_off() {
    let node = Node::start_with(
        berth_testkit::TestDaemon::builder()
            .config("[streaming]\nrequest_timeout = \"1s\"\nmax_connections = 4"),
        berth_testkit::ImageBuilder::busybox(),
    )
    .await;
    let (_, id, _) = running(&node, "bounded", "sleep 1000").await;
    let url = node
        .daemon
        .exec_url(&id, &["true"], false, false)
        .await
        .unwrap();
    let address = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    };
    // Half a request head, and then nothing: closed once its time is up.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"POST /exec/x HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    assert!(closed(slow).await, "a stalled request is closed");
    // More idle connections than allowed: the ones over are closed at once.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let over = tokio::net::TcpStream::connect(&address).await.unwrap();
    assert!(closed(over).await, "a connection over the limit is closed");
    drop(idle);
    // The server still serves a real exec.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let url = node
        .daemon
        .exec_url(&id, &["echo", "still"], false, false)
        .await
        .unwrap();
    let out = SpdyClient::connect(&url, &[V4])
        .await
        .remotecommand(None, true, true, None)
        .await;
    assert_eq!(out.stdout(), "still\n");
}
