//! Port-forward sessions: over SPDY (`portforward.k8s.io`), many forwarded connections per
//! session, each a pair of streams (error, data) tied by `requestid`; over WebSocket v4, one
//! connection per requested port on channels 2i (data) and 2i+1 (error).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backend::{Backend, Connection};
use crate::remotecommand::{decode_ws, ws_message};
use crate::spdy::session::{Chunk, IncomingStream, Session, SessionWriter};
use crate::websocket::WsSession;

/// How long the second stream of a pair may take to arrive.
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// When one direction of a forward ends, the other gets this long to finish.
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Pair {
    error: Option<IncomingStream>,
    data: Option<IncomingStream>,
    since: Option<Instant>,
}

fn port_of(stream: &IncomingStream) -> Option<u16> {
    stream
        .header("port")?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p >= 1)
}

/// Serves a SPDY port-forward session until the client closes it.
pub async fn spdy_session(mut session: Session, backend: Arc<dyn Backend>, pod_sandbox_id: String) {
    let writer = session.writer.clone();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stream = tokio::select! {
            s = session.streams.recv() => match s {
                Some(s) => s,
                None => break,
            },
            _ = sweep.tick() => {
                let now = Instant::now();
                let expired: Vec<String> = pairs
                    .iter()
                    .filter(|(_, p)| p.since.is_some_and(|t| now - t > PAIR_TIMEOUT))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in expired {
                    if let Some(pair) = pairs.remove(&key) {
                        if let Some(err) = &pair.error {
                            let message = format!("timed out waiting for streams of request {key}");
                            let _ = writer.write(err.id, message.as_bytes()).await;
                            let _ = writer.fin(err.id).await;
                        }
                    }
                }
                continue;
            }
        };
        let kind = stream.header("streamtype").unwrap_or_default().to_owned();
        if port_of(&stream).is_none() || !matches!(kind.as_str(), "error" | "data") {
            let _ = writer.reset(stream.id).await;
            continue;
        }
        // Legacy clients send no requestid: an error stream and the data stream two ids later
        // belong together.
        let key = match stream.header("requestid") {
            Some(r) => r.to_owned(),
            None if kind == "error" => stream.id.to_string(),
            None => stream.id.saturating_sub(2).to_string(),
        };
        let pair = pairs.entry(key.clone()).or_default();
        pair.since.get_or_insert_with(Instant::now);
        let slot = if kind == "error" {
            &mut pair.error
        } else {
            &mut pair.data
        };
        if slot.is_some() {
            if let Some(err) = &pair.error {
                let message = format!(
                    "error processing stream for request {key}: {kind} stream already assigned"
                );
                let _ = writer.write(err.id, message.as_bytes()).await;
            }
            let _ = writer.reset(stream.id).await;
            continue;
        }
        *slot = Some(stream);
        if pair.error.is_some() && pair.data.is_some() {
            if let Some(Pair {
                error: Some(error),
                data: Some(data),
                ..
            }) = pairs.remove(&key)
            {
                tokio::spawn(forward_pair(
                    writer.clone(),
                    backend.clone(),
                    pod_sandbox_id.clone(),
                    error,
                    data,
                ));
            }
        }
    }
    writer.goaway().await;
}

async fn forward_pair(
    writer: SessionWriter,
    backend: Arc<dyn Backend>,
    pod: String,
    error: IncomingStream,
    data: IncomingStream,
) {
    let port = port_of(&data).unwrap_or(0);
    match backend.dial(pod.clone(), port).await {
        Ok(conn) => {
            let to_client = {
                let writer = writer.clone();
                let id = data.id;
                move |bytes: Bytes| {
                    let writer = writer.clone();
                    async move { writer.write(id, &bytes).await.is_ok() }
                }
            };
            pump(conn, data.data, to_client).await;
        }
        Err(e) => {
            let message = format!("error forwarding port {port} to pod {pod}, uid : {e}");
            let _ = writer.write(error.id, message.as_bytes()).await;
        }
    }
    let _ = writer.fin(data.id).await;
    let _ = writer.fin(error.id).await;
}

/// Copies client → pod and pod → client until both ends are done: the client's end half-closes
/// the pod socket, and once one direction ends the other gets a short grace.
async fn pump<F, Fut>(conn: Connection, mut from_client: mpsc::Receiver<Chunk>, to_client: F)
where
    F: Fn(Bytes) -> Fut,
    Fut: Future<Output = bool>,
{
    let (mut pod_read, mut pod_write) = conn.into_split();
    let upstream = async move {
        while let Some(chunk) = from_client.recv().await {
            if pod_write.write_all(&chunk.data).await.is_err() {
                return;
            }
        }
        let _ = pod_write.shutdown().await;
    };
    let downstream = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match pod_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !to_client(Bytes::copy_from_slice(&buf[..n])).await {
                        return;
                    }
                }
            }
        }
    };
    tokio::pin!(upstream, downstream);
    tokio::select! {
        _ = &mut downstream => {
            let _ = tokio::time::timeout(HALF_CLOSE_GRACE, upstream).await;
        }
        _ = &mut upstream => {
            // The client is done sending; the pod may still answer.
            downstream.await;
        }
    }
}

/// Serves a WebSocket v4 port-forward: one forwarded connection per requested port.
pub async fn ws_session(
    mut ws: WsSession,
    backend: Arc<dyn Backend>,
    pod_sandbox_id: String,
    ports: Vec<u16>,
    base64: bool,
) {
    let writer = ws.writer.clone();
    let mut inputs: HashMap<u8, mpsc::Sender<Chunk>> = HashMap::new();
    let mut forwards = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let prefix = port.to_le_bytes();
        writer.send(ws_message(data_ch, base64, &prefix)).await;
        writer.send(ws_message(err_ch, base64, &prefix)).await;
        let (tx, rx) = mpsc::channel(16);
        inputs.insert(data_ch, tx);
        let (backend, pod, writer, port) = (
            backend.clone(),
            pod_sandbox_id.clone(),
            writer.clone(),
            *port,
        );
        forwards.push(tokio::spawn(async move {
            match backend.dial(pod.clone(), port).await {
                Ok(conn) => {
                    let to_client = move |bytes: Bytes| {
                        let writer = writer.clone();
                        async move { writer.send(ws_message(data_ch, base64, &bytes)).await }
                    };
                    pump(conn, rx, to_client).await;
                }
                Err(e) => {
                    let message = format!("error forwarding port {port} to pod {pod}, uid : {e}");
                    writer
                        .send(ws_message(err_ch, base64, message.as_bytes()))
                        .await;
                }
            }
        }));
    }
    let mut messages = std::mem::replace(&mut ws.messages, mpsc::channel(1).1);
    let reader = tokio::spawn(async move {
        while let Some(message) = messages.recv().await {
            if let Some((channel, payload)) = decode_ws(message, base64) {
                if let Some(tx) = inputs.get(&channel) {
                    if !payload.is_empty() && tx.send(Chunk::new(payload)).await.is_err() {
                        inputs.remove(&channel);
                    }
                }
            }
        }
    });
    for f in forwards {
        let _ = f.await;
    }
    reader.abort();
    writer.close(1000).await;
}

/// Carries a SPDY session inside a WebSocket (`SPDY/3.1+portforward.k8s.io`): binary messages in
/// both directions are the SPDY byte stream.
pub fn spdy_over_ws(mut ws: WsSession) -> tokio::io::DuplexStream {
    let (inner, outer) = tokio::io::duplex(256 * 1024);
    let (mut outer_read, mut outer_write) = tokio::io::split(outer);
    let writer = ws.writer.clone();
    tokio::spawn(async move {
        while let Some(message) = ws.messages.recv().await {
            if let crate::websocket::Message::Binary(bytes) = message {
                if outer_write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match outer_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !writer
                        .send(crate::websocket::Message::Binary(Bytes::copy_from_slice(
                            &buf[..n],
                        )))
                        .await
                    {
                        return;
                    }
                }
            }
        }
        writer.close(1000).await;
    });
    inner
}
