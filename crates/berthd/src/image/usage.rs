//! Disk usage of a directory tree (bytes in allocated blocks, and inodes), as `du` counts it: hard
//! links once, symlinks not followed, other filesystems not entered.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

pub fn measure(root: &Path) -> io::Result<Usage> {
    let top = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Usage::default()),
        Err(e) => return Err(e),
    };
    let mut usage = Usage::default();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    count(&top, &mut usage, &mut seen);
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // Removed while we walk (a snapshot being deleted): not ours to count.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Ok(meta) = entry.metadata() else { continue };
            count(&meta, &mut usage, &mut seen);
            if meta.is_dir() && meta.dev() == top.dev() {
                stack.push(entry.path());
            }
        }
    }
    Ok(usage)
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
    fn counts_files_dirs_and_hard_links_once() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(dir.path().join("d/f"), dir.path().join("d/g")).unwrap();
        let u = measure(dir.path()).unwrap();
        assert_eq!(u.inodes, 3, "root, d, f (g is the same inode)");
        assert!(u.bytes >= 10_000, "{u:?}");
        assert_eq!(
            measure(&dir.path().join("missing")).unwrap(),
            Usage::default()
        );
    }
}
