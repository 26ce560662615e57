//! The in-memory index of images: by ID, by every tag and digest reference, and by ID prefix.
//! Answers ListImages and ImageStatus without touching the store.

use std::collections::{BTreeMap, HashMap};

use berth_image::Reference;

use super::record::ImageRecord;

#[derive(Debug, Default)]
pub struct ImageIndex {
    by_id: BTreeMap<String, ImageRecord>,
    /// Normalized tag or digest reference → image ID.
    by_ref: HashMap<String, String>,
}

/// More than one image ID starts with the given prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguous {
    pub prefix: String,
    pub matches: usize,
}

impl ImageIndex {
    pub fn new(records: Vec<ImageRecord>) -> ImageIndex {
        let mut index = ImageIndex::default();
        for r in records {
            index.insert(r);
        }
        index
    }

    pub fn insert(&mut self, record: ImageRecord) {
        self.remove(&record.id.clone());
        for r in record.repo_tags.iter().chain(&record.repo_digests) {
            self.by_ref.insert(r.clone(), record.id.clone());
        }
        self.by_id.insert(record.id.clone(), record);
    }

    pub fn remove(&mut self, id: &str) -> Option<ImageRecord> {
        let old = self.by_id.remove(id)?;
        for r in old.repo_tags.iter().chain(&old.repo_digests) {
            if self.by_ref.get(r).is_some_and(|owner| owner == id) {
                self.by_ref.remove(r);
            }
        }
        Some(old)
    }

    pub fn get(&self, id: &str) -> Option<&ImageRecord> {
        self.by_id.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &ImageRecord> {
        self.by_id.values()
    }

    /// The image that `text` names: an ID, a tag or digest reference in any form kubelet or crictl
    /// sends, or a unique ID prefix (with or without `sha256:`).
    pub fn resolve(&self, text: &str) -> Result<Option<&ImageRecord>, Ambiguous> {
        if let Some(r) = self.by_id.get(text) {
            return Ok(Some(r));
        }
        if let Ok(reference) = Reference::parse(text) {
            if let Some(id) = self.by_ref.get(&reference.to_string()) {
                return Ok(self.by_id.get(id));
            }
        }
        let prefix = text.strip_prefix("sha256:").unwrap_or(text);
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut matches = self
            .by_id
            .values()
            .filter(|r| r.id_hex().starts_with(prefix));
        match (matches.next(), matches.next()) {
            (None, _) => Ok(None),
            (Some(one), None) => Ok(Some(one)),
            (Some(_), Some(_)) => Err(Ambiguous {
                prefix: text.to_owned(),
                matches: 2 + matches.count(),
            }),
        }
    }

    /// Images other than `id` that carry `tag`.
    pub fn holders_of(&self, tag: &str, id: &str) -> Vec<ImageRecord> {
        self.by_id
            .values()
            .filter(|r| r.id != id && r.repo_tags.iter().any(|t| t == tag))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_image::manifest::ContainerDefaults;

    fn image(hex_start: &str, tags: &[&str], digests: &[&str]) -> ImageRecord {
        ImageRecord {
            id: format!("sha256:{hex_start:0<64}"),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            size: 1,
            chain_ids: vec![],
            blobs: vec![],
            defaults: ContainerDefaults::default(),
        }
    }

    #[test]
    fn every_reference_form_finds_the_same_image() {
        let d = format!("sha256:{}", "d".repeat(64));
        let index = ImageIndex::new(vec![
            image(
                "abc1",
                &["docker.io/library/busybox:latest"],
                &[&format!("docker.io/library/busybox@{d}")],
            ),
            image("abc2", &["127.0.0.1:5000/app:v1"], &[]),
        ]);
        let id = format!("sha256:{:0<64}", "abc1");
        for form in [
            id.as_str(),
            &id[7..],
            "sha256:abc1",
            "abc1",
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox",
            &format!("busybox@{d}"),
            &format!("docker.io/library/busybox:latest@{d}"),
        ] {
            assert_eq!(
                index.resolve(form).unwrap().map(|r| r.id.as_str()),
                Some(id.as_str()),
                "{form}"
            );
        }
        assert_eq!(
            index
                .resolve("127.0.0.1:5000/app:v1")
                .unwrap()
                .unwrap()
                .id_hex()[..4],
            *"abc2"
        );
        assert_eq!(index.resolve("nginx").unwrap(), None);
        assert_eq!(index.resolve("abc").unwrap_err().matches, 2);
    }

    #[test]
    fn removing_frees_the_references() {
        let mut index = ImageIndex::new(vec![image("ab", &["docker.io/library/a:1"], &[])]);
        index.remove(&format!("sha256:{:0<64}", "ab"));
        assert_eq!(index.resolve("a:1").unwrap(), None);
    }
}
