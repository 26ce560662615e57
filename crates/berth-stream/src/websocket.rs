//! RFC 6455 WebSocket, the server side, over an upgraded HTTP connection: the accept key, and a
//! session with a reader task (unmasking, reassembling fragments, answering pings) and a writer
//! task (unmasked frames, one per message).

use std::time::Duration;

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest message accepted from a client.
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// The most a control frame (close, ping, pong) may carry.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Binary(Bytes),
    Text(String),
}

enum Out {
    Message(Message),
    Pong(Bytes),
    Close(u16),
}

#[derive(Clone, Debug)]
pub struct WsWriter {
    tx: mpsc::Sender<Out>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Out")
    }
}

impl WsWriter {
    pub async fn send(&self, message: Message) -> bool {
        self.tx.send(Out::Message(message)).await.is_ok()
    }

    /// Sends a close frame with `code` and ends the writing side.
    pub async fn close(&self, code: u16) {
        let _ = self.tx.send(Out::Close(code)).await;
    }
}

#[derive(Debug)]
pub struct WsSession {
    pub messages: mpsc::Receiver<Message>,
    pub writer: WsWriter,
    /// Turns true when the peer is gone (close frame, EOF, error, idle timeout).
    pub closed: watch::Receiver<bool>,
}

pub fn start<IO>(io: IO, idle_timeout: Duration) -> WsSession
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(256);
    let (msg_tx, msg_rx) = mpsc::channel(16);
    let (closed_tx, closed_rx) = watch::channel(false);
    tokio::spawn(write_loop(write, out_rx));
    let writer = WsWriter { tx: out_tx };
    let reader_writer = writer.clone();
    tokio::spawn(async move {
        read_loop(read, reader_writer, msg_tx, idle_timeout).await;
        let _ = closed_tx.send(true);
    });
    WsSession {
        messages: msg_rx,
        writer,
        closed: closed_rx,
    }
}

fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

async fn write_loop(mut write: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Out>) {
    while let Some(out) = rx.recv().await {
        let bytes = match out {
            Out::Message(Message::Binary(b)) => encode(2, &b),
            Out::Message(Message::Text(t)) => encode(1, t.as_bytes()),
            Out::Pong(b) => encode(10, &b),
            Out::Close(code) => {
                let _ = write.write_all(&encode(8, &code.to_be_bytes())).await;
                let _ = write.flush().await;
                return;
            }
        };
        if write.write_all(&bytes).await.is_err() || write.flush().await.is_err() {
            return;
        }
    }
}

/// A frame that breaks RFC 6455 or our limits: the connection is closed with 1002.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("reserved bits set (no extension was negotiated)")]
    ReservedBits,
    #[error("client frames must be masked")]
    Unmasked,
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
}

/// One parsed frame: FIN, opcode, unmasked payload.
pub(crate) fn parse(buf: &mut BytesMut) -> Result<Option<(bool, u8, Bytes)>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    if b1 & 0x80 == 0 {
        return Err(FrameError::Unmasked);
    }
    let (len, mut at) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let n = u64::from_be_bytes([
                buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8], buf[9],
            ]);
            (usize::try_from(n).unwrap_or(usize::MAX), 10)
        }
        126 | 127 => return Ok(None),
        n => (usize::from(n), 2),
    };
    if len > MAX_MESSAGE {
        return Err(FrameError::TooLarge(len));
    }
    if buf.len() < at + 4 + len {
        return Ok(None);
    }
    let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
    at += 4;
    buf.advance(at);
    let mut payload = buf.split_to(len);
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Some((b0 & 0x80 != 0, b0 & 0x0f, payload.freeze())))
}

async fn read_loop(
    mut read: impl AsyncRead + Unpin,
    writer: WsWriter,
    messages: mpsc::Sender<Message>,
    idle_timeout: Duration,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // A fragmented message being reassembled: its opcode and bytes so far.
    let mut partial: Option<(u8, BytesMut)> = None;
    loop {
        let (fin, opcode, payload) = match parse(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => match tokio::time::timeout(idle_timeout, read.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => continue,
                _ => return,
            },
            Err(e) => {
                tracing::debug!("closing the WebSocket: {e}");
                writer.close(1002).await;
                return;
            }
        };
        // RFC 6455 5.5: control frames carry at most 125 bytes and are never fragmented.
        if opcode >= 8 && (!fin || payload.len() > MAX_CONTROL_PAYLOAD) {
            writer.close(1002).await;
            return;
        }
        match opcode {
            9 => {
                // A client that pings without reading gets no queue of pongs: when the writer
                // is behind, this one is dropped (RFC 6455 lets only the latest be answered).
                let _ = writer.tx.try_send(Out::Pong(payload));
            }
            10 => {}
            8 => {
                writer.close(1000).await;
                return;
            }
            0..=2 => {
                let (kind, mut data) = match (opcode, partial.take()) {
                    (0, Some((kind, mut so_far))) => {
                        if so_far.len() + payload.len() > MAX_MESSAGE {
                            writer.close(1009).await;
                            return;
                        }
                        so_far.extend_from_slice(&payload);
                        (kind, so_far)
                    }
                    (0, None) => {
                        writer.close(1002).await;
                        return;
                    }
                    (kind, _) => (kind, BytesMut::from(&payload[..])),
                };
                if !fin {
                    partial = Some((kind, data));
                    continue;
                }
                let message = if kind == 1 {
                    match String::from_utf8(data.split().to_vec()) {
                        Ok(t) => Message::Text(t),
                        Err(_) => {
                            writer.close(1007).await;
                            return;
                        }
                    }
                } else {
                    Message::Binary(data.freeze())
                };
                if messages.send(message).await.is_err() {
                    return;
                }
            }
            _ => {
                writer.close(1002).await;
                return;
            }
        }
    }
}

/// Frames a client sends (masked), for tests and test clients.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn messages_pings_fragments_and_close() {
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let mut ws = start(server, Duration::from_secs(60));
        client
            .write_all(&client_frame(2, b"\x00hello"))
            .await
            .unwrap();
        assert_eq!(
            ws.messages.recv().await.unwrap(),
            Message::Binary(Bytes::from_static(b"\x00hello"))
        );
        client.write_all(&client_frame(9, b"p")).await.unwrap();
        let mut buf = [0u8; 3];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, [0x8a, 1, b'p'], "pong");
        let mut first = client_frame(1, b"0Zm9");
        first[0] &= 0x7f;
        client.write_all(&first).await.unwrap();
        client.write_all(&client_frame(0, b"vCg==")).await.unwrap();
        assert_eq!(
            ws.messages.recv().await.unwrap(),
            Message::Text("0Zm9vCg==".into())
        );
        ws.writer
            .send(Message::Binary(Bytes::from_static(b"\x01hi")))
            .await;
        let mut out = [0u8; 5];
        client.read_exact(&mut out).await.unwrap();
        assert_eq!(out, [0x82, 3, 1, b'h', b'i']);
        client
            .write_all(&client_frame(8, &1000u16.to_be_bytes()))
            .await
            .unwrap();
        ws.closed.wait_for(|c| *c).await.unwrap();
    }

    #[tokio::test]
    async fn unmasked_or_oversized_frames_close_the_session() {
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let mut ws = start(server, Duration::from_secs(60));
        client.write_all(&[0x82, 0x01, 0x00]).await.unwrap();
        ws.closed.wait_for(|c| *c).await.unwrap();
        assert!(ws.messages.recv().await.is_none());
    }

    #[tokio::test]
    async fn control_frames_over_125_bytes_or_fragmented_close_the_session() {
        for frame in [client_frame(9, &[b'p'; 126]), {
            let mut unfinished = client_frame(9, b"p");
            unfinished[0] &= 0x7f;
            unfinished
        }] {
            let (server, mut client) = tokio::io::duplex(1 << 16);
            let _ws = start(server, Duration::from_secs(60));
            client.write_all(&frame).await.unwrap();
            let mut answer = [0u8; 4];
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(answer, [0x88, 2, 0x03, 0xea], "close 1002 (protocol error)");
        }
    }

    #[tokio::test]
    async fn pings_from_a_client_that_does_not_read_queue_nothing() {
        let (server, mut client) = tokio::io::duplex(1 << 20);
        let mut ws = start(server, Duration::from_secs(60));
        for _ in 0..10_000 {
            client.write_all(&client_frame(9, b"ping")).await.unwrap();
        }
        client
            .write_all(&client_frame(2, b"\x00after"))
            .await
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(10), ws.messages.recv()).await;
        assert_eq!(
            next.expect("the session still reads what comes after the pings"),
            Some(Message::Binary(Bytes::from_static(b"\x00after")))
        );
    }
}
