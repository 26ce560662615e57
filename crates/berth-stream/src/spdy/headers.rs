//! SPDY/3 header blocks: the name/value block layout, and its zlib compression with the SPDY/3
//! dictionary — one compression context per direction for the whole connection, each block
//! ended with a sync flush.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::{DICTIONARY_ID, dictionary};

/// Bounds on a received header block (after inflating).
const MAX_BLOCK: usize = 64 * 1024;
const MAX_PAIRS: usize = 64;
const MAX_FIELD: usize = 8 * 1024;

pub type HeaderPairs = Vec<(String, String)>;

/// A header block that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header block truncated")]
    Truncated,
    #[error("{0} header pairs is too many")]
    TooManyPairs(usize),
    #[error("header field longer than the block")]
    FieldTooLong,
    #[error("inflated header block is over 64 KiB")]
    BlockTooLarge,
    #[error("compressed header block size was incorrect")]
    WrongSize,
    #[error("header block wants dictionary {0:08x}")]
    UnknownDictionary(u32),
    #[error("bad compressed header block: {0}")]
    Inflate(String),
}

/// `u32 count`, then `u32 len + name`, `u32 len + value` per pair; names lower-case.
pub fn encode_block(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_be_bytes().to_vec();
    for (name, value) in pairs {
        let name = name.to_ascii_lowercase();
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Parses a name/value block, checking every length against what is left before using it.
pub fn decode_block(raw: &[u8]) -> Result<HeaderPairs, HeaderError> {
    let mut at = 0;
    let take_u32 = |at: &mut usize| -> Result<usize, HeaderError> {
        let b = raw.get(*at..*at + 4).ok_or(HeaderError::Truncated)?;
        *at += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = take_u32(&mut at)?;
    if count > MAX_PAIRS {
        return Err(HeaderError::TooManyPairs(count));
    }
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let field = |at: &mut usize| -> Result<String, HeaderError> {
            let len = take_u32(at)?;
            if len > MAX_FIELD || *at + len > raw.len() {
                return Err(HeaderError::FieldTooLong);
            }
            let text = String::from_utf8_lossy(&raw[*at..*at + len]).into_owned();
            *at += len;
            Ok(text)
        };
        let name = field(&mut at)?.to_ascii_lowercase();
        let value = field(&mut at)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The value of header `name` (case-insensitive); several values are joined with NUL.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(v))
}

/// Our side's compression context.
pub struct Deflater {
    z: Compress,
}

impl Default for Deflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflater {
    pub fn new() -> Deflater {
        let mut z = Compress::new(Compression::best(), true);
        // Cannot fail on a fresh stream with a valid dictionary.
        let _ = z.set_dictionary(dictionary());
        Deflater { z }
    }

    /// Compresses one header block, ending it with a sync flush.
    pub fn compress(&mut self, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let start_in = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start_in) as usize;
            out.reserve(64);
            let before_out = out.len();
            let status = self
                .z
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync);
            let all_in = (self.z.total_in() - start_in) as usize == block.len();
            let room_left = out.len() < out.capacity();
            match status {
                Ok(Status::Ok | Status::BufError) if all_in && room_left => return out,
                Ok(_) if out.len() == before_out && all_in => return out,
                Ok(_) => {}
                Err(_) => return out,
            }
        }
    }
}

/// The peer's compression context, inflated on our side.
pub struct Inflater {
    z: Decompress,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Inflater {
        Inflater {
            z: Decompress::new(true),
        }
    }

    /// Inflates one header block: exactly the frame's compressed bytes, no more, no less.
    pub fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out = Vec::with_capacity(256);
        let start_in = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start_in) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() >= MAX_BLOCK {
                return Err(HeaderError::BlockTooLarge);
            }
            out.reserve(1024);
            let before = (self.z.total_in(), out.len());
            match self
                .z
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {
                    if (self.z.total_in(), out.len()) == before {
                        // No progress with input left: the block does not fit the frame.
                        return if (self.z.total_in() - start_in) as usize == input.len() {
                            Ok(out)
                        } else {
                            Err(HeaderError::WrongSize)
                        };
                    }
                }
                Err(e) => match e.needs_dictionary() {
                    Some(DICTIONARY_ID) => {
                        self.z
                            .set_dictionary(dictionary())
                            .map_err(|e| HeaderError::Inflate(e.to_string()))?;
                    }
                    Some(other) => return Err(HeaderError::UnknownDictionary(other)),
                    None => return Err(HeaderError::Inflate(e.to_string())),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::test_bytes::hex;

    #[test]
    fn the_note_vectors_decode_with_one_inflater() {
        let frames = [
            "80 03 00 01 00 00 00 28 00 00 00 01 00 00 00 00 00 00 78 f9 e3 c6 a7 c2 02 a6 23 46 \
             70 3a 2b 29 4a 4d cc 85 16 25 ac a9 a0 80 06 00 00 00 ff ff",
            "80 03 00 01 00 00 00 17 00 00 00 03 00 00 00 00 00 00 c2 2e 55 5c 02 cc 2e 00 00 00 00 ff ff",
            "80 03 00 01 00 00 00 19 00 00 00 05 00 00 00 00 00 00 c2 2a 05 4c e7 29 f9 a5 25 00 00 00 00 ff ff",
        ];
        let mut inflater = Inflater::new();
        let mut types = Vec::new();
        for f in frames {
            let bytes = hex(f);
            let block = inflater.decompress(&bytes[18..]).unwrap();
            let pairs = decode_block(&block).unwrap();
            assert_eq!(pairs.len(), 1);
            types.push(get(&pairs, "streamtype").unwrap().to_owned());
        }
        assert_eq!(types, ["error", "stdin", "stdout"]);

        // The server side's SYN_REPLYs of the note: empty blocks.
        let mut inflater = Inflater::new();
        for block in [
            "78 f9 e3 c6 a7 c2 02 a6 23 06 00 00 00 00 ff ff",
            "02 01 00 00 00 00 ff ff",
        ] {
            assert_eq!(
                decode_block(&inflater.decompress(&hex(block)).unwrap()).unwrap(),
                vec![]
            );
        }
    }

    #[test]
    fn our_blocks_round_trip_through_an_independent_stream_for_many_frames() {
        let mut deflater = Deflater::new();
        let mut inflater = Inflater::new();
        for n in 0..1500 {
            let value = format!("value-{n}-{}", "x".repeat(n % 97));
            let block = encode_block(&[("StreamType", "data"), ("port", &value)]);
            let compressed = deflater.compress(&block);
            if n == 0 {
                assert_eq!(
                    &compressed[2..6],
                    &[0xe3, 0xc6, 0xa7, 0xc2],
                    "DICTID in the first block"
                );
            }
            assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]), "sync flushed");
            let pairs = decode_block(&inflater.decompress(&compressed).unwrap()).unwrap();
            assert_eq!(get(&pairs, "streamtype"), Some("data"));
            assert_eq!(get(&pairs, "port"), Some(value.as_str()));
        }
    }

    #[test]
    fn bad_blocks_are_refused() {
        assert!(
            decode_block(&[0, 0, 0, 1, 0, 0, 0, 9]).is_err(),
            "field longer than the block"
        );
        assert!(decode_block(&[0, 0, 1, 0]).is_err(), "too many pairs");
        let mut inflater = Inflater::new();
        assert!(inflater.decompress(&[0x78, 0xf9, 1, 2, 3, 4, 5]).is_err());
    }
}
