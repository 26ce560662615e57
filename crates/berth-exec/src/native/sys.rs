//! The system calls of the native path that neither std nor rustix offers safely. Each is a thin
//! wrapper whose safety argument is local; nothing else in the crate uses `unsafe`.

use std::ffi::{CStr, CString};
use std::io;

use berth_exec::plan::Instruction;
use rustix::process::Pid;

/// `fork()`: None in the child, the child's PID in the parent.
#[allow(unsafe_code)]
pub fn fork() -> io::Result<Option<Pid>> {
    // SAFETY: the helper never starts a thread, so the child cannot inherit a lock (of the
    // allocator, of stdio) that another thread held at the fork; it goes on with a copy of the
    // helper's memory in which every lock is free.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Pid::from_raw(pid)),
    }
}

/// Installs a seccomp filter (`seccomp(SECCOMP_SET_MODE_FILTER, flags, &program)`).
#[allow(unsafe_code)]
pub fn load_seccomp(program: &[Instruction], flags: u32) -> io::Result<()> {
    let mut filters: Vec<libc::sock_filter> = program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len =
        u16::try_from(filters.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: filters.as_mut_ptr(),
    };
    // SAFETY: `prog` describes `filters`, `len` instructions that live until the call returns;
    // the kernel copies the program and keeps no pointer to it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Joins a new session keyring named `name` (`keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`), so
/// that the process shares no keyring with the helper's caller.
#[allow(unsafe_code)]
pub fn join_session_keyring(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a NUL-terminated string that outlives the call; the kernel reads it only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING,
            name.as_ptr(),
        )
    };
    if r >= 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives every signal its default action and unblocks them all: an ignored signal or a blocked
/// one would stay so across the exec (the helper, as any Rust program, ignores SIGPIPE).
#[allow(unsafe_code)]
pub fn reset_signals() -> io::Result<()> {
    // SAFETY: `mask` is a local sigset_t that sigemptyset initialises before it is used; SIG_DFL
    // is a valid disposition for every signal that may be given one (KILL and STOP may not,
    // and signal() refuses them without effect).
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        if libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        for signal in 1..=libc::SIGRTMAX() {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
    }
    Ok(())
}

/// Marks every descriptor from 3 up close-on-exec, whoever opened it.
#[allow(unsafe_code)]
pub fn close_on_exec_from_3() -> io::Result<()> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC nothing is closed now: only flags change, so no
    // descriptor owned elsewhere in the program is invalidated.
    let r = unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `execve(path, argv, envp)`; returns only on failure.
#[allow(unsafe_code)]
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point at NUL-terminated strings that live
    // until the call returns (it returns only on failure).
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}
