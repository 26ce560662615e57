//! Placing the deferred entries of a layer once the layers below it are complete: each lands where
//! applying the layer in order onto the union of the layers below would put it.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dev, FileType, Mode, OFlags};

use super::fsops::{self, Meta, Root, file_type};
use super::merged::MergedView;
use super::path::EntryPath;
use super::{Anchored, UnpackError, Unpacked};

/// An entry whose place depends on the layers below.
#[derive(Debug)]
pub struct Deferred {
    pub seq: u32,
    /// The entry's cleaned path (for `Opaque`, the directory; for `Whiteout`, the hidden name).
    pub path: EntryPath,
    pub item: Item,
    pub meta: Meta,
}

#[derive(Debug)]
pub enum Item {
    /// Data waiting in the staging directory under this name, attributes already set.
    File {
        staged: OsString,
    },
    Dir,
    Symlink(OsString),
    HardLink(EntryPath),
    Node(FileType, Dev),
    Whiteout,
    Opaque,
}

/// Places the deferred entries of the layer in `dir`, given the complete layers below it (`lowers`,
/// top first), then removes the staging directory.
pub fn apply_deferred(
    dir: &Path,
    staging: &Path,
    lowers: &[PathBuf],
    unpacked: Unpacked,
) -> Result<(), UnpackError> {
    let open_err = |path: &Path| {
        let entry = path.display().to_string();
        move |source| UnpackError::Entry {
            entry,
            op: "open layer",
            source,
        }
    };
    let mut layers = vec![Root::open(dir).map_err(open_err(dir))?];
    for lower in lowers {
        layers.push(Root::open(lower).map_err(open_err(lower))?);
    }
    let view = MergedView::new(layers);
    let staging_fd = match Root::open(staging) {
        Ok(root) => Some(root.into_fd()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(open_err(staging)(e)),
    };
    let mut placer = Placer {
        view: &view,
        staging: staging_fd.as_ref(),
        anchored: &unpacked.anchored,
        dir_times: Vec::new(),
    };
    for d in &unpacked.deferred {
        placer.place(d).map_err(|source| UnpackError::Entry {
            entry: d.path.as_path().display().to_string(),
            op: "place entry that depends on lower layers",
            source,
        })?;
    }
    placer
        .set_dir_times()
        .map_err(|source| UnpackError::Entry {
            entry: dir.display().to_string(),
            op: "set directory times",
            source,
        })?;
    if staging_fd.is_some() {
        std::fs::remove_dir_all(staging).map_err(open_err(staging))?;
    }
    Ok(())
}

struct Placer<'a> {
    view: &'a MergedView,
    staging: Option<&'a OwnedFd>,
    anchored: &'a std::collections::HashMap<EntryPath, Anchored>,
    dir_times: Vec<(EntryPath, rustix::fs::Timespec)>,
}

impl Placer<'_> {
    fn top(&self) -> &Root {
        self.view.layer(0)
    }

    fn place(&mut self, d: &Deferred) -> io::Result<()> {
        if let Item::Opaque = d.item {
            let dir = self.view.resolve(&d.path, true)?;
            let fd = self.ensure_dirs(&dir)?;
            return fsops::set_opaque(&fd);
        }
        let parent = self.view.resolve(&d.path.parent(), true)?;
        let dest = parent.join(d.path.name());
        // An entry placed directly that comes later in the archive overwrote this one.
        if self.anchored.get(&dest).is_some_and(|a| a.seq > d.seq) {
            return Ok(());
        }
        let parent_fd = self.ensure_dirs(&parent)?;
        let name = dest.name();
        match &d.item {
            Item::Dir => {
                fsops::ensure_dir(&parent_fd, name, &d.meta)?;
                self.dir_times.push((dest.clone(), d.meta.mtime));
            }
            Item::File { staged } => {
                let staging = self
                    .staging
                    .ok_or_else(|| io::Error::other("staging directory is missing"))?;
                fsops::remove_at(&parent_fd, name)?;
                rustix::fs::renameat(staging, staged, &parent_fd, name)?;
            }
            Item::Symlink(target) => {
                fsops::remove_at(&parent_fd, name)?;
                fsops::create_symlink(&parent_fd, name, target, &d.meta)?;
            }
            Item::Node(kind, dev) => {
                fsops::remove_at(&parent_fd, name)?;
                fsops::create_node(&parent_fd, name, *kind, *dev, &d.meta)?;
            }
            Item::Whiteout => {
                fsops::remove_at(&parent_fd, name)?;
                fsops::create_whiteout(&parent_fd, name)?;
            }
            Item::HardLink(target) => self.link(&parent_fd, name, target)?,
            Item::Opaque => {}
        }
        Ok(())
    }

    /// A hard link to a file of this layer or, copied up first, of a layer below.
    fn link(
        &mut self,
        parent_fd: &OwnedFd,
        name: &std::ffi::OsStr,
        target: &EntryPath,
    ) -> io::Result<()> {
        let target = self
            .view
            .resolve(&target.parent(), true)?
            .join(target.name());
        let (layer, st) = self
            .view
            .lookup(&target)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "hard link target not found"))?;
        if file_type(&st) == FileType::Directory {
            return Err(rustix::io::Errno::PERM.into());
        }
        if layer != 0 {
            self.copy_up(layer, &target, &st)?;
        }
        let target_dir = self.top().open_dir(&target.parent(), true)?;
        fsops::remove_at(parent_fd, name)?;
        rustix::fs::linkat(
            &target_dir,
            target.name(),
            parent_fd,
            name,
            AtFlags::empty(),
        )?;
        Ok(())
    }

    /// Copies a non-directory of a lower layer into this one, as overlayfs copy-up would.
    fn copy_up(&mut self, layer: usize, path: &EntryPath, st: &rustix::fs::Stat) -> io::Result<()> {
        let dest_dir = self.ensure_dirs(&path.parent())?;
        let src_dir = self.view.layer(layer).open_dir(&path.parent(), true)?;
        let name = path.name();
        match file_type(st) {
            FileType::RegularFile => {
                let src = rustix::fs::openat(
                    &src_dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let meta = fsops::meta_of(st, fsops::read_xattrs(&src)?);
                fsops::create_file(&dest_dir, name, &mut std::fs::File::from(src), &meta)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&src_dir, name, Vec::new())?;
                let target = OsString::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                fsops::create_symlink(&dest_dir, name, &target, &fsops::meta_of(st, Vec::new()))
            }
            kind => fsops::create_node(
                &dest_dir,
                name,
                kind,
                st.st_rdev,
                &fsops::meta_of(st, Vec::new()),
            ),
        }
    }

    /// Makes every directory of `dir` exist in this layer, with the attributes the view shows for it
    /// (as copy-up would) or 0755 root when no layer has it, and opens it.
    fn ensure_dirs(&mut self, dir: &EntryPath) -> io::Result<OwnedFd> {
        let mut prefix = EntryPath::root();
        for component in dir.as_path().components() {
            prefix = prefix.join(component.as_os_str());
            match self.top().lstat(&prefix)? {
                Some(st) if file_type(&st) == FileType::Directory => continue,
                Some(_) => return Err(rustix::io::Errno::NOTDIR.into()),
                None => {}
            }
            let meta = match self.view.lookup(&prefix)? {
                Some((layer, st)) if file_type(&st) == FileType::Directory => {
                    let fd = self.view.layer(layer).open_dir(&prefix, true)?;
                    fsops::meta_of(&st, fsops::read_xattrs(&fd)?)
                }
                _ => Meta {
                    mode: 0o755,
                    ..Meta::default()
                },
            };
            let parent = self.top().open_dir(&prefix.parent(), true)?;
            fsops::ensure_dir(&parent, prefix.name(), &meta)?;
            self.dir_times.push((prefix.clone(), meta.mtime));
        }
        self.top().open_dir(dir, true)
    }

    fn set_dir_times(&mut self) -> io::Result<()> {
        self.dir_times.sort_by(|a, b| b.0.cmp(&a.0));
        for (dir, mtime) in std::mem::take(&mut self.dir_times) {
            let parent = self.top().open_dir(&dir.parent(), true)?;
            fsops::set_times_at(&parent, dir.name(), mtime)?;
        }
        Ok(())
    }
}
