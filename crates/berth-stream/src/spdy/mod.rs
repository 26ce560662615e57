//! SPDY/3.1 as Kubernetes uses it (through Go's spdystream).

pub mod dictionary;
pub mod frame;
pub mod headers;
pub mod session;

/// Byte vectors written as the notes write them: hex pairs separated by spaces.
#[cfg(test)]
mod test_bytes {
    pub fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }
}
