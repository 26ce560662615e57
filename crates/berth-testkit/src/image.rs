//! Test images: layers, an image config and a manifest (OCI or Docker schema 2), pushed to a
//! [`Registry`]; and indexes (manifest lists) over several of them.

use berth_image::Digest;
use berth_image::manifest::media;
use serde_json::{Value, json};

use crate::layer::{Compression, LayerBuilder, compress};
use crate::registry::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

/// An image being assembled.
pub struct ImageBuilder {
    layers: Vec<(Vec<u8>, Compression)>,
    config: serde_json::Map<String, Value>,
    format: Format,
    architecture: String,
}

/// What was pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The image ID: its config digest.
    pub id: String,
    pub manifest_digest: Digest,
    pub manifest_media_type: &'static str,
    pub manifest_size: u64,
    pub diff_ids: Vec<Digest>,
    pub layer_digests: Vec<Digest>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    pub fn new() -> ImageBuilder {
        ImageBuilder {
            layers: Vec::new(),
            config: serde_json::Map::new(),
            format: Format::Oci,
            architecture: "amd64".into(),
        }
    }

    /// One gzip layer of busybox, `Cmd ["sh"]`.
    pub fn busybox() -> ImageBuilder {
        ImageBuilder::new()
            .layer(LayerBuilder::busybox().tar(), Compression::Gzip)
            .config("Cmd", json!(["sh"]))
            .config(
                "Env",
                json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
            )
    }

    pub fn layer(mut self, tar: Vec<u8>, compression: Compression) -> Self {
        self.layers.push((tar, compression));
        self
    }

    /// A key of the config's `config` object: `User`, `Entrypoint`, `Cmd`, `Env`, `WorkingDir`…
    pub fn config(mut self, key: &str, value: Value) -> Self {
        self.config.insert(key.to_owned(), value);
        self
    }

    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    pub fn architecture(mut self, arch: &str) -> Self {
        self.architecture = arch.to_owned();
        self
    }

    /// Pushes the blobs and the manifest, under each tag (or by digest only when `tags` is empty).
    pub async fn push(&self, registry: &Registry, repo: &str, tags: &[&str]) -> Pushed {
        let (config_type, layer_gzip, manifest_type) = match self.format {
            Format::Oci => (
                media::OCI_CONFIG,
                media::OCI_LAYER_GZIP,
                media::OCI_MANIFEST,
            ),
            Format::Docker => (
                media::DOCKER_CONFIG,
                media::DOCKER_LAYER_GZIP,
                media::DOCKER_MANIFEST,
            ),
        };
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut layer_digests = Vec::new();
        for (tar, compression) in &self.layers {
            diff_ids.push(Digest::of(tar));
            let blob = compress(tar, *compression);
            let digest = registry.push_blob(repo, &blob).await;
            let media_type = match compression {
                Compression::Gzip => layer_gzip,
                Compression::Zstd => media::OCI_LAYER_ZSTD,
                Compression::None => media::OCI_LAYER,
            };
            layer_descs
                .push(json!({"mediaType": media_type, "digest": digest, "size": blob.len()}));
            layer_digests.push(digest);
        }
        let config = json!({
            "architecture": self.architecture,
            "os": "linux",
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config_bytes = serde_json::to_vec(&config).expect("config json");
        let config_digest = registry.push_blob(repo, &config_bytes).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": config_bytes.len()},
            "layers": layer_descs,
        });
        let body = serde_json::to_vec(&manifest).expect("manifest json");
        let digest = Digest::of(&body);
        registry
            .push_manifest(repo, digest.as_str(), manifest_type, &body)
            .await;
        for tag in tags {
            registry
                .push_manifest(repo, tag, manifest_type, &body)
                .await;
        }
        Pushed {
            id: config_digest.to_string(),
            manifest_digest: digest,
            manifest_media_type: manifest_type,
            manifest_size: body.len() as u64,
            diff_ids,
            layer_digests,
        }
    }
}

/// Pushes an index (OCI) or manifest list (Docker) over already pushed images, each with its
/// platform `(architecture, variant)`.
pub async fn push_index(
    registry: &Registry,
    repo: &str,
    tag: &str,
    format: Format,
    entries: &[(&Pushed, &str, Option<&str>)],
) -> Digest {
    let index_type = match format {
        Format::Oci => media::OCI_INDEX,
        Format::Docker => media::DOCKER_LIST,
    };
    let manifests: Vec<Value> = entries
        .iter()
        .map(|(p, arch, variant)| {
            let mut platform = json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant {
                platform["variant"] = json!(v);
            }
            json!({
                "mediaType": p.manifest_media_type,
                "digest": p.manifest_digest,
                "size": p.manifest_size,
                "platform": platform,
            })
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": index_type, "manifests": manifests});
    let body = serde_json::to_vec(&index).expect("index json");
    registry.push_manifest(repo, tag, index_type, &body).await
}
