//! Layer unpacking: the safety boundary between registry content and the host filesystem.
//!
//! Each layer is extracted into its own directory, in parallel with the other layers of the image.
//! The result must equal applying the layers in order onto one root, as containerd does. Most
//! entries do not depend on the layers below: an entry whose parent directory was itself created
//! by an earlier entry of the same layer (an *anchored* entry) lands at the same place whatever the
//! lower layers hold. An entry whose parent is not anchored (the layer has no entry for some
//! directory on its path, or that directory is a symlink) may be redirected by the lower layers:
//! `lib/x` lands in `usr/lib/x` when a lower layer has `lib -> usr/lib`. Such entries, and hard
//! links to files this layer does not contain, are *deferred*: a deferred file's data is still
//! streamed once, into a staging directory beside the layer's; [`apply_deferred`] later places each one
//! where in-order application would put it, once the layers below are complete.
//!
//! Nothing is ever created outside the layer directory: names that climb out with `..` and hard
//! links that point out are refused; absolute names and symlinks on a path resolve inside the layer
//! (`openat2` with `RESOLVE_IN_ROOT` or `RESOLVE_BENEATH`); the last component of every operation
//! is never followed.

mod deferred;
mod fsops;
mod merged;
mod path;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, Timespec};

pub use deferred::apply_deferred;
use fsops::{Meta, Root};
pub use fsops::{OPAQUE_XATTR, is_whiteout};
use path::{EntryPath, Whiteout, whiteout};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry `{entry}` climbs out of the layer with `..`; refusing the layer")]
    Escapes { entry: String },
    #[error(
        "layer entry `{entry}` is a hard link to `{target}` outside the layer; refusing the layer"
    )]
    LinkEscapes { entry: String, target: String },
    #[error("layer entry `{entry}`: unsupported entry type {kind}")]
    Unsupported { entry: String, kind: String },
    #[error("layer entry `{entry}`: {op}: {source}")]
    Entry {
        entry: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("reading the layer archive: {0}")]
    Archive(#[source] io::Error),
}

impl UnpackError {
    /// Whether the layer is at fault (what it holds), rather than the node (a write that failed).
    pub fn is_the_layers_fault(&self) -> bool {
        match self {
            UnpackError::Escapes { .. }
            | UnpackError::LinkEscapes { .. }
            | UnpackError::Unsupported { .. }
            | UnpackError::Archive(_) => true,
            UnpackError::Entry { source, .. } => crate::limits::is_the_layers_fault(source),
        }
    }
}

/// What remains to be done for a layer once the layers below it are complete.
#[derive(Debug, Default)]
pub struct Unpacked {
    deferred: Vec<deferred::Deferred>,
    /// Entries placed directly, by path: their sequence number, and whether they are directories.
    anchored: HashMap<EntryPath, Anchored>,
}

impl Unpacked {
    /// Whether the layer needs [`apply_deferred`] (it depends on the layers below it).
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    pub fn deferred_count(&self) -> usize {
        self.deferred.len()
    }
}

#[derive(Debug, Clone, Copy)]
struct Anchored {
    seq: u32,
    is_dir: bool,
}

/// Extracts the tar stream `archive` into the (empty) directory `dir`; deferred files wait in
/// `staging` (created when first needed, on the same filesystem, outside `dir`). Returns the
/// deferred work and the reader, read to its end so that a digest around it covers the whole stream.
pub fn unpack_layer<R: Read>(
    archive: R,
    dir: &Path,
    staging: &Path,
) -> Result<(Unpacked, R), UnpackError> {
    let root = Root::open(dir).map_err(|source| UnpackError::Entry {
        entry: "/".into(),
        op: "open layer directory",
        source,
    })?;
    let mut unpacker = Unpacker {
        root,
        out: Unpacked::default(),
        dir_times: Vec::new(),
        staging_path: staging.to_path_buf(),
        staging: None,
    };
    let mut archive = tar::Archive::new(archive);
    let entries = archive.entries().map_err(UnpackError::Archive)?;
    for (seq, entry) in (0u32..).zip(entries) {
        let mut entry = entry.map_err(UnpackError::Archive)?;
        unpacker.entry(seq, &mut entry)?;
    }
    unpacker.finish()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(UnpackError::Archive)?;
    Ok((unpacker.out, rest))
}

struct Unpacker {
    root: Root,
    out: Unpacked,
    /// Directory mtimes, set once all entries are written (writing into a directory changes it).
    dir_times: Vec<(EntryPath, Timespec)>,
    staging_path: std::path::PathBuf,
    staging: Option<OwnedFd>,
}

/// What one tar entry asks for.
enum Kind {
    File,
    Dir,
    Symlink(OsString),
    HardLink(EntryPath),
    Node(FileType, rustix::fs::Dev),
    Whiteout,
    Opaque,
}

fn display(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

impl Unpacker {
    fn entry<R: Read>(
        &mut self,
        seq: u32,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let name = display(&raw);
        let header = entry.header();
        let kind_of = header.entry_type();
        if matches!(
            kind_of,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let path = EntryPath::clean(&raw).map_err(|_| UnpackError::Escapes {
            entry: name.clone(),
        })?;
        if path.is_root() {
            // The layer root's own attributes are the snapshot directory's, as in containerd.
            return Ok(());
        }
        let meta = read_meta(entry).map_err(|source| UnpackError::Entry {
            entry: name.clone(),
            op: "read header",
            source,
        })?;
        let header = entry.header();
        let (path, kind) = match whiteout(path.name()) {
            Some(Whiteout::Ignored) => return Ok(()),
            Some(Whiteout::Opaque) => (path.parent(), Kind::Opaque),
            Some(Whiteout::Delete(hidden)) => (path.parent().join(&hidden), Kind::Whiteout),
            None => {
                let kind = match kind_of {
                    tar::EntryType::Regular
                    | tar::EntryType::Continuous
                    | tar::EntryType::GNUSparse => Kind::File,
                    tar::EntryType::Directory => Kind::Dir,
                    tar::EntryType::Symlink => {
                        let target = entry.link_name_bytes().unwrap_or_default();
                        Kind::Symlink(OsStr::from_bytes(&target).to_os_string())
                    }
                    tar::EntryType::Link => {
                        let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                        let cleaned =
                            EntryPath::clean(&target).map_err(|_| UnpackError::LinkEscapes {
                                entry: name.clone(),
                                target: display(&target),
                            })?;
                        if cleaned.is_root() {
                            return Err(UnpackError::LinkEscapes {
                                entry: name.clone(),
                                target: display(&target),
                            });
                        }
                        Kind::HardLink(cleaned)
                    }
                    tar::EntryType::Char | tar::EntryType::Block => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind_of == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        Kind::Node(ft, rustix::fs::makedev(major, minor))
                    }
                    tar::EntryType::Fifo => Kind::Node(FileType::Fifo, 0),
                    other => {
                        return Err(UnpackError::Unsupported {
                            entry: name,
                            kind: format!("{other:?}"),
                        });
                    }
                };
                (path, kind)
            }
        };
        let op_err = |op: &'static str| {
            let name = name.clone();
            move |source: io::Error| UnpackError::Entry {
                entry: name,
                op,
                source,
            }
        };
        if self.is_anchored(&path.parent()) && !self.needs_lower(&kind) {
            self.place(seq, &path, kind, &meta, entry)
                .map_err(op_err("extract"))
        } else {
            self.defer(seq, path, kind, meta, entry)
                .map_err(op_err("stage"))
        }
    }

    /// Whether `dir` is the root or a directory this layer created, through anchored directories
    /// only: then nothing below can change where a child of it lands.
    fn is_anchored(&self, dir: &EntryPath) -> bool {
        dir.is_root() || self.out.anchored.get(dir).is_some_and(|a| a.is_dir)
    }

    /// A hard link to a file this layer has not placed needs the layers below (or a deferred
    /// entry of its own).
    fn needs_lower(&self, kind: &Kind) -> bool {
        match kind {
            Kind::HardLink(target) => self.out.anchored.get(target).is_none_or(|a| a.is_dir),
            _ => false,
        }
    }

    fn place<R: Read>(
        &mut self,
        seq: u32,
        path: &EntryPath,
        kind: Kind,
        meta: &Meta,
        data: &mut tar::Entry<'_, R>,
    ) -> io::Result<()> {
        let parent = self.root.open_dir(&path.parent(), true)?;
        let name = path.name();
        let is_dir = matches!(kind, Kind::Dir);
        match kind {
            Kind::Opaque => {
                // `path` is the directory itself here.
                let dir = self.root.open_dir(path, true)?;
                fsops::set_opaque(&dir)?;
                return Ok(());
            }
            Kind::Dir => {
                fsops::ensure_dir(&parent, name, meta)?;
                self.dir_times.push((path.clone(), meta.mtime));
            }
            other => {
                fsops::remove_at(&parent, name)?;
                self.forget_below(path);
                match other {
                    Kind::File => fsops::create_file(&parent, name, data, meta)?,
                    Kind::Symlink(target) => fsops::create_symlink(&parent, name, &target, meta)?,
                    Kind::HardLink(target) => {
                        let target_dir = self.root.open_dir(&target.parent(), true)?;
                        rustix::fs::linkat(
                            &target_dir,
                            target.name(),
                            &parent,
                            name,
                            rustix::fs::AtFlags::empty(),
                        )?;
                    }
                    Kind::Node(ft, dev) => fsops::create_node(&parent, name, ft, dev, meta)?,
                    Kind::Whiteout => fsops::create_whiteout(&parent, name)?,
                    Kind::Dir | Kind::Opaque => {}
                }
            }
        }
        self.out
            .anchored
            .insert(path.clone(), Anchored { seq, is_dir });
        Ok(())
    }

    /// A non-directory replaced whatever was at `path`: nothing below it is anchored any more.
    fn forget_below(&mut self, path: &EntryPath) {
        if self.out.anchored.get(path).is_some_and(|a| a.is_dir) {
            self.out.anchored.retain(|p, _| !p.starts_with(path));
            self.dir_times.retain(|(p, _)| !p.starts_with(path));
        }
    }

    fn defer<R: Read>(
        &mut self,
        seq: u32,
        path: EntryPath,
        kind: Kind,
        meta: Meta,
        data: &mut tar::Entry<'_, R>,
    ) -> io::Result<()> {
        use deferred::Item;
        let item = match kind {
            Kind::File => {
                let staging = self.staging()?;
                let staged = OsString::from(seq.to_string());
                fsops::create_file(staging, &staged, data, &meta)?;
                Item::File { staged }
            }
            Kind::Dir => Item::Dir,
            Kind::Symlink(target) => Item::Symlink(target),
            Kind::HardLink(target) => Item::HardLink(target),
            Kind::Node(ft, dev) => Item::Node(ft, dev),
            Kind::Whiteout => Item::Whiteout,
            Kind::Opaque => Item::Opaque,
        };
        self.out.deferred.push(deferred::Deferred {
            seq,
            path,
            item,
            meta,
        });
        Ok(())
    }

    fn staging(&mut self) -> io::Result<&OwnedFd> {
        if self.staging.is_none() {
            rustix::fs::mkdir(&self.staging_path, Mode::from_raw_mode(0o700))?;
            self.staging = Some(Root::open(&self.staging_path)?.into_fd());
        }
        self.staging
            .as_ref()
            .ok_or_else(|| io::Error::other("staging directory"))
    }

    fn finish(&mut self) -> Result<(), UnpackError> {
        // Deepest first, so setting a child's time does not disturb its parent's afterwards.
        self.dir_times.sort_by(|a, b| b.0.cmp(&a.0));
        for (dir, mtime) in self.dir_times.drain(..) {
            let parent = self.root.open_dir(&dir.parent(), true);
            parent
                .and_then(|p| fsops::set_times_at(&p, dir.name(), mtime))
                .map_err(|source| UnpackError::Entry {
                    entry: dir.as_path().display().to_string(),
                    op: "set directory time",
                    source,
                })?;
        }
        Ok(())
    }
}

/// Owner, mode, mtime and xattrs of an entry (numeric ids, as containerd uses them). An empty
/// numeric field reads as 0, as Go's archive/tar reads it.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    let to_u32 = |v: u64, what: &str| {
        u32::try_from(v)
            .ok()
            .filter(|v| *v != u32::MAX)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{what} {v} out of range"),
                )
            })
    };
    let mut meta = Meta {
        mode: header.mode().unwrap_or(0) & 0o7777,
        uid: to_u32(header.uid().unwrap_or(0), "uid")?,
        gid: to_u32(header.gid().unwrap_or(0), "gid")?,
        mtime: Timespec {
            tv_sec: header.mtime().unwrap_or(0).try_into().unwrap_or(0),
            tv_nsec: 0,
        },
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                meta.xattrs
                    .push((OsString::from(name), ext.value_bytes().to_vec()));
            } else if key == "mtime" {
                if let Some(t) = parse_pax_time(ext.value_bytes()) {
                    meta.mtime = t;
                }
            }
        }
    }
    Ok(meta)
}

/// A PAX time: decimal seconds with an optional fraction.
fn parse_pax_time(raw: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(raw).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}
