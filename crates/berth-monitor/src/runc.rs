//! `runc create` for the monitor's container: its stdio (pipes, or a pty whose master runc sends
//! back over the console socket), its pid, and its error when it fails (from runc's JSON log).

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_monitor::proto::{CONSOLE_SOCKET, PID_FILE, RUNC_LOG};
use berth_monitor::runc_log::runc_error_in;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::args::Args;

/// What the monitor keeps of the container's stdio.
pub enum Stdio3 {
    Pipes {
        /// The write end of the container's stdin (when it has one).
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Pty {
        master: OwnedFd,
    },
}

/// How long runc may take to send the pty master.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why `runc create` made no container.
pub enum CreateError {
    /// runc's (or the monitor's) own words.
    Failed(String),
    /// It overstayed its timeout, and was killed and deleted.
    TimedOut(Duration),
}

impl From<String> for CreateError {
    fn from(message: String) -> CreateError {
        CreateError::Failed(message)
    }
}

/// Creates the container; returns its pid and the monitor's ends of its stdio.
pub fn create(args: &Args) -> Result<(u32, Stdio3), CreateError> {
    let _ = std::fs::remove_file(RUNC_LOG);
    let mut cmd = Command::new(&args.runtime);
    cmd.arg("--root")
        .arg(&args.runtime_root)
        .args(["--log", RUNC_LOG, "--log-format", "json"]);
    if args.systemd_cgroup {
        cmd.arg("--systemd-cgroup");
    }
    cmd.arg("create")
        .arg("--bundle")
        .arg(&args.bundle)
        .args(["--pid-file", PID_FILE]);
    // runc resolves the console socket from its bundle dir, and a unix socket path is short:
    // name ours through a descriptor of our (the state) dir.
    let here = rustix::fs::open(
        ".",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("state dir: {e}"))?;
    let planned = plan_stdio(args, &mut cmd, &here)?;
    cmd.arg(&args.id);
    // A group of its own, so that a runc that overstays is killed with whatever it started.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let deadline = Instant::now() + args.create_timeout;
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", args.runtime))?;
    // The container's ends of the pipes now belong to runc and the container only.
    drop(cmd);
    let stdio = match planned {
        PlannedStdio::Pipes(pipes) => pipes,
        PlannedStdio::Console(listener) => match receive_master(&listener, &mut child) {
            Ok(master) => Stdio3::Pty { master },
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(runc_error_in(RUNC_LOG).unwrap_or(e).into());
            }
        },
    };
    let status = match wait_until(&mut child, deadline)? {
        Some(status) => status,
        None => {
            abandon(args, &mut child);
            return Err(CreateError::TimedOut(args.create_timeout));
        }
    };
    drop(here);
    if !status.success() {
        return Err(runc_error_in(RUNC_LOG)
            .unwrap_or_else(|| format!("runc create exited with {status}"))
            .into());
    }
    let pid = std::fs::read_to_string(PID_FILE)
        .map_err(|e| format!("reading runc's pid file: {e}"))?
        .trim()
        .parse()
        .map_err(|_| "runc wrote no pid".to_owned())?;
    Ok((pid, stdio))
}

/// The child's exit status, or None if `deadline` came first.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> Result<Option<std::process::ExitStatus>, String> {
    let pid = rustix::process::Pid::from_child(child);
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| format!("watching runc create: {e}"))?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let timeout = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {
                return child
                    .wait()
                    .map(Some)
                    .map_err(|e| format!("waiting for runc create: {e}"));
            }
            Err(e) => return Err(format!("watching runc create: {e}")),
        }
    }
}

/// Kills a runc create that overstayed, with its process group, and deletes what it made, so
/// that no container appears after berthd has given up on it.
fn abandon(args: &Args, child: &mut std::process::Child) {
    if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.wait();
    let mut delete = Command::new(&args.runtime);
    delete.arg("--root").arg(&args.runtime_root);
    if args.systemd_cgroup {
        delete.arg("--systemd-cgroup");
    }
    let _ = delete
        .args(["delete", "--force", &args.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// How the container's stdio is being made: pipes already in place, or a console socket runc
/// will send the pty master to.
enum PlannedStdio {
    Pipes(Stdio3),
    Console(UnixListener),
}

/// Gives runc's command the container's stdio: a console socket for a TTY, else pipes (stdin
/// only when the container keeps one open).
fn plan_stdio(args: &Args, cmd: &mut Command, here: &OwnedFd) -> Result<PlannedStdio, String> {
    if args.tty {
        let _ = std::fs::remove_file(CONSOLE_SOCKET);
        let listener =
            UnixListener::bind(CONSOLE_SOCKET).map_err(|e| format!("console socket: {e}"))?;
        cmd.arg("--console-socket").arg(console_path(here));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        return Ok(PlannedStdio::Console(listener));
    }
    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))
    };
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let stdin = if args.stdin {
        let (r, w) = pipe()?;
        cmd.stdin(Stdio::from(r));
        Some(w)
    } else {
        cmd.stdin(Stdio::null());
        None
    };
    cmd.stdout(Stdio::from(stdout_w))
        .stderr(Stdio::from(stderr_w));
    Ok(PlannedStdio::Pipes(Stdio3::Pipes {
        stdin,
        stdout: stdout_r,
        stderr: stderr_r,
    }))
}

/// The console socket's path for runc: through our descriptor of the state dir.
pub fn console_path(dir: &OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    format!(
        "/proc/{}/fd/{}/{CONSOLE_SOCKET}",
        std::process::id(),
        dir.as_raw_fd()
    )
}

/// Accepts runc's connection on the console socket and receives the pty master it sends.
pub fn receive_master(
    listener: &UnixListener,
    child: &mut std::process::Child,
) -> Result<OwnedFd, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + CONSOLE_TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "runc create exited with {status} before sending the console"
                    ));
                }
                if Instant::now() > deadline {
                    return Err("runc sent no console".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("console socket: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    rustix::net::recvmsg(&stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
        .map_err(|e| format!("receiving the console: {e}"))?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err("runc's console message carried no file descriptor".into())
}
