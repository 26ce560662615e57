//! Filesystem operations confined to a layer directory. Every path is opened relative to the layer's
//! directory fd with `openat2`, so no name, `..` or symlink can reach outside it; the last component
//! is always acted on with a `*at` call that does not follow symlinks.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    AtFlags, Dev, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, Uid,
    XattrFlags,
};

use super::path::EntryPath;

/// Attributes of an entry, as the tar header gives them.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

/// xattrs a layer may never set: overlayfs reads `trusted.overlay.*` as its own instructions
/// (opaque dirs, redirects), which only the unpacker may write.
pub fn is_forbidden_xattr(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b"trusted.overlay.")
}

pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// A directory every operation stays inside.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Opens a directory of this root. Symlinks on the way resolve inside the root, as they would
    /// for a process chrooted there; with `no_symlinks`, any symlink on the way is an error.
    pub fn open_dir(&self, dir: &EntryPath, no_symlinks: bool) -> io::Result<OwnedFd> {
        let resolve = if no_symlinks {
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
        } else {
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
        };
        Ok(rustix::fs::openat2(
            &self.fd,
            dir.at_path(),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )?)
    }

    /// lstat of a path whose directories are real directories of this root (no symlinks on the
    /// way); None when absent.
    pub fn lstat(&self, path: &EntryPath) -> io::Result<Option<Stat>> {
        if path.is_root() {
            return rustix::fs::fstat(&self.fd).map(Some).map_err(Into::into);
        }
        let parent = match self.open_dir(&path.parent(), true) {
            Ok(fd) => fd,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        lstat_at(&parent, path.name())
    }
}

/// Errors that mean "not there" during a lookup: missing, or a non-directory on the way.
pub fn is_absent(e: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(e),
        Some(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP)
    )
}

pub fn lstat_at(dir: &OwnedFd, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// An overlay whiteout: a character device 0:0.
pub fn is_whiteout(st: &Stat) -> bool {
    file_type(st) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Removes `name` in `dir` whatever it is, a directory with all its contents included.
pub fn remove_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if file_type(&st) == FileType::Directory {
        let child = rustix::fs::openat(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for entry_name in list_dir(&child)? {
            remove_at(&child, &entry_name)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// The names in a directory, without `.` and `..`.
pub fn list_dir(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

fn uid(raw: u32) -> Uid {
    Uid::from_raw(raw)
}

fn gid(raw: u32) -> Gid {
    Gid::from_raw(raw)
}

fn timestamps(t: Timespec) -> Timestamps {
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Owner, mode and xattrs of an open file or directory, in the order that keeps setuid bits and
/// file capabilities (chown clears both).
pub fn apply_fd_meta(fd: impl AsFd, meta: &Meta) -> io::Result<()> {
    rustix::fs::fchown(&fd, Some(uid(meta.uid)), Some(gid(meta.gid)))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode & 0o7777))?;
    for (name, value) in &meta.xattrs {
        if !is_forbidden_xattr(name) {
            rustix::fs::fsetxattr(&fd, name.as_os_str(), value, XattrFlags::empty())?;
        }
    }
    Ok(())
}

/// Creates a regular file `name` in `dir` (replacing nothing: the caller removed what was there)
/// with the data of `data` and the attributes of `meta`.
pub fn create_file(
    dir: &OwnedFd,
    name: &OsStr,
    data: &mut impl io::Read,
    meta: &Meta,
) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut file = File::from(fd);
    io::copy(data, &mut file)?;
    apply_fd_meta(&file, meta)?;
    rustix::fs::futimens(&file, &timestamps(meta.mtime))?;
    Ok(())
}

/// Creates directory `name` in `dir`, or keeps the directory already there; then sets its owner,
/// mode and xattrs (its mtime is set by the caller once its contents are written).
pub fn ensure_dir(dir: &OwnedFd, name: &OsStr, meta: &Meta) -> io::Result<OwnedFd> {
    match lstat_at(dir, name)? {
        Some(st) if file_type(&st) == FileType::Directory => {}
        Some(_) => {
            remove_at(dir, name)?;
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
        }
        None => rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?,
    }
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    apply_fd_meta(&fd, meta)?;
    Ok(fd)
}

/// Gives the entry `name` of `dir` (never followed) the owner of `meta`.
fn chown_entry(dir: &OwnedFd, name: &OsStr, meta: &Meta) -> io::Result<()> {
    Ok(rustix::fs::chownat(
        dir,
        name,
        Some(uid(meta.uid)),
        Some(gid(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

pub fn create_symlink(dir: &OwnedFd, name: &OsStr, target: &OsStr, meta: &Meta) -> io::Result<()> {
    rustix::fs::symlinkat(target, dir, name)?;
    chown_entry(dir, name, meta)?;
    set_times_at(dir, name, meta.mtime)
}

/// A device node, fifo or whiteout.
pub fn create_node(
    dir: &OwnedFd,
    name: &OsStr,
    kind: FileType,
    dev: Dev,
    meta: &Meta,
) -> io::Result<()> {
    rustix::fs::mknodat(
        dir,
        name,
        kind,
        Mode::from_raw_mode(meta.mode & 0o7777),
        dev,
    )?;
    chown_entry(dir, name, meta)?;
    // mknod applies the umask; set the mode exactly.
    rustix::fs::chmodat(
        dir,
        name,
        Mode::from_raw_mode(meta.mode & 0o7777),
        AtFlags::empty(),
    )?;
    set_times_at(dir, name, meta.mtime)
}

/// An overlay whiteout for `name`: a 0:0 character device owned by root.
pub fn create_whiteout(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let meta = Meta {
        mode: 0,
        ..Meta::default()
    };
    create_node(dir, name, FileType::CharacterDevice, 0, &meta)
}

pub fn set_times_at(dir: &OwnedFd, name: &OsStr, mtime: Timespec) -> io::Result<()> {
    rustix::fs::utimensat(dir, name, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Marks a directory opaque: overlayfs then shows nothing of the same directory in lower layers.
pub fn set_opaque(dir_fd: &OwnedFd) -> io::Result<()> {
    rustix::fs::fsetxattr(dir_fd, OPAQUE_XATTR, b"y", XattrFlags::empty())?;
    Ok(())
}

pub fn is_opaque(dir_fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 2];
    matches!(rustix::fs::fgetxattr(dir_fd, OPAQUE_XATTR, &mut buf[..]), Ok(1) if buf[0] == b'y')
}

/// Every xattr of an open file, except the overlay's own.
pub fn read_xattrs(fd: &OwnedFd) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let mut list = vec![0u8; 64 * 1024];
    let len = match rustix::fs::flistxattr(fd, &mut list[..]) {
        Ok(len) => len,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in list[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        if is_forbidden_xattr(name) {
            continue;
        }
        let mut value = vec![0u8; 64 * 1024];
        let n = rustix::fs::fgetxattr(fd, name, &mut value[..])?;
        value.truncate(n);
        out.push((name.to_os_string(), value));
    }
    Ok(out)
}

/// The attributes of an existing file, for copying it up into another layer.
pub fn meta_of(st: &Stat, xattrs: Vec<(OsString, Vec<u8>)>) -> Meta {
    Meta {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
        xattrs,
    }
}
