//! A client of the OCI distribution API: endpoints (mirrors, then the host), manifests and blobs,
//! with the bearer-token and basic authentication flows. Credentials go only into Authorization
//! headers, never into URLs, logs or errors.

mod auth;

use std::collections::HashMap;
use std::sync::{Mutex, Once};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode, header};

pub use auth::{BadAuth, Challenge, Credentials};

use crate::digest::Digest;
use crate::manifest::media;

/// What the daemon's configuration says of one registry host.
/// How much of an error response's body is read (its message shows 300 characters).
const ERROR_BODY_LIMIT: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct HostSettings {
    /// Endpoint URLs tried in order before the host itself.
    pub mirrors: Vec<String>,
    /// Plain HTTP to the host itself, and any certificate accepted on its HTTPS mirrors.
    pub insecure: bool,
    pub credentials: Option<Credentials>,
}

/// One place to fetch from: a mirror or the registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    pub base: String,
    pub skip_tls_verify: bool,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{endpoint}: authentication required or refused: {message}")]
    Unauthorized { endpoint: String, message: String },
    #[error("{endpoint}: access denied: {message}")]
    Forbidden { endpoint: String, message: String },
    #[error("{endpoint}: {what} not found")]
    NotFound { endpoint: String, what: String },
    #[error("{endpoint}: {what}: HTTP {status}: {message}")]
    Http {
        endpoint: String,
        what: String,
        status: u16,
        message: String,
    },
    #[error("{endpoint}: {what}: no data for {stall:?}; transfer aborted")]
    Stalled {
        endpoint: String,
        what: String,
        stall: Duration,
    },
    #[error("{endpoint}: {what}: {message}")]
    Transport {
        endpoint: String,
        what: String,
        message: String,
    },
    #[error("cannot build the registry HTTP client: {0}")]
    Client(reqwest::Error),
}

/// The registry client. One per daemon: it keeps connections and bearer tokens.
#[derive(Debug)]
pub struct RegistryClient {
    verified: reqwest::Client,
    unverified: reqwest::Client,
    stall: Duration,
    /// Bearer tokens by (endpoint, repository).
    tokens: Mutex<HashMap<(String, String), String>>,
}

/// Installs the process-wide TLS crypto provider (ring) once; every HTTPS client needs it.
pub fn install_crypto_provider() {
    static CRYPTO: Once = Once::new();
    CRYPTO.call_once(|| {
        // Fails only when a provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl RegistryClient {
    /// `stall`: a transfer with no bytes for this long is aborted.
    pub fn new(stall: Duration) -> Result<RegistryClient, RegistryError> {
        install_crypto_provider();
        let build = |skip_verify: bool| {
            reqwest::Client::builder()
                .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(stall)
                .read_timeout(stall)
                .tls_danger_accept_invalid_certs(skip_verify)
                .build()
                .map_err(RegistryError::Client)
        };
        Ok(RegistryClient {
            verified: build(false)?,
            unverified: build(true)?,
            stall,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The endpoints for a registry host, in the order they are tried: the mirrors, then the host.
    /// Loopback hosts and hosts marked insecure are spoken to over plain HTTP, as Docker does.
    pub fn endpoints(domain: &str, settings: &HostSettings) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = settings
            .mirrors
            .iter()
            .map(|m| Endpoint {
                base: m.trim_end_matches('/').to_owned(),
                skip_tls_verify: settings.insecure,
            })
            .collect();
        let host = if domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            domain
        };
        let scheme = if settings.insecure || is_loopback(domain) {
            "http"
        } else {
            "https"
        };
        out.push(Endpoint {
            base: format!("{scheme}://{host}"),
            skip_tls_verify: false,
        });
        out
    }

    /// Fetches a manifest or index by tag or digest: its bytes and Content-Type.
    pub async fn manifest(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<(Vec<u8>, Option<String>), RegistryError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", endpoint.base);
        let what = format!("manifest {repository}:{reference}");
        let response = self
            .send(endpoint, repository, &what, credentials, |c| {
                c.request(Method::GET, &url)
                    .header(header::ACCEPT, media::MANIFEST_ACCEPT)
            })
            .await?;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self
            .read_all(endpoint, &what, response, 8 * 1024 * 1024)
            .await?;
        Ok((body, content_type))
    }

    /// Fetches a small blob (a config) whole.
    pub async fn small_blob(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        digest: &Digest,
        credentials: Option<&Credentials>,
    ) -> Result<Vec<u8>, RegistryError> {
        let response = self.blob(endpoint, repository, digest, credentials).await?;
        self.read_all(
            endpoint,
            &format!("blob {digest}"),
            response,
            16 * 1024 * 1024,
        )
        .await
    }

    /// Starts a blob download; the caller reads it with [`RegistryClient::next_chunk`].
    pub async fn blob(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        digest: &Digest,
        credentials: Option<&Credentials>,
    ) -> Result<Response, RegistryError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", endpoint.base);
        let what = format!("blob {digest}");
        self.send(endpoint, repository, &what, credentials, |c| {
            c.request(Method::GET, &url)
        })
        .await
    }

    /// The next piece of a download, or None at its end.
    pub async fn next_chunk(
        &self,
        endpoint: &Endpoint,
        what: &str,
        response: &mut Response,
    ) -> Result<Option<bytes::Bytes>, RegistryError> {
        match tokio::time::timeout(self.stall, response.chunk()).await {
            Err(_) => Err(self.stalled(endpoint, what)),
            Ok(Err(e)) if e.is_timeout() => Err(self.stalled(endpoint, what)),
            Ok(Err(e)) => Err(transport(endpoint, what, &e)),
            Ok(Ok(chunk)) => Ok(chunk),
        }
    }

    fn stalled(&self, endpoint: &Endpoint, what: &str) -> RegistryError {
        RegistryError::Stalled {
            endpoint: endpoint.base.clone(),
            what: what.to_owned(),
            stall: self.stall,
        }
    }

    async fn read_all(
        &self,
        endpoint: &Endpoint,
        what: &str,
        mut response: Response,
        limit: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk(endpoint, what, &mut response).await? {
            body.extend_from_slice(&chunk);
            if body.len() > limit {
                return Err(RegistryError::Transport {
                    endpoint: endpoint.base.clone(),
                    what: what.to_owned(),
                    message: format!("larger than {limit} bytes"),
                });
            }
        }
        Ok(body)
    }

    /// The response if it succeeded, else the error its status and the first bytes of its body
    /// (the registry's JSON error list) say; the body is read no further than that, and no
    /// longer than a stall.
    async fn check_status(
        &self,
        endpoint: &Endpoint,
        what: &str,
        mut response: Response,
    ) -> Result<Response, RegistryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match self.next_chunk(endpoint, what, &mut response).await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        let message: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        let endpoint = endpoint.base.clone();
        Err(match status {
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized { endpoint, message },
            StatusCode::FORBIDDEN => RegistryError::Forbidden { endpoint, message },
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                endpoint,
                what: what.to_owned(),
            },
            _ => RegistryError::Http {
                endpoint,
                what: what.to_owned(),
                status: status.as_u16(),
                message,
            },
        })
    }

    fn client(&self, endpoint: &Endpoint) -> &reqwest::Client {
        if endpoint.skip_tls_verify {
            &self.unverified
        } else {
            &self.verified
        }
    }

    /// Sends a request, answering one authentication challenge if the registry sends it.
    async fn send(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        what: &str,
        credentials: Option<&Credentials>,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let key = (endpoint.base.clone(), repository.to_owned());
        let cached = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned());
        let preset = match (credentials, cached) {
            (Some(Credentials::RegistryToken(t)), _) => Some(format!("Bearer {t}")),
            (_, Some(token)) => Some(format!("Bearer {token}")),
            _ => None,
        };
        let response = self
            .execute(endpoint, what, &build, preset.as_deref())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return self.check_status(endpoint, what, response).await;
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse);
        let authorization =
            match challenge {
                Some(Challenge::Basic) => credentials
                    .and_then(Credentials::basic_header)
                    .ok_or_else(|| RegistryError::Unauthorized {
                        endpoint: endpoint.base.clone(),
                        message:
                            "the registry asks for a username and password and none were given"
                                .into(),
                    })?,
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) => {
                    let scope = scope.unwrap_or_else(|| format!("repository:{repository}:pull"));
                    let token = self
                        .fetch_token(endpoint, &realm, service.as_deref(), &scope, credentials)
                        .await?;
                    if let Ok(mut tokens) = self.tokens.lock() {
                        tokens.insert(key, token.clone());
                    }
                    format!("Bearer {token}")
                }
                None => {
                    return Err(RegistryError::Unauthorized {
                        endpoint: endpoint.base.clone(),
                        message: "the registry answered 401 without a usable challenge".into(),
                    });
                }
            };
        let response = self
            .execute(endpoint, what, &build, Some(&authorization))
            .await?;
        self.check_status(endpoint, what, response).await
    }

    async fn execute(
        &self,
        endpoint: &Endpoint,
        what: &str,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
        authorization: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let mut request = build(self.client(endpoint));
        if let Some(auth) = authorization {
            request = request.header(header::AUTHORIZATION, auth);
        }
        match tokio::time::timeout(self.stall, request.send()).await {
            Err(_) => Err(self.stalled(endpoint, what)),
            Ok(Err(e)) if e.is_timeout() => Err(self.stalled(endpoint, what)),
            Ok(Err(e)) => Err(transport(endpoint, what, &e)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    async fn fetch_token(
        &self,
        endpoint: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let what = "token";
        let client = self.client(endpoint);
        let mut query: Vec<(&str, &str)> = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let request = match credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let mut form = query.clone();
                form.extend([
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", "berth"),
                ]);
                client
                    .post(realm)
                    .body(form_encode(&form))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            }
            other => {
                let mut r = client.get(format!("{realm}?{}", form_encode(&query)));
                if let Some(basic) = other.and_then(Credentials::basic_header) {
                    r = r.header(header::AUTHORIZATION, basic);
                }
                r
            }
        };
        let response = match tokio::time::timeout(self.stall, request.send()).await {
            Err(_) => return Err(self.stalled(endpoint, what)),
            Ok(Err(e)) => return Err(transport(endpoint, what, &e)),
            Ok(Ok(r)) => r,
        };
        let response = match response.status() {
            StatusCode::UNAUTHORIZED => {
                return Err(RegistryError::Unauthorized {
                    endpoint: endpoint.base.clone(),
                    message: "the token service refused the credentials".into(),
                });
            }
            StatusCode::FORBIDDEN => {
                return Err(RegistryError::Forbidden {
                    endpoint: endpoint.base.clone(),
                    message: format!("the token service refused scope {scope}"),
                });
            }
            _ => self.check_status(endpoint, what, response).await?,
        };
        let body = self.read_all(endpoint, what, response, 1024 * 1024).await?;
        serde_json::from_slice::<auth::TokenResponse>(&body)
            .ok()
            .and_then(auth::TokenResponse::into_token)
            .ok_or_else(|| RegistryError::Transport {
                endpoint: endpoint.base.clone(),
                what: what.into(),
                message: "the token service answered without a token".into(),
            })
    }
}

fn transport(endpoint: &Endpoint, what: &str, e: &reqwest::Error) -> RegistryError {
    // reqwest's Display carries the URL, which holds no credentials (they go in headers only).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    RegistryError::Transport {
        endpoint: endpoint.base.clone(),
        what: what.to_owned(),
        message,
    }
}

fn is_loopback(domain: &str) -> bool {
    let host = if let Some(v6) = domain.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        domain.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// application/x-www-form-urlencoded, for token requests.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_first_then_the_host() {
        let s = HostSettings {
            mirrors: vec!["http://127.0.0.1:5000/".into(), "https://m2".into()],
            ..HostSettings::default()
        };
        let e = RegistryClient::endpoints("docker.io", &s);
        let bases: Vec<_> = e.iter().map(|e| e.base.as_str()).collect();
        assert_eq!(
            bases,
            [
                "http://127.0.0.1:5000",
                "https://m2",
                "https://registry-1.docker.io"
            ]
        );
    }

    #[test]
    fn loopback_and_insecure_hosts_use_plain_http() {
        let plain = HostSettings::default();
        assert_eq!(
            RegistryClient::endpoints("127.0.0.1:5000", &plain)[0].base,
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            RegistryClient::endpoints("localhost", &plain)[0].base,
            "http://localhost"
        );
        assert_eq!(
            RegistryClient::endpoints("quay.io", &plain)[0].base,
            "https://quay.io"
        );
        let insecure = HostSettings {
            insecure: true,
            ..HostSettings::default()
        };
        assert_eq!(
            RegistryClient::endpoints("reg.lan:5000", &insecure)[0].base,
            "http://reg.lan:5000"
        );
    }

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(
            form_encode(&[("scope", "repository:a/b:pull"), ("x", "a b&c")]),
            "scope=repository%3Aa%2Fb%3Apull&x=a%20b%26c"
        );
    }
}
