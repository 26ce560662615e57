//! Accepting connections within bounds, for berth's HTTP fronts (the streaming server and the
//! metrics endpoint): at most so many at once (one over is closed at once), an accept error
//! (EMFILE, ENFILE, ENOBUFS) waited out with a backoff instead of retried in a spin, and each
//! connection given a time to be served in before it is closed (so that a client that sends
//! half a request, or stalls a TLS handshake, or keeps an idle connection, holds nothing long).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The first wait after an accept error; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long one connection may take to be served (for the streaming server: until its
    /// session starts; the session has its own idle timeout).
    pub serve_timeout: Duration,
}

/// Accepts on `listener` forever, serving each connection with `serve` within `limits`.
pub async fn serve_bounded<F, Fut>(listener: TcpListener, limits: ConnectionLimits, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut backoff = Duration::ZERO;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(e) => {
                backoff = (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                tracing::warn!("accepting a connection: {e}; waiting {backoff:?}");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        // One over the limit is closed at once: it is never read, so it costs nothing.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let served = serve(stream);
        let timeout = limits.serve_timeout;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, served).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn connections_over_the_limit_and_past_their_time_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let limits = ConnectionLimits {
            max_connections: 2,
            serve_timeout: Duration::from_millis(300),
        };
        // A service that never answers: a client that stalls.
        tokio::spawn(serve_bounded(listener, limits, |mut stream| async move {
            let mut buf = [0u8; 1];
            let _ = stream.read(&mut buf).await;
            std::future::pending::<()>().await;
        }));
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(TcpStream::connect(address).await.unwrap());
        }
        let mut third = TcpStream::connect(address).await.unwrap();
        let mut buf = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the third is closed at once"
        );
        for mut stream in held {
            let end = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
            assert!(
                matches!(end, Ok(Ok(0)) | Ok(Err(_))),
                "a stalled one is closed in time"
            );
        }
    }
}
