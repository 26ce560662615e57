//! An HPACK (RFC 7541) decoder, and the one encoding berth sends: literals that index nothing.
//! The decoder keeps the client's dynamic table so that every header block of a connection can
//! be read; it never allocates from a length it has not checked against the bytes at hand and
//! refuses a table larger than the server advertised.

use std::collections::VecDeque;

/// The header table size h2 servers advertise (SETTINGS_HEADER_TABLE_SIZE, its default): a
/// client may not make its table larger.
pub const MAX_TABLE_SIZE: usize = 4096;

/// Bytes an entry costs in the table beyond its name and value (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// Integers longer than this many continuation bytes are refused (they would exceed 2^28).
const MAX_INTEGER_BYTES: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("the header block ends inside a field")]
    Truncated,
    #[error("an integer in the header block is too large")]
    IntegerTooLarge,
    #[error("header table index {0} is not in the table")]
    BadIndex(usize),
    #[error("a dynamic table size of {0} exceeds the advertised {MAX_TABLE_SIZE}")]
    TableTooLarge(usize),
    #[error("a Huffman-coded string is malformed")]
    BadHuffman,
}

/// One header field: name and value as bytes.
pub type Field = (Vec<u8>, Vec<u8>);

/// The decoding state of one connection's client-to-server header blocks.
#[derive(Debug)]
pub struct Decoder {
    /// Newest entry first, as HPACK indexes them.
    dynamic: VecDeque<Field>,
    size: usize,
    max_size: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            dynamic: VecDeque::new(),
            size: 0,
            max_size: MAX_TABLE_SIZE,
        }
    }
}

impl Decoder {
    /// Decodes one complete header block.
    pub fn decode(&mut self, mut block: &[u8]) -> Result<Vec<Field>, HpackError> {
        let mut fields = Vec::new();
        while let Some(&first) = block.first() {
            let rest = if first & 0x80 != 0 {
                // Indexed field.
                let (index, rest) = integer(block, 7)?;
                fields.push(self.entry(index)?.clone());
                rest
            } else if first & 0xc0 == 0x40 {
                // Literal with incremental indexing.
                let (field, rest) = self.literal(block, 6)?;
                self.insert(field.clone());
                fields.push(field);
                rest
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update.
                let (size, rest) = integer(block, 5)?;
                if size > MAX_TABLE_SIZE {
                    return Err(HpackError::TableTooLarge(size));
                }
                self.max_size = size;
                self.evict();
                rest
            } else {
                // Literal without indexing (0000) or never indexed (0001).
                let (field, rest) = self.literal(block, 4)?;
                fields.push(field);
                rest
            };
            block = rest;
        }
        Ok(fields)
    }

    fn literal<'b>(&self, block: &'b [u8], prefix: u8) -> Result<(Field, &'b [u8]), HpackError> {
        let (index, rest) = integer(block, prefix)?;
        let (name, rest) = if index == 0 {
            string(rest)?
        } else {
            (self.entry(index)?.0.clone(), rest)
        };
        let (value, rest) = string(rest)?;
        Ok(((name, value), rest))
    }

    fn entry(&self, index: usize) -> Result<&Field, HpackError> {
        let static_len = STATIC_TABLE.len();
        match index {
            0 => Err(HpackError::BadIndex(0)),
            i if i <= static_len => Ok(&STATIC_FIELDS[i - 1]),
            i => self
                .dynamic
                .get(i - static_len - 1)
                .ok_or(HpackError::BadIndex(i)),
        }
    }

    fn insert(&mut self, field: Field) {
        let cost = field.0.len() + field.1.len() + ENTRY_OVERHEAD;
        self.dynamic.push_front(field);
        self.size += cost;
        // An entry larger than the whole table empties it (RFC 7541 §4.4).
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            match self.dynamic.pop_back() {
                Some((name, value)) => self.size -= name.len() + value.len() + ENTRY_OVERHEAD,
                None => self.size = 0,
            }
        }
    }
}

/// A header block of `fields`, each a literal that touches no table (RFC 7541 §6.2.2), so that
/// the receiver's dynamic table stays empty whatever the client's held.
pub fn encode_plain(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        for s in [name, value] {
            put_integer(&mut out, s.len(), 7, 0);
            out.extend_from_slice(s);
        }
    }
    out
}

/// An integer with an N-bit prefix (RFC 7541 §5.1); the bytes after it.
fn integer(block: &[u8], prefix: u8) -> Result<(usize, &[u8]), HpackError> {
    let (&first, mut rest) = block.split_first().ok_or(HpackError::Truncated)?;
    let max_prefix = (1usize << prefix) - 1;
    let mut value = usize::from(first) & max_prefix;
    if value < max_prefix {
        return Ok((value, rest));
    }
    for shift in (0..MAX_INTEGER_BYTES).map(|i| 7 * i) {
        let (&b, after) = rest.split_first().ok_or(HpackError::Truncated)?;
        rest = after;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((value, rest));
        }
    }
    Err(HpackError::IntegerTooLarge)
}

fn put_integer(out: &mut Vec<u8>, mut value: usize, prefix: u8, flags: u8) {
    let max_prefix = (1usize << prefix) - 1;
    if value < max_prefix {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max_prefix as u8);
    value -= max_prefix;
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A string literal, raw or Huffman-coded (RFC 7541 §5.2); the bytes after it.
fn string(block: &[u8]) -> Result<(Vec<u8>, &[u8]), HpackError> {
    let huffman = block.first().is_some_and(|b| b & 0x80 != 0);
    let (len, rest) = integer(block, 7)?;
    if len > rest.len() {
        return Err(HpackError::Truncated);
    }
    let (text, rest) = rest.split_at(len);
    let decoded = if huffman {
        huffman_decode(text)?
    } else {
        text.to_vec()
    };
    Ok((decoded, rest))
}

/// Code length of each symbol of HPACK's Huffman code (RFC 7541 Appendix B), 256 being EOS. The
/// code is canonical: codes are handed out in order of length, and by symbol within a length,
/// so these lengths alone define it.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;
const MAX_CODE_LENGTH: usize = 30;

/// The canonical code's decoding tables: for each length, its first code and where its symbols
/// start in `symbols` (ordered by length, then symbol).
struct HuffmanTable {
    first_code: [u32; MAX_CODE_LENGTH + 1],
    count: [u32; MAX_CODE_LENGTH + 1],
    offset: [u16; MAX_CODE_LENGTH + 1],
    symbols: [u16; 257],
}

static HUFFMAN: std::sync::LazyLock<HuffmanTable> = std::sync::LazyLock::new(|| {
    let mut t = HuffmanTable {
        first_code: [0; MAX_CODE_LENGTH + 1],
        count: [0; MAX_CODE_LENGTH + 1],
        offset: [0; MAX_CODE_LENGTH + 1],
        symbols: [0; 257],
    };
    for &len in &CODE_LENGTHS {
        t.count[usize::from(len)] += 1;
    }
    let (mut code, mut index) = (0u32, 0u16);
    for len in 1..=MAX_CODE_LENGTH {
        t.first_code[len] = code;
        t.offset[len] = index;
        code = (code + t.count[len]) << 1;
        index += t.count[len] as u16;
    }
    let mut next = t.offset;
    for (symbol, &len) in CODE_LENGTHS.iter().enumerate() {
        let slot = &mut next[usize::from(len)];
        t.symbols[usize::from(*slot)] = symbol as u16;
        *slot += 1;
    }
    t
});

/// Decodes a Huffman-coded string: EOS inside it, or padding that is longer than 7 bits or not
/// all ones, is an error (RFC 7541 §5.2).
fn huffman_decode(input: &[u8]) -> Result<Vec<u8>, HpackError> {
    let table = &*HUFFMAN;
    let mut out = Vec::with_capacity(input.len() * 8 / 5);
    let (mut code, mut len) = (0u32, 0usize);
    let mut all_ones = true;
    for byte in input {
        for bit in (0..8).rev().map(|i| (byte >> i) & 1) {
            code = (code << 1) | u32::from(bit);
            len += 1;
            all_ones &= bit == 1;
            if len > MAX_CODE_LENGTH {
                return Err(HpackError::BadHuffman);
            }
            let first = table.first_code[len];
            if code >= first && code - first < table.count[len] {
                let symbol =
                    table.symbols[usize::from(table.offset[len]) + (code - first) as usize];
                if symbol == EOS {
                    return Err(HpackError::BadHuffman);
                }
                out.push(symbol as u8);
                (code, len, all_ones) = (0, 0, true);
            }
        }
    }
    if len > 7 || !all_ones {
        return Err(HpackError::BadHuffman);
    }
    Ok(out)
}

/// The static table (RFC 7541 Appendix A).
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

static STATIC_FIELDS: std::sync::LazyLock<Vec<Field>> = std::sync::LazyLock::new(|| {
    STATIC_TABLE
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_rfc_request_examples_with_huffman_decode_with_their_dynamic_table() {
        // RFC 7541 C.4: three requests on one connection.
        let mut d = Decoder::default();
        let first = d
            .decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"))
            .unwrap();
        assert_eq!(
            first,
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
        let second = d.decode(&hex("8286 84be 5886 a8eb 1064 9cbf")).unwrap();
        assert_eq!(second[3], fields(&[(":authority", "www.example.com")])[0]);
        assert_eq!(second[4], fields(&[("cache-control", "no-cache")])[0]);
        let third = d
            .decode(&hex(
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ))
            .unwrap();
        assert_eq!(
            third,
            fields(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
    }

    #[test]
    fn plain_encoding_round_trips_through_the_decoder() {
        let list = fields(&[
            (":authority", "run%2Fberth%2Fberth.sock"),
            ("x-long", &"v".repeat(300)),
            ("", ""),
        ]);
        assert_eq!(
            Decoder::default().decode(&encode_plain(&list)).unwrap(),
            list
        );
    }

    #[test]
    fn malformed_blocks_are_errors_not_panics() {
        let mut d = Decoder::default();
        for bad in [
            &[0xff][..],                                 // index integer cut short
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],       // integer too long
            &[0xbf],                                     // index 63: an empty dynamic table
            &[0x80],                                     // index 0
            &[0x3f, 0xe2, 0x1f],                         // table size 4097
            &[0x00, 0x85, 0xff],                         // name longer than the block
            &[0x00, 0x81, 0x00, 0x00],                   // Huffman padding of zeros
            &[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00], // EOS inside a string
        ] {
            assert!(d.decode(bad).is_err(), "{bad:x?}");
        }
    }

    #[test]
    fn the_dynamic_table_evicts_to_its_size() {
        let mut d = Decoder::default();
        let big = "x".repeat(3000);
        let mut block = vec![0x40];
        for s in ["a", big.as_str()] {
            put_integer(&mut block, s.len(), 7, 0);
            block.extend_from_slice(s.as_bytes());
        }
        d.decode(&block).unwrap();
        d.decode(&block).unwrap();
        assert_eq!(
            d.dynamic.len(),
            1,
            "the second 3 kB entry evicted the first"
        );
        // A size update to zero empties it; the entry is then unknown.
        d.decode(&[0x20]).unwrap();
        assert_eq!(d.decode(&[0xbe]), Err(HpackError::BadIndex(62)));
    }
}
