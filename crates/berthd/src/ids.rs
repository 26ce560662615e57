//! Object IDs: 64 random lowercase hex characters, as containerd makes them. IDs become path
//! components under the state dirs, so what comes from a request is only ever looked up, never
//! used as a path, and what we make is checked to have this form.

use std::collections::BTreeMap;

/// A new random ID.
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            // getrandom only fails on a kernel without it (< 3.17), which runs no containers.
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                for (i, b) in buf.iter_mut().enumerate().skip(filled) {
                    *b = (nanos >> ((i % 16) * 8)) as u8 ^ (std::process::id() as u8);
                }
                return;
            }
        }
    }
}

/// The ID of a whole 64-hex-character form.
pub fn is_valid(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Looking an object up by its ID or a unique prefix of it.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    NotFound,
    Ambiguous(usize),
}

/// Finds the entry whose key is `id` or, failing that, the only one that starts with it.
pub fn lookup<'a, T>(map: &'a BTreeMap<String, T>, id: &str) -> Lookup<&'a T> {
    if id.is_empty() {
        return Lookup::NotFound;
    }
    if let Some(v) = map.get(id) {
        return Lookup::Found(v);
    }
    let mut matches = map
        .range(id.to_owned()..)
        .take_while(|(k, _)| k.starts_with(id))
        .map(|(_, v)| v);
    match (matches.next(), matches.next()) {
        (None, _) => Lookup::NotFound,
        (Some(v), None) => Lookup::Found(v),
        (Some(_), Some(_)) => Lookup::Ambiguous(2 + matches.count()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_distinct() {
        let (a, b) = (new_id(), new_id());
        assert!(is_valid(&a) && is_valid(&b));
        assert_ne!(a, b);
        assert!(!is_valid("../etc"));
    }

    #[test]
    fn lookup_by_id_or_unique_prefix() {
        let map: BTreeMap<String, u8> =
            [("abc1".into(), 1), ("abc2".into(), 2), ("def".into(), 3)].into();
        assert_eq!(lookup(&map, "abc1"), Lookup::Found(&1));
        assert_eq!(lookup(&map, "de"), Lookup::Found(&3));
        assert_eq!(lookup(&map, "abc"), Lookup::Ambiguous(2));
        assert_eq!(lookup(&map, "x"), Lookup::NotFound);
        assert_eq!(lookup(&map, ""), Lookup::NotFound);
    }
}
