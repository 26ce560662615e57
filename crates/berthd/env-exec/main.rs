//! berth-env-exec: starts a container's process with environment values that are not UTF-8.
//!
//! An OCI runtime reads the process's environment from config.json, whose strings are UTF-8,
//! so bytes that are not (a Secret's, say) cannot reach the container that way. berth puts them
//! in this program's first argument, hex-encoded `KEY=VALUE\0` entries; the program adds them to
//! the environment the runtime gave it and execs the real process (its second argument onwards,
//! looked up in PATH as runc would when it has no slash). It is built by berthd's build script
//! with no standard library (the container's image may have no libc) and bound read-only into
//! such containers only.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ptr::{read_volatile, write_volatile};

const SYS_WRITE: usize = 1;
const SYS_MMAP: usize = 9;
const SYS_EXECVE: usize = 59;
const SYS_EXIT: usize = 60;
const ENOENT: isize = -2;
const EACCES: isize = -13;
const ENOTDIR: isize = -20;
const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0";

// The kernel starts a process with argc, argv, NULL, envp, NULL on the stack.
global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call berth_env_exec_main",
    "ud2",
);

unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes a valid system call and arguments.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

unsafe fn syscall6(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes a valid system call and arguments.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, in("r10") d, in("r8") e, in("r9") f, lateout("rcx") _,
             lateout("r11") _, options(nostack));
    }
    ret
}

fn exit(code: usize) -> ! {
    // SAFETY: exit takes any status and does not return.
    unsafe { syscall3(SYS_EXIT, code, 0, 0) };
    loop {}
}

fn write_err(text: &[u8]) {
    // SAFETY: the slice is valid for its length.
    unsafe { syscall3(SYS_WRITE, 2, text.as_ptr() as usize, text.len()) };
}

unsafe fn c_str<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    // SAFETY: p points at a NUL-terminated string the kernel or this program laid out.
    unsafe {
        while read_volatile(p.add(n)) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

fn fail(program: &[u8], why: &[u8], code: usize) -> ! {
    write_err(b"berth-env-exec: ");
    write_err(program);
    write_err(b": ");
    write_err(why);
    write_err(b"\n");
    exit(code)
}

/// Zeroed memory of `len` bytes (anonymous pages).
fn alloc(len: usize) -> *mut u8 {
    const PROT_RW: usize = 0x1 | 0x2;
    const MAP_PRIVATE_ANONYMOUS: usize = 0x02 | 0x20;
    // SAFETY: an anonymous private mapping touches no existing memory.
    let p = unsafe {
        syscall6(
            SYS_MMAP,
            0,
            len.max(1),
            PROT_RW,
            MAP_PRIVATE_ANONYMOUS,
            usize::MAX,
            0,
        )
    };
    if p < 0 {
        fail(b"mmap", b"out of memory", 126);
    }
    p as *mut u8
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn berth_env_exec_main(stack: *const usize) -> ! {
    // SAFETY: the kernel's process stack layout (see _start).
    let (argc, argv) = unsafe { (read_volatile(stack), stack.add(1) as *const *const u8) };
    if argc < 3 {
        fail(b"usage", b"berth-env-exec HEX-ENTRIES PROGRAM [ARG...]", 2);
    }
    // SAFETY: argv has argc entries and a NULL; envp follows.
    let (hex, program, args, envp) = unsafe {
        (
            c_str(read_volatile(argv.add(1))),
            read_volatile(argv.add(2)),
            argv.add(2),
            argv.add(argc + 1),
        )
    };
    // SAFETY: the program name is a NUL-terminated argument.
    let name = unsafe { c_str(program) };
    if hex.len() % 2 != 0 {
        fail(name, b"odd hex entries", 2);
    }
    let raw = alloc(hex.len() / 2 + 1);
    let mut added = 0;
    for i in 0..hex.len() / 2 {
        let (Some(hi), Some(lo)) = (hex_digit(hex[2 * i]), hex_digit(hex[2 * i + 1])) else {
            fail(name, b"bad hex entries", 2);
        };
        let byte = hi << 4 | lo;
        added += usize::from(byte == 0);
        // SAFETY: raw holds hex.len() / 2 + 1 bytes.
        unsafe { write_volatile(raw.add(i), byte) };
    }
    let mut inherited = 0;
    // SAFETY: envp ends with NULL.
    while !unsafe { read_volatile(envp.add(inherited)) }.is_null() {
        inherited += 1;
    }
    let env = alloc((inherited + added + 1) * size_of::<usize>()) as *mut *const u8;
    let mut path_var = DEFAULT_PATH.as_ptr();
    for i in 0..inherited {
        // SAFETY: i < inherited, env has room for inherited + added + 1 pointers.
        unsafe {
            let entry = read_volatile(envp.add(i));
            if c_str(entry).starts_with(b"PATH=") {
                path_var = entry.add(5);
            }
            write_volatile(env.add(i), entry);
        }
    }
    let mut start = 0;
    for n in 0..added {
        // SAFETY: each entry ends with a NUL within raw; n < added.
        unsafe {
            let entry = raw.add(start) as *const u8;
            let text = c_str(entry);
            if text.starts_with(b"PATH=") {
                path_var = entry.add(5);
            }
            write_volatile(env.add(inherited + n), entry);
            start += text.len() + 1;
        }
    }
    // SAFETY: the pointer array is NULL-terminated (zeroed memory), args too (argv's NULL).
    unsafe { exec(name, program, args, env, path_var) }
}

/// execve of `program` itself when it names a path, else of the first `dir/program` of PATH
/// that can be run.
unsafe fn exec(
    name: &[u8],
    program: *const u8,
    args: *const *const u8,
    env: *const *const u8,
    path_var: *const u8,
) -> ! {
    let execve = |path: *const u8| {
        // SAFETY: path is NUL-terminated; args and env are NULL-terminated arrays.
        unsafe { syscall3(SYS_EXECVE, path as usize, args as usize, env as usize) }
    };
    if name.contains(&b'/') {
        let err = execve(program);
        fail(
            name,
            if err == EACCES {
                b"permission denied"
            } else {
                b"cannot be run"
            },
            126,
        );
    }
    // SAFETY: PATH's value is NUL-terminated.
    let dirs = unsafe { c_str(path_var) };
    let buffer = alloc(dirs.len() + name.len() + 2);
    let mut denied = false;
    for dir in dirs.split(|b| *b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut n = 0;
        for b in dir.iter().chain(b"/").chain(name.iter()) {
            // SAFETY: buffer holds every dir of PATH, a slash, the name and a NUL.
            unsafe { write_volatile(buffer.add(n), *b) };
            n += 1;
        }
        // SAFETY: as above.
        unsafe { write_volatile(buffer.add(n), 0) };
        match execve(buffer) {
            ENOENT | ENOTDIR => {}
            EACCES => denied = true,
            _ => fail(name, b"cannot be run", 126),
        }
    }
    if denied {
        fail(name, b"permission denied", 126);
    }
    fail(name, b"executable file not found in $PATH", 127)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(126)
}

/// The precompiled core library refers to the unwinder's personality routine; with
/// `panic=abort` nothing ever unwinds, so nothing calls it.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
