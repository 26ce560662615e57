//! The CRI mounts as a container gets them. An image volume (`Mount.image`) is its image mounted
//! read-only under `<container dir>/image-volumes/<n>`, its sub-path resolved inside it; its
//! snapshots stay out of GC's reach while the container's record names them. In a pod with a user
//! namespace, a host path is bound through an idmapped view of it (private propagation only: a
//! view is a copy of the mount tree, which mounts made later on the host do not reach).

use std::path::{Path, PathBuf};

use berth_image::Digest;
use berth_image::snapshots::Lease;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::id_view::IdView;
use super::spec::{ImageVolume, MountRequest};
use super::{ContainerError, ContainerService, io_err};
use crate::spec::Propagation;

/// The CRI mounts of a container with what berth mounted for them as their sources.
pub(super) struct Prepared {
    pub mounts: Vec<MountRequest>,
    /// The snapshots the image volumes stand on, leased until the record names them.
    pub chain_ids: Vec<Digest>,
    pub leases: Vec<Lease>,
}

impl ContainerService {
    /// Mounts what `mounts` need below `container_dir` (which the create's undo unmounts).
    pub(super) async fn prepare_mounts(
        &self,
        mounts: &[MountRequest],
        view: &IdView,
        container_dir: &Path,
    ) -> Result<Prepared, ContainerError> {
        let mut prepared = Prepared {
            mounts: Vec::with_capacity(mounts.len()),
            chain_ids: Vec::new(),
            leases: Vec::new(),
        };
        for (n, mount) in mounts.iter().enumerate() {
            if mount.id_mappings.is_some() && mount.id_mappings != view.mappings() {
                return Err(ContainerError::Invalid(format!(
                    "mount {}: its ID mappings are not those of the pod's user namespace",
                    mount.container_path
                )));
            }
            let prepared_mount = match &mount.image {
                Some(volume) => {
                    let (source, image_id, chain_ids, lease) = self
                        .mount_image_volume(volume, &mount.container_path, view, container_dir, n)
                        .await?;
                    prepared.chain_ids.extend(chain_ids);
                    prepared.leases.push(lease);
                    MountRequest {
                        source: Some(source),
                        readonly: true,
                        image: Some(ImageVolume {
                            image_id,
                            ..volume.clone()
                        }),
                        ..mount.clone()
                    }
                }
                None if view.mappings().is_some() && mount.propagation == Propagation::Private => {
                    let (view, name) = (view.clone(), format!("mount-{n}"));
                    let host_path = mount.host_path.clone();
                    let (resolved, source) = crate::blocking::run(move || {
                        let resolved = crate::spec::resolve_host_path(&host_path)
                            .map_err(crate::spec::SpecError::from)?;
                        let source =
                            view.host_path(&resolved, &name)
                                .map_err(|e| ContainerError::Io {
                                    what: format!("an idmapped view of {}", resolved.display()),
                                    source: e,
                                })?;
                        Ok::<_, ContainerError>((resolved, source))
                    })
                    .await??;
                    MountRequest {
                        host_path: resolved.display().to_string(),
                        source,
                        ..mount.clone()
                    }
                }
                None => mount.clone(),
            };
            prepared.mounts.push(prepared_mount);
        }
        Ok(prepared)
    }

    /// Mounts image volume `n` read-only; its source for the bind, and the snapshots it uses.
    async fn mount_image_volume(
        &self,
        volume: &ImageVolume,
        container_path: &str,
        view: &IdView,
        container_dir: &Path,
        n: usize,
    ) -> Result<(PathBuf, String, Vec<Digest>, Lease), ContainerError> {
        let image = self
            .images
            .resolve(&volume.image)?
            .ok_or_else(|| ContainerError::ImageNotFound(volume.image.clone()))?;
        let lease = self
            .images
            .lease(&image)
            .ok_or_else(|| ContainerError::ImageNotFound(volume.image.clone()))?;
        let lowers = self.images.lower_dirs(&image);
        let target = container_dir.join("image-volumes").join(n.to_string());
        let (mounted, view) = (target.clone(), view.clone());
        crate::blocking::run(move || {
            let lowers = view.layers(lowers, &format!("volume-{n}"))?;
            std::fs::create_dir_all(&mounted)?;
            crate::rootfs::mount_read_only(&lowers, &mounted)
        })
        .await?
        .map_err(io_err(format!("mounting image {}", image.id)))?;
        let source = sub_path_in(&target, volume, container_path)?;
        Ok((source, image.id, image.chain_ids, lease))
    }
}

/// Where `volume.sub_path` is on the host: resolved as if `root` were `/` (so that `..` and the
/// image's symlinks, absolute or not, cannot leave it), and then named by the path the kernel
/// resolved it to.
fn sub_path_in(
    root: &Path,
    volume: &ImageVolume,
    container_path: &str,
) -> Result<PathBuf, ContainerError> {
    if volume.sub_path.is_empty() {
        return Ok(root.to_owned());
    }
    let missing = |why: String| {
        ContainerError::Invalid(format!(
            "mount {container_path}: image_sub_path `{}` of image {}: {why}",
            volume.sub_path, volume.image
        ))
    };
    let dir = std::fs::File::open(root).map_err(io_err(format!("opening {}", root.display())))?;
    let fd = rustix::fs::openat2(
        &dir,
        volume.sub_path.as_str(),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| missing(std::io::Error::from(e).to_string()))?;
    let path = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .map_err(io_err("naming an image sub path"))?;
    if !path.starts_with(root) {
        return Err(missing("it resolves outside the image".into()));
    }
    Ok(path)
}
