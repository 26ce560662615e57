//! One layer's bytes, from the network to the snapshot directory in a single pass: the compressed
//! stream is hashed (and optionally kept), decompressed (gzip, zstd or none, told by its magic
//! bytes), hashed again for the diff ID, and unpacked.

use std::io::{self, BufRead, BufReader, Read, Write};

use bytes::Bytes;

use crate::digest::{Digest, HashingReader};
use crate::limits::{LayerLimits, TarGuard};
use crate::unpack::{UnpackError, Unpacked, unpack_layer};

/// A blocking reader over chunks sent by the async download loop.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Copies what is read into a file as well (a kept layer blob).
struct Tee<R> {
    inner: R,
    copy: Option<std::fs::File>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(file) = &mut self.copy {
            file.write_all(&buf[..n])
                .map_err(|e| io::Error::other(KeepFailed(e)))?;
        }
        Ok(n)
    }
}

/// Writing the kept blob failed: the node's fault, not the layer's.
#[derive(Debug, thiserror::Error)]
#[error("keeping the layer blob: {0}")]
struct KeepFailed(#[source] io::Error);

pub(crate) fn is_keep_failure(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|e| e.is::<KeepFailed>())
}

enum Decoder<R: BufRead> {
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
    Plain(R),
}

impl<R: BufRead> Decoder<R> {
    fn sniff(mut inner: R) -> io::Result<Decoder<R>> {
        let head = inner.fill_buf()?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(inner)))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(inner)?)
        } else {
            Decoder::Plain(inner)
        })
    }

    fn into_inner(self) -> R {
        match self {
            Decoder::Gzip(d) => (*d).into_inner(),
            Decoder::Zstd(d) => d.finish(),
            Decoder::Plain(r) => r,
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Plain(r) => r.read(buf),
        }
    }
}

/// What a layer stream turned out to be.
pub struct Streamed {
    pub unpacked: Unpacked,
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("decompressing: {0}")]
    Read(#[from] io::Error),
}

/// Unpacks `source` into `fs` (deferred entries into `staging`) within `limits`, copying the
/// compressed bytes into `keep` when given. Reads the source to its end.
pub fn unpack_stream(
    source: impl Read,
    fs: &std::path::Path,
    staging: &std::path::Path,
    keep: Option<std::fs::File>,
    limits: LayerLimits,
) -> Result<Streamed, StreamError> {
    let compressed = HashingReader::new(Tee {
        inner: source,
        copy: keep,
    });
    let decoder = Decoder::sniff(BufReader::with_capacity(256 * 1024, compressed))?;
    let guarded = TarGuard::new(decoder, limits);
    let (unpacked, diff) = unpack_layer(HashingReader::new(guarded), fs, staging)?;
    let (diff_id, _, guarded) = diff.finish()?;
    let (digest, size, _) = guarded.into_inner().into_inner().into_inner().finish()?;
    Ok(Streamed {
        unpacked,
        digest,
        size,
        diff_id,
    })
}
