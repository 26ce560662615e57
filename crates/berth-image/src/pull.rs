//! Pulling an image: resolve the reference on the first endpoint that has it, take the manifest for
//! this node's platform, fetch the config, then download and unpack every missing layer in
//! parallel (bounded), each in one streamed pass; commit the snapshots bottom-up once each layer
//! and the ones below it are complete. Two pulls that need the same layer share one download.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Semaphore, watch};

use crate::content::ContentStore;
use crate::digest::Digest;
pub use crate::layer_stream::StreamError as LayerStreamError;
use crate::layer_stream::StreamError;
use crate::layer_stream::{ChannelReader, unpack_stream};
pub use crate::limits::LayerLimits;
use crate::manifest::{Descriptor, Fetched, ImageConfigFile, Manifest, ManifestError, Platform};
use crate::reference::Reference;
use crate::registry::{Credentials, Endpoint, HostSettings, RegistryClient, RegistryError};
use crate::snapshots::{Lease, PendingSnapshot, Snapshots};
use crate::unpack::apply_deferred;

/// How often a long layer download logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub max_concurrent_downloads: usize,
    /// Transfers with no bytes for this long are aborted.
    pub stall_timeout: Duration,
    /// Keep compressed layer blobs in the content store (by default they are not kept).
    pub keep_layer_blobs: bool,
    /// What one layer may unpack to.
    pub layer_limits: LayerLimits,
}

/// Space a layer must leave free on the snapshots' filesystem: a pull never fills the disk.
const FREE_SPACE_RESERVE: u64 = 256 << 20;

/// A pulled image, every part verified and unpacked; its snapshots leased until it drops (the
/// caller writes its record first).
#[derive(Debug)]
pub struct Pulled {
    /// What the reference resolved to: the index digest when it named an index.
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub config: ImageConfigFile,
    /// The config as served, for `ImageStatus` verbose output.
    pub config_json: String,
    /// Snapshot keys, bottom layer first.
    pub chain_ids: Vec<Digest>,
    /// Content-store blobs of this image (index, manifest, config and kept layers).
    pub blobs: Vec<Digest>,
    /// Config plus compressed layers, as containerd counts an image's size.
    pub size: u64,
    /// Layer bytes this pull downloaded (layers already on disk cost none).
    pub downloaded: u64,
    pub lease: Lease,
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("cannot resolve {reference}: {}", list(.failures))]
    Resolve {
        reference: String,
        failures: Vec<RegistryError>,
    },
    #[error("{0}")]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("layer {layer}: {source}")]
    Layer { layer: Digest, source: StreamError },
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("layer {0} was not pulled: a layer below it failed")]
    LowerFailed(Digest),
}

fn list(failures: &[RegistryError]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PullError {
    let what = what.into();
    move |source| PullError::Io { what, source }
}

#[derive(Debug)]
pub struct Puller {
    client: RegistryClient,
    content: Arc<ContentStore>,
    snapshots: Arc<Snapshots>,
    downloads: Semaphore,
    keep_layer_blobs: bool,
    layer_limits: LayerLimits,
    platform: Platform,
    /// One worker per chain ID across all pulls: a second pull of the layer waits for the first.
    layer_locks: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

/// What the layer tasks of one pull share.
struct PullContext {
    endpoint: Endpoint,
    repository: String,
    credentials: Option<Credentials>,
    reference: String,
}

impl Puller {
    pub fn new(
        content: Arc<ContentStore>,
        snapshots: Arc<Snapshots>,
        options: &PullOptions,
    ) -> Result<Puller, RegistryError> {
        Ok(Puller {
            client: RegistryClient::new(options.stall_timeout)?,
            content,
            snapshots,
            downloads: Semaphore::new(options.max_concurrent_downloads.max(1)),
            keep_layer_blobs: options.keep_layer_blobs,
            layer_limits: options.layer_limits,
            platform: Platform::host(),
            layer_locks: Mutex::new(HashMap::new()),
        })
    }

    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// Pulls `reference` from its registry (mirrors first). Dropping the returned future cancels
    /// the pull; what it made that is not committed is removed.
    pub async fn pull(
        self: &Arc<Self>,
        reference: &Reference,
        host: &HostSettings,
    ) -> Result<Pulled, PullError> {
        let mut failures = Vec::new();
        for endpoint in RegistryClient::endpoints(reference.domain(), host) {
            let fetched = self
                .client
                .manifest(
                    &endpoint,
                    reference.path(),
                    &reference.manifest_reference(),
                    host.credentials.as_ref(),
                )
                .await;
            match fetched {
                Ok((body, content_type)) => {
                    tracing::info!(image = %reference, endpoint = %endpoint, "pulling");
                    let ctx = Arc::new(PullContext {
                        endpoint,
                        repository: reference.path().to_owned(),
                        credentials: host.credentials.clone(),
                        reference: reference.to_string(),
                    });
                    return self.pull_from(ctx, reference, body, content_type).await;
                }
                Err(e) => {
                    tracing::debug!(image = %reference, "{e}");
                    failures.push(e);
                }
            }
        }
        Err(PullError::Resolve {
            reference: reference.to_string(),
            failures,
        })
    }

    async fn pull_from(
        self: &Arc<Self>,
        ctx: Arc<PullContext>,
        reference: &Reference,
        body: Vec<u8>,
        content_type: Option<String>,
    ) -> Result<Pulled, PullError> {
        let started = Instant::now();
        let top = Digest::of(&body);
        if let Some(wanted) = reference.digest() {
            verify(&format!("manifest {reference}"), wanted, &top)?;
        }
        let mut blobs = vec![top.clone()];
        self.store_blob(&top, &body)?;
        let manifest = match Fetched::parse(content_type.as_deref(), &body)? {
            Fetched::Manifest(m) => m,
            Fetched::Index(index) => {
                let entry = index.select(&self.platform)?.clone();
                let m = self.fetch_manifest(&ctx, &entry).await?;
                blobs.push(entry.digest);
                m
            }
        };
        let config_bytes = self
            .client
            .small_blob(
                &ctx.endpoint,
                &ctx.repository,
                &manifest.config.digest,
                ctx.credentials.as_ref(),
            )
            .await?;
        verify(
            "image config",
            &manifest.config.digest,
            &Digest::of(&config_bytes),
        )?;
        let config: ImageConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| PullError::Invalid(format!("image config: {e}")))?;
        self.store_blob(&manifest.config.digest, &config_bytes)?;
        blobs.push(manifest.config.digest.clone());
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(PullError::Invalid(format!(
                "the manifest has {} layers but the config lists {} diff IDs",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let chain_ids = Digest::chain_ids(diff_ids);
        // Before any layer looks for its snapshot: GC must not take one found on disk.
        let lease = self.snapshots.lease(&chain_ids);
        let downloaded = self
            .unpack_layers(&ctx, &manifest, diff_ids, &chain_ids)
            .await?;
        if self.keep_layer_blobs {
            blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        }
        let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        tracing::info!(
            image = %reference,
            layers = manifest.layers.len(),
            bytes = size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pulled"
        );
        Ok(Pulled {
            manifest_digest: top,
            config_digest: manifest.config.digest.clone(),
            config,
            config_json: String::from_utf8_lossy(&config_bytes).into_owned(),
            chain_ids,
            blobs,
            size,
            downloaded,
            lease,
        })
    }

    async fn fetch_manifest(
        &self,
        ctx: &PullContext,
        entry: &Descriptor,
    ) -> Result<Manifest, PullError> {
        let (body, content_type) = self
            .client
            .manifest(
                &ctx.endpoint,
                &ctx.repository,
                entry.digest.as_str(),
                ctx.credentials.as_ref(),
            )
            .await?;
        verify("platform manifest", &entry.digest, &Digest::of(&body))?;
        self.store_blob(&entry.digest, &body)?;
        match Fetched::parse(content_type.as_deref(), &body)? {
            Fetched::Manifest(m) => Ok(m),
            Fetched::Index(_) => Err(PullError::Invalid("an index inside an index".into())),
        }
    }

    fn store_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), PullError> {
        self.content
            .write(digest, bytes)
            .map_err(io_err(format!("storing {digest}")))
    }

    /// Runs one task per layer; each signals its completion to the one above it. The bytes
    /// downloaded.
    async fn unpack_layers(
        self: &Arc<Self>,
        ctx: &Arc<PullContext>,
        manifest: &Manifest,
        diff_ids: &[Digest],
        chain_ids: &[Digest],
    ) -> Result<u64, PullError> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut below: Option<watch::Receiver<bool>> = None;
        for (i, layer) in manifest.layers.iter().enumerate() {
            let (done_tx, done_rx) = watch::channel(false);
            let job = LayerJob {
                layer: layer.clone(),
                diff_id: diff_ids[i].clone(),
                chain_id: chain_ids[i].clone(),
                lowers: chain_ids[..i]
                    .iter()
                    .rev()
                    .map(|c| self.snapshots.fs_path(c))
                    .collect(),
                below: below.replace(done_rx),
                done: done_tx,
            };
            let puller = Arc::clone(self);
            let ctx = Arc::clone(ctx);
            tasks.spawn(async move { puller.layer(&ctx, job).await });
        }
        // The first failure is the one to report; dropping the set aborts the others.
        let mut downloaded = 0;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(bytes)) => downloaded += bytes,
                Ok(Err(PullError::LowerFailed(_))) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(PullError::Invalid(format!("layer task failed: {e}"))),
            }
        }
        match chain_ids.last() {
            Some(top) if !self.snapshots.exists(top) => Err(PullError::LowerFailed(top.clone())),
            _ => Ok(downloaded),
        }
    }

    fn layer_lock(&self, chain_id: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.layer_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        Arc::clone(locks.entry(chain_id.clone()).or_default())
    }

    /// Makes the layer's snapshot unless it exists; the bytes downloaded for it.
    async fn layer(&self, ctx: &PullContext, job: LayerJob) -> Result<u64, PullError> {
        let lock = self.layer_lock(&job.chain_id);
        let _held = lock.lock().await;
        let downloaded = if self.snapshots.exists(&job.chain_id) {
            0
        } else {
            self.make_snapshot(ctx, &job).await?
        };
        let _ = job.done.send(true);
        Ok(downloaded)
    }

    async fn make_snapshot(&self, ctx: &PullContext, job: &LayerJob) -> Result<u64, PullError> {
        let layer_err = |source| PullError::Layer {
            layer: job.layer.digest.clone(),
            source,
        };
        let pending = self
            .snapshots
            .begin(&job.chain_id)
            .map_err(io_err(format!("snapshot for {}", job.layer.digest)))?;
        let (pending, streamed, kept) = {
            let _permit = self
                .downloads
                .acquire()
                .await
                .map_err(|_| PullError::Invalid("puller closed".into()))?;
            self.download(ctx, job, pending).await?
        };
        verify(
            &format!("layer {}", job.layer.digest),
            &job.layer.digest,
            &streamed.digest,
        )?;
        if streamed.size != job.layer.size {
            return Err(PullError::Invalid(format!(
                "layer {}: {} bytes instead of the {} the manifest declares",
                job.layer.digest, streamed.size, job.layer.size
            )));
        }
        verify(
            &format!("layer {} diff ID", job.layer.digest),
            &job.diff_id,
            &streamed.diff_id,
        )?;
        if let Some(mut below) = job.below.clone() {
            if below.wait_for(|done| *done).await.is_err() {
                return Err(PullError::LowerFailed(job.chain_id.clone()));
            }
        }
        let unpacked = streamed.unpacked;
        if unpacked.has_deferred() {
            tracing::debug!(
                layer = %job.layer.digest,
                entries = unpacked.deferred_count(),
                "placing entries that depend on lower layers"
            );
            let lowers = job.lowers.clone();
            let pending = tokio::task::spawn_blocking(move || {
                apply_deferred(&pending.fs(), &pending.staging(), &lowers, unpacked)
                    .map(|()| pending)
            })
            .await
            .map_err(|e| PullError::Invalid(format!("unpack task failed: {e}")))?
            .map_err(|e| layer_err(StreamError::Unpack(e)))?;
            self.commit(pending, job, kept)?;
        } else {
            self.commit(pending, job, kept)?;
        }
        Ok(streamed.size)
    }

    fn commit(
        &self,
        pending: PendingSnapshot,
        job: &LayerJob,
        kept: Option<PathBuf>,
    ) -> Result<(), PullError> {
        if let Some(temp) = kept {
            self.content
                .commit_file(&temp, &job.layer.digest)
                .map_err(io_err(format!("keeping layer {}", job.layer.digest)))?;
        }
        pending
            .commit()
            .map_err(io_err(format!("committing layer {}", job.layer.digest)))
    }

    /// Streams one layer from the registry into the pending snapshot. The blocking unpacker owns the
    /// pending snapshot while it runs, so that whatever happens here (an error, a cancelled pull)
    /// the directory is removed only after nothing writes into it any more.
    async fn download(
        &self,
        ctx: &PullContext,
        job: &LayerJob,
        pending: PendingSnapshot,
    ) -> Result<Downloaded, PullError> {
        let digest = &job.layer.digest;
        let response = self
            .client
            .blob(
                &ctx.endpoint,
                &ctx.repository,
                digest,
                ctx.credentials.as_ref(),
            )
            .await?;
        let (keep_path, keep_file) = if self.keep_layer_blobs {
            let (p, f) = self
                .content
                .temp_file(digest)
                .map_err(io_err(format!("keeping layer {digest}")))?;
            (Some(p), Some(f))
        } else {
            (None, None)
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
        let limits = self.limits_now();
        let unpacker = tokio::task::spawn_blocking(move || {
            let result = unpack_stream(
                ChannelReader::new(rx),
                &pending.fs(),
                &pending.staging(),
                keep_file,
                limits,
            );
            (pending, result)
        });
        let (received, failure) = self.stream_body(ctx, job, response, tx).await;
        let (pending, result) = unpacker
            .await
            .map_err(|e| PullError::Invalid(format!("unpack task failed: {e}")))?;
        let outcome = match (failure, result) {
            (Some(e), _) => Err(e.into()),
            (None, Err(e)) => Err(PullError::Layer {
                layer: digest.clone(),
                source: e,
            }),
            (None, Ok(streamed)) => {
                tracing::info!(image = %ctx.reference, layer = %digest, bytes = received, "layer unpacked");
                return Ok((pending, streamed, keep_path));
            }
        };
        if let Some(p) = &keep_path {
            let _ = std::fs::remove_file(p);
        }
        outcome
    }

    /// The layer limits, with the unpacked bytes held to the free space of the snapshots'
    /// filesystem as it is now (less a reserve).
    fn limits_now(&self) -> LayerLimits {
        let free = rustix::fs::statvfs(self.snapshots.dir())
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(u64::MAX);
        LayerLimits {
            max_unpacked_bytes: self
                .layer_limits
                .max_unpacked_bytes
                .min(free.saturating_sub(FREE_SPACE_RESERVE)),
            ..self.layer_limits
        }
    }

    /// Sends the blob's body to the unpacker chunk by chunk, logging progress; the bytes
    /// received and the transfer's error, if it broke. Stops early when the unpacker does (its
    /// own error then says why).
    async fn stream_body(
        &self,
        ctx: &PullContext,
        job: &LayerJob,
        mut response: reqwest::Response,
        unpacker: tokio::sync::mpsc::Sender<Bytes>,
    ) -> (u64, Option<RegistryError>) {
        let digest = &job.layer.digest;
        let what = format!("blob {digest}");
        let mut received: u64 = 0;
        let mut last_log = Instant::now();
        loop {
            let chunk = match self
                .client
                .next_chunk(&ctx.endpoint, &what, &mut response)
                .await
            {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return (received, None),
                Err(e) => return (received, Some(e)),
            };
            received += chunk.len() as u64;
            if received > job.layer.size {
                // The digest check would catch it at the end; the disk should not wait for that.
                let overrun = RegistryError::Transport {
                    endpoint: ctx.endpoint.base.clone(),
                    what,
                    message: format!(
                        "more than the {} bytes the manifest declares",
                        job.layer.size
                    ),
                };
                return (received, Some(overrun));
            }
            if last_log.elapsed() >= PROGRESS_EVERY {
                last_log = Instant::now();
                tracing::info!(
                    image = %ctx.reference,
                    layer = %digest,
                    "{:.1} of {:.1} MiB",
                    received as f64 / 1048576.0,
                    job.layer.size as f64 / 1048576.0
                );
            }
            if unpacker.send(chunk).await.is_err() {
                return (received, None);
            }
        }
    }
}

/// A layer downloaded and unpacked: its snapshot (not committed yet), what the stream held,
/// and the kept blob's temp file.
type Downloaded = (
    PendingSnapshot,
    crate::layer_stream::Streamed,
    Option<PathBuf>,
);

struct LayerJob {
    layer: Descriptor,
    diff_id: Digest,
    chain_id: Digest,
    /// Snapshot dirs of the layers below, top first.
    lowers: Vec<PathBuf>,
    /// Completion of the layer below (None for the bottom layer).
    below: Option<watch::Receiver<bool>>,
    done: watch::Sender<bool>,
}

fn verify(what: &str, expected: &Digest, actual: &Digest) -> Result<(), PullError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PullError::DigestMismatch {
            what: what.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}
