//! The calling process's mount table, as /proc/self/mountinfo lists it.

use std::io;
use std::path::PathBuf;

/// One mount: where it is and whether it propagates (a member of a shared peer group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    pub path: PathBuf,
    pub shared: bool,
}

/// Every mount of this process's mount namespace, in mountinfo's order (parents first).
pub fn mounts() -> io::Result<Vec<MountPoint>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info.lines().filter_map(parse_line).collect())
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`: the fifth field is the
/// mount point; optional fields up to `-` carry the propagation.
fn parse_line(line: &str) -> Option<MountPoint> {
    let fields: Vec<&str> = line.split(' ').collect();
    let path = PathBuf::from(unescape(fields.get(4)?));
    let sep = fields.iter().position(|f| *f == "-")?;
    let shared = fields.get(6..sep)?.iter().any(|f| f.starts_with("shared:"));
    Some(MountPoint { path, shared })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_their_mount_point_and_propagation() {
        let shared = parse_line("36 35 98:0 / /a\\040b rw shared:7 - ext4 /dev/x rw").unwrap();
        assert_eq!(shared.path, PathBuf::from("/a b"));
        assert!(shared.shared);
        let private = parse_line("36 35 98:0 / /c rw - tmpfs t rw").unwrap();
        assert!(!private.shared);
        assert!(parse_line("garbage").is_none());
    }
}
