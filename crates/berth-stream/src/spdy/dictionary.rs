//! The SPDY/3 header-compression dictionary (SPDY Protocol Draft 3, §2.6.10.1), the preset
//! zlib dictionary of every SPDY/3 header block. 1423 bytes; Adler-32 0xE3C6A7C2.

/// The dictionary in pieces (a byte-string literal per line), joined by [`dictionary`].
const PIECES: &[&[u8]] = &[
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05",
    b"trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-enco",
    b"ding\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccept-ranges\x00\x00\x00\x03age\x00",
    b"\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\x0dcache-control\x00\x00\x00\x0aco",
    b"nnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10",
    b"content-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-lo",
    b"cation\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\x00\x00\x00\x0cconten",
    b"t-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04f",
    b"rom\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\x00\x00\x0d",
    b"if-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since",
    b"\x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00",
    b"\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authoriza",
    b"tion\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06serve",
    b"r\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgra",
    b"de\x00\x00\x00\x0auser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10ww",
    b"w-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200",
    b" OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\x0as",
    b"et-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin100101201202205",
    b"206300302303304305306307402405406407408409410411",
    b"412413414415416417502504505203 Non-Authoritative",
    b" Information204 No Content301 Moved Permanently4",
    b"00 Bad Request401 Unauthorized403 Forbidden404 N",
    b"ot Found500 Internal Server Error501 Not Impleme",
    b"nted503 Service UnavailableJan Feb Mar Apr May J",
    b"un Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, W",
    b"ed, Thu, Fri, Sat, Sun, GMTchunked,text/html,ima",
    b"ge/png,image/jpg,image/gif,application/xml,appli",
    b"cation/xhtml+xml,text/plain,text/javascript,publ",
    b"icprivatemax-age=gzip,deflate,sdchcharset=utf-8c",
    b"harset=iso-8859-1,utf-,*,enq=0.",
];

/// Adler-32 of the dictionary: the DICTID a zlib stream that uses it carries.
pub const DICTIONARY_ID: u32 = 0xE3C6_A7C2;

pub fn dictionary() -> &'static [u8] {
    static JOINED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    JOINED.get_or_init(|| PIECES.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for byte in data {
            a = (a + u32::from(*byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        (b << 16) | a
    }

    #[test]
    fn the_dictionary_is_the_spdy3_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(adler32(d), DICTIONARY_ID);
        assert!(d.starts_with(b"\x00\x00\x00\x07options"));
        assert!(d.ends_with(b",enq=0."));
    }
}
