//! Exec and attach sessions (remotecommand), over SPDY or WebSocket: the client's streams wired to
//! the process, the exit status on the error stream, and the end-of-session order that never
//! truncates output (stop input, write the status, end every output stream, wait for the client
//! to close, then close).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::backend::{BackendError, Exit, Output, ProcessIo};
use crate::spdy::session::{Chunk, IncomingStream, SessionWriter};
use crate::status::error_payload;
use crate::websocket::{Message, WsWriter};

/// Output still arriving after the process exited is sent for this long (a background child may
/// hold the pipes open forever).
const DRAIN: Duration = Duration::from_secs(2);
/// How long the client may take to close after the end of the session.
const FINISH_WAIT: Duration = Duration::from_secs(15 * 60);

/// Where one kind of output goes.
#[derive(Clone, Debug)]
pub enum Sink {
    Spdy {
        writer: SessionWriter,
        id: u32,
    },
    Ws {
        writer: WsWriter,
        channel: u8,
        base64: bool,
    },
}

impl Sink {
    pub async fn write(&self, data: &[u8]) -> bool {
        match self {
            Sink::Spdy { writer, id } => writer.write(*id, data).await.is_ok(),
            Sink::Ws {
                writer,
                channel,
                base64,
            } => writer.send(ws_message(*channel, *base64, data)).await,
        }
    }

    /// Ends this output (SPDY: FIN; WebSocket: nothing, the close frame ends everything).
    async fn close(&self) {
        if let Sink::Spdy { writer, id } = self {
            let _ = writer.fin(*id).await;
        }
    }
}

/// A message on a WebSocket channel: the channel byte and the payload, or for the base64
/// protocols the channel digit and the payload in base64.
pub fn ws_message(channel: u8, base64: bool, data: &[u8]) -> Message {
    if base64 {
        use base64::Engine;
        let mut text = String::with_capacity(1 + data.len() * 4 / 3 + 4);
        text.push(char::from(b'0' + channel));
        text.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
        Message::Text(text)
    } else {
        let mut bytes = Vec::with_capacity(1 + data.len());
        bytes.push(channel);
        bytes.extend_from_slice(data);
        Message::Binary(Bytes::from(bytes))
    }
}

/// How the session's transport ends things.
#[derive(Debug)]
pub enum Transport {
    /// SPDY: the ids of the client's input streams, reset when input stops.
    Spdy {
        writer: SessionWriter,
        inputs: Vec<u32>,
    },
    Ws {
        writer: WsWriter,
    },
}

/// The client's side of a session.
#[derive(Debug)]
pub struct Client {
    pub stdin: Option<mpsc::Receiver<Chunk>>,
    pub resize: Option<mpsc::Receiver<Chunk>>,
    pub stdout: Option<Sink>,
    pub stderr: Option<Sink>,
    pub error: Sink,
    /// v4 and later: a JSON Status (always); older: text, failures only.
    pub json_status: bool,
    /// Turns true when the client is gone.
    pub gone: watch::Receiver<bool>,
    pub transport: Transport,
}

/// Runs the session to its end.
pub async fn run(mut client: Client, process: ProcessIo) {
    let ProcessIo {
        stdin,
        stdout,
        stderr,
        resize,
        exit,
    } = process;
    let mut input = Vec::new();
    if let (Some(mut from), Some(mut to)) = (client.stdin.take(), stdin) {
        input.push(tokio::spawn(async move {
            while let Some(chunk) = from.recv().await {
                if to.write_all(&chunk.data).await.is_err() {
                    return;
                }
                let _ = to.flush().await;
            }
            // The client's stdin ended: the process sees EOF.
            let _ = to.shutdown().await;
        }));
    }
    if let (Some(mut from), Some(resize)) = (client.resize.take(), resize) {
        input.push(tokio::spawn(async move {
            let mut decoder = ResizeDecoder::default();
            while let Some(chunk) = from.recv().await {
                match decoder.push(&chunk.data) {
                    Some(sizes) => sizes
                        .into_iter()
                        .for_each(|(cols, rows)| resize(cols, rows)),
                    None => return,
                }
            }
        }));
    }
    let mut outputs = Vec::new();
    for (from, to) in [
        (stdout, client.stdout.clone()),
        (stderr, client.stderr.clone()),
    ] {
        if let (Some(from), Some(to)) = (from, to) {
            outputs.push(tokio::spawn(copy_out(from, to)));
        }
    }
    let mut gone = client.gone.clone();
    let exit = tokio::select! {
        exit = exit => exit,
        _ = gone.wait_for(|g| *g) => {
            // The client left first: nothing to report to, and nothing should keep running
            // (returning drops `exit`, which ends the process).
            input.iter().chain(&outputs).for_each(|t| t.abort());
            return;
        }
    };
    let drained = async {
        for t in &mut outputs {
            let _ = t.await;
        }
    };
    let _ = tokio::time::timeout(DRAIN, drained).await;
    outputs.iter().for_each(|t| t.abort());
    finish(&client, &exit, input).await;
}

async fn copy_out(mut from: Output, to: Sink) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if !to.write(&buf[..n]).await {
                    return;
                }
            }
        }
    }
}

/// The end-of-session order (shared/streaming.md §4.5).
async fn finish(client: &Client, exit: &Exit, input: Vec<tokio::task::JoinHandle<()>>) {
    input.iter().for_each(|t| t.abort());
    if let Transport::Spdy { writer, inputs } = &client.transport {
        for id in inputs {
            let _ = writer.reset(*id).await;
        }
    }
    if let Some(payload) = error_payload(exit, client.json_status) {
        client.error.write(&payload).await;
    }
    for sink in [&client.stdout, &client.stderr, &Some(client.error.clone())]
        .into_iter()
        .flatten()
    {
        sink.close().await;
    }
    if let Transport::Ws { writer } = &client.transport {
        writer.close(1000).await;
    }
    let mut gone = client.gone.clone();
    let _ = tokio::time::timeout(FINISH_WAIT, gone.wait_for(|g| *g)).await;
    if let Transport::Spdy { writer, .. } = &client.transport {
        writer.goaway().await;
    }
}

/// Terminal sizes from the resize stream: JSON objects `{"Width":w,"Height":h}`, one after the
/// other, split across chunks anywhere.
#[derive(Debug, Default)]
pub struct ResizeDecoder {
    buf: Vec<u8>,
}

#[derive(Deserialize)]
struct Size {
    #[serde(alias = "width")]
    #[serde(rename = "Width")]
    width: u16,
    #[serde(alias = "height")]
    #[serde(rename = "Height")]
    height: u16,
}

impl ResizeDecoder {
    /// The (columns, rows) of every whole object so far; None (garbage, or an object that never
    /// ends) ends resize handling.
    pub fn push(&mut self, bytes: &[u8]) -> Option<Vec<(u16, u16)>> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 64 * 1024 {
            return None;
        }
        let mut sizes = Vec::new();
        let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Size>();
        let mut used = 0;
        loop {
            match stream.next() {
                Some(Ok(size)) => {
                    sizes.push((size.width, size.height));
                    used = stream.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => return None,
                None => {
                    used = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..used);
        Some(sizes)
    }
}

/// The remotecommand protocol a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    /// 1 to 5.
    pub version: u8,
    /// WebSocket base64 variants.
    pub base64: bool,
}

impl Protocol {
    pub fn json_status(self) -> bool {
        self.version >= 4
    }
}

/// SPDY sub-protocols for exec and attach, by preference of nobody in particular (the client's
/// order decides).
pub fn spdy_protocol(name: &str) -> Option<Protocol> {
    let version = match name {
        "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        "channel.k8s.io" => 1,
        _ => return None,
    };
    Some(Protocol {
        version,
        base64: false,
    })
}

pub const SPDY_PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// WebSocket sub-protocols for exec and attach ("" when the client asked for none).
pub fn ws_protocol(name: &str) -> Option<Protocol> {
    let (version, base64) = match name {
        "v5.channel.k8s.io" => (5, false),
        "v4.channel.k8s.io" => (4, false),
        "v4.base64.channel.k8s.io" => (4, true),
        "channel.k8s.io" | "" => (1, false),
        "base64.channel.k8s.io" => (1, true),
        _ => return None,
    };
    Some(Protocol { version, base64 })
}

/// How long the client may take to open its streams.
const STREAM_CREATION: Duration = Duration::from_secs(30);

/// Sets up an exec or attach session on a SPDY connection: waits for the client's streams (the
/// set the cached request implies), then runs it with the process `start` gives.
pub async fn spdy_session(
    mut session: crate::spdy::session::Session,
    opts: crate::backend::StreamOpts,
    protocol: Protocol,
    start: crate::backend::BoxFuture<'_, Result<ProcessIo, BackendError>>,
) {
    let collected = tokio::time::timeout(
        STREAM_CREATION,
        collect_streams(&mut session, opts, protocol),
    )
    .await;
    let mut roles = match collected {
        Ok(Some(roles)) => roles,
        Ok(None) => return,
        Err(_) => {
            tracing::debug!("timed out waiting for client to create streams");
            session.writer.goaway().await;
            return;
        }
    };
    // Streams opened after the set is complete are answered and ignored.
    let mut late = session.streams;
    tokio::spawn(async move { while late.recv().await.is_some() {} });
    let writer = session.writer.clone();
    let sink = |s: &IncomingStream| Sink::Spdy {
        writer: writer.clone(),
        id: s.id,
    };
    let Some(error) = roles.remove("error") else {
        return;
    };
    let stdin = roles.remove("stdin");
    let resize = roles.remove("resize");
    let inputs = stdin.iter().chain(&resize).map(|s| s.id).collect();
    if protocol.version == 1 {
        if let Some(s) = &stdin {
            // v1 quirk: the server half-closes stdin at once.
            let _ = writer.fin(s.id).await;
        }
    }
    let client = Client {
        stdout: roles.get("stdout").map(sink),
        stderr: roles.get("stderr").map(sink),
        error: sink(&error),
        stdin: stdin.map(|s| s.data),
        resize: resize.map(|s| s.data),
        json_status: protocol.json_status(),
        gone: session.closed.clone(),
        transport: Transport::Spdy { writer, inputs },
    };
    match start.await {
        Ok(process) => run(client, process).await,
        Err(e) => fail(client, e).await,
    }
}

/// The streams the client opens for a session, by their `streamtype`: the error stream and
/// one per standard stream asked for (and resize for a TTY from v3 on). None if the session
/// ended first.
async fn collect_streams(
    session: &mut crate::spdy::session::Session,
    opts: crate::backend::StreamOpts,
    protocol: Protocol,
) -> Option<HashMap<String, IncomingStream>> {
    let resize = opts.tty && protocol.version >= 3;
    let wanted = |kind: &str| match kind {
        "error" => true,
        "stdin" => opts.stdin,
        "stdout" => opts.stdout,
        "stderr" => opts.stderr && !opts.tty,
        "resize" => resize,
        _ => false,
    };
    let expected = ["error", "stdin", "stdout", "stderr", "resize"]
        .into_iter()
        .filter(|k| wanted(k))
        .count();
    let mut roles = HashMap::new();
    while roles.len() < expected {
        let stream = session.streams.recv().await?;
        let kind = stream.header("streamtype").unwrap_or_default().to_owned();
        if wanted(&kind) && !roles.contains_key(&kind) {
            roles.insert(kind, stream);
        }
    }
    Some(roles)
}

/// The runtime could not start the process: the status says why, and the session ends.
async fn fail(client: Client, error: BackendError) {
    finish(&client, &Exit::Failed(error.to_string()), Vec::new()).await;
}

/// Sets up an exec or attach session on a WebSocket: channel 0 stdin, 1 stdout, 2 stderr, 3
/// status, 4 resize, and for v5 the CLOSE signal `[255, channel]`.
pub async fn ws_session(
    mut ws: crate::websocket::WsSession,
    opts: crate::backend::StreamOpts,
    protocol: Protocol,
    start: crate::backend::BoxFuture<'_, Result<ProcessIo, BackendError>>,
) {
    let writer = ws.writer.clone();
    let sink = |channel: u8| Sink::Ws {
        writer: writer.clone(),
        channel,
        base64: protocol.base64,
    };
    // "Connected": one empty message on the lowest channel the client reads.
    let first = if opts.stdout {
        1
    } else if opts.stderr {
        2
    } else {
        3
    };
    writer.send(ws_message(first, protocol.base64, b"")).await;
    let (stdin_tx, stdin_rx) = mpsc::channel::<Chunk>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<Chunk>(16);
    let mut messages = std::mem::replace(&mut ws.messages, mpsc::channel(1).1);
    tokio::spawn(async move {
        let mut stdin_tx = opts.stdin.then_some(stdin_tx);
        let resize_tx = opts.tty.then_some(resize_tx);
        while let Some(message) = messages.recv().await {
            let Some((channel, payload)) = decode_ws(message, protocol.base64) else {
                continue;
            };
            match channel {
                0 => {
                    if let Some(tx) = &stdin_tx {
                        if !payload.is_empty() && tx.send(Chunk::new(payload)).await.is_err() {
                            stdin_tx = None;
                        }
                    }
                }
                4 => {
                    if let Some(tx) = &resize_tx {
                        let _ = tx.send(Chunk::new(payload)).await;
                    }
                }
                // v5's CLOSE signal: the client half-closed a channel.
                255 if protocol.version == 5 => {
                    if payload.len() != 1 {
                        return;
                    }
                    if payload[0] == 0 {
                        stdin_tx = None;
                    }
                }
                _ => {}
            }
        }
    });
    let client = Client {
        stdin: opts.stdin.then_some(stdin_rx),
        resize: opts.tty.then_some(resize_rx),
        stdout: opts.stdout.then(|| sink(1)),
        stderr: (opts.stderr && !opts.tty).then(|| sink(2)),
        error: sink(3),
        json_status: protocol.json_status(),
        gone: ws.closed.clone(),
        transport: Transport::Ws {
            writer: writer.clone(),
        },
    };
    match start.await {
        Ok(process) => run(client, process).await,
        Err(e) => fail(client, e).await,
    }
}

/// A WebSocket message as (channel, payload); None for an empty or undecodable one.
pub fn decode_ws(message: Message, base64: bool) -> Option<(u8, Bytes)> {
    match message {
        Message::Binary(b) if !b.is_empty() => Some((b[0], b.slice(1..))),
        Message::Text(t) if base64 && !t.is_empty() => {
            use base64::Engine;
            // By bytes: the text may start with any character, of any width.
            let (first, rest) = t.as_bytes().split_first()?;
            let channel = first.checked_sub(b'0')?;
            let payload = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            Some((channel, Bytes::from(payload)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_objects_split_anywhere() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.push(b"{\"Width\":120,").unwrap(), vec![]);
        assert_eq!(
            d.push(b"\"Height\":40}\n{\"width\":80,\"height\":24}\n")
                .unwrap(),
            vec![(120, 40), (80, 24)]
        );
        assert!(d.push(b"not json").is_none());
    }

    #[test]
    fn websocket_messages_binary_and_base64() {
        assert_eq!(
            ws_message(1, false, b"hi\n"),
            Message::Binary(Bytes::from_static(b"\x01hi\n"))
        );
        assert_eq!(ws_message(1, true, b"hi\n"), Message::Text("1aGkK".into()));
    }

    #[test]
    fn base64_text_of_any_first_character_decodes_or_is_refused() {
        assert_eq!(
            decode_ws(Message::Text("0aGk=".into()), true),
            Some((0, Bytes::from_static(b"hi")))
        );
        for odd in ["é", "€aGk=", "1", "9\u{1F600}"] {
            let _ = decode_ws(Message::Text(odd.into()), true);
        }
        assert_eq!(decode_ws(Message::Text("€aGk=".into()), true), None);
    }
}
