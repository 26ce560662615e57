//! The image service: pulls into the snapshot store, keeps image records and their references,
//! answers image lookups, removes images and reclaims what no image or container uses.

mod index;
mod record;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use berth_image::content::ContentStore;
use berth_image::pull::{PullError, PullOptions, Pulled, Puller};
use berth_image::reference::BadReference;
use berth_image::registry::{Credentials, HostSettings};
use berth_image::snapshots::{Lease, Snapshots};
use berth_image::{Digest, Reference};

pub use crate::disk_usage::Usage;
pub use index::Ambiguous;
pub use record::{ImageRecord, ImageUser};

use tokio::sync::Notify;

use crate::blocking::TaskFailed;
use crate::config::{Config, RegistryConfig};
use crate::paths::Paths;
use crate::store::{Store, StoreError};
use crate::sync::{LockRecovered, RwLockRecovered};
use index::ImageIndex;

/// How long a measured disk usage is reused.
const USAGE_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    BadReference(#[from] BadReference),
    #[error("image `{}` is ambiguous: {} images match", .0.prefix, .0.matches)]
    Ambiguous(Ambiguous),
    #[error("pull {reference}: {source}")]
    Pull {
        reference: String,
        source: PullError,
    },
    #[error("registry credentials: {0}")]
    BadCredentials(#[from] berth_image::registry::BadAuth),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the registry client: {0}")]
    Registry(berth_image::registry::RegistryError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

impl From<Ambiguous> for ImageError {
    fn from(a: Ambiguous) -> Self {
        ImageError::Ambiguous(a)
    }
}

/// Whatever stands on snapshots besides images (containers): image GC keeps what it names.
pub trait SnapshotUsers: Send + Sync + std::fmt::Debug {
    fn snapshots_in_use(&self) -> HashSet<Digest>;
}

/// Disk usage of the image store and of the containers' writable layers.
#[derive(Debug, Clone, Copy)]
pub struct FsInfo {
    pub taken_at: std::time::SystemTime,
    pub images: Usage,
    pub containers: Usage,
}

#[derive(Debug)]
pub struct ImageService {
    store: Arc<Store>,
    puller: Arc<Puller>,
    content: Arc<ContentStore>,
    snapshots: Arc<Snapshots>,
    index: RwLock<ImageIndex>,
    /// Serializes changes of records (pull commits, removals) so each sees the last one's result.
    commit: Mutex<()>,
    registries: BTreeMap<String, RegistryConfig>,
    /// Pulls in flight: blobs are reclaimed only when there are none (a pull writes its
    /// manifests and config before its record names them).
    pulls: AtomicUsize,
    containers_dir: PathBuf,
    usage: tokio::sync::Mutex<Option<(Instant, FsInfo)>>,
    /// Told of each removal; GC runs once for however many came while it ran.
    reclaim_wanted: Notify,
    users: OnceLock<Weak<dyn SnapshotUsers>>,
}

impl ImageService {
    pub fn open(
        config: &Config,
        paths: &Paths,
        store: Arc<Store>,
    ) -> Result<ImageService, ImageError> {
        let io_err = |what: &str| {
            let what = what.to_owned();
            move |source| ImageError::Io { what, source }
        };
        let content =
            Arc::new(ContentStore::open(&paths.content()).map_err(io_err("content store"))?);
        let snapshots =
            Arc::new(Snapshots::open(&paths.snapshots()).map_err(io_err("snapshot store"))?);
        let containers_dir = paths.containers();
        std::fs::create_dir_all(&containers_dir).map_err(io_err("containers dir"))?;
        let options = PullOptions {
            max_concurrent_downloads: config.images.max_concurrent_downloads,
            stall_timeout: config.images.stall_timeout.get(),
            keep_layer_blobs: config.images.keep_layer_blobs,
            layer_limits: berth_image::pull::LayerLimits {
                max_unpacked_bytes: config.images.max_layer_size,
                max_entries: config.images.max_layer_entries,
                ..berth_image::pull::LayerLimits::default()
            },
        };
        let puller = Puller::new(content.clone(), snapshots.clone(), &options)
            .map_err(ImageError::Registry)?;
        let records = store.list::<ImageRecord>()?;
        Ok(ImageService {
            store,
            puller: Arc::new(puller),
            content,
            snapshots,
            index: RwLock::new(ImageIndex::new(records)),
            commit: Mutex::new(()),
            registries: config.registries.clone(),
            pulls: AtomicUsize::new(0),
            containers_dir,
            usage: tokio::sync::Mutex::new(None),
            reclaim_wanted: Notify::new(),
            users: OnceLock::new(),
        })
    }

    /// Who else stands on snapshots (told once, at wiring).
    pub fn set_snapshot_users(&self, users: Weak<dyn SnapshotUsers>) {
        let _ = self.users.set(users);
    }

    /// Starts the task that reclaims the space of removed images and containers, and has it run
    /// once now (it clears snapshots of a pull that crashed before its record was written).
    pub fn start_reclaimer(self: &Arc<Self>) {
        let images = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = images.collect_garbage().await {
                    tracing::warn!("reclaiming image space: {e}");
                }
                // A removal while GC ran left a permit: the next round starts at once.
                images.reclaim_wanted.notified().await;
            }
        });
    }

    /// Asks for the space of what was removed to be reclaimed, in the background.
    pub fn reclaim(&self) {
        self.reclaim_wanted.notify_one();
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, ImageIndex> {
        self.index.read_recovered()
    }

    /// Every image.
    pub fn list(&self) -> Vec<ImageRecord> {
        self.index().all().cloned().collect()
    }

    /// The image `text` names (ID, ID prefix, tag or digest reference), if any.
    pub fn resolve(&self, text: &str) -> Result<Option<ImageRecord>, ImageError> {
        Ok(self.index().resolve(text)?.cloned())
    }

    /// The image config as the registry served it, for verbose status.
    pub fn config_json(&self, image: &ImageRecord) -> Option<String> {
        let digest = Digest::parse(&image.id).ok()?;
        self.content
            .read(&digest)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Where the unpacked layers of an image are, top first (overlay lowerdir order).
    pub fn lower_dirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image
            .chain_ids
            .iter()
            .rev()
            .map(|c| self.snapshots.fs_path(c))
            .collect()
    }

    /// Keeps the snapshots of `image` from garbage collection until the lease drops (a create
    /// holds it until its record names them); None if they went before the lease came (the
    /// image was removed meanwhile).
    pub fn lease(&self, image: &ImageRecord) -> Option<Lease> {
        let lease = self.snapshots.lease(&image.chain_ids);
        image
            .chain_ids
            .iter()
            .all(|c| self.snapshots.exists(c))
            .then_some(lease)
    }

    fn host_settings(
        &self,
        domain: &str,
        credentials: Option<Credentials>,
    ) -> Result<HostSettings, ImageError> {
        let configured = self.registries.get(domain);
        let from_config = match configured {
            Some(r) => Credentials::from_parts(
                r.username.as_deref().unwrap_or_default(),
                r.password.as_ref().map(|s| s.expose()).unwrap_or_default(),
                r.auth.as_ref().map(|s| s.expose()).unwrap_or_default(),
                r.identity_token
                    .as_ref()
                    .map(|s| s.expose())
                    .unwrap_or_default(),
                "",
            )?,
            None => None,
        };
        Ok(HostSettings {
            mirrors: configured
                .map(|r| r.mirrors.iter().map(|m| m.as_str().to_owned()).collect())
                .unwrap_or_default(),
            insecure: configured.is_some_and(|r| r.insecure),
            credentials: credentials.or(from_config),
        })
    }

    /// Pulls an image and records it under the reference's tag and digest. `credentials` come from
    /// the request and win over the configured ones. The record, and the layer bytes downloaded.
    pub async fn pull(
        &self,
        text: &str,
        credentials: Option<Credentials>,
    ) -> Result<(ImageRecord, u64), ImageError> {
        let reference = Reference::parse(text)?;
        let host = self.host_settings(reference.domain(), credentials)?;
        let _in_flight = InFlight::new(&self.pulls);
        let pulled = self
            .puller
            .pull(&reference, &host)
            .await
            .map_err(|source| ImageError::Pull {
                reference: reference.to_string(),
                source,
            })?;
        let downloaded = pulled.downloaded;
        crate::failpoint::reached("image-pull-before-commit");
        let record = self.commit_pull(&reference, pulled)?;
        self.invalidate_usage().await;
        Ok((record, downloaded))
    }

    fn commit_pull(
        &self,
        reference: &Reference,
        pulled: Pulled,
    ) -> Result<ImageRecord, ImageError> {
        let _serial = self.commit.lock_recovered();
        let id = pulled.config_digest.to_string();
        let tag = reference.tag().map(|_| reference.to_string());
        let digest_ref = reference.with_digest(&pulled.manifest_digest);
        let (mut record, mut untagged) = {
            let index = self.index();
            let record = index.get(&id).cloned().unwrap_or_else(|| ImageRecord {
                id: id.clone(),
                repo_tags: Vec::new(),
                repo_digests: Vec::new(),
                size: pulled.size,
                chain_ids: pulled.chain_ids.clone(),
                blobs: Vec::new(),
                defaults: pulled.config.config.clone(),
            });
            let untagged = tag
                .as_ref()
                .map(|t| index.holders_of(t, &id))
                .unwrap_or_default();
            (record, untagged)
        };
        // A tag names one image: pulling it again moves it off the image it named before.
        for other in &mut untagged {
            other.repo_tags.retain(|t| Some(t) != tag.as_ref());
        }
        if let Some(tag) = tag {
            if !record.repo_tags.contains(&tag) {
                record.repo_tags.push(tag);
            }
        }
        if !record.repo_digests.contains(&digest_ref) {
            record.repo_digests.push(digest_ref);
        }
        for blob in pulled.blobs {
            if !record.blobs.contains(&blob) {
                record.blobs.push(blob);
            }
        }
        self.store.write(|w| {
            for other in &untagged {
                w.put(other)?;
            }
            w.put(&record)
        })?;
        let mut index = self.index.write_recovered();
        for other in untagged {
            index.insert(other);
        }
        index.insert(record.clone());
        Ok(record)
    }

    /// Removes the image `text` names with all its references. Unknown images are not an error.
    /// Returns whether an image was removed; its disk space is reclaimed by [`Self::collect_garbage`].
    pub fn remove(&self, text: &str) -> Result<bool, ImageError> {
        let _serial = self.commit.lock_recovered();
        let Some(record) = self.resolve(text)? else {
            return Ok(false);
        };
        self.store.delete::<ImageRecord>(&record.id)?;
        self.index.write_recovered().remove(&record.id);
        self.reclaim();
        Ok(true)
    }

    /// Removes snapshots no image, no container and no lease needs, and (when no pull is in
    /// flight) blobs no image needs. Waits for no pull or create.
    async fn collect_garbage(self: &Arc<Self>) -> Result<(), ImageError> {
        let this = self.clone();
        let removed = crate::blocking::run(move || -> std::io::Result<usize> {
            let removed = this.snapshots.remove_unused(
                || {
                    let mut keep: HashSet<Digest> = this
                        .index()
                        .all()
                        .flat_map(|r| r.chain_ids.iter().cloned())
                        .collect();
                    if let Some(users) = this.users.get().and_then(Weak::upgrade) {
                        keep.extend(users.snapshots_in_use());
                    }
                    keep
                },
                || crate::failpoint::reached("image-gc-after-rename"),
            )?;
            if this.pulls.load(Ordering::Acquire) == 0 {
                let blobs: HashSet<Digest> = this
                    .index()
                    .all()
                    .flat_map(|r| r.blobs.iter().cloned())
                    .collect();
                for blob in this.content.list()? {
                    if !blobs.contains(&blob) {
                        this.content.remove(&blob)?;
                    }
                }
            }
            Ok(removed)
        })
        .await?
        .map_err(|source| ImageError::Io {
            what: "reclaiming unused snapshots".into(),
            source,
        })?;
        if removed > 0 {
            tracing::info!(snapshots = removed, "reclaimed unused snapshots");
        }
        self.invalidate_usage().await;
        Ok(())
    }

    async fn invalidate_usage(&self) {
        *self.usage.lock().await = None;
    }

    /// Disk usage of the image store and the containers' dir, measured at most once a minute (or
    /// after a pull or removal), never per call.
    pub async fn fs_info(&self) -> Result<FsInfo, ImageError> {
        let mut cached = self.usage.lock().await;
        if let Some((at, info)) = cached.as_ref() {
            if at.elapsed() < USAGE_TTL {
                return Ok(*info);
            }
        }
        let (images_dir, containers_dir) = (
            self.snapshots.dir().to_path_buf(),
            self.containers_dir.clone(),
        );
        let info = crate::blocking::run(move || -> std::io::Result<FsInfo> {
            Ok(FsInfo {
                taken_at: std::time::SystemTime::now(),
                images: crate::disk_usage::measure_or_none(&images_dir)?,
                containers: crate::disk_usage::measure_or_none(&containers_dir)?,
            })
        })
        .await?
        .map_err(|source| ImageError::Io {
            what: "measuring disk usage".into(),
            source,
        })?;
        *cached = Some((Instant::now(), info));
        Ok(info)
    }

    pub fn images_dir(&self) -> &Path {
        self.snapshots.dir()
    }

    pub fn containers_dir(&self) -> &Path {
        &self.containers_dir
    }
}

/// Counts a pull while it runs.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
