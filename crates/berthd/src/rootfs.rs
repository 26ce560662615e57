//! A container's root filesystem: an overlay of its image's snapshots (read-only lowers) with a
//! writable upper and work dir of its own; and the read-only view of an image an image volume
//! mounts. Everything berth mounts for a container lies below the container's dir, so that
//! removing it unmounts whatever is there.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags};

/// The classic mount(2) data is one page; past this, the new mount API adds lowers one by one.
const OPTIONS_LIMIT: usize = 4000;

/// The writable layer of an overlay: its upper dir and overlayfs's work dir.
#[derive(Debug, Clone, Copy)]
pub struct Upper<'a> {
    pub upper: &'a Path,
    pub work: &'a Path,
}

/// An image's layers, read-only, at `target`: an overlay of them, or a read-only bind of the
/// only one (overlayfs wants two lowers when it has no upper).
pub fn mount_read_only(lowers: &[PathBuf], target: &Path) -> io::Result<()> {
    match lowers {
        [] => Err(io::Error::other("an image with no layer")),
        [only] => {
            rustix::mount::mount_bind(only, target)?;
            rustix::mount::mount_remount(
                target,
                rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
                "",
            )?;
            Ok(())
        }
        lowers => mount_layers(lowers, None, target),
    }
}

pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    mount_layers(lowers, Some(Upper { upper, work }), target)
}

fn mount_layers(lowers: &[PathBuf], upper: Option<Upper<'_>>, target: &Path) -> io::Result<()> {
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let mut options = format!("lowerdir={}", lowerdir.join(":"));
    if let Some(u) = upper {
        options.push_str(&format!(
            ",upperdir={},workdir={}",
            u.upper.display(),
            u.work.display()
        ));
    }
    if options.len() <= OPTIONS_LIMIT {
        let data = CString::new(options).map_err(io::Error::other)?;
        rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(data.as_c_str()),
        )?;
        return Ok(());
    }
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for lower in lowers {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", lower)?;
    }
    if let Some(u) = upper {
        rustix::mount::fsconfig_set_string(&fs, "upperdir", u.upper)?;
        rustix::mount::fsconfig_set_string(&fs, "workdir", u.work)?;
    }
    rustix::mount::fsconfig_create(&fs)?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// Unmounts the container root; an unmounted one is fine.
pub fn unmount(target: &Path) -> io::Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Unmounts everything mounted at or below `dir` (a rootfs, image volumes, idmapped views of
/// layers), the last mounted first (mountinfo lists mounts in the order they were made), so that
/// the dir can go. What is not mounted is fine.
pub fn unmount_all_under(dir: &Path) -> io::Result<()> {
    let points: Vec<PathBuf> = crate::mountinfo::mounts()?
        .into_iter()
        .map(|m| m.path)
        .filter(|p| p.starts_with(dir))
        .collect();
    for point in points.iter().rev() {
        unmount(point)?;
    }
    Ok(())
}
