//! CheckpointContainer (kubelet's checkpoint API, a forensic copy of a running container): CRIU
//! dumps its processes through `runc checkpoint --leave-running`, so the container runs on; then
//! one tar archive is written at the caller's location, laid out as containerd's and CRI-O's
//! archives are (what checkpointctl reads):
//!
//! - `checkpoint/`: CRIU's images (runc's descriptors.json among them);
//! - `spec.dump`: the container's OCI spec (its config.json);
//! - `config.dump`: who the container is (ID, name, image, runtime, when made and dumped);
//! - `rootfs-diff.tar`: its writable layer, and `deleted.files`, what it deleted of its image;
//! - `dump.log`: CRIU's log; `container.log`: its CRI log, when there is one.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_monitor::rfc3339::timestamp as rfc3339;

use super::{ContainerError, ContainerService, io_err};

/// How long CRIU may take when the caller gives no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl ContainerService {
    pub async fn checkpoint(
        &self,
        id: &str,
        location: &Path,
        timeout: Option<Duration>,
    ) -> Result<(), ContainerError> {
        if !location.is_absolute() || location.parent().is_none_or(|p| !p.is_dir()) {
            return Err(ContainerError::Invalid(format!(
                "location {}: an absolute path in a directory that exists is wanted",
                location.display()
            )));
        }
        let container = self.get(id)?;
        let _op = container.op.lock().await;
        let record = container.record();
        record.must_be_running()?;
        let runtime = self.runtime(&record.runtime_handler)?;
        let work = self.state_dir_of(&record.id).join("checkpoint");
        let reset = work.clone();
        crate::blocking::run(move || fresh_dir(&reset))
            .await?
            .map_err(io_err("the checkpoint's work dir"))?;
        let dumped = runtime
            .checkpoint(
                &record.id,
                &work.join("checkpoint"),
                &work.join("criu"),
                timeout.unwrap_or(DEFAULT_TIMEOUT),
            )
            .await;
        let archive = async {
            dumped?;
            let facts = Archived {
                config: serde_json::json!({
                    "id": record.id,
                    "name": record.name,
                    "rootfsImage": record.image,
                    "rootfsImageRef": record.image_ref,
                    "rootfsImageName": record.image,
                    "runtime": record.runtime_handler,
                    "createdTime": rfc3339(std::time::UNIX_EPOCH + Duration::from_nanos(record.created_at.max(0) as u64)),
                    "checkpointedTime": rfc3339(std::time::SystemTime::now()),
                }),
                spec: self.paths.container_bundle(&record.id).join("config.json"),
                upper: self.paths.container(&record.id).join("upper"),
                log: record.log_path.clone(),
                work: work.clone(),
                location: location.to_path_buf(),
            };
            crate::blocking::run(move || facts.write())
                .await?
                .map_err(io_err(format!("writing {}", location.display())))
        }
        .await;
        // CRIU's images can be large: removed off the async workers, and a dir left behind is
        // replaced by the next checkpoint's.
        let _ = crate::blocking::run(move || crate::dirs::remove_all(&work)).await;
        archive?;
        tracing::info!(container = %record.id, location = %location.display(), "checkpoint written");
        Ok(())
    }
}

fn fresh_dir(dir: &Path) -> std::io::Result<()> {
    crate::dirs::remove_all(dir)?;
    std::fs::create_dir_all(dir)
}

/// What goes into the archive beside CRIU's images.
struct Archived {
    config: serde_json::Value,
    spec: PathBuf,
    upper: PathBuf,
    log: PathBuf,
    work: PathBuf,
    location: PathBuf,
}

impl Archived {
    /// Writes the archive beside its final name, then renames it there (a reader never finds
    /// half an archive). Blocking.
    fn write(self) -> std::io::Result<()> {
        let write_json = |name: &str, value: &serde_json::Value| {
            std::fs::write(
                self.work.join(name),
                serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?,
            )
        };
        write_json("config.dump", &self.config)?;
        std::fs::copy(&self.spec, self.work.join("spec.dump"))?;
        let deleted = rootfs_diff(&self.upper, &self.work.join("rootfs-diff.tar"))?;
        write_json("deleted.files", &serde_json::json!(deleted))?;
        if std::fs::symlink_metadata(&self.log).is_ok_and(|m| m.is_file()) {
            std::fs::copy(&self.log, self.work.join("container.log"))?;
        }
        let criu_log = self.work.join("criu").join("dump.log");
        if criu_log.is_file() {
            std::fs::copy(&criu_log, self.work.join("dump.log"))?;
        }

        let mut temp = self.location.as_os_str().to_owned();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        let written = self.pack(&temp);
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written?;
        std::fs::rename(&temp, &self.location)
    }

    /// The archive itself, written to `temp`. Blocking.
    fn pack(&self, temp: &Path) -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(temp)?;
        let mut archive = tar::Builder::new(file);
        archive.follow_symlinks(false);
        archive.append_dir_all("checkpoint", self.work.join("checkpoint"))?;
        for name in [
            "config.dump",
            "spec.dump",
            "rootfs-diff.tar",
            "deleted.files",
            "container.log",
            "dump.log",
        ] {
            let path = self.work.join(name);
            if path.is_file() {
                archive.append_path_with_name(&path, name)?;
            }
        }
        let mut file = archive.into_inner()?;
        file.flush()?;
        file.sync_all()
    }
}

/// The writable layer as a tar of what the container made or changed, and the paths it
/// deleted of its image (overlayfs keeps those as 0:0 character devices). Blocking.
fn rootfs_diff(upper: &Path, out: &Path) -> std::io::Result<Vec<String>> {
    let mut archive = tar::Builder::new(std::fs::File::create(out)?);
    archive.follow_symlinks(false);
    let mut deleted = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(upper.join(&rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                deleted.push(format!("/{}", rel.display()));
                continue;
            }
            archive.append_path_with_name(entry.path(), &rel)?;
            if meta.is_dir() {
                stack.push(rel);
            }
        }
    }
    archive.into_inner()?.sync_all()?;
    deleted.sort();
    Ok(deleted)
}
