//! The CRI socket serves any conforming gRPC client, not only Go's: C-core clients (Python, Ruby,
//! C++, PHP) send the socket path, percent-encoded, as `:authority`, and others send odd or
//! empty ones. Each must get its answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use berth_testkit::TestDaemon;

/// grpcio from PyPI (the version `scripts/install-deps.sh` pins; Debian's older one sends
/// `localhost`) calls Version and ListPodSandbox as a Python CRI client would; the answers are
/// the serialized responses.
#[tokio::test]
async fn a_python_grpcio_client_is_answered() {
    let d = TestDaemon::start().await;
    let script = r#"
import sys, grpc
channel = grpc.insecure_channel("unix://" + sys.argv[1])
call = lambda m: channel.unary_unary(m)(b"", timeout=10)
version = call("/runtime.v1.RuntimeService/Version")
pods = call("/runtime.v1.RuntimeService/ListPodSandbox")
sys.stdout.write("%s %d" % (b"berth" in version, len(pods)))
"#;
    let out = tokio::task::spawn_blocking({
        let socket = d.socket.clone();
        move || {
            Command::new(berth_testkit::test_tool("grpcio/bin/python"))
                .arg("-c")
                .arg(script)
                .arg(&socket)
                .output()
                .expect("the grpcio venv's python")
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "grpcio failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "True 0");
}

/// An HTTP/2 frame: length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// A header block of plain literals (no Huffman, no indexing).
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        for s in [name, value] {
            assert!(s.len() < 127);
            out.push(s.len() as u8);
            out.extend(s.as_bytes());
        }
    }
    out
}

/// Calls Version over a raw HTTP/2 connection with `authority`; true when a DATA frame with the
/// runtime's name came back on the stream, false when the stream was reset.
fn version_with_authority(socket: &std::path::Path, authority: &str) -> bool {
    let mut conn = UnixStream::connect(socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    let block = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/runtime.v1.RuntimeService/Version"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]);
    out.extend(frame(0x1, 0x4, 1, &block));
    // An empty VersionRequest: uncompressed, zero bytes long.
    out.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0]));
    conn.write_all(&out).unwrap();
    let mut read = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        // Walk the frames read so far.
        let mut at = 0;
        while read.len() >= at + 9 {
            let len = u32::from_be_bytes([0, read[at], read[at + 1], read[at + 2]]) as usize;
            if read.len() < at + 9 + len {
                break;
            }
            let (kind, stream) = (
                read[at + 3],
                u32::from_be_bytes([read[at + 5], read[at + 6], read[at + 7], read[at + 8]]),
            );
            let payload = &read[at + 9..at + 9 + len];
            if stream == 1 && kind == 0x3 {
                return false;
            }
            if stream == 1 && kind == 0x0 && payload.windows(5).any(|w| w == b"berth") {
                return true;
            }
            at += 9 + len;
        }
        let n = conn.read(&mut buf).expect("the server answers");
        assert!(n > 0, "the server closed the connection");
        read.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn any_authority_over_the_unix_socket_is_answered() {
    let d = TestDaemon::start().await;
    let socket = d.socket.clone();
    let answered = tokio::task::spawn_blocking(move || {
        [
            "run%2Fberth%2Fberth.sock",
            "localhost",
            "",
            "two words",
            "[::1",
            "%",
        ]
        .map(|a| (a, version_with_authority(&socket, a)))
    })
    .await
    .unwrap();
    for (authority, ok) in answered {
        assert!(ok, "Version with :authority {authority:?} is answered");
    }
}
