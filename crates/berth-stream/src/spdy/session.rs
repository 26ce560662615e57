//! A server-side SPDY/3.1 session over any byte stream: a reader task that parses frames and
//! hands new peer streams (already answered with SYN_REPLY) to the application, and a writer task
//! that owns the socket's write half and our header compression context, so frames go out in the
//! order they were queued. No flow control (no Kubernetes peer sends WINDOW_UPDATE); backpressure
//! is TCP's: when the application does not drain a stream, reading stops.
//!
//! Memory is bounded per session: frame sizes, open streams, and the bytes waiting in stream
//! buffers (a budget shared by all streams of the session).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::frame::{self, Frame, Limits};
use super::headers::{self, Deflater, HeaderPairs, Inflater};

/// Data frames we send are cut at this size (what Go peers use).
const SEND_CHUNK: usize = 32 * 1024;
/// Frames queued for the writer at most.
const WRITE_QUEUE: usize = 256;
/// Data frames buffered per stream at most (a session-wide byte budget bounds them too).
const STREAM_QUEUE: usize = 16;

#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    pub limits: Limits,
    pub max_streams: usize,
    /// Bytes of received data waiting in stream buffers, across the session.
    pub max_buffered: usize,
    pub idle_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            limits: Limits::default(),
            max_streams: 1000,
            max_buffered: 16 * 1024 * 1024,
            idle_timeout: Duration::from_secs(4 * 3600),
        }
    }
}

/// Received data of a stream; its budget is given back when dropped.
#[derive(Debug)]
pub struct Chunk {
    pub data: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Chunk {
    pub fn new(data: Bytes) -> Chunk {
        Chunk {
            data,
            _budget: None,
        }
    }
}

/// A stream the peer opened.
#[derive(Debug)]
pub struct IncomingStream {
    pub id: u32,
    pub headers: HeaderPairs,
    /// The peer's data; ends at its FIN or RST_STREAM.
    pub data: mpsc::Receiver<Chunk>,
}

impl IncomingStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        headers::get(&self.headers, name)
    }
}

enum Out {
    SynReply(u32),
    Data { id: u32, data: Bytes, fin: bool },
    Reset(u32, u32),
    PeerReset(u32),
    Ping(u32),
    GoAway { status: u32 },
}

/// The write side of a session; cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionWriter {
    tx: mpsc::Sender<Out>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Out")
    }
}

/// The session ended (the peer left or the socket failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the SPDY session is closed")]
pub struct Closed;

impl SessionWriter {
    /// Sends data on a stream, in frames of at most 32 KiB.
    pub async fn write(&self, id: u32, data: &[u8]) -> Result<(), Closed> {
        for piece in data.chunks(SEND_CHUNK) {
            self.tx
                .send(Out::Data {
                    id,
                    data: Bytes::copy_from_slice(piece),
                    fin: false,
                })
                .await
                .map_err(|_| Closed)?;
        }
        Ok(())
    }

    /// Half-closes our side of a stream (an empty DATA frame with FIN).
    pub async fn fin(&self, id: u32) -> Result<(), Closed> {
        self.tx
            .send(Out::Data {
                id,
                data: Bytes::new(),
                fin: true,
            })
            .await
            .map_err(|_| Closed)
    }

    /// Resets a stream (RST_STREAM CANCEL): the peer's further data is dropped.
    pub async fn reset(&self, id: u32) -> Result<(), Closed> {
        self.tx
            .send(Out::Reset(id, frame::CANCEL))
            .await
            .map_err(|_| Closed)
    }

    /// Sends GOAWAY and closes the socket once everything queued before is written.
    pub async fn goaway(&self) {
        let _ = self
            .tx
            .send(Out::GoAway {
                status: frame::GOAWAY_OK,
            })
            .await;
    }
}

/// A running session.
#[derive(Debug)]
pub struct Session {
    /// Streams the peer opened, each already answered.
    pub streams: mpsc::Receiver<IncomingStream>,
    pub writer: SessionWriter,
    /// Turns true when the peer is gone (EOF, error, GOAWAY, idle timeout).
    pub closed: watch::Receiver<bool>,
}

pub fn start<IO>(io: IO, config: SessionConfig) -> Session
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(WRITE_QUEUE);
    let (streams_tx, streams_rx) = mpsc::channel(16);
    let (closed_tx, closed_rx) = watch::channel(false);
    let activity = Arc::new(std::sync::Mutex::new(Instant::now()));
    tokio::spawn(write_loop(write, out_rx, activity.clone()));
    let writer = SessionWriter { tx: out_tx };
    tokio::spawn({
        let writer = writer.clone();
        async move {
            read_loop(read, writer.clone(), streams_tx, config, activity).await;
            let _ = closed_tx.send(true);
        }
    });
    Session {
        streams: streams_rx,
        writer,
        closed: closed_rx,
    }
}

fn touch(activity: &std::sync::Mutex<Instant>) {
    if let Ok(mut at) = activity.lock() {
        *at = Instant::now();
    }
}

fn last_activity(activity: &std::sync::Mutex<Instant>) -> Instant {
    activity
        .lock()
        .map(|a| *a)
        .unwrap_or_else(|_| Instant::now())
}

async fn write_loop(
    mut write: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Out>,
    activity: Arc<std::sync::Mutex<Instant>>,
) {
    let mut deflater = Deflater::new();
    let mut finished: HashSet<u32> = HashSet::new();
    let mut last_peer_stream = 0;
    while let Some(out) = rx.recv().await {
        let bytes = match out {
            Out::SynReply(id) => {
                last_peer_stream = last_peer_stream.max(id);
                frame::syn_reply(id, &deflater.compress(&headers::encode_block(&[])))
            }
            Out::Data { id, data, fin } => {
                if finished.contains(&id) {
                    continue;
                }
                if fin {
                    finished.insert(id);
                }
                frame::data(id, fin, &data)
            }
            Out::Reset(id, status) => {
                if !finished.insert(id) {
                    // Already ended on our side: a reset adds nothing.
                    continue;
                }
                frame::rst_stream(id, status)
            }
            Out::PeerReset(id) => {
                finished.insert(id);
                continue;
            }
            Out::Ping(id) => frame::ping(id),
            Out::GoAway { status } => {
                let _ = write
                    .write_all(&frame::goaway(last_peer_stream, status))
                    .await;
                let _ = write.flush().await;
                let _ = write.shutdown().await;
                return;
            }
        };
        if write.write_all(&bytes).await.is_err() || write.flush().await.is_err() {
            return;
        }
        touch(&activity);
    }
    let _ = write.shutdown().await;
}

/// Whether the read loop goes on after a frame.
enum Flow {
    Continue,
    Stop,
}

/// The session's reading side: the peer's frames, one at a time, and the state they change.
struct Reader {
    writer: SessionWriter,
    new_streams: mpsc::Sender<IncomingStream>,
    config: SessionConfig,
    activity: Arc<std::sync::Mutex<Instant>>,
    /// Bytes of received data not yet taken by their streams' readers.
    budget: Arc<Semaphore>,
    inflater: Inflater,
    streams: HashMap<u32, mpsc::Sender<Chunk>>,
    /// The least ID the peer's next stream may have.
    next_id: u32,
}

/// Reads the peer's frames and acts on each until the session ends.
async fn read_loop(
    mut read: impl AsyncRead + Unpin,
    writer: SessionWriter,
    new_streams: mpsc::Sender<IncomingStream>,
    config: SessionConfig,
    activity: Arc<std::sync::Mutex<Instant>>,
) {
    let mut reader = Reader {
        writer,
        new_streams,
        budget: Arc::new(Semaphore::new(config.max_buffered)),
        config,
        activity,
        inflater: Inflater::new(),
        streams: HashMap::new(),
        next_id: 1,
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = reader.next_frame(&mut read, &mut buf).await {
        if let Flow::Stop = reader.handle(frame).await {
            break;
        }
    }
}

impl Reader {
    /// The next whole frame; None once the session is over (the peer closed, went idle too
    /// long, or sent what is no SPDY).
    async fn next_frame(
        &mut self,
        read: &mut (impl AsyncRead + Unpin),
        buf: &mut BytesMut,
    ) -> Option<Frame> {
        loop {
            match frame::parse(buf, &self.config.limits) {
                Ok(Some(f)) => return Some(f),
                Ok(None) => {}
                Err(e) => {
                    self.go_away(&e).await;
                    return None;
                }
            }
            let idle = self.config.idle_timeout;
            let deadline = last_activity(&self.activity) + idle;
            buf.reserve(64 * 1024);
            tokio::select! {
                read = read.read_buf(buf) => match read {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => touch(&self.activity),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if last_activity(&self.activity) + idle <= Instant::now() {
                        tracing::debug!("SPDY session idle for {idle:?}; closing");
                        for id in self.streams.keys() {
                            let _ = self.writer.reset(*id).await;
                        }
                        return None;
                    }
                }
            }
        }
    }

    async fn go_away(&self, why: &(dyn std::fmt::Display + Sync)) {
        tracing::debug!("closing the SPDY session: {why}");
        let _ = self
            .writer
            .tx
            .send(Out::GoAway {
                status: frame::GOAWAY_PROTOCOL_ERROR,
            })
            .await;
    }

    async fn handle(&mut self, frame: Frame) -> Flow {
        match frame {
            Frame::SynStream {
                id,
                flags,
                header_block,
            } => self.open_stream(id, flags, &header_block).await,
            Frame::Data { id, flags, data } => self.data(id, flags, data).await,
            Frame::SynReply { header_block, .. } | Frame::Headers { header_block, .. } => {
                // Not expected from a client, but the compression context must follow every block.
                match self.inflater.decompress(&header_block) {
                    Ok(_) => Flow::Continue,
                    Err(_) => Flow::Stop,
                }
            }
            Frame::RstStream { id, .. } => {
                self.streams.remove(&id);
                let _ = self.writer.tx.send(Out::PeerReset(id)).await;
                Flow::Continue
            }
            Frame::Ping { id } => {
                // Pings of the peer's own numbering are answered; ours are its answers.
                if id % 2 == 1 {
                    let _ = self.writer.tx.send(Out::Ping(id)).await;
                }
                Flow::Continue
            }
            Frame::GoAway { .. } => Flow::Stop,
            Frame::Settings | Frame::WindowUpdate | Frame::Unknown { .. } => Flow::Continue,
        }
    }

    /// A stream the peer opens: replied to and handed to whoever takes new streams.
    async fn open_stream(&mut self, id: u32, flags: u8, header_block: &[u8]) -> Flow {
        let pairs = match self
            .inflater
            .decompress(header_block)
            .and_then(|b| headers::decode_block(&b))
        {
            Ok(p) => p,
            Err(e) => {
                self.go_away(&e).await;
                return Flow::Stop;
            }
        };
        // Client streams are odd and strictly increasing.
        if id % 2 == 0 || id < self.next_id {
            let _ = self
                .writer
                .tx
                .send(Out::Reset(id, frame::PROTOCOL_ERROR))
                .await;
            return Flow::Continue;
        }
        self.next_id = id.saturating_add(2);
        self.streams.retain(|_, tx| !tx.is_closed());
        if self.streams.len() >= self.config.max_streams {
            let _ = self
                .writer
                .tx
                .send(Out::Reset(id, frame::REFUSED_STREAM))
                .await;
            return Flow::Continue;
        }
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        if flags & frame::FLAG_FIN == 0 {
            self.streams.insert(id, tx);
        }
        if self.writer.tx.send(Out::SynReply(id)).await.is_err() {
            return Flow::Stop;
        }
        let stream = IncomingStream {
            id,
            headers: pairs,
            data: rx,
        };
        if self.new_streams.send(stream).await.is_err() {
            // Nobody takes new streams any more: refuse it.
            let _ = self.writer.reset(id).await;
        }
        Flow::Continue
    }

    /// Data for a stream, held to the session's budget of buffered bytes.
    async fn data(&mut self, id: u32, flags: u8, data: Bytes) -> Flow {
        if let (false, Some(tx)) = (data.is_empty(), self.streams.get(&id)) {
            let Ok(permit) = self
                .budget
                .clone()
                .acquire_many_owned(data.len() as u32)
                .await
            else {
                return Flow::Stop;
            };
            let chunk = Chunk {
                data,
                _budget: Some(permit),
            };
            if tx.send(chunk).await.is_err() {
                self.streams.remove(&id);
            }
        }
        if flags & frame::FLAG_FIN != 0 {
            self.streams.remove(&id);
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::headers::encode_block;

    /// A client's side of a session, for tests: opens streams and reads frames.
    struct TestClient {
        io: tokio::io::DuplexStream,
        deflater: Deflater,
        inflater: Inflater,
        buf: BytesMut,
    }

    impl TestClient {
        async fn open(&mut self, id: u32, streamtype: &str) {
            let block = self
                .deflater
                .compress(&encode_block(&[("streamtype", streamtype)]));
            self.io
                .write_all(&frame::syn_stream(id, 0, &block))
                .await
                .unwrap();
        }

        async fn next(&mut self) -> Frame {
            loop {
                if let Some(f) = frame::parse(&mut self.buf, &Limits::default()).unwrap() {
                    if let Frame::SynReply { header_block, .. } = &f {
                        assert!(
                            headers::decode_block(&self.inflater.decompress(header_block).unwrap())
                                .unwrap()
                                .is_empty()
                        );
                    }
                    return f;
                }
                assert!(
                    self.io.read_buf(&mut self.buf).await.unwrap() > 0,
                    "session closed"
                );
            }
        }
    }

    fn pair() -> (Session, TestClient) {
        let (server, client) = tokio::io::duplex(1 << 20);
        let session = start(server, SessionConfig::default());
        (
            session,
            TestClient {
                io: client,
                deflater: Deflater::new(),
                inflater: Inflater::new(),
                buf: BytesMut::new(),
            },
        )
    }

    #[tokio::test]
    async fn streams_are_answered_data_flows_and_pings_are_echoed() {
        let (mut s, mut c) = pair();
        c.open(1, "stdin").await;
        assert!(matches!(c.next().await, Frame::SynReply { id: 1, .. }));
        let mut stdin = s.streams.recv().await.unwrap();
        assert_eq!(stdin.header("StreamType"), Some("stdin"));
        c.io.write_all(&frame::data(1, false, b"hello"))
            .await
            .unwrap();
        c.io.write_all(&frame::data(1, true, b"")).await.unwrap();
        assert_eq!(&stdin.data.recv().await.unwrap().data[..], b"hello");
        assert!(stdin.data.recv().await.is_none(), "FIN is EOF");

        c.io.write_all(&frame::ping(7)).await.unwrap();
        assert_eq!(c.next().await, Frame::Ping { id: 7 });

        c.open(3, "stdout").await;
        assert!(matches!(c.next().await, Frame::SynReply { id: 3, .. }));
        let big = vec![b'x'; 100_000];
        s.writer.write(3, &big).await.unwrap();
        s.writer.fin(3).await.unwrap();
        let mut got = Vec::new();
        loop {
            match c.next().await {
                Frame::Data { id: 3, flags, data } => {
                    assert!(data.len() <= SEND_CHUNK);
                    got.extend_from_slice(&data);
                    if flags & frame::FLAG_FIN != 0 {
                        break;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got.len(), 100_000, "no flow-control stall past 64 KiB");
    }

    #[tokio::test]
    async fn out_of_order_stream_ids_are_refused() {
        let (_s, mut c) = pair();
        c.open(5, "error").await;
        assert!(matches!(c.next().await, Frame::SynReply { id: 5, .. }));
        c.open(3, "stdin").await;
        assert_eq!(
            c.next().await,
            Frame::RstStream {
                id: 3,
                status: frame::PROTOCOL_ERROR
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_closes() {
        let (server, client) = tokio::io::duplex(1024);
        let s = start(
            server,
            SessionConfig {
                idle_timeout: Duration::from_secs(60),
                ..SessionConfig::default()
            },
        );
        let mut closed = s.closed.clone();
        tokio::time::sleep(Duration::from_secs(61)).await;
        closed.wait_for(|c| *c).await.unwrap();
        drop(client);
    }

    #[tokio::test]
    async fn garbage_ends_the_session_with_goaway() {
        let (s, mut c) = pair();
        c.io.write_all(&[0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 0])
            .await
            .unwrap();
        assert_eq!(
            c.next().await,
            Frame::GoAway {
                last_good: 0,
                status: 1
            }
        );
        let mut closed = s.closed.clone();
        closed.wait_for(|c| *c).await.unwrap();
    }
}
