//! The CRI log file: one line per output line, `<RFC3339Nano> <stdout|stderr> <F|P> <text>`. A line
//! longer than the buffer is written as `P` parts ended by an `F` part, as kubelet expects.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// A line is cut into parts at this length.
pub const LINE_BUFFER: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

pub struct CriLog {
    /// The log dir (kubelet's, or the container's state dir) and the file's path inside it.
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    /// The unfinished line of each stream.
    pending: [Vec<u8>; 2],
    /// Whether a write error was already reported (once is enough).
    failed: bool,
}

impl CriLog {
    pub fn open(dir: PathBuf, path: PathBuf) -> io::Result<CriLog> {
        let file = open_beneath(&dir, &path)?;
        Ok(CriLog {
            dir,
            path,
            file: Some(file),
            pending: [Vec::new(), Vec::new()],
            failed: false,
        })
    }

    /// Opens the file anew (kubelet renamed the old one to rotate it).
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = Some(open_beneath(&self.dir, &self.path)?);
        self.failed = false;
        Ok(())
    }

    /// Logs output of `stream`: every complete line, and parts of lines longer than the buffer.
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) {
        while !data.is_empty() {
            let pending = &mut self.pending[stream.index()];
            let room = LINE_BUFFER - pending.len();
            match data[..data.len().min(room)]
                .iter()
                .position(|b| *b == b'\n')
            {
                Some(nl) => {
                    pending.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    self.emit(stream, b'F');
                }
                None if data.len() >= room => {
                    pending.extend_from_slice(&data[..room]);
                    data = &data[room..];
                    self.emit(stream, b'P');
                }
                None => {
                    pending.extend_from_slice(data);
                    data = &[];
                }
            }
        }
    }

    /// Logs what is left of unfinished lines (the streams have ended).
    pub fn finish(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if !self.pending[stream.index()].is_empty() {
                self.emit(stream, b'F');
            }
        }
    }

    fn emit(&mut self, stream: Stream, tag: u8) {
        let text = std::mem::take(&mut self.pending[stream.index()]);
        let mut line = Vec::with_capacity(text.len() + 64);
        line.extend_from_slice(berth_monitor::rfc3339::timestamp(SystemTime::now()).as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.name().as_bytes());
        line.push(b' ');
        line.push(tag);
        line.push(b' ');
        line.extend_from_slice(&text);
        line.push(b'\n');
        if let Some(file) = &mut self.file {
            if let Err(e) = file.write_all(&line) {
                if !self.failed {
                    eprintln!("berth-monitor: writing {}: {e}", self.path.display());
                    self.failed = true;
                }
            }
        }
    }
}

/// Opens (creating it and its parents) the log file `rel` inside `dir` as root would only where
/// it is safe: no `..`, no symlink anywhere below `dir` (a container's log dir is writable by
/// whoever reads the logs), and a regular file at the end (a FIFO would block the monitor).
fn open_beneath(dir: &Path, rel: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(part) => Ok(part),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log path {} must be relative, without `..`", rel.display()),
            )),
        })
        .collect::<io::Result<_>>()?;
    let Some((file, parents)) = parts.split_last() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty log path",
        ));
    };
    std::fs::create_dir_all(dir)?;
    let beneath = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let mut at = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for part in parents {
        match rustix::fs::mkdirat(&at, *part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        at = rustix::fs::openat2(
            &at,
            *part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            beneath,
        )?;
    }
    let fd = rustix::fs::openat2(
        &at,
        *file,
        OFlags::WRONLY
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::CLOEXEC
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::NOCTTY,
        Mode::from_raw_mode(0o640),
        beneath,
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::other(format!(
            "log file {} is not a regular file",
            rel.display()
        )));
    }
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(log: &Path) -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .map(|l| l.split_once(' ').unwrap().1.to_owned())
            .collect()
    }

    #[test]
    fn lines_are_tagged_and_long_ones_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let mut log = CriLog::open(dir.path().into(), "c/0.log".into()).unwrap();
        log.write(Stream::Stdout, b"hel");
        log.write(Stream::Stderr, b"oops\n");
        log.write(Stream::Stdout, b"lo\nwor");
        let long = vec![b'x'; LINE_BUFFER + 10];
        log.write(Stream::Stdout, b"ld\n");
        log.write(Stream::Stdout, &long);
        log.write(Stream::Stdout, b"\n");
        log.write(Stream::Stderr, b"no newline");
        log.finish();
        let got = lines(&path);
        assert_eq!(got[0], "stderr F oops");
        assert_eq!(got[1], "stdout F hello");
        assert_eq!(got[2], "stdout F world");
        assert_eq!(got[3], format!("stdout P {}", "x".repeat(LINE_BUFFER)));
        assert_eq!(got[4], "stdout F xxxxxxxxxx");
        assert_eq!(got[5], "stderr F no newline");
    }

    #[test]
    fn reopen_starts_a_new_file_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = CriLog::open(dir.path().into(), "0.log".into()).unwrap();
        log.write(Stream::Stdout, b"one\n");
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        log.reopen().unwrap();
        log.write(Stream::Stdout, b"two\n");
        assert_eq!(lines(&path), ["stdout F two"]);
        assert_eq!(lines(&dir.path().join("0.log.1")), ["stdout F one"]);
    }

    #[test]
    fn log_paths_never_leave_their_dir_nor_follow_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::os::unix::fs::symlink(&outside, logs.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("target"), logs.join("file-link")).unwrap();
        for bad in ["../outside/x.log", "/etc/x.log", "link/x.log", "file-link"] {
            assert!(CriLog::open(logs.clone(), bad.into()).is_err(), "{bad}");
        }
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        let fifo = logs.join("fifo.log");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(CriLog::open(logs.clone(), "fifo.log".into()).is_err());
    }
}
