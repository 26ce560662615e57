//! Devices: the device cgroup rules of every container, the CRI devices, and every host device
//! for privileged containers.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::oci::{Device, DeviceRule};

fn rule(
    allow: bool,
    kind: &str,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> DeviceRule {
    DeviceRule {
        allow,
        kind: kind.into(),
        major,
        minor,
        access: access.into(),
    }
}

/// Deny everything, then allow the devices runc creates in every container (null, zero, full,
/// random, urandom, tty, console, ptmx, pts) and mknod of any device (using one needs a rule).
pub fn default_rules() -> Vec<DeviceRule> {
    let c = |major, minor| rule(true, "c", Some(major), minor, "rwm");
    vec![
        rule(false, "", None, None, "rwm"),
        rule(true, "c", None, None, "m"),
        rule(true, "b", None, None, "m"),
        c(1, Some(3)),
        c(1, Some(5)),
        c(1, Some(7)),
        c(1, Some(8)),
        c(1, Some(9)),
        c(5, Some(0)),
        c(5, Some(1)),
        c(5, Some(2)),
        c(136, None),
    ]
}

pub fn allow_all() -> Vec<DeviceRule> {
    vec![rule(true, "", None, None, "rwm")]
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not a device")]
    NotADevice(String),
    #[error("device permissions `{0}` are not a subset of rwm")]
    BadPermissions(String),
}

/// A host device node for the container at `container_path`, with its cgroup rule.
pub fn device(
    host_path: &str,
    container_path: &str,
    permissions: &str,
) -> Result<(Device, DeviceRule), DeviceError> {
    let meta = std::fs::metadata(host_path).map_err(|source| DeviceError::Unreadable {
        path: host_path.to_owned(),
        source,
    })?;
    let kind = if meta.file_type().is_char_device() {
        "c"
    } else if meta.file_type().is_block_device() {
        "b"
    } else {
        return Err(DeviceError::NotADevice(host_path.to_owned()));
    };
    let permissions = if permissions.is_empty() {
        "rwm"
    } else {
        permissions
    };
    if !permissions.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(DeviceError::BadPermissions(permissions.to_owned()));
    }
    let (major, minor) = (
        i64::from(rustix::fs::major(meta.rdev())),
        i64::from(rustix::fs::minor(meta.rdev())),
    );
    let container_path = if container_path.is_empty() {
        host_path
    } else {
        container_path
    };
    Ok((
        Device {
            path: container_path.into(),
            kind: kind.into(),
            major,
            minor,
            file_mode: Some(meta.mode() & 0o777),
            uid: Some(meta.uid()),
            gid: Some(meta.gid()),
        },
        rule(true, kind, Some(major), Some(minor), permissions),
    ))
}

/// Every device node under /dev (but the per-container pts, shm and mqueue), for privileged
/// containers.
pub fn host_devices() -> Vec<Device> {
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

fn walk(dir: &Path, out: &mut Vec<Device>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            if !matches!(path.to_str(), Some("/dev/pts" | "/dev/shm" | "/dev/mqueue")) {
                walk(&path, out);
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            if let Some(p) = path.to_str() {
                if let Ok((d, _)) = device(p, p, "rwm") {
                    out.push(d);
                }
            }
        }
    }
}
