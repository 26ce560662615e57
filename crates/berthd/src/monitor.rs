//! Starting berth-monitor for a container and talking to it (the client half of
//! berth_monitor::proto; docs/monitor-protocol.md).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_monitor::proto::{self, ExitRecord, Request};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::oci::OciRuntime;

/// How long runc create (through the monitor) may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub container_id: &'a str,
    pub bundle: &'a Path,
    pub runtime: &'a OciRuntime,
    pub state_dir: &'a Path,
    pub log_path: &'a Path,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub systemd_cgroup: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub monitor_pid: u32,
    pub container_pid: u32,
}

/// Starts the monitor, which runs `runc create`; returns once the container exists (or with
/// runc's error).
pub async fn start(launch: &Launch<'_>) -> Result<Started, String> {
    let runtime = launch.runtime.resolve().map_err(|e| e.to_string())?;
    let stderr = std::fs::File::create(launch.state_dir.join("monitor.log"))
        .map_err(|e| format!("monitor log: {e}"))?;
    let mut cmd = tokio::process::Command::new(launch.binary);
    cmd.arg("--id")
        .arg(launch.container_id)
        .arg("--bundle")
        .arg(launch.bundle)
        .arg("--runtime")
        .arg(&runtime)
        .arg("--runtime-root")
        .arg(&launch.runtime.state_root)
        .arg("--log")
        .arg(launch.log_path);
    for (flag, on) in [
        ("--tty", launch.tty),
        ("--stdin", launch.stdin),
        ("--stdin-once", launch.stdin_once),
        ("--systemd-cgroup", launch.systemd_cgroup),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    let mut child = cmd
        .current_dir(launch.state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", launch.binary.display()))?;
    let monitor_pid = child.id().ok_or("the monitor exited at once")?;
    crate::cgroups::adopt_monitor(monitor_pid);
    let stdout = child.stdout.take().ok_or("no monitor stdout")?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let outcome = tokio::time::timeout(CREATE_TIMEOUT, reader.read_line(&mut line)).await;
    // The monitor is our child until it exits: reap it then, whenever that is.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    match outcome {
        Err(_) => Err(format!("runc create took over {CREATE_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("reading the monitor: {e}")),
        Ok(Ok(_)) => match line.trim().split_once(' ') {
            Some(("ok", pid)) => pid
                .parse()
                .map(|container_pid| Started {
                    monitor_pid,
                    container_pid,
                })
                .map_err(|_| format!("the monitor said `{line}`")),
            Some(("error", message)) => Err(message.to_owned()),
            _ => Err(format!(
                "the monitor failed before creating the container: {}",
                std::fs::read_to_string(launch.state_dir.join("monitor.log"))
                    .unwrap_or_default()
                    .trim()
            )),
        },
    }
}

/// `berth-monitor exec`: runs `args` in the container and waits for that process alone (see the
/// monitor's exec.rs); its pid goes to `pid_file`, its exit code or runc's error to `result`.
pub fn exec_command(
    binary: &Path,
    runtime: &OciRuntime,
    container_id: &str,
    pid_file: &Path,
    result: &Path,
    console_socket: Option<&str>,
    args: &[String],
) -> Result<tokio::process::Command, String> {
    let runc = runtime.resolve().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("exec")
        .arg("--runtime")
        .arg(runc)
        .arg("--runtime-root")
        .arg(&runtime.state_root)
        .arg("--id")
        .arg(container_id)
        .arg("--pid-file")
        .arg(pid_file)
        .arg("--result")
        .arg(result);
    if let Some(socket) = console_socket {
        cmd.arg("--console-socket").arg(socket);
    }
    cmd.arg("--")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    Ok(cmd)
}

/// What `berth-monitor exec` wrote: the exit code, or runc's error.
pub fn exec_result(result: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(result)
        .map_err(|e| format!("the exec helper left no result: {e}"))?;
    match text.trim().split_once(' ') {
        Some(("exit", code)) => code
            .parse()
            .map_err(|_| format!("bad exec result `{text}`")),
        Some(("error", message)) => Err(message.to_owned()),
        _ => Err(format!("bad exec result `{text}`")),
    }
}

/// A connection to the monitor's socket. The socket's path may be longer than a unix socket path
/// may be, so it is reached through a descriptor of its directory.
pub async fn connect(state_dir: &Path) -> std::io::Result<tokio::net::UnixStream> {
    let dir: OwnedFd = rustix::fs::open(
        state_dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let path = PathBuf::from(format!(
        "/proc/self/fd/{}/{}",
        dir.as_raw_fd(),
        proto::SOCKET
    ));
    let stream = tokio::net::UnixStream::connect(&path).await;
    drop(dir);
    stream
}

/// Sends one request; returns the stream after an `ok` reply, or the monitor's error.
pub async fn request(state_dir: &Path, req: Request) -> Result<tokio::net::UnixStream, String> {
    let mut stream = connect(state_dir)
        .await
        .map_err(|e| format!("cannot reach the monitor: {e}"))?;
    stream
        .write_all(format!("{req}\n").as_bytes())
        .await
        .map_err(|e| format!("writing to the monitor: {e}"))?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while reply.len() < 4096 {
        match stream.read(&mut byte).await {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => reply.push(byte[0]),
            Err(e) => return Err(format!("reading from the monitor: {e}")),
        }
    }
    let reply = String::from_utf8_lossy(&reply).into_owned();
    match reply.as_str() {
        "ok" => Ok(stream),
        r => Err(r.strip_prefix("error ").unwrap_or(r).to_owned()),
    }
}

/// The exit record of a container whose monitor has finished, if it wrote one.
pub fn exit_record(state_dir: &Path) -> Option<Result<ExitRecord, String>> {
    let text = std::fs::read_to_string(state_dir.join(proto::EXIT_RECORD)).ok()?;
    Some(ExitRecord::parse(&text))
}

/// Whether `pid` is still the monitor of `container_id` (and not a reused PID).
pub fn is_alive(pid: u32, container_id: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_monitor = args.first().is_some_and(|a| a.ends_with(b"berth-monitor"));
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(true);
    is_monitor && !zombie && args.contains(&container_id.as_bytes())
}

/// Resolves when process `pid` has exited (through a pidfd, so it works for any process, not
/// only children). Returns at once if it is already gone.
pub async fn wait_exit(pid: u32) {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::NONBLOCK) else {
        return;
    };
    let Ok(async_fd) = crate::async_fd::register(fd, tokio::io::Interest::READABLE) else {
        return;
    };
    let _ = async_fd.readable().await;
}
