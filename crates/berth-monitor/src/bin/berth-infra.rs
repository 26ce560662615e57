//! berth-infra: the PID 1 of a pod that shares one PID namespace (`pid = POD`). It needs no image:
//! it runs in a mount namespace of its own whose root is an empty read-only tmpfs, without
//! capabilities, as nobody, and only reaps the zombies the pod's processes leave.
//!
//! `berth-infra start --owner DIR [--user PATH] [--net PATH] [--ipc PATH] [--uts PATH]` joins the pod's pinned
//! namespaces (it opens them all first, while it is still the node's root; the user namespace is
//! joined first, so that the PID namespace belongs to it), creates the PID namespace, starts the
//! init process in it and prints its PID (as the node sees it) once init reports it is set up.
//! The init process (`berth-infra init`) outlives the caller; it keeps `--owner` (the pod's
//! dir) in its environment as `BERTH_INFRA_OWNER`, by which a berthd starting after a crash
//! finds the infra processes of pods it has no record of.
//!
//! `berth-infra hold` does nothing until it is killed: berthd starts it in new namespaces (a user
//! namespace cannot be made by a multi-threaded process) to write their ID maps and pin them.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags, UnmountFlags,
};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

/// The user and group the init process runs as.
const NOBODY: u32 = 65534;
/// Where init keeps its pod's dir: in its environment, which the pod's processes cannot read
/// (init runs as another user), rather than in its command line, which they can.
const OWNER_ENV: &str = "BERTH_INFRA_OWNER";
/// What init tells `start` once it is set up.
const READY: &str = "ready";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("start") => start(&args[2..]),
        Some("hold") => hold(),
        Some("init") => init(),
        _ => Err(
            "usage: berth-infra start --owner DIR [--user PATH] [--net PATH] [--ipc PATH] [--uts PATH] | hold"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("berth-infra: {message}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: &[String]) -> Result<(), String> {
    let mut namespaces = Vec::new();
    let mut owner = None;
    for pair in args.chunks(2) {
        let (flag, path) = match pair {
            [flag, path] => (flag.as_str(), path),
            _ => return Err(format!("{} needs a path", pair[0])),
        };
        if flag == "--owner" {
            owner = Some(path.clone());
            continue;
        }
        let kind = match flag {
            "--user" => LinkNameSpaceType::User,
            "--net" => LinkNameSpaceType::Network,
            "--ipc" => LinkNameSpaceType::InterProcessCommunication,
            "--uts" => LinkNameSpaceType::HostNameAndNISDomainName,
            other => return Err(format!("unknown flag {other}")),
        };
        // Opened now: once in the pod's user namespace, the pod's dirs are not ours to read.
        let ns = File::open(path).map_err(|e| format!("{path}: {e}"))?;
        namespaces.push((kind, ns, path));
    }
    let owner = owner.ok_or("start needs --owner")?;
    namespaces.sort_by_key(|(kind, _, _)| *kind != LinkNameSpaceType::User);
    for (kind, ns, path) in &namespaces {
        rustix::thread::move_into_link_name_space(ns.as_fd(), Some(*kind))
            .map_err(|e| format!("joining {path}: {e}"))?;
        if *kind == LinkNameSpaceType::User {
            become_root_of_user_namespace()?;
        }
    }
    unshare(UnshareFlags::NEWPID).map_err(|e| format!("new PID namespace: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    // Init reports on a pipe: READY once it is set up, or why it could not be.
    let (report, init_side) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let init_stderr = init_side.try_clone().map_err(|e| format!("pipe: {e}"))?;
    let child = Command::new(exe)
        .arg0("berth-infra")
        .arg("init")
        .env_clear()
        .env(OWNER_ENV, &owner)
        .stdin(Stdio::null())
        .stdout(init_side)
        .stderr(init_stderr)
        .spawn()
        .map_err(|e| format!("starting init: {e}"))?;
    let mut line = String::new();
    std::io::BufReader::new(File::from(report))
        .read_line(&mut line)
        .map_err(|e| format!("reading init's report: {e}"))?;
    if line.trim_end() != READY {
        return Err(format!("init: {}", line.trim_end()));
    }
    let mut out = std::io::stdout();
    writeln!(out, "{}", child.id()).map_err(|e| format!("reporting the pid: {e}"))?;
    Ok(())
}

/// The node's root is no one in the pod's user namespace, and the capabilities joining gave it
/// would not survive the exec of init: become the namespace's root (a mapped user) instead.
fn become_root_of_user_namespace() -> Result<(), String> {
    let root_gid = rustix::fs::Gid::from_raw(0);
    let root_uid = rustix::fs::Uid::from_raw(0);
    rustix::thread::set_thread_groups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid)
        .map_err(|e| format!("setresgid in the user namespace: {e}"))?;
    rustix::thread::set_thread_res_uid(root_uid, root_uid, root_uid)
        .map_err(|e| format!("setresuid in the user namespace: {e}"))?;
    Ok(())
}

fn hold() -> Result<(), String> {
    loop {
        std::thread::park();
    }
}

#[allow(unsafe_code)]
fn unshare(flags: UnshareFlags) -> rustix::io::Result<()> {
    // SAFETY: rustix marks unshare unsafe only for CLONE_FILES; these are namespace flags, and the
    // process is single-threaded.
    unsafe { rustix::thread::unshare_unsafe(flags) }
}

/// Becomes a harmless PID 1: an empty read-only root, no capabilities, nobody; then reaps.
fn init() -> Result<(), String> {
    let step = |what: &'static str| move |e: rustix::io::Errno| format!("{what}: {e}");
    unshare(UnshareFlags::NEWNS).map_err(step("new mount namespace"))?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(step("private mounts"))?;
    // An empty read-only tmpfs, stacked on "/" of this private namespace: it needs no dir of
    // the node's to be mounted on.
    let fs =
        rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).map_err(step("open tmpfs"))?;
    for (key, value) in [("size", "4k"), ("mode", "0555")] {
        rustix::mount::fsconfig_set_string(&fs, key, value).map_err(step("configure tmpfs"))?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(step("create tmpfs"))?;
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    let root = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(step("mount tmpfs"))?;
    rustix::mount::move_mount(
        root.as_fd(),
        c"",
        rustix::fs::CWD,
        "/",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(step("attach the empty root"))?;
    // A path lookup of "/" starts below what is stacked on it; the mount's own fd does not.
    rustix::process::fchdir(&root).map_err(step("chdir"))?;
    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves nothing of
    // the host's filesystem reachable.
    rustix::process::pivot_root(".", ".").map_err(step("pivot_root"))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(step("detach old root"))?;
    rustix::process::chdir("/").map_err(step("chdir /"))?;
    drop_privileges()?;
    writeln!(std::io::stdout(), "{READY}").map_err(|e| format!("reporting ready: {e}"))?;
    reap_forever()
}

fn drop_privileges() -> Result<(), String> {
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
    drop_bounding_set();
    rustix::thread::set_thread_groups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    let gid = rustix::fs::Gid::from_raw(NOBODY);
    let uid = rustix::fs::Uid::from_raw(NOBODY);
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|e| format!("setresgid: {e}"))?;
    // Leaving uid 0 clears the permitted, effective and ambient capability sets.
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(|e| format!("setresuid: {e}"))?;
    Ok(())
}

/// Drops every capability from the bounding set, so none can ever be regained (even by exec).
fn drop_bounding_set() {
    for cap in rustix::thread::CapabilitySet::all().iter() {
        // Capabilities this kernel does not know answer EINVAL: nothing to drop.
        let _ = rustix::thread::remove_capability_from_bounding_set(cap);
    }
}

fn reap_forever() -> ! {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(_) => {}
            // No children now: orphans may be reparented to us later.
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}
