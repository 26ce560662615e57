//! The stored image: one per image ID (its config digest), with every tag and digest reference
//! that names it.

use berth_image::Digest;
use berth_image::manifest::ContainerDefaults;
use serde::{Deserialize, Serialize};

use crate::store::Record;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest, `sha256:…`.
    pub id: String,
    /// `docker.io/library/busybox:latest`, …
    pub repo_tags: Vec<String>,
    /// `docker.io/library/busybox@sha256:…`, …
    pub repo_digests: Vec<String>,
    /// Config plus compressed layers, as containerd reports it.
    pub size: u64,
    /// Snapshot keys, bottom layer first.
    pub chain_ids: Vec<Digest>,
    /// Content-store blobs that belong to this image.
    pub blobs: Vec<Digest>,
    /// What the image config gives its containers (user, env, entrypoint, cmd, …).
    pub defaults: ContainerDefaults,
}

impl Record for ImageRecord {
    const TABLE: &'static str = "images";
    fn key(&self) -> &str {
        &self.id
    }
}

/// The image's `User` as the CRI reports it: a numeric uid, or a user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    None,
    Uid(i64),
    Name(String),
}

impl ImageRecord {
    /// `1000`, `1000:50` → uid 1000; `www-data`, `www-data:50` → name `www-data`.
    pub fn user(&self) -> ImageUser {
        let user = self.defaults.user.split(':').next().unwrap_or_default();
        if user.is_empty() {
            ImageUser::None
        } else if let Ok(uid) = user.parse() {
            ImageUser::Uid(uid)
        } else {
            ImageUser::Name(user.to_owned())
        }
    }

    /// The config digest's hex part, which ID prefixes match against.
    pub fn id_hex(&self) -> &str {
        self.id.strip_prefix("sha256:").unwrap_or(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_user(user: &str) -> ImageRecord {
        ImageRecord {
            id: "sha256:00".into(),
            repo_tags: vec![],
            repo_digests: vec![],
            size: 0,
            chain_ids: vec![],
            blobs: vec![],
            defaults: ContainerDefaults {
                user: user.into(),
                ..ContainerDefaults::default()
            },
        }
    }

    #[test]
    fn image_users_in_every_form() {
        assert_eq!(with_user("").user(), ImageUser::None);
        assert_eq!(with_user("1000").user(), ImageUser::Uid(1000));
        assert_eq!(with_user("1000:50").user(), ImageUser::Uid(1000));
        assert_eq!(
            with_user("www-data").user(),
            ImageUser::Name("www-data".into())
        );
        assert_eq!(
            with_user("www-data:50").user(),
            ImageUser::Name("www-data".into())
        );
    }
}
