//! User namespaces: the ID mappings of a pod's, the process that makes one (with the namespaces
//! it is to own), and idmapped mounts, which show a filesystem's IDs through a user namespace's
//! mapping so that the container's root owns the image without a byte of it being chowned.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rustix::mount::{MoveMountFlags, OpenTreeFlags};
use rustix::thread::UnshareFlags;
use serde::{Deserialize, Serialize};

/// One range of IDs: `length` IDs from `container_id` inside are `host_id`… on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub length: u32,
}

impl IdMap {
    /// The line of a `uid_map` or `gid_map` file.
    fn line(&self) -> String {
        format!("{} {} {}\n", self.container_id, self.host_id, self.length)
    }

    /// The host ID of `id` inside, if the range maps it.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        let offset = id.checked_sub(self.container_id)?;
        (offset < self.length).then(|| self.host_id + offset)
    }
}

/// A pod's user namespace: one range of user IDs and one of group IDs, each mapping the
/// container's root (as kubelet sends them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMappings {
    pub uids: IdMap,
    pub gids: IdMap,
}

impl IdMappings {
    /// The node's IDs of the container's root user and group.
    pub fn host_root(&self) -> (u32, u32) {
        (self.uids.host_id, self.gids.host_id)
    }
}

/// A process that holds new namespaces (a user namespace and those it owns) while berthd writes
/// their ID maps and pins them; killed when dropped.
#[derive(Debug)]
pub struct Holder {
    child: Child,
}

impl Holder {
    /// Starts `berth-infra hold` in a new user namespace (and the namespaces of `also`, which
    /// the user namespace owns since the kernel makes it first) with `mappings` written.
    pub fn spawn(
        infra_binary: &Path,
        also: UnshareFlags,
        mappings: &IdMappings,
    ) -> io::Result<Holder> {
        let flags = UnshareFlags::NEWUSER | also;
        let mut cmd = Command::new(infra_binary);
        cmd.arg("hold")
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        unshare_before_exec(&mut cmd, flags);
        let holder = Holder {
            child: cmd.spawn()?,
        };
        // spawn returns once the child has exec'd: its namespaces exist.
        let proc = format!("/proc/{}", holder.pid());
        write_map(&format!("{proc}/uid_map"), &mappings.uids)?;
        write_map(&format!("{proc}/gid_map"), &mappings.gids)?;
        Ok(holder)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its user namespace, for idmapped mounts.
    pub fn user_namespace(&self) -> io::Result<File> {
        File::open(format!("/proc/{}/ns/user", self.pid()))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child unshares `flags` before its exec, and dies with the thread that started it (so
/// that a berthd killed mid-create leaves no holder behind).
#[allow(unsafe_code)]
fn unshare_before_exec(cmd: &mut Command, flags: UnshareFlags) {
    // SAFETY: the closure runs in the forked child before exec and makes two system calls
    // (prctl, unshare), both async-signal-safe; the flags are namespace flags only, not
    // CLONE_FILES, the one rustix marks unsafe.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            rustix::thread::unshare_unsafe(flags).map_err(io::Error::from)
        });
    }
}

fn write_map(path: &str, map: &IdMap) -> io::Result<()> {
    // The kernel takes a map in one write.
    File::options()
        .write(true)
        .open(path)?
        .write_all(map.line().as_bytes())
}

/// Attaches at `target` (an existing dir or file) a copy of the mount tree at `source` whose IDs
/// are shown through the mapping of the user namespace `userns`: a file the filesystem says
/// uid 0 owns is, through it, owned by the mapping's host ID of 0. Submounts come along and are
/// idmapped too.
pub fn idmapped_bind(source: &Path, target: &Path, userns: BorrowedFd<'_>) -> io::Result<()> {
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )?;
    set_idmap(&tree, userns)?;
    rustix::mount::move_mount(
        tree.as_fd(),
        c"",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// `mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, {MOUNT_ATTR_IDMAP, userns})`, which
/// rustix does not wrap.
#[allow(unsafe_code)]
fn set_idmap(tree: &OwnedFd, userns: BorrowedFd<'_>) -> io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: the path is a valid C string, `attr` lives across the call and its size is passed;
    // both fds are open for the call's duration (borrowed).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            size_of::<libc::mount_attr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the filesystem holding `path` can be idmapped (the kernel and the filesystem must both
/// support it), tried with a throwaway user namespace.
pub fn idmap_supported(infra_binary: &Path, path: &Path) -> bool {
    let probe = || -> io::Result<()> {
        let map = IdMap {
            container_id: 0,
            host_id: 65536,
            length: 65536,
        };
        let holder = Holder::spawn(
            infra_binary,
            UnshareFlags::empty(),
            &IdMappings {
                uids: map,
                gids: map,
            },
        )?;
        let userns = holder.user_namespace()?;
        let tree = rustix::mount::open_tree(
            rustix::fs::CWD,
            path,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )?;
        set_idmap(&tree, userns.as_fd())
    };
    match probe() {
        Ok(()) => true,
        Err(e) => {
            tracing::info!("idmapped mounts of {}: {e}", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_map_ids_inside_them_only() {
        let map = IdMap {
            container_id: 0,
            host_id: 100_000,
            length: 65536,
        };
        assert_eq!(map.to_host(0), Some(100_000));
        assert_eq!(map.to_host(65535), Some(165_535));
        assert_eq!(map.to_host(65536), None);
        assert_eq!(map.line(), "0 100000 65536\n");
    }
}
