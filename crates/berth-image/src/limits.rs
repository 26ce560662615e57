//! Bounds on what a layer may make berth do. A registry controls the bytes; without bounds, a
//! gzip bomb fills the disk, a long-name or PAX header of gigabytes is read into memory whole by
//! the tar parser, and millions of empty entries fill the unpacker's bookkeeping.
//!
//! [`TarGuard`] sits between the decompressor and the tar parser and follows the archive's
//! structure on its own, as the `tar` crate reads it (header blocks, entry sizes with PAX `size`
//! overrides, GNU sparse extension blocks), so that it refuses an oversized header body before
//! the parser starts reading it.

use std::io::{self, Read};

/// Layer limits, with generous but finite defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerLimits {
    /// Uncompressed bytes of one layer (its tar stream).
    pub max_unpacked_bytes: u64,
    /// Entries (files, dirs, links…) of one layer.
    pub max_entries: u64,
    /// The body of one GNU long-name or long-link entry, or of a PAX header (Go's archive/tar
    /// allows 1 MiB too).
    pub max_header_body: u64,
}

impl Default for LayerLimits {
    fn default() -> LayerLimits {
        LayerLimits {
            max_unpacked_bytes: 64 << 30,
            max_entries: 1 << 20,
            max_header_body: 1 << 20,
        }
    }
}

/// What a layer went beyond (the error inside the io::Error the guard answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("the layer unpacks to more than {0} bytes")]
    UnpackedBytes(u64),
    #[error("the layer has more than {0} entries")]
    Entries(u64),
    #[error("a tar header body of {size} bytes is larger than the {limit} allowed")]
    HeaderBody { size: u64, limit: u64 },
    #[error("a tar header has a size field that is not a number")]
    BadSize,
}

impl LimitExceeded {
    fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// The layer's bytes could not be read as what they claim to be (a corrupt compressed stream).
#[derive(Debug, thiserror::Error)]
#[error("the layer's stream is corrupt: {0}")]
pub struct CorruptStream(#[source] io::Error);

/// Whether an error of reading or unpacking a layer comes from what the layer holds (a limit, a
/// corrupt stream) rather than from the node.
pub fn is_the_layers_fault(e: &io::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|e| e as _);
    while let Some(c) = cause {
        if c.is::<LimitExceeded>() || c.is::<CorruptStream>() {
            return true;
        }
        cause = c.source();
    }
    false
}

const BLOCK: usize = 512;

/// Where the guard is in the archive.
#[derive(Debug)]
enum Position {
    /// Collecting a header block (bytes filled so far).
    Header(usize),
    /// Collecting a GNU sparse extension block.
    SparseExtension(usize),
    /// Passing an entry's body and padding (`left` bytes); the body of a PAX header (its first
    /// `size` bytes) is kept to read its `size` record.
    Body { left: u64, pax: Option<PaxBody> },
    /// After the end-of-archive block: nothing more is parsed.
    End,
}

#[derive(Debug)]
struct PaxBody {
    bytes: Vec<u8>,
    size: u64,
}

/// Counts and checks what passes through; see the module's doc.
pub struct TarGuard<R> {
    inner: R,
    limits: LayerLimits,
    total: u64,
    entries: u64,
    block: [u8; BLOCK],
    at: Position,
    /// The `size` of the PAX header just read, for the next entry.
    pax_size: Option<u64>,
    /// The body of a GNU sparse entry, which follows its extension blocks.
    sparse_body: u64,
}

impl<R: Read> TarGuard<R> {
    pub fn new(inner: R, limits: LayerLimits) -> TarGuard<R> {
        TarGuard {
            inner,
            limits,
            total: 0,
            entries: 0,
            block: [0; BLOCK],
            at: Position::Header(0),
            pax_size: None,
            sparse_body: 0,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn follow(&mut self, mut bytes: &[u8]) -> Result<(), LimitExceeded> {
        while !bytes.is_empty() {
            match &mut self.at {
                Position::End => return Ok(()),
                Position::Header(filled) | Position::SparseExtension(filled) => {
                    let n = (BLOCK - *filled).min(bytes.len());
                    self.block[*filled..*filled + n].copy_from_slice(&bytes[..n]);
                    *filled += n;
                    bytes = &bytes[n..];
                    if *filled == BLOCK {
                        self.at = match self.at {
                            Position::SparseExtension(_) => self.after_extension(),
                            _ => self.after_header()?,
                        };
                    }
                }
                Position::Body { left, pax } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    if let Some(pax) = pax {
                        let wanted = pax.size.saturating_sub(pax.bytes.len() as u64);
                        let kept = (wanted as usize).min(n);
                        pax.bytes.extend_from_slice(&bytes[..kept]);
                    }
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        if let Some(pax) = pax.take() {
                            self.pax_size = pax_size(&pax.bytes);
                        }
                        self.at = Position::Header(0);
                    }
                }
            }
        }
        Ok(())
    }

    /// A header block is complete: what comes after it.
    fn after_header(&mut self) -> Result<Position, LimitExceeded> {
        let header = &self.block;
        if header.iter().all(|b| *b == 0) {
            return Ok(Position::End);
        }
        let kind = header[156];
        let mut size = entry_size(&header[124..136])?;
        let recognized = &header[257..265] == b"ustar\x0000" || &header[257..265] == b"ustar  \0";
        let extension = matches!(kind, b'L' | b'K' | b'x' | b'g');
        if extension {
            if size > self.limits.max_header_body {
                return Err(LimitExceeded::HeaderBody {
                    size,
                    limit: self.limits.max_header_body,
                });
            }
        } else {
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(LimitExceeded::Entries(self.limits.max_entries));
            }
            if let Some(pax) = self.pax_size.take() {
                size = pax;
            }
        }
        let padded = size
            .div_ceil(BLOCK as u64)
            .checked_mul(BLOCK as u64)
            .ok_or(LimitExceeded::BadSize)?;
        // The tar crate keeps a PAX header only when its block has a ustar or GNU magic.
        let pax = (kind == b'x' && recognized).then(|| PaxBody {
            bytes: Vec::new(),
            size,
        });
        if kind == b'S' && header[482] != 0 {
            self.sparse_body = padded;
            return Ok(Position::SparseExtension(0));
        }
        Ok(Self::body(padded, pax))
    }

    fn body(left: u64, pax: Option<PaxBody>) -> Position {
        if left == 0 {
            Position::Header(0)
        } else {
            Position::Body { left, pax }
        }
    }

    /// A GNU sparse extension block is complete: another one, or the entry's body.
    fn after_extension(&mut self) -> Position {
        if self.block[504] != 0 {
            return Position::SparseExtension(0);
        }
        Self::body(std::mem::take(&mut self.sparse_body), None)
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| {
            if crate::layer_stream::is_keep_failure(&e) {
                e
            } else {
                io::Error::other(CorruptStream(e))
            }
        })?;
        self.total += n as u64;
        if self.total > self.limits.max_unpacked_bytes {
            return Err(LimitExceeded::UnpackedBytes(self.limits.max_unpacked_bytes).into_io());
        }
        self.follow(&buf[..n]).map_err(LimitExceeded::into_io)?;
        Ok(n)
    }
}

/// A tar number field: octal text, or GNU's base-256 with the high bit set.
fn entry_size(field: &[u8]) -> Result<u64, LimitExceeded> {
    if field[0] & 0x80 != 0 {
        let mut value: u64 = 0;
        for (i, b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { *b };
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or(LimitExceeded::BadSize)?;
        }
        return Ok(value);
    }
    let text: &[u8] = {
        let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
        &field[..end]
    };
    let text = std::str::from_utf8(text).map_err(|_| LimitExceeded::BadSize)?;
    let text = text.trim_matches(' ');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| LimitExceeded::BadSize)
}

/// The `size` record of a PAX header body (`<len> size=<n>\n`…), as the tar crate reads it.
fn pax_size(body: &[u8]) -> Option<u64> {
    let mut rest = body;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"size=") {
            return std::str::from_utf8(value).ok()?.parse().ok();
        }
        rest = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }

    fn guarded(bytes: &[u8], limits: LayerLimits) -> Result<u64, io::Error> {
        let mut guard = TarGuard::new(bytes, limits);
        io::copy(&mut guard, &mut io::sink())?;
        Ok(guard.entries)
    }

    #[test]
    fn entries_are_counted_through_long_names_and_pax_headers() {
        let long = "d/".repeat(200) + "file";
        let bytes = archive(|b| {
            file(b, "a", b"1234");
            file(b, &long, &[7; 1000]);
            let mut pax = tar::Header::new_ustar();
            let size_record = b"12 size=700\n";
            pax.set_size(size_record.len() as u64);
            pax.set_entry_type(tar::EntryType::XHeader);
            b.append_data(&mut pax, "pax", &size_record[..]).unwrap();
            let mut big = tar::Header::new_ustar();
            big.set_size(0);
            big.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut big, "sized-by-pax", &[9u8; 700][..])
                .unwrap();
            file(b, "z", b"end");
        });
        assert_eq!(guarded(&bytes, LayerLimits::default()).unwrap(), 4);
    }

    #[test]
    fn each_limit_is_refused_by_name() {
        let long = "x".repeat(3000);
        let bytes = archive(|b| file(b, &long, b"1"));
        let small = LayerLimits {
            max_header_body: 1024,
            ..LayerLimits::default()
        };
        let err = guarded(&bytes, small).unwrap_err();
        assert!(
            err.to_string().contains("tar header body of 3001 bytes"),
            "{err}"
        );

        let many = archive(|b| (0..10).for_each(|n| file(b, &format!("f{n}"), b"")));
        let few = LayerLimits {
            max_entries: 9,
            ..LayerLimits::default()
        };
        assert!(
            guarded(&many, few)
                .unwrap_err()
                .to_string()
                .contains("more than 9 entries")
        );

        let tiny = LayerLimits {
            max_unpacked_bytes: 1000,
            ..LayerLimits::default()
        };
        let err = guarded(&many, tiny).unwrap_err();
        assert!(err.to_string().contains("more than 1000 bytes"), "{err}");
    }

    #[test]
    fn size_fields_in_octal_and_base_256() {
        assert_eq!(entry_size(b"00000001750\0").unwrap(), 1000);
        let mut binary = [0u8; 12];
        binary[0] = 0x80;
        binary[10] = 0x01;
        assert_eq!(entry_size(&binary).unwrap(), 256);
        assert_eq!(entry_size(b"nonsense\0\0\0\0"), Err(LimitExceeded::BadSize));
        assert_eq!(pax_size(b"11 path=ab\n12 size=700\n"), Some(700));
        assert_eq!(pax_size(b"garbage"), None);
    }
}
