//! A container's mounts: the kernel filesystems every container gets, the pod's files
//! (/etc/hostname, /etc/hosts, /etc/resolv.conf, /dev/shm), and the CRI mounts with their
//! propagation (the host side is made shared when a container asks to see or make mounts).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::oci::Mount;

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
    pub fn from_cri(value: i32) -> Propagation {
        match value {
            1 => Propagation::HostToContainer,
            2 => Propagation::Bidirectional,
            _ => Propagation::Private,
        }
    }

    pub fn to_cri(self) -> i32 {
        match self {
            Propagation::Private => 0,
            Propagation::HostToContainer => 1,
            Propagation::Bidirectional => 2,
        }
    }

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

/// `/a/./b/` → `/a/b`; refuses relative paths and `..`.
pub fn clean_container_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("container path `{path}` is not absolute"));
    }
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                return Err(format!("container path `{path}` may not contain `..`"));
            }
            _ => {}
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A CRI mount: the host path resolved through symlinks (created as a directory when missing, as
/// Docker and containerd do), and its propagation made possible on the host side.
pub fn cri_mount(
    container_path: &str,
    host_path: &str,
    readonly: bool,
    propagation: Propagation,
) -> Result<BindMount, String> {
    let container_path = clean_container_path(container_path)?;
    if !host_path.starts_with('/') {
        return Err(format!("host path `{host_path}` is not absolute"));
    }
    if std::fs::symlink_metadata(host_path).is_err() {
        std::fs::create_dir_all(host_path)
            .map_err(|e| format!("creating host path {host_path}: {e}"))?;
    }
    let resolved =
        std::fs::canonicalize(host_path).map_err(|e| format!("host path {host_path}: {e}"))?;
    if propagation != Propagation::Private {
        make_shared(&resolved)?;
    }
    Ok(BindMount {
        container_path,
        host_path: resolved,
        readonly,
        propagation,
    })
}

/// Makes the mount holding `path` a shared one, so that rslave/rshared binds of it propagate.
fn make_shared(path: &Path) -> Result<(), String> {
    let (mount_point, shared) =
        mount_of(path).ok_or_else(|| format!("no mount holds {}", path.display()))?;
    if !shared {
        rustix::mount::mount_change(&mount_point, rustix::mount::MountPropagationFlags::SHARED)
            .map_err(|e| format!("making {} a shared mount: {e}", mount_point.display()))?;
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
        let m = cri_mount(
            "/data",
            dir.path().join("link").to_str().unwrap(),
            true,
            Propagation::Private,
        )
        .unwrap();
        assert_eq!(
            m.host_path,
            std::fs::canonicalize(dir.path().join("real")).unwrap()
        );
        let missing = dir.path().join("new/dir");
        cri_mount("/x", missing.to_str().unwrap(), false, Propagation::Private).unwrap();
        assert!(missing.is_dir());
    }

    #[test]
    fn the_mount_of_root_is_found() {
        let (point, _) = mount_of(Path::new("/etc")).unwrap();
        assert!(Path::new("/etc").starts_with(point));
    }
}
