//! Version 1 of the berthd ↔ berth-monitor protocol.
//!
//! Start-up: berthd runs `berth-monitor <args>` with its working directory set to the container's
//! state dir; the monitor runs `runc create` and writes one line on its stdout — `ok <pid>` or
//! `error <message>` — then closes it.
//!
//! The socket (`monitor.sock` in the state dir): a client sends one request line —
//! `berth-monitor/1 attach <stdin> <stdout> <stderr>` (each `0` or `1`) or
//! `berth-monitor/1 reopen` — and gets `ok` or `error <message>`. After an attach `ok`, frames flow
//! both ways: a kind byte, a big-endian u32 length, the payload. The monitor sends STDOUT and
//! STDERR frames; the client sends STDIN, STDIN_CLOSE and RESIZE (rows, cols: two big-endian u16).
//! The monitor closes the connection when the container has exited.
//!
//! The exit record (`exit` in the state dir) is written atomically once the container has exited:
//! `key=value` lines for version, exit_code, signal, oom_killed, finished_at.

use std::fmt;

pub const VERSION: u32 = 1;
pub const SOCKET: &str = "monitor.sock";
pub const EXIT_RECORD: &str = "exit";
pub const PID_FILE: &str = "pid";
pub const CONSOLE_SOCKET: &str = "console.sock";
/// runc's own log (JSON lines), where `runc create` errors are read from.
pub const RUNC_LOG: &str = "runc.log";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STDIN_CLOSE: u8 = 3;
pub const RESIZE: u8 = 4;

/// Frames larger than this are a protocol error.
pub const MAX_FRAME: usize = 1 << 20;

/// What is wrong with a request, frame or exit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// The request names another protocol version (or none).
    UnsupportedVersion,
    /// A request this version does not know, or one with bad arguments.
    BadRequest(String),
    FrameTooLarge(usize),
    /// The exit record of another version.
    ExitRecordVersion(String),
    /// A field of the exit record that does not parse.
    BadExitField {
        key: String,
        value: String,
    },
    ExitRecordIncomplete,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::UnsupportedVersion => write!(
                f,
                "unsupported protocol (this monitor speaks berth-monitor/{VERSION})"
            ),
            ProtoError::BadRequest(what) => write!(f, "bad request: {what}"),
            ProtoError::FrameTooLarge(len) => write!(f, "frame of {len} bytes is too large"),
            ProtoError::ExitRecordVersion(v) => {
                write!(f, "exit record version {v}, not {VERSION}")
            }
            ProtoError::BadExitField { key, value } => {
                write!(f, "exit record: bad {key} `{value}`")
            }
            ProtoError::ExitRecordIncomplete => write!(f, "exit record is incomplete"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// A request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Reopen,
    /// Send this signal to the container's process through the monitor's pidfd of it (no
    /// `runc kill` to start, and never a recycled PID).
    Signal(i32),
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = |b: bool| if b { 1 } else { 0 };
        match self {
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => write!(
                f,
                "berth-monitor/{VERSION} attach {} {} {}",
                bit(*stdin),
                bit(*stdout),
                bit(*stderr)
            ),
            Request::Reopen => write!(f, "berth-monitor/{VERSION} reopen"),
            Request::Signal(n) => write!(f, "berth-monitor/{VERSION} signal {n}"),
        }
    }
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, ProtoError> {
        let mut words = line.split_whitespace();
        if words.next() != Some(&format!("berth-monitor/{VERSION}")) {
            return Err(ProtoError::UnsupportedVersion);
        }
        let flag = |w: Option<&str>| match w {
            Some("1") => Ok(true),
            Some("0") => Ok(false),
            _ => Err(ProtoError::BadRequest(
                "attach wants three 0/1 flags".into(),
            )),
        };
        match words.next() {
            Some("attach") => Ok(Request::Attach {
                stdin: flag(words.next())?,
                stdout: flag(words.next())?,
                stderr: flag(words.next())?,
            }),
            Some("reopen") => Ok(Request::Reopen),
            Some("signal") => words
                .next()
                .and_then(|w| w.parse().ok())
                .filter(|n| (1..=64).contains(n))
                .map(Request::Signal)
                .ok_or_else(|| ProtoError::BadRequest("signal wants a number from 1 to 64".into())),
            other => Err(ProtoError::BadRequest(format!("unknown request {other:?}"))),
        }
    }
}

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn resize_frame(rows: u16, cols: u16) -> Vec<u8> {
    let mut payload = rows.to_be_bytes().to_vec();
    payload.extend_from_slice(&cols.to_be_bytes());
    frame(RESIZE, &payload)
}

/// Splits a byte stream into frames as bytes arrive.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, ProtoError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(ProtoError::FrameTooLarge(len));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

/// How the container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    /// The exit status, or 128 + the signal that killed it.
    pub exit_code: i32,
    /// The signal that killed it, or 0.
    pub signal: i32,
    pub oom_killed: bool,
    /// Nanoseconds since the epoch.
    pub finished_at: i64,
}

impl ExitRecord {
    pub fn to_text(&self) -> String {
        format!(
            "version={VERSION}\nexit_code={}\nsignal={}\noom_killed={}\nfinished_at={}\n",
            self.exit_code,
            self.signal,
            u8::from(self.oom_killed),
            self.finished_at
        )
    }

    pub fn parse(text: &str) -> Result<ExitRecord, ProtoError> {
        let mut record = ExitRecord {
            exit_code: 0,
            signal: 0,
            oom_killed: false,
            finished_at: 0,
        };
        let mut seen = 0;
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let bad = || ProtoError::BadExitField {
                key: key.to_owned(),
                value: value.to_owned(),
            };
            match key {
                "version" if value != VERSION.to_string() => {
                    return Err(ProtoError::ExitRecordVersion(value.to_owned()));
                }
                "exit_code" => record.exit_code = value.parse().map_err(|_| bad())?,
                "signal" => record.signal = value.parse().map_err(|_| bad())?,
                "oom_killed" => record.oom_killed = value == "1",
                "finished_at" => record.finished_at = value.parse().map_err(|_| bad())?,
                _ => continue,
            }
            seen += 1;
        }
        if seen < 4 {
            return Err(ProtoError::ExitRecordIncomplete);
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Attach {
                stdin: true,
                stdout: true,
                stderr: false,
            },
            Request::Reopen,
            Request::Signal(15),
        ] {
            assert_eq!(Request::parse(&r.to_string()).unwrap(), r);
        }
        assert!(Request::parse(&format!("berth-monitor/{VERSION} signal 0")).is_err());
        assert!(Request::parse(&format!("berth-monitor/{VERSION} signal TERM")).is_err());
        assert!(Request::parse("berth-monitor/2 reopen").is_err());
        assert!(Request::parse("berth-monitor/1 attach 1 1").is_err());
    }

    #[test]
    fn frames_split_at_any_boundary() {
        let mut bytes = frame(STDOUT, b"hello");
        bytes.extend(resize_frame(24, 80));
        let mut r = FrameReader::default();
        let mut got = Vec::new();
        for b in bytes {
            r.push(&[b]);
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            [(STDOUT, b"hello".to_vec()), (RESIZE, vec![0, 24, 0, 80])]
        );
    }

    #[test]
    fn exit_records_round_trip() {
        let r = ExitRecord {
            exit_code: 137,
            signal: 9,
            oom_killed: true,
            finished_at: 1_700_000_000_123_456_789,
        };
        assert_eq!(ExitRecord::parse(&r.to_text()).unwrap(), r);
        assert!(ExitRecord::parse("exit_code=1\n").is_err());
    }
}
