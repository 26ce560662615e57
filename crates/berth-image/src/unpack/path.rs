//! Entry names of a layer tar, cleaned into paths relative to the layer root.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A cleaned, relative entry path: no `.`, no `..`, no empty components, never absolute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryPath(PathBuf);

/// The entry's name climbs out of the layer root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escapes;

impl EntryPath {
    /// Cleans `raw` lexically, as `filepath.Clean` would, treating an absolute name as relative to
    /// the layer root. A `..` that would climb above the root is refused.
    pub fn clean(raw: &[u8]) -> Result<EntryPath, Escapes> {
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in raw.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err(Escapes);
                    }
                }
                other => parts.push(other),
            }
        }
        let mut path = PathBuf::new();
        for part in parts {
            path.push(OsStr::from_bytes(part));
        }
        Ok(EntryPath(path))
    }

    /// The layer root itself.
    pub fn root() -> EntryPath {
        EntryPath(PathBuf::new())
    }

    pub fn is_root(&self) -> bool {
        self.0.as_os_str().is_empty()
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// The parent path (the root for a top-level entry).
    pub fn parent(&self) -> EntryPath {
        EntryPath(self.0.parent().map(Path::to_path_buf).unwrap_or_default())
    }

    /// The last component (empty for the root).
    pub fn name(&self) -> &OsStr {
        self.0.file_name().unwrap_or_default()
    }

    pub fn join(&self, name: &OsStr) -> EntryPath {
        EntryPath(self.0.join(name))
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &EntryPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// A path to hand to `*at` calls relative to the layer root fd: `.` for the root itself.
    pub fn at_path(&self) -> &Path {
        if self.is_root() {
            Path::new(".")
        } else {
            &self.0
        }
    }
}

/// What an entry name means under the overlay whiteout convention.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout {
    /// `.wh..wh..opq`: the parent directory hides everything below it in lower layers.
    Opaque,
    /// `.wh.<name>`: `<name>` is deleted from the lower layers.
    Delete(OsString),
    /// Some other `.wh..wh.` name (AUFS bookkeeping): ignored, as containerd does.
    Ignored,
}

pub fn whiteout(name: &OsStr) -> Option<Whiteout> {
    let bytes = name.as_bytes();
    if bytes == b".wh..wh..opq" {
        return Some(Whiteout::Opaque);
    }
    if bytes.starts_with(b".wh..wh.") {
        return Some(Whiteout::Ignored);
    }
    bytes
        .strip_prefix(b".wh.")
        .map(|rest| Whiteout::Delete(OsStr::from_bytes(rest).to_os_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> Result<String, Escapes> {
        EntryPath::clean(s.as_bytes()).map(|p| p.as_path().to_string_lossy().into_owned())
    }

    #[test]
    fn names_are_cleaned_lexically_and_absolute_ones_made_relative() {
        assert_eq!(clean("./usr/bin/"), Ok("usr/bin".into()));
        assert_eq!(clean("/etc/passwd"), Ok("etc/passwd".into()));
        assert_eq!(clean("a/b/../c"), Ok("a/c".into()));
        assert_eq!(clean("a//./b"), Ok("a/b".into()));
        assert_eq!(clean("./"), Ok(String::new()));
    }

    #[test]
    fn names_climbing_out_are_refused() {
        assert_eq!(clean("../etc/passwd"), Err(Escapes));
        assert_eq!(clean("a/../../x"), Err(Escapes));
        assert_eq!(clean("/../x"), Err(Escapes));
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(whiteout(OsStr::new(".wh..wh..opq")), Some(Whiteout::Opaque));
        assert_eq!(
            whiteout(OsStr::new(".wh.foo")),
            Some(Whiteout::Delete("foo".into()))
        );
        assert_eq!(
            whiteout(OsStr::new(".wh..wh.plnk")),
            Some(Whiteout::Ignored)
        );
        assert_eq!(whiteout(OsStr::new("foo")), None);
    }
}
