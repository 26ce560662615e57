//! The Prometheus endpoint: `GET /metrics` over plain HTTP/1.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::openmetrics::CONTENT_TYPE;

/// Scrapers at once, and how long one connection (a scrape, or a kept-alive connection between
/// scrapes) may last; a scraper reconnects.
const LIMITS: berth_stream::listener::ConnectionLimits = berth_stream::listener::ConnectionLimits {
    max_connections: 64,
    serve_timeout: std::time::Duration::from_secs(30),
};

/// What a scrape answers: the exposition of the moment.
pub type Scrape = Arc<dyn Fn() -> String + Send + Sync>;

/// Binds `address` and serves scrapes until the daemon ends; the address it bound.
pub async fn start(address: SocketAddr, scrape: Scrape) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(berth_stream::listener::serve_bounded(
        listener,
        LIMITS,
        move |stream| {
            let scrape = scrape.clone();
            async move {
                let service = hyper::service::service_fn(move |req| {
                    let scrape = scrape.clone();
                    async move { Ok::<_, Infallible>(answer(&req, &scrape)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        },
    ));
    Ok(bound)
}

fn answer<B>(req: &Request<B>, scrape: &Scrape) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, scrape()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}
