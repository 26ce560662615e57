//! Any `:authority` a gRPC client sends is accepted. The HTTP/2 server below tonic refuses a
//! request whose `:authority` is not a valid URI authority with RST_STREAM PROTOCOL_ERROR, and
//! the C-core gRPC clients (Python, Ruby, C++, PHP) send the unix socket's path there,
//! percent-encoded (`run%2Fberth%2Fberth.sock`), which is no valid host. An authority means
//! nothing on a unix socket, so this filter sits on each connection's client-to-server bytes:
//! it passes every frame through as it is but HEADERS and CONTINUATION, whose header block it
//! decodes (with the client's HPACK state), and sends on re-encoded as plain literals, an
//! unusable `:authority` replaced by `localhost`. Re-encoding every block, not only those that
//! need the change, keeps the server's HPACK table in step (it stays empty). A block that cannot
//! be decoded is passed through untouched and the filter steps aside for the rest of the
//! connection: the server then answers the malformed input itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::hpack;

/// What stands in for an authority that is no URI authority.
const STAND_IN: &[u8] = b"localhost";

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;
/// Frames this filter writes are never larger: the least SETTINGS_MAX_FRAME_SIZE a peer may set.
const MAX_FRAME_PAYLOAD: usize = 16 * 1024;
/// A header block larger than this is passed through for the server to refuse (h2's own limit
/// on a header list is 16 KiB by default).
const MAX_BLOCK: usize = 1024 * 1024;

/// A connection's stream with the filter on the bytes read from it; writes pass straight through.
#[derive(Debug)]
pub struct AuthorityFilter<S> {
    inner: S,
    state: Filter,
}

impl<S> AuthorityFilter<S> {
    pub fn new(inner: S) -> Self {
        AuthorityFilter {
            inner,
            state: Filter::default(),
        }
    }
}

/// The client-to-server byte stream, frame by frame.
#[derive(Debug)]
struct Filter {
    /// Bytes read and not yet looked at.
    input: BytesMut,
    /// Bytes ready for the server.
    output: BytesMut,
    preface_left: usize,
    /// Payload bytes of the current frame still to copy as they are.
    copy_left: usize,
    /// A header block whose END_HEADERS has not come yet.
    pending: Option<PendingBlock>,
    decoder: hpack::Decoder,
    /// A block could not be decoded: from then on every byte passes as it is.
    aside: bool,
}

#[derive(Debug)]
struct PendingBlock {
    stream: u32,
    /// The HEADERS frame's END_STREAM and PRIORITY flags, and its priority fields.
    flags: u8,
    priority: Option<[u8; PRIORITY_LEN]>,
    fragments: Vec<u8>,
    /// The frames as they came, for passing them on untouched if the block is undecodable.
    raw: Vec<u8>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            input: BytesMut::new(),
            output: BytesMut::new(),
            preface_left: PREFACE_LEN,
            copy_left: 0,
            pending: None,
            decoder: hpack::Decoder::default(),
            aside: false,
        }
    }
}

struct FrameHeader {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHeader {
    fn parse(b: &[u8]) -> FrameHeader {
        FrameHeader {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    fn write(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
        out.put_uint(len as u64, 3);
        out.put_u8(kind);
        out.put_u8(flags);
        out.put_u32(stream);
    }
}

impl Filter {
    /// Moves what can be decided from `input` to `output`.
    fn process(&mut self) {
        loop {
            if self.aside {
                let all = self.input.split();
                self.output.unsplit(all);
                return;
            }
            if self.preface_left > 0 || self.copy_left > 0 {
                let left = if self.preface_left > 0 {
                    &mut self.preface_left
                } else {
                    &mut self.copy_left
                };
                let n = (*left).min(self.input.len());
                if n == 0 {
                    return;
                }
                *left -= n;
                let bytes = self.input.split_to(n);
                self.output.unsplit(bytes);
                continue;
            }
            if self.input.len() < FRAME_HEADER_LEN {
                return;
            }
            let header = FrameHeader::parse(&self.input[..FRAME_HEADER_LEN]);
            let in_block =
                header.kind == HEADERS || (header.kind == CONTINUATION && self.pending.is_some());
            if !in_block {
                if self.pending.is_some() {
                    // Another frame inside a header block: the server refuses that itself.
                    self.step_aside();
                    continue;
                }
                let bytes = self.input.split_to(FRAME_HEADER_LEN);
                self.output.unsplit(bytes);
                self.copy_left = header.len;
                continue;
            }
            if header.len > MAX_FRAME_PAYLOAD * 64 {
                self.step_aside();
                continue;
            }
            if self.input.len() < FRAME_HEADER_LEN + header.len {
                return;
            }
            let frame = self.input.split_to(FRAME_HEADER_LEN + header.len);
            if self.take_block_frame(&header, &frame).is_err() {
                if let Some(p) = self.pending.take() {
                    self.output.extend_from_slice(&p.raw);
                }
                self.output.extend_from_slice(&frame);
                self.aside = true;
            }
        }
    }

    /// Everything held back goes on as it came, and so does the rest of the connection.
    fn step_aside(&mut self) {
        if let Some(p) = self.pending.take() {
            self.output.extend_from_slice(&p.raw);
        }
        self.aside = true;
    }

    /// Adds a HEADERS or CONTINUATION frame to the block; at END_HEADERS, writes it re-encoded.
    /// On an error, what is pending holds the block's earlier frames, not this one.
    fn take_block_frame(&mut self, header: &FrameHeader, frame: &[u8]) -> Result<(), ()> {
        let payload = self.fragment_of(header, &frame[FRAME_HEADER_LEN..])?;
        let pending = self.pending.as_mut().ok_or(())?;
        if header.stream != pending.stream || pending.fragments.len() + payload.len() > MAX_BLOCK {
            return Err(());
        }
        pending.fragments.extend_from_slice(payload);
        if header.flags & END_HEADERS == 0 {
            pending.raw.extend_from_slice(frame);
            return Ok(());
        }
        let block = self.pending.take().ok_or(())?;
        match self.decoder.decode(&block.fragments) {
            Ok(mut fields) => {
                fix_authority(&mut fields);
                self.write_block(&block, &hpack::encode_plain(&fields));
                Ok(())
            }
            Err(_) => {
                self.pending = Some(block);
                Err(())
            }
        }
    }

    /// The header block fragment of a frame; a HEADERS frame opens the pending block (its
    /// padding dropped, its priority fields kept).
    fn fragment_of<'f>(
        &mut self,
        header: &FrameHeader,
        mut payload: &'f [u8],
    ) -> Result<&'f [u8], ()> {
        if header.kind != HEADERS {
            return Ok(payload);
        }
        if self.pending.is_some() || header.stream == 0 {
            return Err(());
        }
        if header.flags & PADDED != 0 {
            let (&pad, rest) = payload.split_first().ok_or(())?;
            let keep = rest.len().checked_sub(usize::from(pad)).ok_or(())?;
            payload = &rest[..keep];
        }
        let priority = if header.flags & PRIORITY != 0 {
            let (fields, rest) = payload.split_first_chunk::<PRIORITY_LEN>().ok_or(())?;
            payload = rest;
            Some(*fields)
        } else {
            None
        };
        self.pending = Some(PendingBlock {
            stream: header.stream,
            flags: header.flags & (END_STREAM | PRIORITY),
            priority,
            fragments: Vec::new(),
            raw: Vec::new(),
        });
        Ok(payload)
    }

    /// The block as a HEADERS frame and as many CONTINUATION frames as its size needs.
    fn write_block(&mut self, block: &PendingBlock, encoded: &[u8]) {
        let first_room = MAX_FRAME_PAYLOAD - block.priority.map_or(0, |_| PRIORITY_LEN);
        let (first, mut rest) = encoded.split_at(encoded.len().min(first_room));
        let end = if rest.is_empty() { END_HEADERS } else { 0 };
        let priority_len = block.priority.map_or(0, |_| PRIORITY_LEN);
        FrameHeader::write(
            &mut self.output,
            first.len() + priority_len,
            HEADERS,
            block.flags | end,
            block.stream,
        );
        if let Some(p) = block.priority {
            self.output.extend_from_slice(&p);
        }
        self.output.extend_from_slice(first);
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
            let end = if after.is_empty() { END_HEADERS } else { 0 };
            FrameHeader::write(
                &mut self.output,
                chunk.len(),
                CONTINUATION,
                end,
                block.stream,
            );
            self.output.extend_from_slice(chunk);
            rest = after;
        }
    }
}

/// Replaces an `:authority` that is no URI authority (empty included) with the stand-in.
fn fix_authority(fields: &mut [hpack::Field]) {
    for (name, value) in fields.iter_mut() {
        if name.as_slice() == b":authority"
            && http::uri::Authority::try_from(value.as_slice()).is_err()
        {
            *value = STAND_IN.to_vec();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFilter<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.state.output.is_empty() {
                let n = this.state.output.len().min(buf.remaining());
                buf.put_slice(&this.state.output[..n]);
                this.state.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client's end: whatever is held back goes on, then the EOF.
                this.state.step_aside();
                this.state.process();
                if this.state.output.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.state.input.extend_from_slice(read.filled());
            this.state.process();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFilter<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected
    for AuthorityFilter<S>
{
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        FrameHeader::write(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    fn request_block(authority: &str) -> Vec<u8> {
        hpack::encode_plain(&[
            (b":method".to_vec(), b"POST".to_vec()),
            (b":authority".to_vec(), authority.as_bytes().to_vec()),
            (
                b":path".to_vec(),
                b"/runtime.v1.RuntimeService/Version".to_vec(),
            ),
        ])
    }

    /// Feeds `input` in pieces of `step` bytes; what the server would read.
    fn filtered(input: &[u8], step: usize) -> Vec<u8> {
        let mut f = Filter::default();
        for piece in input.chunks(step) {
            f.input.extend_from_slice(piece);
            f.process();
        }
        f.output.to_vec()
    }

    /// The header blocks of each HEADERS frame and its CONTINUATIONs, decoded.
    fn blocks(mut bytes: &[u8]) -> Vec<Vec<hpack::Field>> {
        bytes = &bytes[PREFACE_LEN..];
        let mut d = hpack::Decoder::default();
        let (mut out, mut block) = (Vec::new(), Vec::new());
        while !bytes.is_empty() {
            let h = FrameHeader::parse(bytes);
            let payload = &bytes[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.len];
            if h.kind == HEADERS || h.kind == CONTINUATION {
                let skip = if h.flags & PRIORITY != 0 {
                    PRIORITY_LEN
                } else {
                    0
                };
                block.extend_from_slice(&payload[skip..]);
                if h.flags & END_HEADERS != 0 {
                    out.push(d.decode(&block).unwrap());
                    block.clear();
                }
            }
            bytes = &bytes[FRAME_HEADER_LEN + h.len..];
        }
        out
    }

    fn authority(block: &[hpack::Field]) -> String {
        block
            .iter()
            .find(|(n, _)| n == b":authority")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn odd_authorities_become_localhost_and_good_ones_stay() {
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        // Padded, with priority, split across a CONTINUATION.
        let block = request_block("run%2Fberth%2Fberth.sock");
        let mut payload = vec![3u8];
        payload.extend_from_slice(&[0, 0, 0, 0, 16]);
        payload.extend_from_slice(&block[..10]);
        payload.extend_from_slice(&[0, 0, 0]);
        input.extend(frame(HEADERS, PADDED | PRIORITY, 1, &payload));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, &block[10..]));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        input.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &request_block("localhost:0"),
        ));
        input.extend(frame(HEADERS, END_HEADERS, 5, &request_block("")));
        for step in [1, 7, 4096] {
            let out = filtered(&input, step);
            let got: Vec<String> = blocks(&out).iter().map(|b| authority(b)).collect();
            assert_eq!(
                got,
                ["localhost", "localhost:0", "localhost"],
                "step {step}"
            );
            assert!(
                out.windows(5).any(|w| w == b"\0\0\0\0\0"),
                "DATA passes through"
            );
        }
    }

    #[test]
    fn an_undecodable_block_passes_untouched_and_so_does_the_rest() {
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &[0xbf]));
        input.extend(frame(HEADERS, END_HEADERS, 3, &request_block("a%2Fb")));
        assert_eq!(filtered(&input, 3), input);
    }
}
