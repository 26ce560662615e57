//! The exec helper's binary, copied into a sealed memfd once at start and run from there.
//!
//! The helper's child is, until it execs, a process of the container whose `/proc/<pid>/exe`
//! names the binary it runs (CVE-2019-5736: runc's own binary was overwritten through it). Run
//! from this copy, that link leads to a file no one can write, shrink or grow: its seals forbid
//! it, and they cannot be lifted. The node's berth-exec on disk is never reachable that way.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

#[derive(Debug)]
pub struct SealedBinary {
    /// Read-only: no descriptor open for writing is kept (an exec of a file open for writing
    /// fails with ETXTBSY, and none is needed once the seals are on).
    fd: OwnedFd,
}

impl SealedBinary {
    /// Copies `source` into a sealed memfd.
    pub fn copy(source: &Path) -> io::Result<SealedBinary> {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "berth-exec".into());
        let memfd = rustix::fs::memfd_create(
            name.as_str(),
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut writer = std::fs::File::from(memfd);
        io::copy(&mut std::fs::File::open(source)?, &mut writer)?;
        rustix::fs::fcntl_add_seals(
            &writer,
            SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
        )?;
        let fd = rustix::fs::open(
            format!("/proc/self/fd/{}", writer.as_raw_fd()),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(SealedBinary { fd })
    }

    /// The path a child of this process executes it by. The descriptor is close-on-exec, which
    /// execve() honours only after it has opened the file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_copy_runs_and_cannot_be_written() {
        let sealed = SealedBinary::copy(Path::new("/bin/true")).unwrap();
        let status = std::process::Command::new(sealed.path()).status().unwrap();
        assert!(status.success());
        // Refused at the open (a running executable) or at the write (the seals).
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(sealed.path())
            .and_then(|mut f| io::Write::write_all(&mut f, b"overwritten"));
        assert!(written.is_err(), "the sealed copy took a write");
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(sealed.path())
            .and_then(|mut f| io::Write::write_all(&mut f, b"more"));
        assert!(appended.is_err(), "the sealed copy grew");
    }
}
