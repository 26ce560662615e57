//! How a container in a pod with a user namespace sees the node's files: through idmapped
//! mounts of them (attached under `<container dir>/idmapped`), so that what uid 0 owns on disk
//! its root owns inside, and nothing on disk is chowned. Without a user namespace, the files
//! themselves.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pod::PodRecord;
use crate::userns::IdMappings;

#[derive(Debug, Clone)]
pub(super) struct IdView {
    mapped: Option<Mapped>,
}

#[derive(Debug, Clone)]
struct Mapped {
    userns: Arc<File>,
    mappings: IdMappings,
    dir: PathBuf,
}

impl IdView {
    /// The view of a container of `pod` whose dir is `container_dir`.
    pub fn of(pod: &PodRecord, container_dir: &Path) -> io::Result<IdView> {
        let mapped = match (&pod.pinned.user, pod.user_namespace) {
            (Some(path), Some(mappings)) => Some(Mapped {
                userns: Arc::new(File::open(path)?),
                mappings,
                dir: container_dir.join("idmapped"),
            }),
            _ => None,
        };
        Ok(IdView { mapped })
    }

    /// The mappings the container's IDs have, if not the node's.
    pub fn mappings(&self) -> Option<IdMappings> {
        self.mapped.as_ref().map(|m| m.mappings)
    }

    /// `layers` (an image's snapshot dirs) as the container is to see them; `name` tells this
    /// set from the container's others. Blocking.
    pub fn layers(&self, layers: Vec<PathBuf>, name: &str) -> io::Result<Vec<PathBuf>> {
        let Some(m) = &self.mapped else {
            return Ok(layers);
        };
        layers
            .iter()
            .enumerate()
            .map(|(n, layer)| m.attach(layer, &format!("{name}-{n}")))
            .collect()
    }

    /// A host path (dir or file) as the container is to see it, or None if it sees it as it
    /// is. Blocking.
    pub fn host_path(&self, path: &Path, name: &str) -> io::Result<Option<PathBuf>> {
        self.mapped
            .as_ref()
            .map(|m| m.attach(path, name))
            .transpose()
    }

    /// Lets the container's root pass through `dir` (the container's own, which runc walks
    /// from inside the user namespace to its rootfs). Blocking.
    pub fn let_root_pass(&self, dir: &Path) -> io::Result<()> {
        match &self.mapped {
            Some(m) => crate::layout::let_group_pass(dir, m.mappings.host_root().1),
            None => Ok(()),
        }
    }

    /// Makes a dir the container's root is to own (the upper dir of its rootfs). Blocking.
    pub fn give_to_root(&self, dir: &Path) -> io::Result<()> {
        let Some(m) = &self.mapped else {
            return Ok(());
        };
        let (uid, gid) = m.mappings.host_root();
        rustix::fs::chown(
            dir,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
        Ok(())
    }
}

impl Mapped {
    fn attach(&self, source: &Path, name: &str) -> io::Result<PathBuf> {
        let target = self.dir.join(name);
        std::fs::create_dir_all(&self.dir)?;
        if std::fs::metadata(source)?.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else {
            File::create(&target)?;
        }
        crate::userns::idmapped_bind(source, &target, self.userns.as_fd())?;
        Ok(target)
    }
}
