//! The client of a monitor's socket: the only code in berthd that knows its request lines and
//! frames (berth_monitor::proto). A log reopen is one request; an attachment splits into the
//! container's output, frame by frame, and the input going back.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_monitor::proto::{self, FrameReader, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::MonitorError;

/// Longest reply line a monitor sends.
const MAX_REPLY: usize = 4096;

/// The monitor of the container whose state dir this is.
#[derive(Debug, Clone)]
pub struct MonitorClient {
    state_dir: PathBuf,
}

/// Which of the container's output streams a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// An attachment to the container's stdio.
#[derive(Debug)]
pub struct Attachment {
    pub output: AttachOutput,
    pub input: AttachInput,
}

/// The container's output as the monitor sends it.
#[derive(Debug)]
pub struct AttachOutput {
    reader: OwnedReadHalf,
    frames: FrameReader,
}

/// What goes to the container: stdin, its end, terminal sizes.
#[derive(Debug)]
pub struct AttachInput {
    writer: OwnedWriteHalf,
}

impl MonitorClient {
    pub fn new(state_dir: &Path) -> MonitorClient {
        MonitorClient {
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// Asks the monitor to reopen the container's log file (kubelet rotated it).
    pub async fn reopen_log(&self) -> Result<(), MonitorError> {
        self.request(Request::Reopen).await.map(drop)
    }

    /// Has the monitor send signal `number` to the container's process through its pidfd.
    pub async fn signal(&self, number: i32) -> Result<(), MonitorError> {
        self.request(Request::Signal(number)).await.map(drop)
    }

    /// Attaches to the streams asked for.
    pub async fn attach(
        &self,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<Attachment, MonitorError> {
        let stream = self
            .request(Request::Attach {
                stdin,
                stdout,
                stderr,
            })
            .await?;
        let (reader, writer) = stream.into_split();
        Ok(Attachment {
            output: AttachOutput {
                reader,
                frames: FrameReader::default(),
            },
            input: AttachInput { writer },
        })
    }

    /// A connection to the socket. Its path may be longer than a unix socket path may be, so it
    /// is reached through a descriptor of its directory.
    async fn connect(&self) -> std::io::Result<tokio::net::UnixStream> {
        let dir: OwnedFd = rustix::fs::open(
            &self.state_dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let path = PathBuf::from(format!(
            "/proc/self/fd/{}/{}",
            dir.as_raw_fd(),
            proto::SOCKET
        ));
        tokio::net::UnixStream::connect(&path).await
    }

    /// Sends one request; the stream after an `ok` reply.
    async fn request(&self, req: Request) -> Result<tokio::net::UnixStream, MonitorError> {
        let mut stream = self.connect().await.map_err(MonitorError::Unreachable)?;
        stream
            .write_all(format!("{req}\n").as_bytes())
            .await
            .map_err(MonitorError::Io)?;
        // Byte by byte: whatever follows the reply line is the attachment's, not ours.
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while reply.len() < MAX_REPLY {
            match stream.read(&mut byte).await.map_err(MonitorError::Io)? {
                0 => break,
                _ if byte[0] == b'\n' => break,
                _ => reply.push(byte[0]),
            }
        }
        let reply = String::from_utf8_lossy(&reply).into_owned();
        match reply.as_str() {
            "ok" => Ok(stream),
            r => Err(MonitorError::Refused(
                r.strip_prefix("error ").unwrap_or(r).to_owned(),
            )),
        }
    }
}

impl AttachOutput {
    /// The next piece of output; None once the monitor closed (the container exited).
    pub async fn next(&mut self) -> Option<(OutputStream, Vec<u8>)> {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match self.frames.next_frame() {
                Ok(Some((kind, payload))) => {
                    let stream = if kind == proto::STDERR {
                        OutputStream::Stderr
                    } else {
                        OutputStream::Stdout
                    };
                    return Some((stream, payload));
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            match self.reader.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.frames.push(&buf[..n]),
            }
        }
    }
}

impl AttachInput {
    pub async fn stdin(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer
            .write_all(&proto::frame(proto::STDIN, bytes))
            .await
    }

    /// Closes the container's stdin (for `stdin_once` containers).
    pub async fn close_stdin(&mut self) -> std::io::Result<()> {
        self.writer
            .write_all(&proto::frame(proto::STDIN_CLOSE, &[]))
            .await
    }

    pub async fn resize(&mut self, cols: u16, rows: u16) -> std::io::Result<()> {
        self.writer
            .write_all(&proto::resize_frame(rows, cols))
            .await
    }
}
