//! The JSON documents of the OCI image spec and their Docker schema 2 twins: manifests, indexes
//! (manifest lists), image configs; and picking the node's platform out of an index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    /// What a pull accepts from a manifest endpoint, in the Accept header.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.oci.image.manifest.v1+json, \
        application/vnd.docker.distribution.manifest.v2+json";
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this node, in OCI/Go names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = match architecture {
            "arm64" => Some("v8".to_owned()),
            _ => None,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant,
        }
    }

    /// How well an index entry's platform fits this node: None when it cannot run here; higher is
    /// better (an exact variant beats a missing one).
    fn fit(&self, offered: &Platform) -> Option<u8> {
        if offered.os != self.os || offered.architecture != self.architecture {
            return None;
        }
        let offered_variant = offered.variant.as_deref().filter(|v| !v.is_empty());
        match (self.variant.as_deref(), offered_variant) {
            (_, None) => Some(1),
            (Some(mine), Some(theirs)) if mine == theirs => Some(2),
            // amd64 "v1" is the baseline every amd64 machine runs.
            (None, Some("v1")) => Some(1),
            _ => None,
        }
    }
}

/// A manifest or an index, as fetched from a manifest endpoint.
#[derive(Debug, Clone)]
pub enum Fetched {
    Manifest(Manifest),
    Index(Index),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest media type `{0}` (schema 1 manifests are not supported)")]
    Unsupported(String),
    #[error("malformed {kind}: {source}")]
    Malformed {
        kind: &'static str,
        source: serde_json::Error,
    },
    #[error("no manifest for platform {os}/{architecture} in the index (offered: {offered})")]
    NoPlatform {
        os: String,
        architecture: String,
        offered: String,
    },
}

impl Fetched {
    /// Parses a manifest endpoint's body given its Content-Type (or, when the registry sends none,
    /// the document's own mediaType).
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Fetched, ManifestError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            media_type: Option<String>,
            #[serde(default)]
            manifests: Option<serde_json::Value>,
            #[serde(default)]
            schema_version: Option<u32>,
        }
        let malformed = |kind| move |source| ManifestError::Malformed { kind, source };
        let probe: Probe = serde_json::from_slice(body).map_err(malformed("manifest"))?;
        let declared = content_type
            .map(|c| c.split(';').next().unwrap_or_default().trim().to_owned())
            .filter(|c| c != "application/json" && c != "text/plain" && !c.is_empty())
            .or(probe.media_type)
            .unwrap_or_else(|| {
                // An OCI document without mediaType: tell index from manifest by its shape.
                if probe.manifests.is_some() {
                    media::OCI_INDEX.to_owned()
                } else {
                    media::OCI_MANIFEST.to_owned()
                }
            });
        match declared.as_str() {
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => Ok(Fetched::Manifest(
                serde_json::from_slice(body).map_err(malformed("manifest"))?,
            )),
            media::OCI_INDEX | media::DOCKER_LIST => Ok(Fetched::Index(
                serde_json::from_slice(body).map_err(malformed("index"))?,
            )),
            other if probe.schema_version == Some(1) || other.contains("v1+") => {
                Err(ManifestError::Unsupported(other.to_owned()))
            }
            other => Err(ManifestError::Unsupported(other.to_owned())),
        }
    }
}

impl Index {
    /// The manifest of the index that runs on `platform` (the best fit, first one on a tie).
    pub fn select(&self, platform: &Platform) -> Result<&Descriptor, ManifestError> {
        let mut best: Option<(u8, &Descriptor)> = None;
        for entry in &self.manifests {
            let Some(p) = &entry.platform else { continue };
            if let Some(score) = platform.fit(p) {
                if best.is_none_or(|(b, _)| score > b) {
                    best = Some((score, entry));
                }
            }
        }
        best.map(|(_, d)| d)
            .ok_or_else(|| ManifestError::NoPlatform {
                os: platform.os.clone(),
                architecture: platform.architecture.clone(),
                offered: self
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref())
                    .map(|p| match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The image config document (what `docker inspect` shows as Config, plus rootfs and history).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: ContainerDefaults,
    pub rootfs: RootFs,
}

/// The defaults an image gives its containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerDefaults {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: media::OCI_MANIFEST.into(),
            digest: Digest::of(&[n]),
            size: 1,
            platform: Some(Platform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            }),
            urls: vec![],
        }
    }

    #[test]
    fn the_index_entry_for_this_node_is_chosen() {
        let index = Index {
            media_type: media::OCI_INDEX.into(),
            manifests: vec![entry("arm64", Some("v8"), 1), entry("amd64", None, 2)],
        };
        let amd64 = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        };
        assert_eq!(index.select(&amd64).unwrap().digest, Digest::of(&[2]));
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        };
        assert_eq!(index.select(&arm).unwrap().digest, Digest::of(&[1]));
        let s390 = Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        };
        let err = index.select(&s390).unwrap_err().to_string();
        assert!(err.contains("linux/arm64/v8, linux/amd64"), "{err}");
    }

    #[test]
    fn arm_variants_must_match_when_given() {
        let index = Index {
            media_type: media::OCI_INDEX.into(),
            manifests: vec![entry("arm", Some("v6"), 1), entry("arm", Some("v7"), 2)],
        };
        let v7 = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some("v7".into()),
        };
        assert_eq!(index.select(&v7).unwrap().digest, Digest::of(&[2]));
    }

    #[test]
    fn documents_are_told_apart_by_content_type_or_shape() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            Fetched::parse(None, index).unwrap(),
            Fetched::Index(_)
        ));
        let d = Digest::of(b"x");
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{d}","size":1}},"layers":[]}}"#,
            media::DOCKER_CONFIG
        );
        assert!(matches!(
            Fetched::parse(Some(media::DOCKER_MANIFEST), manifest.as_bytes()).unwrap(),
            Fetched::Manifest(_)
        ));
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(
            Fetched::parse(
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
                v1
            )
            .is_err()
        );
    }
}
