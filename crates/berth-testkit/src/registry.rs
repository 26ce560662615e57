//! A real distribution registry (Debian's `docker-registry`) on 127.0.0.1 with a free port, and
//! a small client to push blobs and manifests to it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_image::Digest;

use crate::http_client;

/// A running registry; killed when dropped.
pub struct Registry {
    pub port: u16,
    /// Basic-auth user and password, when the registry asks for them.
    pub credentials: Option<(String, String)>,
    child: Child,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({})", self.host())
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Registry {
    /// An open registry.
    pub async fn start() -> Registry {
        Self::start_with(None).await
    }

    /// A registry that wants basic auth (htpasswd with bcrypt, as the registry requires).
    pub async fn start_with_htpasswd(user: &str, password: &str) -> Registry {
        Self::start_with(Some((user.to_owned(), password.to_owned()))).await
    }

    async fn start_with(credentials: Option<(String, String)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir_in("/var/tmp")
            .expect("registry dir");
        let port = free_port();
        let mut auth = String::new();
        if let Some((user, password)) = &credentials {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils)");
            let path: PathBuf = dir.path().join("htpasswd");
            std::fs::write(&path, &out.stdout).expect("htpasswd file");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                path.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let registry = Registry {
            port,
            credentials,
            child,
            _dir: dir,
            http: http_client(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = registry
                .http
                .get(format!("{}/v2/", registry.url()))
                .send()
                .await
            {
                if r.status().is_success() || r.status().as_u16() == 401 {
                    return registry;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:<port>`, the host part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    fn authed(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    /// Uploads a blob (monolithic upload) unless the registry has it; returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::of(data);
        let head = self
            .authed(
                self.http
                    .head(format!("{}/v2/{repo}/blobs/{digest}", self.url())),
            )
            .send()
            .await
            .expect("HEAD blob");
        if head.status().is_success() {
            return digest;
        }
        let start = self
            .authed(
                self.http
                    .post(format!("{}/v2/{repo}/blobs/uploads/", self.url())),
            )
            .send()
            .await
            .expect("start upload");
        assert_eq!(
            start.status().as_u16(),
            202,
            "start upload: {:?}",
            start.text().await
        );
        let location = start
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .expect("upload location")
            .to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.url())
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = self
            .authed(self.http.put(format!("{location}{sep}digest={digest}")))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("upload blob");
        assert_eq!(
            put.status().as_u16(),
            201,
            "upload blob: {:?}",
            put.text().await
        );
        digest
    }

    /// Puts a manifest or index under `reference` (a tag or its digest); returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Digest {
        let put = self
            .authed(
                self.http
                    .put(format!("{}/v2/{repo}/manifests/{reference}", self.url())),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("put manifest");
        assert_eq!(
            put.status().as_u16(),
            201,
            "put manifest: {:?}",
            put.text().await
        );
        Digest::of(body)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
