//! The monitor's event loop: one epoll over the container's output, the attach socket, its
//! clients and the container's pidfd. Output goes to the CRI log and to attached clients; input
//! from clients goes to the container's stdin; the pidfd says when the container has exited.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use berth_monitor::proto::{self, ExitRecord, FrameReader, ProtoError, Request};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::process::{WaitId, WaitIdOptions};

use crate::cri_log::{CriLog, Stream};
use crate::runc::Stdio3;

/// A request line longer than this is no request.
const MAX_REQUEST_LINE: usize = 1024;

/// Why a client is sent away.
#[derive(Debug)]
enum ClientError {
    LineTooLong,
    Proto(ProtoError),
    Io(std::io::Error),
}

impl From<ProtoError> for ClientError {
    fn from(e: ProtoError) -> Self {
        ClientError::Proto(e)
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::LineTooLong => write!(f, "request line too long"),
            ClientError::Proto(e) => write!(f, "{e}"),
            ClientError::Io(e) => write!(f, "{e}"),
        }
    }
}

const PIDFD: u64 = 1;
const LISTENER: u64 = 2;
const STDIN_OUT: u64 = 3;
const OUTPUT: u64 = 10;
const CLIENT: u64 = 1000;

/// Client stdin waiting for the container to read, at most.
const MAX_PENDING_STDIN: usize = 1 << 20;
/// After the exit, output still arriving within this window is logged.
const DRAIN_WINDOW: Duration = Duration::from_millis(200);

struct Output {
    fd: OwnedFd,
    stream: Stream,
    open: bool,
}

enum ClientState {
    /// Reading the request line.
    Request(Vec<u8>),
    Attached {
        stdin: bool,
        stdout: bool,
        stderr: bool,
        frames: FrameReader,
    },
}

struct Client {
    stream: UnixStream,
    state: ClientState,
}

pub struct Monitor {
    epoll: OwnedFd,
    pidfd: OwnedFd,
    outputs: Vec<Output>,
    stdin: Option<OwnedFd>,
    pending_stdin: Vec<u8>,
    pty: Option<OwnedFd>,
    stdin_once: bool,
    log: CriLog,
    listener: UnixListener,
    clients: HashMap<u64, Client>,
    next_client: u64,
    oom_file: Option<std::path::PathBuf>,
    oom_before: u64,
}

fn errno(e: rustix::io::Errno) -> std::io::Error {
    e.into()
}

impl Monitor {
    pub fn new(
        pid: u32,
        stdio: Stdio3,
        stdin_once: bool,
        log: CriLog,
        listener: UnixListener,
    ) -> std::io::Result<Monitor> {
        let raw = rustix::process::Pid::from_raw(pid as i32)
            .ok_or_else(|| std::io::Error::other("pid 0"))?;
        let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
            .map_err(errno)?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(errno)?;
        let (outputs, stdin, pty) = split_stdio(stdio)?;
        listener.set_nonblocking(true)?;
        epoll::add(&epoll, &pidfd, EventData::new_u64(PIDFD), EventFlags::IN).map_err(errno)?;
        epoll::add(
            &epoll,
            &listener,
            EventData::new_u64(LISTENER),
            EventFlags::IN,
        )
        .map_err(errno)?;
        for (i, out) in outputs.iter().enumerate() {
            set_nonblocking(&out.fd)?;
            epoll::add(
                &epoll,
                &out.fd,
                EventData::new_u64(OUTPUT + i as u64),
                EventFlags::IN,
            )
            .map_err(errno)?;
        }
        if let Some(fd) = &stdin {
            set_nonblocking(fd)?;
        }
        let oom_file = crate::oom::counter_file(pid);
        let oom_before = oom_file.as_ref().map(crate::oom::read_count).unwrap_or(0);
        Ok(Monitor {
            epoll,
            pidfd,
            outputs,
            stdin,
            pending_stdin: Vec::new(),
            pty,
            stdin_once,
            log,
            listener,
            clients: HashMap::new(),
            next_client: CLIENT,
            oom_file,
            oom_before,
        })
    }

    /// Serves until the container exits; returns how it ended.
    pub fn run(mut self) -> std::io::Result<ExitRecord> {
        let mut events = Vec::with_capacity(16);
        loop {
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let mut exited = false;
            for event in &events {
                match event.data.u64() {
                    PIDFD => exited = true,
                    LISTENER => self.accept(),
                    STDIN_OUT => self.flush_stdin(),
                    t if (OUTPUT..CLIENT).contains(&t) => self.read_output((t - OUTPUT) as usize),
                    t => self.serve_client(t),
                }
            }
            if exited {
                return self.finish();
            }
        }
    }

    fn read_output(&mut self, i: usize) {
        let mut buf = [0u8; 32 * 1024];
        loop {
            let out = &mut self.outputs[i];
            if !out.open {
                return;
            }
            match rustix::io::read(&out.fd, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => {
                    // EOF (or EIO: a pty whose other side is closed).
                    out.open = false;
                    let _ = epoll::delete(&self.epoll, &out.fd);
                    return;
                }
                Ok(n) => {
                    let stream = out.stream;
                    self.log.write(stream, &buf[..n]);
                    self.fan_out(stream, &buf[..n]);
                }
                Err(rustix::io::Errno::AGAIN) => return,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => {
                    out.open = false;
                    let _ = epoll::delete(&self.epoll, &out.fd);
                    return;
                }
            }
        }
    }

    /// Sends output to every client attached to its stream; a client that cannot keep up is
    /// dropped (it must never slow the container or its log).
    fn fan_out(&mut self, stream: Stream, data: &[u8]) {
        let kind = match stream {
            Stream::Stdout => proto::STDOUT,
            Stream::Stderr => proto::STDERR,
        };
        let frame = proto::frame(kind, data);
        let mut dropped = Vec::new();
        for (token, client) in &mut self.clients {
            if let ClientState::Attached { stdout, stderr, .. } = client.state {
                let wants = match stream {
                    Stream::Stdout => stdout,
                    // A TTY has one stream; attach clients that want stderr get nothing more.
                    Stream::Stderr => stderr,
                };
                if wants && client.stream.write_all(&frame).is_err() {
                    dropped.push(*token);
                }
            }
        }
        for token in dropped {
            self.drop_client(token);
        }
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let token = self.next_client;
            self.next_client += 1;
            if epoll::add(
                &self.epoll,
                &stream,
                EventData::new_u64(token),
                EventFlags::IN,
            )
            .is_ok()
            {
                self.clients.insert(
                    token,
                    Client {
                        stream,
                        state: ClientState::Request(Vec::new()),
                    },
                );
            }
        }
    }

    fn serve_client(&mut self, token: u64) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let Some(client) = self.clients.get_mut(&token) else {
                return;
            };
            match client.stream.read(&mut buf) {
                Ok(0) => return self.drop_client(token),
                Ok(n) => {
                    if let Err(e) = self.client_bytes(token, &buf[..n]) {
                        if let Some(c) = self.clients.get_mut(&token) {
                            let _ = c.stream.write_all(format!("error {e}\n").as_bytes());
                        }
                        return self.drop_client(token);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.drop_client(token),
            }
        }
    }

    fn client_bytes(&mut self, token: u64, bytes: &[u8]) -> Result<(), ClientError> {
        let Some(client) = self.clients.get_mut(&token) else {
            return Ok(());
        };
        match &mut client.state {
            ClientState::Request(line) => {
                line.extend_from_slice(bytes);
                let Some(nl) = line.iter().position(|b| *b == b'\n') else {
                    return if line.len() > MAX_REQUEST_LINE {
                        Err(ClientError::LineTooLong)
                    } else {
                        Ok(())
                    };
                };
                let rest = line.split_off(nl + 1);
                let request = Request::parse(&String::from_utf8_lossy(&line[..nl]))?;
                match request {
                    Request::Reopen => {
                        let reply = match self.log.reopen() {
                            Ok(()) => "ok\n".to_owned(),
                            Err(e) => format!("error reopening the log: {e}\n"),
                        };
                        let _ = client.stream.write_all(reply.as_bytes());
                        self.drop_client(token);
                    }
                    Request::Signal(n) => {
                        let reply = match rustix::process::Signal::from_named_raw(n) {
                            None => format!("error {n} is no standard signal\n"),
                            Some(signal) => {
                                match rustix::process::pidfd_send_signal(&self.pidfd, signal) {
                                    Ok(()) => "ok\n".to_owned(),
                                    Err(e) => format!("error signalling the container: {e}\n"),
                                }
                            }
                        };
                        let _ = client.stream.write_all(reply.as_bytes());
                        self.drop_client(token);
                    }
                    Request::Attach {
                        stdin,
                        stdout,
                        stderr,
                    } => {
                        client.stream.write_all(b"ok\n").map_err(ClientError::Io)?;
                        client.state = ClientState::Attached {
                            stdin,
                            stdout,
                            stderr,
                            frames: FrameReader::default(),
                        };
                        if !rest.is_empty() {
                            return self.client_bytes(token, &rest);
                        }
                    }
                }
                Ok(())
            }
            ClientState::Attached { stdin, frames, .. } => {
                let wants_stdin = *stdin;
                frames.push(bytes);
                let mut inputs = Vec::new();
                while let Some(frame) = frames.next_frame()? {
                    inputs.push(frame);
                }
                for (kind, payload) in inputs {
                    self.client_frame(wants_stdin, kind, &payload);
                }
                Ok(())
            }
        }
    }

    fn client_frame(&mut self, wants_stdin: bool, kind: u8, payload: &[u8]) {
        match kind {
            proto::STDIN if wants_stdin => {
                if self.pending_stdin.len() + payload.len() <= MAX_PENDING_STDIN {
                    self.pending_stdin.extend_from_slice(payload);
                }
                self.flush_stdin();
            }
            proto::STDIN_CLOSE if wants_stdin => self.close_stdin(),
            proto::RESIZE if payload.len() == 4 => {
                if let Some(pty) = &self.pty {
                    let ws = rustix::termios::Winsize {
                        ws_row: u16::from_be_bytes([payload[0], payload[1]]),
                        ws_col: u16::from_be_bytes([payload[2], payload[3]]),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(pty, ws);
                }
            }
            _ => {}
        }
    }

    /// Writes waiting stdin; what the container does not take yet waits for EPOLLOUT.
    fn flush_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            self.pending_stdin.clear();
            return;
        };
        while !self.pending_stdin.is_empty() {
            match rustix::io::write(fd, &self.pending_stdin) {
                Ok(n) => {
                    self.pending_stdin.drain(..n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break,
                Err(_) => {
                    self.pending_stdin.clear();
                    self.close_stdin();
                    return;
                }
            }
        }
        let flags = if self.pending_stdin.is_empty() {
            EventFlags::empty()
        } else {
            EventFlags::OUT
        };
        if let Some(fd) = &self.stdin {
            if epoll::modify(&self.epoll, fd, EventData::new_u64(STDIN_OUT), flags).is_err() {
                let _ = epoll::add(&self.epoll, fd, EventData::new_u64(STDIN_OUT), flags);
            }
        }
    }

    fn close_stdin(&mut self) {
        if self.pty.is_some() {
            // A terminal has no end of input but the EOF character.
            if let Some(fd) = &self.stdin {
                let _ = rustix::io::write(fd, b"\x04");
            }
            return;
        }
        if let Some(fd) = self.stdin.take() {
            let _ = epoll::delete(&self.epoll, &fd);
        }
    }

    fn drop_client(&mut self, token: u64) {
        if let Some(client) = self.clients.remove(&token) {
            let _ = epoll::delete(&self.epoll, &client.stream);
            let had_stdin = matches!(client.state, ClientState::Attached { stdin: true, .. });
            if had_stdin && self.stdin_once {
                self.close_stdin();
            }
        }
    }

    /// The container has exited: collect its status, log the output still in the pipes, write the
    /// exit record.
    fn finish(mut self) -> std::io::Result<ExitRecord> {
        let status =
            rustix::process::waitid(WaitId::PidFd(self.pidfd.as_fd()), WaitIdOptions::EXITED)
                .map_err(errno)?;
        let finished_at = now_nanos();
        let (exit_code, signal) = match status {
            Some(s) if s.exited() => (s.exit_status().unwrap_or(0), 0),
            Some(s) if s.killed() => {
                let sig = s.terminating_signal().unwrap_or(0);
                (128 + sig, sig)
            }
            _ => (255, 0),
        };
        self.drain();
        self.log.finish();
        let oom_killed = self
            .oom_file
            .as_ref()
            .is_some_and(|f| crate::oom::read_count(f) > self.oom_before);
        Ok(ExitRecord {
            exit_code,
            signal,
            oom_killed,
            finished_at,
        })
    }

    /// Logs the output the container (or a child that outlives it) still writes within a short
    /// window; a child holding the pipe open forever cannot hold the monitor.
    fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN_WINDOW;
        while self.outputs.iter().any(|o| o.open) && Instant::now() < deadline {
            for i in 0..self.outputs.len() {
                self.read_output(i);
            }
            let mut events = Vec::with_capacity(4);
            let timeout = rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: 20_000_000,
            };
            let _ = epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&timeout),
            );
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(errno)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK).map_err(errno)
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}
/// The container's output descriptors, the end its stdin is written to, and (TTY) the pty
/// descriptor window sizes are set on.
type SplitStdio = (Vec<Output>, Option<OwnedFd>, Option<OwnedFd>);

fn split_stdio(stdio: Stdio3) -> std::io::Result<SplitStdio> {
    let output = |fd, stream| Output {
        fd,
        stream,
        open: true,
    };
    Ok(match stdio {
        Stdio3::Pipes {
            stdin,
            stdout,
            stderr,
        } => (
            vec![
                output(stdout, Stream::Stdout),
                output(stderr, Stream::Stderr),
            ],
            stdin,
            None,
        ),
        Stdio3::Pty { master } => {
            let input = rustix::io::dup(&master).map_err(errno)?;
            let resize = rustix::io::dup(&master).map_err(errno)?;
            (
                vec![output(master, Stream::Stdout)],
                Some(input),
                Some(resize),
            )
        }
    })
}
