//! The forked child: from the node's side into the container, then the exec. The order is
//! runc's (`setns_init_linux.go` and `finalizeNamespace`), with what the node's own files decide
//! (cgroup membership, the OOM score) done before any namespace is joined.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use berth_exec::plan::{CapabilitySets, ExecPlan, Instruction, ProcessPlan};
use rustix::fs::{Gid, Uid};
use rustix::thread::CapabilitySet;

use super::environment;
use super::init_process::Namespaces;
use super::sys;

pub struct Setup<'a> {
    pub plan: &'a ExecPlan,
    pub namespaces: Namespaces,
    pub seccomp: Option<(Vec<Instruction>, u32)>,
    /// Connected to berthd's console socket when the process gets a terminal.
    pub console: Option<UnixStream>,
    pub command: Command,
    /// Close-on-exec: the helper reads why the exec did not happen, or nothing.
    pub report: OwnedFd,
}

/// The command line, made C strings before the fork (a NUL in it fails the exec before
/// anything is entered).
pub struct Command {
    args: Vec<CString>,
}

impl Command {
    pub fn new(args: &[String]) -> Result<Command, String> {
        let args = args
            .iter()
            .map(|a| {
                CString::new(a.as_bytes()).map_err(|_| format!("argument {a:?} holds a NUL byte"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if args.is_empty() {
            return Err("no command".into());
        }
        Ok(Command { args })
    }

    fn name(&self) -> String {
        self.args[0].to_string_lossy().into_owned()
    }
}

/// Never returns: the process execs, or reports why not and exits.
pub fn run(setup: Setup<'_>) -> ! {
    #[cfg(debug_assertions)]
    test_pause();
    let mut report = std::fs::File::from(setup.report);
    let Err(why) = enter(
        setup.plan,
        setup.namespaces,
        setup.seccomp,
        setup.console,
        &setup.command,
    );
    let _ = report.write_all(why.as_bytes());
    std::process::exit(127);
}

/// Debug builds only: with `BERTH_EXEC_TEST_PAUSE_MS` in the environment, the child waits that
/// long before anything else, so that a test can try to reach it from inside the container while
/// it is still the node's root running the helper.
#[cfg(debug_assertions)]
fn test_pause() {
    let pause = std::env::var("BERTH_EXEC_TEST_PAUSE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok());
    if let Some(ms) = pause {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

fn enter(
    plan: &ExecPlan,
    namespaces: Namespaces,
    seccomp: Option<(Vec<Instruction>, u32)>,
    console: Option<UnixStream>,
    command: &Command,
) -> Result<Infallible, String> {
    let process = &plan.process;
    join_cgroups(&plan.cgroups)?;
    if let Some(score) = process.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", score.to_string())
            .map_err(|e| format!("setting the OOM score: {e}"))?;
    }
    if let Some(profile) = &process.apparmor_profile {
        apparmor_on_exec(profile)?;
    }
    namespaces.enter_rest()?;
    let in_user_namespace = namespaces.has_user();
    drop(namespaces);
    join_session_keyring(&plan.container_id)?;
    if let Some(console) = console {
        super::tty::attach(&console)?;
    }
    sys::reset_signals().map_err(|e| format!("resetting signals: {e}"))?;
    if process.no_new_privileges {
        rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
    }
    // Without no_new_privs a filter needs CAP_SYS_ADMIN, so it goes on before the capabilities
    // are dropped; with it, as late as can be, so that the fewest calls pass through it.
    if !process.no_new_privileges {
        load_seccomp(seccomp.as_ref())?;
    }
    let chdir_later = chdir_as_root(&process.cwd)?;
    let env = environment::prepare(&process.env, process.uid)?;
    drop_bounding_set(process.capabilities.bounding)?;
    rustix::thread::set_keep_capabilities(true).map_err(|e| format!("keep capabilities: {e}"))?;
    become_user(process, in_user_namespace)?;
    if chdir_later {
        rustix::process::chdir(process.cwd.as_str()).map_err(|e| {
            format!(
                "chdir to cwd ({:?}) set in config.json failed: {e}",
                process.cwd
            )
        })?;
    }
    verify_cwd()?;
    rustix::thread::set_keep_capabilities(false).map_err(|e| format!("keep capabilities: {e}"))?;
    apply_capabilities(&process.capabilities)?;
    let path = environment::get(&env, "PATH")
        .map(str::to_owned)
        .or_else(|| std::env::var("PATH").ok());
    let program = environment::look_up(&command.name(), path.as_deref())?;
    let program = CString::new(program.into_os_string().into_encoded_bytes())
        .map_err(|_| "the command's path holds a NUL byte".to_owned())?;
    let envp = env
        .into_iter()
        .map(|e| CString::new(e).map_err(|_| "an environment entry holds a NUL byte".to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    if process.no_new_privileges {
        load_seccomp(seccomp.as_ref())?;
    }
    sys::close_on_exec_from_3().map_err(|e| format!("closing descriptors: {e}"))?;
    let e = sys::execve(&program, &command.args, &envp);
    Err(format!("exec: {:?}: {}", command.name(), exec_error(&e)))
}

/// Asks AppArmor to confine the process with `profile` from its exec on, through the node's
/// /proc (the container's could be anything by now), as runc does.
fn apparmor_on_exec(profile: &str) -> Result<(), String> {
    let request = format!("exec {profile}");
    std::fs::write("/proc/self/attr/apparmor/exec", &request)
        .or_else(|_| std::fs::write("/proc/self/attr/exec", &request))
        .map_err(|e| format!("AppArmor profile {profile}: {e}"))
}

/// Moves the process into the container's cgroups (writing 0 means the writer), through the
/// node's cgroup filesystem, before any namespace is joined.
fn join_cgroups(dirs: &[std::path::PathBuf]) -> Result<(), String> {
    for dir in dirs {
        match std::fs::write(dir.join("cgroup.procs"), "0") {
            Ok(()) => {}
            // A hierarchy the container has no cgroup in (as runc, skipped).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("joining the cgroup {}: {e}", dir.display())),
        }
    }
    Ok(())
}

fn join_session_keyring(container_id: &str) -> Result<(), String> {
    let name = CString::new(format!("_ses.{container_id}"))
        .map_err(|_| "the container ID holds a NUL byte".to_owned())?;
    match sys::join_session_keyring(&name) {
        Ok(()) => Ok(()),
        // A kernel without keyrings, as runc tolerates.
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Ok(()),
        Err(e) => Err(format!("joining a session keyring: {e}")),
    }
}

fn load_seccomp(seccomp: Option<&(Vec<Instruction>, u32)>) -> Result<(), String> {
    match seccomp {
        Some((program, flags)) => sys::load_seccomp(program, *flags)
            .map_err(|e| format!("loading the seccomp filter: {e}")),
        None => Ok(()),
    }
}

/// The working directory, tried first as the container's root; true when permission was
/// refused and the container's user should try (a directory only that user may enter).
fn chdir_as_root(cwd: &str) -> Result<bool, String> {
    match rustix::process::chdir(cwd) {
        Ok(()) => Ok(false),
        Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => Ok(true),
        Err(e) => Err(format!(
            "chdir to cwd ({cwd:?}) set in config.json failed: {e}"
        )),
    }
}

/// getcwd() tells a working directory outside the mount namespace's root (CVE-2024-21626).
fn verify_cwd() -> Result<(), String> {
    match rustix::process::getcwd(Vec::new()) {
        Ok(dir) if dir.as_bytes().first() == Some(&b'/') => Ok(()),
        _ => Err("the working directory is outside the container's root".into()),
    }
}

fn drop_bounding_set(bounding: u64) -> Result<(), String> {
    for bit in 0..64 {
        if bounding & (1 << bit) != 0 {
            continue;
        }
        let cap = CapabilitySet::from_bits_retain(1 << bit);
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            // EINVAL: a capability this kernel does not have.
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => {
                return Err(format!(
                    "dropping capability {bit} from the bounding set: {e}"
                ));
            }
        }
    }
    Ok(())
}

/// The container's user: stdio handed over to it (so that it can reopen its own pipes and
/// terminal), its groups, then its IDs.
fn become_user(process: &ProcessPlan, in_user_namespace: bool) -> Result<(), String> {
    let uid = Uid::from_raw(process.uid);
    let gid = Gid::from_raw(process.gid);
    hand_stdio_to(uid);
    let groups: Vec<Gid> = process
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match rustix::thread::set_thread_groups(&groups) {
        Ok(()) => {}
        // A user namespace whose setgroups is denied: nothing to do without groups to set.
        Err(rustix::io::Errno::PERM) if in_user_namespace && groups.is_empty() => {}
        Err(e) => return Err(format!("setgroups: {e}")),
    }
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| format!("setgid {}: {e}", process.gid))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| format!("setuid {}: {e}", process.uid))?;
    Ok(())
}

/// Makes the process's user own its stdio, as runc does (its pipes and terminal were made by
/// root); /dev/null and what it owns already are left alone, and a refusal is not an error.
fn hand_stdio_to(uid: Uid) {
    for fd in [
        rustix::stdio::stdin(),
        rustix::stdio::stdout(),
        rustix::stdio::stderr(),
    ] {
        let Ok(stat) = rustix::fs::fstat(fd) else {
            continue;
        };
        let is_dev_null = rustix::fs::FileType::from_raw_mode(stat.st_mode)
            == rustix::fs::FileType::CharacterDevice
            && rustix::fs::major(stat.st_rdev) == 1
            && rustix::fs::minor(stat.st_rdev) == 3;
        if stat.st_uid == uid.as_raw() || is_dev_null {
            continue;
        }
        let _ = rustix::fs::fchown(fd, Some(uid), None);
    }
}

fn apply_capabilities(caps: &CapabilitySets) -> Result<(), String> {
    let set = CapabilitySet::from_bits_retain;
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: set(caps.effective),
            permitted: set(caps.permitted),
            inheritable: set(caps.inheritable),
        },
    )
    .map_err(|e| format!("setting capabilities: {e}"))?;
    rustix::thread::clear_ambient_capability_set()
        .map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    for bit in 0..64 {
        if caps.ambient & (1 << bit) != 0 {
            rustix::thread::configure_capability_in_ambient_set(set(1 << bit), true)
                .map_err(|e| format!("raising ambient capability {bit}: {e}"))?;
        }
    }
    Ok(())
}

/// execve's failure as Go's exec reports it (berthd tells "not found" from the rest).
fn exec_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        _ => e.to_string(),
    }
}
