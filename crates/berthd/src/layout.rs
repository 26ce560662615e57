//! Who may reach berth's files. Container configs hold the pods' secrets (their environment),
//! snapshots and rootfs mounts hold the setuid binaries and device nodes images ship, the store
//! holds every record: all of it is root's alone. The root and state dirs are 0711 (traversable,
//! not listable), as containerd keeps its own; everything below them is 0700 dirs and 0600 files,
//! with one exception. runc, once inside a user namespace, bind-mounts the container's rootfs
//! onto itself as the namespace's root, so the dir of a container in a user namespace is 0710 and
//! belongs to the group its root is on the node: the pod alone may pass (`containers/` is 0711
//! for that, and lists nothing). Every other bind source runc opens as the node's root first.
//!
//! The daemon applies the layout at start, repairing dirs an older berth made more open.

use std::fs::Permissions;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::paths::Paths;

/// The root and state dirs.
pub const TRAVERSABLE: u32 = 0o711;
/// Every dir below them.
const OBJECT_DIR: u32 = 0o700;
/// A container dir a user namespace's root must pass through (see above).
const POD_GROUP_DIR: u32 = 0o710;
/// Files with secrets or records in them.
pub const PRIVATE_FILE: u32 = 0o600;

/// Makes the fixed dirs with their modes and repairs the object dirs below them. Blocking.
pub fn apply(paths: &Paths) -> io::Result<()> {
    for dir in [&paths.root, &paths.state_dir] {
        ensure_dir(dir, TRAVERSABLE)?;
    }
    ensure_dir(&paths.containers(), TRAVERSABLE)?;
    for dir in [
        paths.content(),
        paths.snapshots(),
        paths.container_states(),
        paths.pods(),
        paths.spare_namespaces(),
        paths.state_dir.join("runtimes"),
        paths.state_dir.join("bin"),
    ] {
        ensure_dir(&dir, OBJECT_DIR)?;
    }
    for objects in [paths.containers(), paths.container_states(), paths.pods()] {
        for entry in std::fs::read_dir(&objects)?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                let mode = if meta.gid() == 0 {
                    OBJECT_DIR
                } else {
                    POD_GROUP_DIR
                };
                set_mode(&entry.path(), mode)?;
            }
        }
    }
    for entry in std::fs::read_dir(paths.containers())?.flatten() {
        let config = entry.path().join("bundle").join("config.json");
        if config.exists() {
            set_mode(&config, PRIVATE_FILE)?;
        }
    }
    let db = paths.metadata_db();
    if db.exists() {
        set_mode(&db, PRIVATE_FILE)?;
    }
    Ok(())
}

/// Makes `dir` (and its parents) for one object, root's alone.
pub fn make_object_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(OBJECT_DIR)
        .create(dir)?;
    set_mode(dir, OBJECT_DIR)
}

/// Lets the node group `gid` (a user namespace's root group) pass through `dir`, and no one
/// else.
pub fn let_group_pass(dir: &Path, gid: u32) -> io::Result<()> {
    rustix::fs::chown(dir, None, Some(rustix::fs::Gid::from_raw(gid)))?;
    set_mode(dir, POD_GROUP_DIR)
}

pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)?;
    set_mode(dir, mode)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
}
