//! The HTTP front of the streaming server: `/exec/<token>`, `/attach/<token>`,
//! `/portforward/<token>` on HTTP/1.1 (plain, or TLS with ALPN http/1.1), the token consumed on
//! first use, the transport chosen by the request (WebSocket when it asks for one, else SPDY),
//! the sub-protocol negotiated, then the session handed over on the upgraded connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderMap, HeaderValue, UPGRADE};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::backend::{Backend, BackendError, BoxFuture, ProcessIo, Request, StreamOpts};
pub use crate::listener::ConnectionLimits;
use crate::remotecommand::{self, Protocol};
use crate::spdy::session::{self, SessionConfig};
use crate::tokens::{TokenCache, TokenError};
use crate::{portforward, websocket};

/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
const TOKEN_TTL: Duration = Duration::from_secs(60);
const MAX_TOKENS: usize = 1000;
const PORTFORWARD_SPDY: &str = "portforward.k8s.io";
const PORTFORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: SocketAddr,
    /// PEM certificate chain and private key; plain HTTP without them.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub idle_timeout: Duration,
    /// Connections at once, and the time each has to send its request (and finish its TLS
    /// handshake) and be upgraded.
    pub limits: ConnectionLimits,
    /// Per-session bounds.
    pub session: SessionConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("streaming server: cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("streaming server TLS: {0}")]
    Tls(String),
}

/// A running streaming server.
pub struct StreamServer {
    tokens: Arc<TokenCache>,
    base_url: String,
    address: SocketAddr,
}

impl std::fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamServer({})", self.base_url)
    }
}

struct Shared {
    tokens: Arc<TokenCache>,
    backend: Arc<dyn Backend>,
    config: ServerConfig,
}

impl StreamServer {
    /// Binds the listener and serves until the runtime stops.
    pub async fn start(
        config: ServerConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<StreamServer, ServerError> {
        let listener =
            TcpListener::bind(config.address)
                .await
                .map_err(|source| ServerError::Bind {
                    address: config.address,
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| ServerError::Bind {
            address: config.address,
            source,
        })?;
        let tls = match &config.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let tokens = Arc::new(TokenCache::new(TOKEN_TTL, MAX_TOKENS));
        let shared = Arc::new(Shared {
            tokens: tokens.clone(),
            backend,
            config,
        });
        let limits = shared.config.limits;
        tokio::spawn(crate::listener::serve_bounded(
            listener,
            limits,
            move |stream| serve_stream(stream, tls.clone(), shared.clone()),
        ));
        Ok(StreamServer {
            tokens,
            base_url: format!("{scheme}://{address}"),
            address,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stores a request under a new token; the URL that serves it.
    pub fn url_for(&self, request: Request) -> Result<String, TokenError> {
        let kind = request.kind();
        let token = self.tokens.insert(request)?;
        Ok(format!("{}/{kind}/{token}", self.base_url))
    }
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |e: String| ServerError::Tls(e);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("{}: {e}", cert.display())))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| err(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(e.to_string()))?;
    // Upgrades need HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// One accepted connection: the TLS handshake when configured, then HTTP until the upgrade.
async fn serve_stream(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    match tls {
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                serve_connection(stream, shared).await;
            }
        }
        None => serve_connection(stream, shared).await,
    }
}

async fn serve_connection<IO>(io: IO, shared: Arc<Shared>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(req, shared)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r
}

/// Every value of a header, split at commas, trimmed.
/// The 101 answer of an upgrade to `protocol`.
fn switching_to(protocol: &'static str) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::SWITCHING_PROTOCOLS, "");
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    r.headers_mut()
        .insert(UPGRADE, HeaderValue::from_static(protocol));
    r
}

fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

fn contains(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(token))
}

fn handle(req: HttpRequest<Incoming>, shared: Arc<Shared>) -> Response<Full<Bytes>> {
    let mut parts = req.uri().path().trim_start_matches('/').splitn(2, '/');
    let (kind, token) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if !matches!(kind, "exec" | "attach" | "portforward") || token.is_empty() || token.contains('/')
    {
        return reply(StatusCode::NOT_FOUND, "404 page not found");
    }
    if req.method() != Method::GET && req.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let Some(request) = shared.tokens.consume(token, kind) else {
        return reply(StatusCode::NOT_FOUND, "unknown or expired token");
    };
    if contains(req.headers(), UPGRADE, "websocket")
        && contains(req.headers(), CONNECTION, "upgrade")
    {
        websocket_upgrade(req, request, shared)
    } else {
        spdy_upgrade(req, request, shared)
    }
}

fn spdy_upgrade(
    req: HttpRequest<Incoming>,
    request: Request,
    shared: Arc<Shared>,
) -> Response<Full<Bytes>> {
    let offered = list(req.headers(), "x-stream-protocol-version");
    if offered.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required",
        );
    }
    let accepted: Vec<&str> = match request {
        Request::PortForward { .. } => vec![PORTFORWARD_SPDY],
        _ => remotecommand::SPDY_PROTOCOLS.to_vec(),
    };
    // The client's order decides. client-go offers v5 first, but over SPDY (as kubelet's own
    // server) v4 is the newest: v5's CLOSE signal is a WebSocket matter.
    let chosen = offered.iter().find(|p| accepted.contains(&p.as_str()));
    let Some(chosen) = chosen.cloned() else {
        let mut r = reply(
            StatusCode::FORBIDDEN,
            &format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {accepted:?}"
            ),
        );
        for p in accepted {
            if let Ok(v) = HeaderValue::from_str(p) {
                r.headers_mut()
                    .append("x-accepted-stream-protocol-versions", v);
            }
        }
        return r;
    };
    if !contains(req.headers(), CONNECTION, "upgrade")
        || !contains(req.headers(), UPGRADE, "spdy/3.1")
    {
        return reply(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        );
    }
    let protocol = chosen.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let mut config = shared.config.session;
        config.idle_timeout = shared.config.idle_timeout;
        let session = session::start(TokioIo::new(upgraded), config);
        run_spdy(session, request, &protocol, &shared).await;
    });
    let mut r = switching_to("SPDY/3.1");
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&chosen) {
        h.insert("x-stream-protocol-version", v);
    }
    r
}

/// What a request's session is about.
enum Task<'a> {
    /// A process to exec or attach to, with its streams and how to start it.
    Process(StreamOpts, ProcessStart<'a>),
    PortForward {
        pod_sandbox_id: String,
        ports: Vec<u16>,
    },
}

type ProcessStart<'a> = BoxFuture<'a, Result<ProcessIo, BackendError>>;

fn task(request: Request, backend: &dyn Backend) -> Task<'_> {
    match request {
        Request::Exec {
            container_id,
            cmd,
            opts,
        } => Task::Process(opts, backend.exec(container_id, cmd, opts)),
        Request::Attach { container_id, opts } => {
            Task::Process(opts, backend.attach(container_id, opts))
        }
        Request::PortForward {
            pod_sandbox_id,
            ports,
        } => Task::PortForward {
            pod_sandbox_id,
            ports,
        },
    }
}

async fn run_spdy(session: session::Session, request: Request, protocol: &str, shared: &Shared) {
    let backend = shared.backend.clone();
    match task(request, backend.as_ref()) {
        Task::Process(opts, start) => {
            if let Some(p) = remotecommand::spdy_protocol(protocol) {
                remotecommand::spdy_session(session, opts, p, start).await;
            }
        }
        Task::PortForward { pod_sandbox_id, .. } => {
            portforward::spdy_session(session, backend.clone(), pod_sandbox_id).await;
        }
    }
}

fn websocket_upgrade(
    req: HttpRequest<Incoming>,
    request: Request,
    shared: Arc<Shared>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(StatusCode::BAD_REQUEST, "a WebSocket upgrade is a GET");
    }
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let version_ok = req
        .headers()
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "13");
    if key.is_empty() || !version_ok {
        return reply(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade needs Sec-WebSocket-Key and version 13",
        );
    }
    let offered = list(req.headers(), "sec-websocket-protocol");
    let supported = |p: &str| match request {
        Request::PortForward { .. } => matches!(
            p,
            "" | "v4.channel.k8s.io" | "v4.base64.channel.k8s.io" | PORTFORWARD_TUNNEL
        ),
        _ => remotecommand::ws_protocol(p).is_some(),
    };
    let chosen = if offered.is_empty() {
        Some(String::new())
    } else {
        offered.iter().find(|p| supported(p)).cloned()
    };
    let Some(chosen) = chosen else {
        return reply(
            StatusCode::FORBIDDEN,
            &format!("unable to upgrade: no supported protocol in {offered:?}"),
        );
    };
    let accept = websocket::accept_key(key);
    let protocol = chosen.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        run_websocket(TokioIo::new(upgraded), request, &protocol, &shared).await;
    });
    let mut r = switching_to("websocket");
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    if let (false, Ok(v)) = (chosen.is_empty(), HeaderValue::from_str(&chosen)) {
        h.insert("sec-websocket-protocol", v);
    }
    r
}

async fn run_websocket<IO>(io: IO, request: Request, protocol: &str, shared: &Shared)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let ws = websocket::start(io, shared.config.idle_timeout);
    let backend = shared.backend.clone();
    let p = remotecommand::ws_protocol(protocol).unwrap_or(Protocol {
        version: 1,
        base64: false,
    });
    match task(request, backend.as_ref()) {
        Task::Process(opts, start) => remotecommand::ws_session(ws, opts, p, start).await,
        Task::PortForward {
            pod_sandbox_id,
            ports,
        } => {
            if protocol == PORTFORWARD_TUNNEL {
                let mut config = shared.config.session;
                config.idle_timeout = shared.config.idle_timeout;
                let session = session::start(portforward::spdy_over_ws(ws), config);
                portforward::spdy_session(session, backend.clone(), pod_sandbox_id).await;
            } else {
                portforward::ws_session(
                    ws,
                    backend.clone(),
                    pod_sandbox_id,
                    ports,
                    protocol.contains("base64"),
                )
                .await;
            }
        }
    }
}
