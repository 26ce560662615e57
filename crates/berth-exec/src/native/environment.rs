//! The process's environment and its executable, as runc finds them: the config's variables
//! with later duplicates winning, HOME from the container's passwd when the config has none, and
//! the command looked up in the PATH of that environment (or the helper's own when it has none).
//! Both read the container's files, so they run inside it.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// The largest passwd file read for HOME.
const PASSWD_MAX: u64 = 4 << 20;

/// `KEY=value` entries, duplicates dropped (the last one wins, where it stands), and HOME
/// added when missing or empty.
pub fn prepare(entries: &[String], uid: u32) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(entries.len() + 1);
    let mut seen = std::collections::HashSet::new();
    let mut home_set = false;
    for entry in entries.iter().rev() {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!("environment entry {entry:?} has no `=`"));
        };
        if key.is_empty() {
            return Err(format!("environment entry {entry:?} has no name"));
        }
        if entry.contains('\0') {
            return Err(format!("environment variable {key} holds a NUL byte"));
        }
        if !seen.insert(key.to_owned()) {
            continue;
        }
        if key == "HOME" {
            if value.is_empty() {
                continue;
            }
            home_set = true;
        }
        out.push(entry.clone());
    }
    out.reverse();
    if !home_set {
        out.push(format!("HOME={}", home_of(uid)));
    }
    Ok(out)
}

/// The value of `key` in prepared entries.
pub fn get<'a>(entries: &'a [String], key: &str) -> Option<&'a str> {
    entries
        .iter()
        .find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
}

/// The home of `uid` in the container's `/etc/passwd`, else `/`. The file is the container's
/// to make anything of: it is read only if it is a regular file of sane size, without waiting.
fn home_of(uid: u32) -> String {
    read_passwd()
        .and_then(|text| home_in(&text, uid))
        .unwrap_or_else(|| "/".to_owned())
}

fn read_passwd() -> Option<String> {
    let fd = rustix::fs::open(
        "/etc/passwd",
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .ok()?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > PASSWD_MAX {
        return None;
    }
    let mut text = String::new();
    file.take(PASSWD_MAX).read_to_string(&mut text).ok()?;
    Some(text)
}

fn home_in(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[2].parse() == Ok(uid)).then(|| fields[5].to_owned())
    })
}

/// Where `name` is: itself when it holds a `/`, else the first executable file of that name
/// in `path` (an empty entry is the working directory). The messages are Go's, which runc
/// gives and kubelet users know.
pub fn look_up(name: &str, path: Option<&str>) -> Result<PathBuf, String> {
    if name.contains('/') {
        return executable(Path::new(name))
            .map(|()| PathBuf::from(name))
            .map_err(|e| format!("exec: {name:?}: stat {name}: {e}"));
    }
    for dir in path.unwrap_or_default().split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "exec: {name:?}: executable file not found in $PATH"
    ))
}

fn executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| describe(&e))?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err("permission denied".into());
    }
    Ok(())
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn later_duplicates_win_and_bad_entries_are_refused() {
        let entries: Vec<String> = ["A=1", "PATH=/bin", "A=2", "HOME=/root", "B="]
            .into_iter()
            .map(String::from)
            .collect();
        let out = prepare(&entries, 0).unwrap();
        assert_eq!(out, ["PATH=/bin", "A=2", "HOME=/root", "B="]);
        assert_eq!(get(&out, "PATH"), Some("/bin"));
        assert_eq!(get(&out, "A"), Some("2"));
        assert_eq!(get(&out, "C"), None);
        assert!(
            prepare(&["NOEQUALS".into()], 0)
                .unwrap_err()
                .contains("no `=`")
        );
        assert!(prepare(&["=x".into()], 0).unwrap_err().contains("no name"));
    }

    #[test]
    fn an_empty_or_missing_home_comes_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\nbad line\n";
        assert_eq!(home_in(passwd, 33).as_deref(), Some("/var/www"));
        assert_eq!(home_in(passwd, 0).as_deref(), Some("/root"));
        assert_eq!(home_in(passwd, 1000), None);
        let out = prepare(&["HOME=".into()], 4242).unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("HOME=/"));
    }

    #[test]
    fn commands_are_found_as_go_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, "").unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(look_up("tool", Some(&path)).unwrap(), exe);
        assert!(
            look_up("data", Some(&path))
                .unwrap_err()
                .contains("not found in $PATH")
        );
        assert!(
            look_up("nope", None)
                .unwrap_err()
                .contains("not found in $PATH")
        );
        let plain_name = plain.to_str().unwrap();
        assert!(
            look_up(plain_name, None)
                .unwrap_err()
                .contains("permission denied")
        );
        assert!(
            look_up("/no/such/thing", None)
                .unwrap_err()
                .contains("no such file or directory")
        );
        assert_eq!(look_up(exe.to_str().unwrap(), None).unwrap(), exe);
    }
}
