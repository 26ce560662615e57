//! Pod namespaces: network, IPC and UTS namespaces created on a throwaway thread (never a tokio
//! worker: `unshare` and `setns` change the calling thread) and kept alive by bind-mounting the
//! thread's namespace files onto files of the pod's state directory. Hostname and namespaced
//! sysctls are set from inside, on the same thread, before it ends. A set made ahead of time can
//! be readied for a pod instead ([`configure`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};
use rustix::thread::UnshareFlags;

/// Which namespace a sysctl belongs to, as Linux namespaces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNamespace {
    Net,
    Ipc,
}

/// The namespace of a sysctl that a pod may set, or None if it is not namespaced (and so would
/// change the whole node).
pub fn sysctl_namespace(name: &str) -> Option<SysctlNamespace> {
    let name = name.replace('/', ".");
    if name.starts_with("net.") {
        Some(SysctlNamespace::Net)
    } else if matches!(
        name.as_str(),
        "kernel.shmmax"
            | "kernel.shmall"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
            | "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
    ) || name.starts_with("fs.mqueue.")
    {
        Some(SysctlNamespace::Ipc)
    } else {
        None
    }
}

/// What to create for a pod.
#[derive(Debug, Clone, Default)]
pub struct NamespaceRequest {
    /// Where the pinned namespace files go (`<dir>/net`, `<dir>/ipc`, `<dir>/uts`).
    pub dir: PathBuf,
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    /// Set in the new UTS namespace.
    pub hostname: Option<String>,
    /// Written inside the new namespaces; each must be namespaced in one that is created.
    pub sysctls: Vec<(String, String)>,
}

/// Pinned namespace files.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pinned {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The user namespace that owns the others, when the pod has one.
    #[serde(default)]
    pub user: Option<PathBuf>,
}

impl Pinned {
    /// Every kind a set in `dir` may hold: what removes a set whose record was lost.
    pub fn all_in(dir: &Path) -> Pinned {
        Pinned {
            net: Some(dir.join("net")),
            ipc: Some(dir.join("ipc")),
            uts: Some(dir.join("uts")),
            user: Some(dir.join("user")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("creating pod namespaces: {step}: {source}")]
    Create {
        step: String,
        source: std::io::Error,
    },
    #[error("sysctl {name}: {source}")]
    Sysctl {
        name: String,
        source: std::io::Error,
    },
    #[error("removing pinned namespace {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("namespace thread failed")]
    Thread,
}

/// Creates and pins the requested namespaces. Blocking: call from a blocking context.
/// On failure nothing is left pinned.
pub fn create(req: NamespaceRequest) -> Result<Pinned, NetnsError> {
    on_own_thread(|| {
        let mut pinned = Pinned::default();
        let result = create_on_this_thread(&req, &mut pinned);
        if result.is_err() {
            let _ = remove(&pinned);
        }
        result.map(|()| pinned)
    })
}

/// Runs `work` on a thread of its own, which it may move into other namespaces.
fn on_own_thread<T: Send>(
    work: impl FnOnce() -> Result<T, NetnsError> + Send,
) -> Result<T, NetnsError> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("berth-netns".into())
            .spawn_scoped(scope, work)
            .map_err(|source| NetnsError::Create {
                step: "spawn thread".into(),
                source,
            })?
            .join()
            .map_err(|_| NetnsError::Thread)?
    })
}

fn create_on_this_thread(req: &NamespaceRequest, pinned: &mut Pinned) -> Result<(), NetnsError> {
    let step = |step: &str| {
        let step = step.to_owned();
        move |source: std::io::Error| NetnsError::Create { step, source }
    };
    std::fs::create_dir_all(&req.dir).map_err(step("create namespace dir"))?;
    let mut flags = UnshareFlags::empty();
    flags.set(UnshareFlags::NEWNET, req.net);
    flags.set(UnshareFlags::NEWIPC, req.ipc);
    flags.set(UnshareFlags::NEWUTS, req.uts);
    if flags.is_empty() {
        return Ok(());
    }
    unshare_thread(flags).map_err(step("unshare"))?;
    configure_this_thread(req)?;
    pin_this_thread(req, pinned)
}

/// Sets the hostname and sysctls asked for in the namespaces the calling thread is in.
fn configure_this_thread(req: &NamespaceRequest) -> Result<(), NetnsError> {
    if let (true, Some(hostname)) = (req.uts, &req.hostname) {
        rustix::system::sethostname(hostname.as_bytes()).map_err(|e| NetnsError::Create {
            step: "set hostname".into(),
            source: e.into(),
        })?;
    }
    for (name, value) in &req.sysctls {
        write_sysctl(name, value).map_err(|source| NetnsError::Sysctl {
            name: name.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Pins the calling thread's namespaces that `req` asks for under `req.dir`.
fn pin_this_thread(req: &NamespaceRequest, pinned: &mut Pinned) -> Result<(), NetnsError> {
    pin_from(Path::new("/proc/thread-self/ns"), req, pinned)
}

/// Pins the user namespace of process `pid` and those of its namespaces that `req` asks for
/// under `req.dir` (a process made them: a user namespace cannot be made by a thread of a
/// multi-threaded process). On failure nothing is left pinned. Blocking.
pub fn pin_process(pid: u32, req: &NamespaceRequest) -> Result<Pinned, NetnsError> {
    let source = PathBuf::from(format!("/proc/{pid}/ns"));
    let mut pinned = Pinned::default();
    let result = pin_from(&source, req, &mut pinned).and_then(|()| {
        let target = req.dir.join("user");
        pin(&source.join("user"), &target).map_err(|source| NetnsError::Create {
            step: "pin user namespace".into(),
            source,
        })?;
        pinned.user = Some(target);
        Ok(())
    });
    match result {
        Ok(()) => Ok(pinned),
        Err(e) => {
            let _ = remove(&pinned);
            Err(e)
        }
    }
}

/// Pins the namespaces `req` asks for from the `ns` dir `source` (of a thread or process).
fn pin_from(source: &Path, req: &NamespaceRequest, pinned: &mut Pinned) -> Result<(), NetnsError> {
    let step = |step: String| move |source: std::io::Error| NetnsError::Create { step, source };
    std::fs::create_dir_all(&req.dir).map_err(step("create namespace dir".into()))?;
    for (wanted, kind, slot) in [
        (req.net, "net", &mut pinned.net),
        (req.ipc, "ipc", &mut pinned.ipc),
        (req.uts, "uts", &mut pinned.uts),
    ] {
        if wanted {
            let target = req.dir.join(kind);
            pin(&source.join(kind), &target).map_err(step(format!("pin {kind} namespace")))?;
            *slot = Some(target);
        }
    }
    Ok(())
}

/// Readies a set of namespaces pinned ahead of time (with every namespace `req` asks for) for a
/// pod: a thread joins them and sets `req`'s hostname and sysctls. The set stays pinned where it
/// is. Blocking.
pub fn configure(set: &Pinned, req: &NamespaceRequest) -> Result<(), NetnsError> {
    on_own_thread(|| {
        join_this_thread(set, req)?;
        configure_this_thread(req)
    })
}

/// `setns` of the calling thread into each pinned namespace `req` asks for.
fn join_this_thread(spare: &Pinned, req: &NamespaceRequest) -> Result<(), NetnsError> {
    use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
    for (wanted, path, kind) in [
        (req.net, &spare.net, LinkNameSpaceType::Network),
        (
            req.ipc,
            &spare.ipc,
            LinkNameSpaceType::InterProcessCommunication,
        ),
        (
            req.uts,
            &spare.uts,
            LinkNameSpaceType::HostNameAndNISDomainName,
        ),
    ] {
        if !wanted {
            continue;
        }
        let step = format!("join the spare {kind:?} namespace");
        let path = path.as_ref().ok_or_else(|| NetnsError::Create {
            step: step.clone(),
            source: std::io::Error::other("the spare set has no such namespace"),
        })?;
        let file = File::open(path).map_err(|source| NetnsError::Create {
            step: step.clone(),
            source,
        })?;
        move_into_link_name_space(std::os::fd::AsFd::as_fd(&file), Some(kind)).map_err(|e| {
            NetnsError::Create {
                step,
                source: e.into(),
            }
        })?;
    }
    Ok(())
}

/// `unshare` of namespaces that belong to the calling thread alone.
#[allow(unsafe_code)]
fn unshare_thread(flags: UnshareFlags) -> std::io::Result<()> {
    debug_assert!(!flags.contains(UnshareFlags::FILES));
    // SAFETY: rustix marks unshare unsafe only for CLONE_FILES, which splits the fd table under
    // other threads; the flags here are namespace flags only (NEWNET, NEWIPC, NEWUTS).
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
}

fn write_sysctl(name: &str, value: &str) -> std::io::Result<()> {
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    let mut file = File::options().write(true).open(path)?;
    file.write_all(value.as_bytes())
}

/// Bind-mounts a namespace file onto `target`, creating it.
fn pin(source: &Path, target: &Path) -> std::io::Result<()> {
    File::create(target)?;
    rustix::mount::mount_bind(source, target).map_err(|e| {
        let _ = std::fs::remove_file(target);
        e.into()
    })
}

/// Unpins namespaces: unmounts and removes each file, then their dir once it is empty. Missing
/// ones are fine (idempotent).
pub fn remove(pinned: &Pinned) -> Result<(), NetnsError> {
    let files: Vec<&PathBuf> = [&pinned.net, &pinned.ipc, &pinned.uts, &pinned.user]
        .into_iter()
        .flatten()
        .collect();
    for path in &files {
        unpin(path)?;
    }
    if let Some(dir) = files.first().and_then(|p| p.parent()) {
        // Still holding something else (a half-removed set): left for the dir's owner.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

pub fn unpin(path: &Path) -> Result<(), NetnsError> {
    let err = |source: std::io::Error| NetnsError::Remove {
        path: path.to_path_buf(),
        source,
    };
    match rustix::mount::unmount(path, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(err(e.into())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Whether `path` is a pinned namespace (a bind mount of an nsfs file) that is still alive.
pub fn is_pinned(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as u64 == NSFS_MAGIC)
}

/// `NSFS_MAGIC` from linux/magic.h.
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// Runs `f` on a throwaway thread that has joined the network namespace at `netns`, so that
/// sockets it opens live there. Blocking: call from a blocking context.
pub fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let ns = File::open(netns)?;
    std::thread::Builder::new()
        .name("berth-in-netns".into())
        .spawn(move || {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            f()
        })?
        .join()
        .map_err(|_| std::io::Error::other("netns thread panicked"))?
}

/// A tmpfs for the pod's `/dev/shm` (64 MiB, as Docker and containerd size it).
pub fn mount_shm(target: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    rustix::mount::mount(
        "shm",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(c"mode=1777,size=65536k"),
    )?;
    Ok(())
}

/// Unmounts a pod's `/dev/shm` and removes its directory. Idempotent.
pub fn unmount_shm(target: &Path) -> std::io::Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_dir(target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_are_told_by_namespace() {
        assert_eq!(
            sysctl_namespace("net.ipv4.ip_forward"),
            Some(SysctlNamespace::Net)
        );
        assert_eq!(
            sysctl_namespace("net/core/somaxconn"),
            Some(SysctlNamespace::Net)
        );
        assert_eq!(
            sysctl_namespace("kernel.shmmax"),
            Some(SysctlNamespace::Ipc)
        );
        assert_eq!(
            sysctl_namespace("fs.mqueue.msg_max"),
            Some(SysctlNamespace::Ipc)
        );
        assert_eq!(sysctl_namespace("kernel.panic"), None);
        assert_eq!(sysctl_namespace("vm.swappiness"), None);
    }

    #[test]
    fn namespaces_are_pinned_with_hostname_and_sysctls_then_removed() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let pinned = create(NamespaceRequest {
            dir: dir.path().join("ns"),
            net: true,
            ipc: true,
            uts: true,
            hostname: Some("berth-pinned".into()),
            sysctls: vec![
                ("net.ipv4.ip_unprivileged_port_start".into(), "80".into()),
                ("kernel.shmmni".into(), "2048".into()),
            ],
        })
        .unwrap();
        let net = pinned.net.clone().unwrap();
        assert!(is_pinned(&net));
        let host_net = std::fs::metadata("/proc/self/ns/net").unwrap();
        let pod_net = std::fs::metadata(&net).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(host_net.ino(), pod_net.ino(), "a new network namespace");
        let read = |ns: &Path, file: &'static str| {
            in_netns(ns, move || std::fs::read_to_string(file)).unwrap()
        };
        assert_eq!(
            read(&net, "/proc/sys/net/ipv4/ip_unprivileged_port_start").trim(),
            "80"
        );
        remove(&pinned).unwrap();
        assert!(!net.exists());
        remove(&pinned).unwrap();
    }
}
