//! A bearer-token front for a [`Registry`], as Docker Hub and most registries work: requests
//! without the token get 401 with a `Bearer realm=…` challenge; the realm gives a token for basic
//! credentials; requests with the token are passed to the registry. And a server that accepts
//! connections and never answers, for stall tests.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::http_client;

const TOKEN: &str = "berth-kit-token";

/// A token realm and proxy on its own port; stops with the test's runtime.
#[derive(Debug)]
pub struct TokenProxy {
    pub port: u16,
    /// Blob downloads passed to the registry so far.
    pub blob_fetches: Arc<AtomicUsize>,
}

struct State {
    upstream: String,
    basic: String,
    port: u16,
    http: reqwest::Client,
    blob_fetches: Arc<AtomicUsize>,
}

impl TokenProxy {
    /// Fronts `upstream` (`http://127.0.0.1:<port>`), giving tokens to `user`/`password` only.
    pub async fn start(upstream: &str, user: &str, password: &str) -> TokenProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            basic: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            port,
            http: http_client(),
            blob_fetches: Arc::new(AtomicUsize::new(0)),
        });
        let blob_fetches = state.blob_fetches.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TokenProxy { port, blob_fetches }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn handle(state: &State, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = req.uri().path().to_owned();
    if path == "/token" {
        return if auth == state.basic {
            reply(StatusCode::OK, format!("{{\"token\":\"{TOKEN}\"}}"))
        } else {
            reply(StatusCode::UNAUTHORIZED, "bad credentials")
        };
    }
    if auth != format!("Bearer {TOKEN}") {
        let repo = path
            .strip_prefix("/v2/")
            .and_then(|p| p.split("/manifests/").next())
            .and_then(|p| p.split("/blobs/").next())
            .unwrap_or_default();
        let mut r = reply(StatusCode::UNAUTHORIZED, "token required");
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"berth-kit\",scope=\"repository:{repo}:pull\"",
            state.port
        );
        r.headers_mut()
            .insert("www-authenticate", challenge.parse().expect("header"));
        return r;
    }
    if path.contains("/blobs/") && req.method() == hyper::Method::GET {
        state.blob_fetches.fetch_add(1, Ordering::SeqCst);
    }
    let mut upstream = state.http.request(
        req.method().clone(),
        format!("{}{}", state.upstream, req.uri()),
    );
    if let Some(accept) = req.headers().get("accept") {
        upstream = upstream.header("accept", accept);
    }
    match upstream.send().await {
        Ok(resp) => {
            let status = resp.status();
            let content_type = resp.headers().get("content-type").cloned();
            let body = resp.bytes().await.unwrap_or_default();
            let mut r = reply(status, body);
            if let Some(ct) = content_type {
                r.headers_mut().insert("content-type", ct);
            }
            r
        }
        Err(e) => reply(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// Accepts connections and never answers: a registry that stalls.
#[derive(Debug)]
pub struct StallingServer {
    pub port: u16,
}

impl StallingServer {
    pub async fn start() -> StallingServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        StallingServer { port }
    }
}

/// A registry that answers every request with `body` as an OCI manifest: one that lies about
/// what it serves (a real registry refuses manifests over 4 MiB).
#[derive(Debug)]
pub struct LyingRegistry {
    pub port: u16,
}

impl LyingRegistry {
    pub async fn serving(body: Vec<u8>) -> LyingRegistry {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = Arc::new(body);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                });
            }
        });
        LyingRegistry { port }
    }
}
