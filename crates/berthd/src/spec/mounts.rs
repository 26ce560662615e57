//! A container's mounts: the kernel filesystems every container gets, the pod's files
//! (/etc/hostname, /etc/hosts, /etc/resolv.conf, /dev/shm), and the CRI mounts with their
//! propagation (the host side is made shared when a container asks to see or make mounts).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::oci::Mount;
use crate::container::{ImageVolume, MountRequest};

/// How mounts propagate between the host path and the container (the CRI MountPropagation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    Private,
    /// Mounts under the host path appear in the container (rslave).
    HostToContainer,
    /// Both ways (rshared).
    Bidirectional,
}

impl Propagation {
    fn option(self) -> &'static str {
        match self {
            Propagation::Private => "rprivate",
            Propagation::HostToContainer => "rslave",
            Propagation::Bidirectional => "rshared",
        }
    }
}

/// A CRI mount as the container got it (reported by ContainerStatus).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub container_path: String,
    /// With symlinks resolved; empty for an image volume.
    pub host_path: PathBuf,
    /// What the bind is made from when berth mounted something for it (see MountRequest).
    #[serde(default)]
    pub source: Option<PathBuf>,
    pub readonly: bool,
    #[serde(default)]
    pub recursive_read_only: bool,
    pub propagation: Propagation,
    /// The image and sub-path of an image volume (`host_path` is where berth mounted it).
    #[serde(default)]
    pub image: Option<ImageVolume>,
}

/// The kernel filesystems of every container.
pub fn system_mounts(privileged: bool) -> Vec<Mount> {
    let m = |dest: &str, kind: &str, opts: &[&str]| Mount {
        destination: dest.into(),
        kind: kind.into(),
        source: kind.into(),
        options: opts.iter().map(|o| o.to_string()).collect(),
    };
    let sys_mode = if privileged { "rw" } else { "ro" };
    vec![
        m("/proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        m("/dev/mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        m("/sys", "sysfs", &["nosuid", "noexec", "nodev", sys_mode]),
        m(
            "/sys/fs/cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
    ]
}

/// How a bind mount may be written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// The mount read-only; submounts as they are.
    ReadOnly,
    /// The mount and every submount read-only (runc's `rro`: `mount_setattr(AT_RECURSIVE)`).
    RecursiveReadOnly,
}

impl Access {
    pub fn of(readonly: bool, recursive: bool) -> Access {
        match (readonly, recursive) {
            (_, true) => Access::RecursiveReadOnly,
            (true, false) => Access::ReadOnly,
            (false, false) => Access::ReadWrite,
        }
    }
}

pub fn bind(source: &Path, destination: &str, access: Access, propagation: Propagation) -> Mount {
    let mut options = vec!["rbind".to_owned(), propagation.option().to_owned()];
    options.extend(
        match access {
            Access::ReadWrite => &["rw"][..],
            Access::ReadOnly => &["ro"],
            Access::RecursiveReadOnly => &["ro", "rro"],
        }
        .iter()
        .map(|o| o.to_string()),
    );
    Mount {
        destination: destination.into(),
        kind: "bind".into(),
        source: source.display().to_string(),
        options,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("container path `{0}` is not absolute")]
    ContainerPathRelative(String),
    #[error("container path `{0}` may not contain `..`")]
    ContainerPathClimbs(String),
    #[error("host path `{0}` is not absolute")]
    HostPathRelative(String),
    #[error("host path {path}: {source}")]
    HostPath {
        path: String,
        source: std::io::Error,
    },
    #[error("no mount holds {0}")]
    NoMount(String),
    #[error("making {path} a shared mount: {source}")]
    MakeShared {
        path: String,
        source: rustix::io::Errno,
    },
}

/// `/a/./b/` → `/a/b`; refuses relative paths and `..`.
pub fn clean_container_path(path: &str) -> Result<String, MountError> {
    if !path.starts_with('/') {
        return Err(MountError::ContainerPathRelative(path.to_owned()));
    }
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                return Err(MountError::ContainerPathClimbs(path.to_owned()));
            }
            _ => {}
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A CRI mount: the host path resolved through symlinks (created as a directory when missing, as
/// Docker and containerd do), and its propagation made possible on the host side. What berth
/// mounted for it is taken as it is.
pub fn cri_mount(request: &MountRequest) -> Result<BindMount, MountError> {
    let container_path = clean_container_path(&request.container_path)?;
    let host_path = match (&request.source, request.host_path.as_str()) {
        (Some(_), path) => PathBuf::from(path),
        (None, path) => resolve_host_path(path)?,
    };
    if request.propagation != Propagation::Private {
        make_shared(request.source.as_ref().unwrap_or(&host_path))?;
    }
    Ok(BindMount {
        container_path,
        host_path,
        source: request.source.clone(),
        readonly: request.readonly,
        recursive_read_only: request.recursive_read_only,
        propagation: request.propagation,
        image: request.image.clone(),
    })
}

/// A CRI host path with symlinks resolved, made a directory when missing.
pub fn resolve_host_path(host_path: &str) -> Result<PathBuf, MountError> {
    if !host_path.starts_with('/') {
        return Err(MountError::HostPathRelative(host_path.to_owned()));
    }
    let host_err = |source| MountError::HostPath {
        path: host_path.to_owned(),
        source,
    };
    if std::fs::symlink_metadata(host_path).is_err() {
        std::fs::create_dir_all(host_path).map_err(host_err)?;
    }
    std::fs::canonicalize(host_path).map_err(host_err)
}

/// Makes the mount holding `path` a shared one, so that rslave/rshared binds of it propagate.
fn make_shared(path: &Path) -> Result<(), MountError> {
    let (mount_point, shared) =
        mount_of(path).ok_or_else(|| MountError::NoMount(path.display().to_string()))?;
    if !shared {
        rustix::mount::mount_change(&mount_point, rustix::mount::MountPropagationFlags::SHARED)
            .map_err(|source| MountError::MakeShared {
                path: mount_point.display().to_string(),
                source,
            })?;
    }
    Ok(())
}

/// The mount point holding `path` and whether it is shared.
fn mount_of(path: &Path) -> Option<(PathBuf, bool)> {
    crate::mountinfo::mounts()
        .ok()?
        .into_iter()
        .filter(|m| path.starts_with(&m.path))
        .max_by_key(|m| m.path.components().count())
        .map(|m| (m.path, m.shared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_cleaned() {
        assert_eq!(clean_container_path("/data/./x/").unwrap(), "/data/x");
        assert!(clean_container_path("data").is_err());
        assert!(clean_container_path("/a/../../etc").is_err());
    }

    #[test]
    fn host_paths_resolve_symlinks_and_missing_ones_are_made() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        let request = |container: &str, host: &Path, readonly| MountRequest {
            container_path: container.into(),
            host_path: host.to_str().unwrap().into(),
            image: None,
            source: None,
            id_mappings: None,
            readonly,
            recursive_read_only: false,
            propagation: Propagation::Private,
        };
        let m = cri_mount(&request("/data", &dir.path().join("link"), true)).unwrap();
        assert_eq!(
            m.host_path,
            std::fs::canonicalize(dir.path().join("real")).unwrap()
        );
        let missing = dir.path().join("new/dir");
        cri_mount(&request("/x", &missing, false)).unwrap();
        assert!(missing.is_dir());
    }

    #[test]
    fn the_mount_of_root_is_found() {
        let (point, _) = mount_of(Path::new("/etc")).unwrap();
        assert!(Path::new("/etc").starts_with(point));
    }
}
