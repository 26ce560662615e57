//! SPDY/3.1 frames as Go's spdystream reads and writes them: the 8-byte control header, the data
//! frame, and the payload of each control type. Parsing never allocates from a length it has not
//! checked against the limits first.

use bytes::{Bytes, BytesMut};

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const SETTINGS: u16 = 4;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const WINDOW_UPDATE: u16 = 9;

pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status codes used here.
pub const PROTOCOL_ERROR: u32 = 1;
pub const REFUSED_STREAM: u32 = 3;
pub const CANCEL: u32 = 5;

/// GOAWAY status codes.
pub const GOAWAY_OK: u32 = 0;
pub const GOAWAY_PROTOCOL_ERROR: u32 = 1;

/// How large frames may be: the peers this server talks to send tiny control frames and data in
/// pieces of at most 32 KiB; anything far larger is refused instead of buffered.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Payload of a control frame that carries a header block.
    pub max_control: usize,
    /// Payload of a data frame.
    pub max_data: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_control: 16 * 1024,
            max_data: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        id: u32,
        flags: u8,
        header_block: Bytes,
    },
    SynReply {
        id: u32,
        flags: u8,
        header_block: Bytes,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Settings,
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        id: u32,
        flags: u8,
        header_block: Bytes,
    },
    WindowUpdate,
    Data {
        id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control type spdystream does not know: skipped whole.
    Unknown {
        kind: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("SPDY protocol error: {0}")]
    Invalid(String),
    #[error("SPDY frame of {0} bytes is over the limit")]
    TooLarge(usize),
}

fn invalid(message: &str) -> FrameError {
    FrameError::Invalid(message.to_owned())
}

fn id31(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Takes one whole frame off the front of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let control = buf[0] & 0x80 != 0;
    let flags = buf[4];
    let length = usize::from(buf[5]) << 16 | usize::from(buf[6]) << 8 | usize::from(buf[7]);
    if control {
        let version = u16::from_be_bytes([buf[0] & 0x7f, buf[1]]);
        if version != 3 {
            return Err(FrameError::Invalid(format!("SPDY version {version}")));
        }
    }
    let limit = if control {
        limits.max_control
    } else {
        limits.max_data
    };
    if length > limit {
        return Err(FrameError::TooLarge(length));
    }
    if buf.len() < 8 + length {
        return Ok(None);
    }
    let head = buf.split_to(8);
    let payload = buf.split_to(length).freeze();
    if !control {
        return data_frame(&head, flags, payload).map(Some);
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    control_frame(kind, flags, payload).map(Some)
}

fn data_frame(head: &[u8], flags: u8, data: Bytes) -> Result<Frame, FrameError> {
    let id = id31(&head[0..4]);
    if id == 0 {
        return Err(invalid("DATA on stream 0"));
    }
    Ok(Frame::Data { id, flags, data })
}

/// The payload of a control frame of `kind`, checked against what that kind must hold.
fn control_frame(kind: u16, flags: u8, payload: Bytes) -> Result<Frame, FrameError> {
    let p = &payload[..];
    Ok(match kind {
        SYN_STREAM => {
            let id = stream_of(p, 10, "SYN_STREAM")?;
            Frame::SynStream {
                id,
                flags,
                header_block: payload.slice(10..),
            }
        }
        SYN_REPLY => Frame::SynReply {
            id: stream_of(p, 4, "SYN_REPLY")?,
            flags,
            header_block: payload.slice(4..),
        },
        HEADERS => Frame::Headers {
            id: stream_of(p, 4, "HEADERS")?,
            flags,
            header_block: payload.slice(4..),
        },
        RST_STREAM => {
            if p.len() != 8 {
                return Err(invalid("RST_STREAM length is not 8"));
            }
            let (id, status) = (id31(p), u32_at(&p[4..]));
            if id == 0 || status == 0 {
                return Err(invalid("RST_STREAM with stream 0 or status 0"));
            }
            Frame::RstStream { id, status }
        }
        SETTINGS => {
            if p.len() < 4 || p.len() != 4 + 8 * u32_at(p) as usize {
                return Err(invalid("SETTINGS count does not match its length"));
            }
            Frame::Settings
        }
        PING => {
            if p.len() != 4 || flags != 0 || u32_at(p) == 0 {
                return Err(invalid("bad PING"));
            }
            Frame::Ping { id: u32_at(p) }
        }
        GOAWAY => {
            if p.len() != 8 || flags != 0 {
                return Err(invalid("bad GOAWAY"));
            }
            Frame::GoAway {
                last_good: id31(p),
                status: u32_at(&p[4..]),
            }
        }
        WINDOW_UPDATE => {
            if p.len() != 8 || flags != 0 {
                return Err(invalid("bad WINDOW_UPDATE"));
            }
            Frame::WindowUpdate
        }
        other => Frame::Unknown { kind: other },
    })
}

/// The stream a frame that opens with a stream ID names: at least `min_len` bytes long, never
/// stream 0.
fn stream_of(p: &[u8], min_len: usize, kind: &'static str) -> Result<u32, FrameError> {
    if p.len() < min_len {
        return Err(FrameError::Invalid(format!("short {kind}")));
    }
    match id31(p) {
        0 => Err(FrameError::Invalid(format!("{kind} for stream 0"))),
        id => Ok(id),
    }
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(8 + len);
    out.extend_from_slice(&[0x80, 0x03]);
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

pub fn syn_reply(id: u32, header_block: &[u8]) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(header_block);
    control(SYN_REPLY, 0, &p)
}

pub fn rst_stream(id: u32, status: u32) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&status.to_be_bytes());
    control(RST_STREAM, 0, &p)
}

pub fn ping(id: u32) -> Vec<u8> {
    control(PING, 0, &id.to_be_bytes())
}

pub fn goaway(last_good: u32, status: u32) -> Vec<u8> {
    let mut p = last_good.to_be_bytes().to_vec();
    p.extend_from_slice(&status.to_be_bytes());
    control(GOAWAY, 0, &p)
}

/// A data frame (the caller keeps `data` within 2^24 − 1 bytes).
pub fn data(id: u32, fin: bool, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.push(if fin { FLAG_FIN } else { 0 });
    out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(data);
    out
}

/// A client's SYN_STREAM (for tests and test clients).
pub fn syn_stream(id: u32, flags: u8, header_block: &[u8]) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(header_block);
    control(SYN_STREAM, flags, &p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::test_bytes::hex;

    fn one(bytes: &[u8]) -> Result<Option<Frame>, FrameError> {
        parse(&mut BytesMut::from(bytes), &Limits::default())
    }

    #[test]
    fn uncompressed_frames_match_the_note_byte_for_byte() {
        assert_eq!(
            rst_stream(3, CANCEL),
            hex("80 03 00 03 00 00 00 08 00 00 00 03 00 00 00 05")
        );
        assert_eq!(ping(1), hex("80 03 00 06 00 00 00 04 00 00 00 01"));
        assert_eq!(
            goaway(9, 0),
            hex("80 03 00 07 00 00 00 08 00 00 00 09 00 00 00 00")
        );
        assert_eq!(
            data(5, false, b"hi\n"),
            hex("00 00 00 05 00 00 00 03 68 69 0a")
        );
        assert_eq!(data(5, true, b""), hex("00 00 00 05 01 00 00 00"));
        assert_eq!(one(&ping(1)).unwrap(), Some(Frame::Ping { id: 1 }));
        assert_eq!(
            one(&rst_stream(3, CANCEL)).unwrap(),
            Some(Frame::RstStream {
                id: 3,
                status: CANCEL
            })
        );
        assert_eq!(
            one(&data(5, true, b"x")).unwrap(),
            Some(Frame::Data {
                id: 5,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"x")
            })
        );
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let frame = data(7, false, b"hello");
        let mut buf = BytesMut::from(&frame[..6]);
        assert_eq!(parse(&mut buf, &Limits::default()).unwrap(), None);
        buf.extend_from_slice(&frame[6..]);
        assert!(matches!(
            parse(&mut buf, &Limits::default()).unwrap(),
            Some(Frame::Data { id: 7, .. })
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn malformed_frames_are_refused() {
        for bad in [
            hex("00 00 00 00 00 00 00 00"), // DATA on stream 0
            hex("80 03 00 03 00 00 00 08 00 00 00 03 00 00 00 00"), // RST status 0
            hex("80 03 00 06 00 00 00 04 00 00 00 00"), // PING id 0
            hex("80 03 00 06 01 00 00 04 00 00 00 01"), // PING flags
            hex("80 03 00 07 00 00 00 04 00 00 00 09"), // GOAWAY length 4
            hex("80 03 00 09 00 00 00 04 00 00 00 01"), // WINDOW_UPDATE length 4
            hex("80 03 00 04 00 00 00 04 00 00 00 05"), // SETTINGS count 5, no entries
            hex("80 02 00 06 00 00 00 04 00 00 00 01"), // version 2
        ] {
            assert!(one(&bad).is_err(), "{bad:02x?}");
        }
        let huge = hex("00 00 00 01 00 ff ff ff");
        assert_eq!(one(&huge).unwrap_err(), FrameError::TooLarge(0xff_ffff));
    }

    #[test]
    fn unknown_control_frames_are_skipped_whole() {
        let mut buf = BytesMut::from(&hex("80 03 00 0a 00 00 00 02 aa bb")[..]);
        buf.extend_from_slice(&ping(3));
        let limits = Limits::default();
        assert_eq!(
            parse(&mut buf, &limits).unwrap(),
            Some(Frame::Unknown { kind: 10 })
        );
        assert_eq!(
            parse(&mut buf, &limits).unwrap(),
            Some(Frame::Ping { id: 3 })
        );
    }
}
