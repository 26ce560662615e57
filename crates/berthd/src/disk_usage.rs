//! Disk usage of a directory tree as `du` counts it: bytes in allocated blocks and inodes, hard
//! links once, symlinks not followed, other filesystems not entered. ImageFsInfo measures the
//! image and container stores with it, container stats each writable layer.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

/// The usage of the tree at `root`, which must exist; entries that vanish while it is walked
/// (a snapshot being deleted, a container writing) are not counted.
pub fn measure(root: &Path) -> io::Result<Usage> {
    let top = std::fs::symlink_metadata(root)?;
    let mut usage = Usage::default();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    count(&top, &mut usage, &mut seen);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            count(&meta, &mut usage, &mut seen);
            if meta.is_dir() && meta.dev() == top.dev() {
                stack.push(entry.path());
            }
        }
    }
    Ok(usage)
}

/// Like [`measure`], but a tree that does not exist (yet) uses nothing.
pub fn measure_or_none(root: &Path) -> io::Result<Usage> {
    match measure(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Usage::default()),
        other => other,
    }
}

fn count(meta: &std::fs::Metadata, usage: &mut Usage, seen: &mut HashSet<(u64, u64)>) {
    if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
        return;
    }
    usage.bytes += meta.blocks() * 512;
    usage.inodes += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_dirs_symlinks_and_hard_links_once() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), vec![1u8; 256 * 1024]).unwrap();
        std::fs::hard_link(root.join("d/f"), root.join("d/g")).unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        let u = measure(root).unwrap();
        assert_eq!(
            u.inodes, 4,
            "root, d, f (g is the same inode), the symlink (not followed)"
        );
        assert!(u.bytes >= 256 * 1024 && u.bytes < 512 * 1024, "{u:?}");
        assert!(measure(&root.join("missing")).is_err());
        assert_eq!(
            measure_or_none(&root.join("missing")).unwrap(),
            Usage::default()
        );
    }
}
