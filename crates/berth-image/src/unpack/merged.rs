//! The union of a layer and the layers below it, as overlayfs presents it: the topmost layer holding
//! a name wins; a whiteout hides the name below; an opaque directory hides the same directory below;
//! a non-directory hides everything below it. Used only for deferred entries, so it favours
//! simplicity over speed.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{FileType, Stat};

use super::fsops::{self, Root, file_type, is_whiteout};
use super::path::EntryPath;

/// Symlinks followed in one resolution before giving up, as the kernel's limit.
const MAX_SYMLINKS: u32 = 40;

pub struct MergedView {
    /// Top first.
    layers: Vec<Root>,
}

impl MergedView {
    pub fn new(layers: Vec<Root>) -> MergedView {
        MergedView { layers }
    }

    pub fn layer(&self, index: usize) -> &Root {
        &self.layers[index]
    }

    /// Finds a path (whose components are not symlinks in the view) in the topmost layer that shows
    /// it; None when the view has nothing there.
    pub fn lookup(&self, path: &EntryPath) -> io::Result<Option<(usize, Stat)>> {
        let mut candidates: Vec<usize> = (0..self.layers.len()).collect();
        let components: Vec<_> = path.as_path().components().collect();
        let mut prefix = EntryPath::root();
        for (i, component) in components.iter().enumerate() {
            prefix = prefix.join(component.as_os_str());
            let last = i + 1 == components.len();
            let mut below = Vec::new();
            for &layer in &candidates {
                let Some(st) = self.layers[layer].lstat(&prefix)? else {
                    continue;
                };
                if is_whiteout(&st) {
                    break;
                }
                if last {
                    return Ok(Some((layer, st)));
                }
                if file_type(&st) != FileType::Directory {
                    // A non-directory ends the path here, unless a directory above already showed.
                    if below.is_empty() {
                        return Ok(None);
                    }
                    break;
                }
                below.push(layer);
                let dir = self.layers[layer].open_dir(&prefix, true)?;
                if fsops::is_opaque(&dir) {
                    break;
                }
            }
            if below.is_empty() {
                return Ok(None);
            }
            candidates = below;
        }
        // The root itself: the top layer's.
        Ok(self.layers[0].lstat(path)?.map(|st| (0, st)))
    }

    /// Resolves every symlink on `path` within the view (and the last component's too when
    /// `follow_last`), confined to the root: `..` at the root stays there, absolute targets start
    /// from the root. The result has no symlink components.
    pub fn resolve(&self, path: &EntryPath, follow_last: bool) -> io::Result<EntryPath> {
        let mut rest: VecDeque<OsString> = path
            .as_path()
            .components()
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        let mut resolved = EntryPath::root();
        let mut followed = 0;
        while let Some(name) = rest.pop_front() {
            match name.as_bytes() {
                b"." | b"" => continue,
                b".." => {
                    resolved = resolved.parent();
                    continue;
                }
                _ => {}
            }
            let candidate = resolved.join(&name);
            if rest.is_empty() && !follow_last {
                return Ok(candidate);
            }
            match self.lookup(&candidate)? {
                Some((layer, st)) if file_type(&st) == FileType::Symlink => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(rustix::io::Errno::LOOP.into());
                    }
                    let parent = self.layers[layer].open_dir(&candidate.parent(), true)?;
                    let target = rustix::fs::readlinkat(&parent, candidate.name(), Vec::new())?;
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        resolved = EntryPath::root();
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        rest.push_front(std::ffi::OsStr::from_bytes(part).to_os_string());
                    }
                }
                _ => resolved = candidate,
            }
        }
        Ok(resolved)
    }
}
