//! The user a container runs as: CRI `run_as_user`, `run_as_username`, `run_as_group` or the
//! image's `User`, resolved through the container's own /etc/passwd and /etc/group (read inside the
//! rootfs, symlinks confined to it), with supplemental groups from /etc/group merged with the
//! configured ones unless the policy is Strict.

use std::io::Read;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::container::UserRequest;

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// A user or group the request names that the image does not have, or an image whose account
/// files cannot be read as such.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("user `{0}` is not in the image's /etc/passwd")]
    NoSuchUser(String),
    #[error("group `{0}` is not in the image's /etc/group")]
    NoSuchGroup(String),
    #[error("the image's /{file} is {why}")]
    Unreadable { file: &'static str, why: String },
}

/// The most of /etc/passwd or /etc/group berth reads (glibc has no limit; 4 MiB is some 50,000
/// accounts).
const ACCOUNTS_LIMIT: u64 = 4 << 20;

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Reads an account file of the rootfs, resolving symlinks as the container would (inside its
/// root), if it is there: a regular file (never a FIFO that blocks or a device of the node's),
/// of text, of at most `ACCOUNTS_LIMIT` bytes. Blocking.
fn read_in_root(rootfs: &Path, file: &'static str) -> Result<Option<String>, UserError> {
    let unreadable = |why: String| UserError::Unreadable { file, why };
    let Ok(root) = rustix::fs::open(
        rootfs,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(None);
    };
    let fd = match rustix::fs::openat2(
        &root,
        file,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(unreadable(format!("not readable: {e}"))),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| unreadable(e.to_string()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(unreadable("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(ACCOUNTS_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > ACCOUNTS_LIMIT {
        return Err(unreadable(format!("larger than {ACCOUNTS_LIMIT} bytes")));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn passwd(rootfs: &Path) -> Result<Vec<PasswdEntry>, UserError> {
    Ok(read_in_root(rootfs, "etc/passwd")?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect())
}

fn groups(rootfs: &Path) -> Result<Vec<GroupEntry>, UserError> {
    Ok(read_in_root(rootfs, "etc/group")?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect())
}

pub fn resolve(
    rootfs: &Path,
    req: &UserRequest,
    image_user: &str,
) -> Result<ResolvedUser, UserError> {
    let users = passwd(rootfs)?;
    let all_groups = groups(rootfs)?;
    let by_uid = |uid: u32| users.iter().find(|u| u.uid == uid);
    let by_name = |name: &str| {
        users
            .iter()
            .find(|u| u.name == name)
            .ok_or_else(|| UserError::NoSuchUser(name.to_owned()))
    };
    let (uid, mut gid, name) = if !req.run_as_username.is_empty() {
        let u = by_name(&req.run_as_username)?;
        (u.uid, u.gid, Some(u.name.clone()))
    } else if let Some(uid) = req.run_as_user {
        let entry = by_uid(uid);
        (
            uid,
            entry.map_or(0, |u| u.gid),
            entry.map(|u| u.name.clone()),
        )
    } else {
        let (user, group) = match image_user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (image_user, None),
        };
        let (uid, gid, name) = if user.is_empty() {
            (0, 0, by_uid(0).map(|u| u.name.clone()))
        } else if let Ok(uid) = user.parse::<u32>() {
            let entry = by_uid(uid);
            (
                uid,
                entry.map_or(0, |u| u.gid),
                entry.map(|u| u.name.clone()),
            )
        } else {
            let u = by_name(user)?;
            (u.uid, u.gid, Some(u.name.clone()))
        };
        let gid = match group {
            None | Some("") => gid,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => all_groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| UserError::NoSuchGroup(g.to_owned()))?,
            },
        };
        (uid, gid, name)
    };
    if let Some(g) = req.run_as_group {
        gid = g;
    }
    // The kernel's group list holds the primary group too (as with containerd and CRI-O), so
    // that it stays the process's after a setgid and ContainerStatus reports every group it has.
    let mut additional: Vec<u32> = vec![gid];
    if !req.strict_groups {
        if let Some(name) = &name {
            additional.extend(
                all_groups
                    .iter()
                    .filter(|g| g.members.contains(name))
                    .map(|g| g.gid),
            );
        }
    }
    additional.extend(&req.supplemental_groups);
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\nberth:x:1000:1000::/home/berth:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\naudio:x:29:berth\nwww-data:x:33:\nusers:x:100:berth,www-data\nberth:x:1000:\n",
        )
        .unwrap();
        d
    }

    fn user(uid: u32, gid: u32, groups: &[u32]) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            additional_gids: groups.to_vec(),
        }
    }

    #[test]
    fn image_user_in_every_form() {
        let r = rootfs();
        let none = UserRequest::default();
        assert_eq!(resolve(r.path(), &none, "").unwrap(), user(0, 0, &[0]));
        assert_eq!(
            resolve(r.path(), &none, "1000").unwrap(),
            user(1000, 1000, &[1000, 29, 100])
        );
        assert_eq!(
            resolve(r.path(), &none, "1000:50").unwrap(),
            user(1000, 50, &[50, 29, 100])
        );
        assert_eq!(
            resolve(r.path(), &none, "www-data").unwrap(),
            user(33, 33, &[33, 100])
        );
        assert_eq!(
            resolve(r.path(), &none, "www-data:audio").unwrap(),
            user(33, 29, &[29, 100])
        );
        assert_eq!(
            resolve(r.path(), &none, "4242").unwrap(),
            user(4242, 0, &[0])
        );
        assert_eq!(
            resolve(r.path(), &none, "nobody-here"),
            Err(UserError::NoSuchUser("nobody-here".into()))
        );
    }

    #[test]
    fn cri_fields_win_and_groups_merge_unless_strict() {
        let r = rootfs();
        let by_name = UserRequest {
            run_as_username: "berth".into(),
            supplemental_groups: vec![5000, 29],
            ..UserRequest::default()
        };
        assert_eq!(
            resolve(r.path(), &by_name, "www-data").unwrap(),
            user(1000, 1000, &[1000, 29, 100, 5000])
        );
        let strict = UserRequest {
            run_as_user: Some(1000),
            run_as_group: Some(7),
            supplemental_groups: vec![5000],
            strict_groups: true,
            ..UserRequest::default()
        };
        assert_eq!(
            resolve(r.path(), &strict, "").unwrap(),
            user(1000, 7, &[7, 5000])
        );
    }

    #[test]
    fn passwd_symlinks_stay_inside_the_rootfs() {
        let r = tempfile::tempdir().unwrap();
        std::fs::create_dir(r.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.path().join("etc/passwd")).unwrap();
        // The host's /etc/passwd has root; the rootfs has no /etc/passwd of its own.
        assert!(resolve(r.path(), &UserRequest::default(), "root").is_err());
    }
}
