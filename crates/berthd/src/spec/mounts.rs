//! A container's mounts: the kernel filesystems every container gets, the pod's files
//! (/etc/hostname, /etc/hosts, /etc/resolv.conf, /dev/shm), and the CRI mounts with their
//! propagation (the host side is made shared when a container asks to see or make mounts).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::oci::Mount;
use crate::container::MountRequest;

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
    /// With symlinks resolved.
    pub host_path: PathBuf,
    pub readonly: bool,
    pub propagation: Propagation,
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

pub fn bind(source: &Path, destination: &str, readonly: bool, propagation: Propagation) -> Mount {
    Mount {
        destination: destination.into(),
        kind: "bind".into(),
        source: source.display().to_string(),
        options: vec![
            "rbind".into(),
            propagation.option().into(),
            if readonly { "ro" } else { "rw" }.into(),
        ],
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
/// Docker and containerd do), and its propagation made possible on the host side.
pub fn cri_mount(request: &MountRequest) -> Result<BindMount, MountError> {
    let container_path = clean_container_path(&request.container_path)?;
    let host_path = request.host_path.as_str();
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
    let resolved = std::fs::canonicalize(host_path).map_err(host_err)?;
    if request.propagation != Propagation::Private {
        make_shared(&resolved)?;
    }
    Ok(BindMount {
        container_path,
        host_path: resolved,
        readonly: request.readonly,
        propagation: request.propagation,
    })
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

/// The mount point holding `path` and whether it is shared (from /proc/self/mountinfo).
fn mount_of(path: &Path) -> Option<(PathBuf, bool)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = PathBuf::from(unescape(fields.get(4)?));
            let sep = fields.iter().position(|f| *f == "-")?;
            let shared = fields[6..sep].iter().any(|f| f.starts_with("shared:"));
            path.starts_with(&point).then_some((point, shared))
        })
        .max_by_key(|(p, _)| p.components().count())
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
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
            readonly,
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
