//! Test clients of the streaming server, speaking as client-go does: SPDY/3.1 (streams opened in
//! client-go's order, each after the previous SYN_REPLY) and WebSocket (masked frames).

use std::collections::HashMap;
use std::time::Duration;

use berth_stream::spdy::frame::{self, Frame, Limits};
use berth_stream::spdy::headers::{Deflater, Inflater, decode_block, encode_block};
use berth_stream::websocket::client_frame;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(30);

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    (host.to_owned(), format!("/{path}"))
}

/// An HTTP response head: status and headers (lower-case names).
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends a request head and reads the response head; the stream carries what follows.
pub async fn request(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
) -> (TcpStream, Head, Vec<u8>) {
    let (host, path) = split_url(url);
    let mut stream = TcpStream::connect(&host)
        .await
        .expect("connect to the streaming server");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("request");
    let mut buf = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(TIMEOUT, stream.read(&mut chunk))
            .await
            .expect("response")
            .expect("read");
        if n == 0 {
            break buf.len();
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = buf[end..].to_vec();
    (stream, Head { status, headers }, rest)
}

/// A client's SPDY session.
pub struct SpdyClient {
    io: TcpStream,
    buf: BytesMut,
    deflater: Deflater,
    inflater: Inflater,
    next_id: u32,
    pub protocol: String,
}

/// What an exec or attach session brought: output, and the error stream's content.
#[derive(Debug, Default)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub error: Vec<u8>,
}

impl Outcome {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// The v4 status JSON on the error stream.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&self.error).expect("status JSON")
    }
    /// The exit code the status reports (0 for success).
    pub fn exit_code(&self) -> u8 {
        let s = self.status();
        if s["status"] == "Success" {
            return 0;
        }
        s["details"]["causes"][0]["message"]
            .as_str()
            .and_then(|m| m.parse().ok())
            .expect("exit code cause")
    }
}

impl SpdyClient {
    /// Upgrades to SPDY offering `protocols`; panics unless the server answers 101.
    pub async fn connect(url: &str, protocols: &[&str]) -> SpdyClient {
        let mut headers = vec![("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
        for p in protocols {
            headers.push(("X-Stream-Protocol-Version", p));
        }
        let (io, head, rest) = request(url, "POST", &headers).await;
        assert_eq!(head.status, 101, "{head:?}");
        SpdyClient {
            io,
            buf: BytesMut::from(&rest[..]),
            deflater: Deflater::new(),
            inflater: Inflater::new(),
            next_id: 1,
            protocol: head
                .header("x-stream-protocol-version")
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// Opens a stream with these headers and waits for its SYN_REPLY; its id.
    pub async fn open(&mut self, headers: &[(&str, &str)]) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        let block = self.deflater.compress(&encode_block(headers));
        self.io
            .write_all(&frame::syn_stream(id, 0, &block))
            .await
            .expect("SYN_STREAM");
        loop {
            match self.next().await.expect("SYN_REPLY") {
                Frame::SynReply { id: got, .. } if got == id => return id,
                Frame::RstStream { id: got, .. } if got == id => panic!("stream {id} refused"),
                _ => {}
            }
        }
    }

    pub async fn send(&mut self, id: u32, data: &[u8]) {
        self.io
            .write_all(&frame::data(id, false, data))
            .await
            .expect("DATA");
    }

    pub async fn fin(&mut self, id: u32) {
        self.io
            .write_all(&frame::data(id, true, b""))
            .await
            .expect("FIN");
    }

    pub async fn ping(&mut self, id: u32) {
        self.io.write_all(&frame::ping(id)).await.expect("PING");
    }

    /// The next frame from the server, or None when it closed the connection.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            match frame::parse(&mut self.buf, &Limits::default()).expect("a valid frame") {
                Some(f) => {
                    if let Frame::SynReply { header_block, .. } = &f {
                        decode_block(&self.inflater.decompress(header_block).expect("inflate"))
                            .expect("block");
                    }
                    return Some(f);
                }
                None => {
                    let n = tokio::time::timeout(TIMEOUT, self.io.read_buf(&mut self.buf))
                        .await
                        .expect("a frame in time")
                        .ok()?;
                    if n == 0 {
                        return None;
                    }
                }
            }
        }
    }

    /// Collects data until every stream in `ids` is ended (FIN or RST); data per stream.
    pub async fn collect(&mut self, ids: &[u32]) -> HashMap<u32, Vec<u8>> {
        let mut data: HashMap<u32, Vec<u8>> = ids.iter().map(|id| (*id, Vec::new())).collect();
        let mut open: Vec<u32> = ids.to_vec();
        while !open.is_empty() {
            match self.next().await {
                Some(Frame::Data {
                    id,
                    flags,
                    data: bytes,
                }) => {
                    data.entry(id).or_default().extend_from_slice(&bytes);
                    if flags & frame::FLAG_FIN != 0 {
                        open.retain(|o| *o != id);
                    }
                }
                Some(Frame::RstStream { id, .. }) => open.retain(|o| *o != id),
                Some(_) => {}
                None => break,
            }
        }
        data
    }

    /// An exec or attach session as client-go runs it: error, stdin, stdout, stderr (not with a
    /// TTY), resize (with a TTY) streams; then `input` on stdin (and FIN), the resize, and all
    /// output until the server ends it.
    pub async fn remotecommand(
        mut self,
        stdin: Option<&[u8]>,
        stdout: bool,
        stderr: bool,
        resize: Option<(u16, u16)>,
    ) -> Outcome {
        let error = self.open(&[("streamtype", "error")]).await;
        let stdin_id = match stdin {
            Some(_) => Some(self.open(&[("streamtype", "stdin")]).await),
            None => None,
        };
        let stdout_id = if stdout {
            Some(self.open(&[("streamtype", "stdout")]).await)
        } else {
            None
        };
        let stderr_id = if stderr {
            Some(self.open(&[("streamtype", "stderr")]).await)
        } else {
            None
        };
        if let Some((w, h)) = resize {
            let id = self.open(&[("streamtype", "resize")]).await;
            let json = format!("{{\"Width\":{w},\"Height\":{h}}}\n");
            self.send(id, json.as_bytes()).await;
        }
        if let (Some(id), Some(input)) = (stdin_id, stdin) {
            if !input.is_empty() {
                self.send(id, input).await;
            }
            self.fin(id).await;
        }
        let ids: Vec<u32> = [Some(error), stdout_id, stderr_id]
            .into_iter()
            .flatten()
            .collect();
        let mut data = self.collect(&ids).await;
        Outcome {
            stdout: stdout_id
                .and_then(|id| data.remove(&id))
                .unwrap_or_default(),
            stderr: stderr_id
                .and_then(|id| data.remove(&id))
                .unwrap_or_default(),
            error: data.remove(&error).unwrap_or_default(),
        }
    }

    /// Drops the connection at once (a client that vanishes).
    pub fn vanish(self) {
        drop(self.io);
    }
}

/// A client's WebSocket.
pub struct WsClient {
    io: TcpStream,
    buf: Vec<u8>,
    pub protocol: String,
}

/// A message from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum WsIn {
    Binary(Vec<u8>),
    Text(String),
    Close(u16),
}

impl WsClient {
    /// Upgrades to WebSocket offering `protocols`; the response head when it is not 101.
    pub async fn connect(url: &str, protocols: &[&str]) -> Result<WsClient, Head> {
        let list = protocols.join(", ");
        let mut headers = vec![
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        if !list.is_empty() {
            headers.push(("Sec-WebSocket-Protocol", &list));
        }
        let (io, head, rest) = request(url, "GET", &headers).await;
        if head.status != 101 {
            return Err(head);
        }
        assert_eq!(
            head.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        Ok(WsClient {
            io,
            buf: rest,
            protocol: head
                .header("sec-websocket-protocol")
                .unwrap_or_default()
                .to_owned(),
        })
    }

    pub async fn send_binary(&mut self, payload: &[u8]) {
        self.io
            .write_all(&client_frame(2, payload))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, payload: &str) {
        self.io
            .write_all(&client_frame(1, payload.as_bytes()))
            .await
            .expect("send");
    }

    pub async fn close(&mut self) {
        let _ = self
            .io
            .write_all(&client_frame(8, &1000u16.to_be_bytes()))
            .await;
    }

    /// The next message (pings are answered by nobody: the server sends none).
    pub async fn next(&mut self) -> Option<WsIn> {
        loop {
            if self.buf.len() >= 2 {
                let len7 = usize::from(self.buf[1] & 0x7f);
                let (len, at) = match len7 {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().expect("8 bytes")) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let opcode = self.buf[0] & 0x0f;
                    let payload: Vec<u8> = self.buf.drain(..at + len).skip(at).collect();
                    return Some(match opcode {
                        1 => WsIn::Text(String::from_utf8(payload).expect("utf-8")),
                        8 => WsIn::Close(
                            payload
                                .get(..2)
                                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                                .unwrap_or(1005),
                        ),
                        _ => WsIn::Binary(payload),
                    });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout(TIMEOUT, self.io.read(&mut chunk))
                .await
                .expect("a message in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Binary channel messages until the close frame: bytes per channel, and the close code.
    pub async fn collect(&mut self) -> (HashMap<u8, Vec<u8>>, Option<u16>) {
        let mut channels: HashMap<u8, Vec<u8>> = HashMap::new();
        while let Some(message) = self.next().await {
            match message {
                WsIn::Binary(b) if !b.is_empty() => {
                    channels.entry(b[0]).or_default().extend_from_slice(&b[1..])
                }
                WsIn::Text(t) if !t.is_empty() => {
                    use base64::Engine;
                    let payload = base64::engine::general_purpose::STANDARD
                        .decode(&t[1..])
                        .expect("base64");
                    channels
                        .entry(t.as_bytes()[0] - b'0')
                        .or_default()
                        .extend_from_slice(&payload);
                }
                WsIn::Close(code) => {
                    self.close().await;
                    return (channels, Some(code));
                }
                _ => {}
            }
        }
        (channels, None)
    }
}
