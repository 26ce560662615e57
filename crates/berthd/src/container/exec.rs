//! Processes exec'd in a running container, through the exec helper (berth-exec, see
//! `crate::exec`), which waits for the exec'd process alone, not for background children
//! holding its pipes.
//!
//! ExecSync: stdout and stderr each capped at 16 MiB, the exit code; with a timeout, the call fails
//! when it passes and the process and its children are killed; output arriving after the process
//! exited is taken for 500 ms only. Streaming exec (`start_exec`) hands the process's stdio, or
//! its pty, to the streaming server.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::{ContainerError, ContainerService};
use crate::exec::{Backend, ExecError, ExecFiles, PlanSources};
use crate::oci::OciRuntime;
use crate::sync::LockRecovered;

/// Output kept of each stream.
pub const OUTPUT_CAP: usize = 16 * 1024 * 1024;
/// After the process exits, output still arriving within this window is kept.
const DRAIN_WINDOW: Duration = Duration::from_millis(500);
/// How long the helper (or runc) may take to send a TTY's master.
const CONSOLE_WAIT: Duration = Duration::from_secs(30);
/// How long a killed process tree may take to die and its process to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(10);
/// Passes over a process tree that keeps forking before it is killed as found.
const TREE_PASSES: usize = 8;

#[derive(Debug, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

/// An exec'd process, running.
#[derive(Debug)]
pub struct ExecProcess {
    /// The helper: it exits when the exec'd process does. Its stdio (non-TTY) is the process's.
    pub child: tokio::process::Child,
    /// The pty master of a TTY exec.
    pub pty: Option<OwnedFd>,
    pid_file: PathBuf,
    result: PathBuf,
    /// The helper was reaped or killed: nothing is left for `Drop` to end.
    settled: bool,
}

impl ExecProcess {
    /// The exit code once the helper has exited; why not, if the process never started.
    pub async fn wait(&mut self) -> Result<i32, ContainerError> {
        self.child.wait().await.map_err(io_err_exec)?;
        self.settled = true;
        let code = crate::exec::exit_code(&self.result);
        self.cleanup();
        code.map_err(ContainerError::Exec)
    }

    /// Kills the process and every process below it, and returns once they are dead and the
    /// process itself is reaped (by the helper, which waits for it and then exits): a caller
    /// told "timed out" must not find the command still running, not even as a zombie.
    pub async fn terminate(&mut self) {
        let tree = self.pid().map(kill_tree).unwrap_or_default();
        if tokio::time::timeout(REAP_WAIT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        // Descendants the process left were reparented to the container's init, which reaps
        // them in its own time; they are dead already, only their entries may linger.
        let deadline = tokio::time::Instant::now() + REAP_WAIT;
        while tree.iter().any(|p| is_running(*p)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.cleanup();
        self.settled = true;
    }

    /// Kills the process tree and the helper without waiting (the session that started it is
    /// being dropped).
    fn kill_now(&mut self) {
        if let Some(pid) = self.pid() {
            kill_tree(pid);
        }
        let _ = self.child.start_kill();
        self.cleanup();
        self.settled = true;
    }

    /// The exec'd process, once the helper (or runc) has written its pid.
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_file(&self.pid_file);
        let _ = std::fs::remove_file(&self.result);
    }
}

/// Whoever waited for the process gave up (a streaming client left, an ExecSync caller cancelled):
/// the process must not outlive the session that started it.
impl Drop for ExecProcess {
    fn drop(&mut self) {
        if !self.settled {
            self.kill_now();
        }
    }
}

impl ContainerService {
    /// Starts `cmd` in a running container: with a pty when `tty`, else with piped stdout and
    /// stderr (and stdin when `stdin`).
    pub async fn start_exec(
        &self,
        id: &str,
        cmd: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<ExecProcess, ContainerError> {
        if cmd.is_empty() {
            return Err(ContainerError::Invalid("exec needs a command".into()));
        }
        let record = self.get(id)?.record();
        record.must_be_running()?;
        let runtime = self.runtime(&record.runtime_handler)?;
        let state_dir = self.state_dir_of(&record.id);
        let name = format!("exec-{}", &crate::ids::new_id()[..16]);
        let (pid_file, result) = (
            state_dir.join(format!("{name}.pid")),
            state_dir.join(format!("{name}.result")),
        );
        let console = if tty {
            Some(Console::bind(&state_dir, &name)?)
        } else {
            None
        };
        let plan = if runtime.native {
            self.exec_plan(&record.id, runtime).await?
        } else {
            None
        };
        let backend = match &plan {
            Some(plan) => Backend::Native { plan },
            None => Backend::Runtime {
                runtime,
                container_id: &record.id,
            },
        };
        let files = ExecFiles {
            pid_file: &pid_file,
            result: &result,
            console_socket: console.as_ref().map(|c| c.path_for_helper.as_str()),
        };
        let mut command = self
            .exec_helper
            .command(backend, files, cmd)
            .map_err(ContainerError::Exec)?;
        if tty {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        } else {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            if stdin {
                command.stdin(Stdio::piped());
            }
        }
        let child = command.spawn().map_err(io_err_exec)?;
        let mut process = ExecProcess {
            child,
            pty: None,
            pid_file,
            result,
            settled: false,
        };
        if let Some(console) = console {
            match console.receive(&mut process.child).await {
                Ok(master) => process.pty = Some(master),
                Err(e) => {
                    process.terminate().await;
                    // The helper's (or runc's) own error, if it wrote one, says more than the
                    // missing terminal.
                    let reason = crate::exec::exit_code(&process.result)
                        .err()
                        .unwrap_or(ExecError::NoResult(e));
                    return Err(ContainerError::Exec(reason));
                }
            }
        }
        Ok(process)
    }

    /// The container's exec plan for the native path, built on the first exec; None when the
    /// runtime's state cannot be read that way (the runtime's exec then runs the process).
    async fn exec_plan(
        &self,
        id: &str,
        runtime: &OciRuntime,
    ) -> Result<Option<PathBuf>, ContainerError> {
        let sources = PlanSources {
            container_id: id.to_owned(),
            config: self.paths.container_bundle(id).join("config.json"),
            runtime: runtime.clone(),
            plan: self.paths.exec_plan(id),
        };
        if sources.plan.is_file() {
            return Ok(Some(sources.plan));
        }
        match crate::blocking::run(move || crate::exec::ensure_plan(&sources)).await? {
            Ok(path) => Ok(Some(path)),
            Err(e) if e.needs_runtime() => {
                tracing::debug!(container = %id, "the runtime's exec runs it: {e}");
                Ok(None)
            }
            Err(e) => Err(ContainerError::Exec(e.into())),
        }
    }

    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Option<Duration>,
    ) -> Result<ExecOutput, ContainerError> {
        let mut process = self.start_exec(id, &cmd, false, false).await?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = [
            process
                .child
                .stdout
                .take()
                .map(|s| tokio::spawn(read_capped(s, stdout.clone()))),
            process
                .child
                .stderr
                .take()
                .map(|s| tokio::spawn(read_capped(s, stderr.clone()))),
        ];
        let exited = match timeout {
            Some(t) => match tokio::time::timeout(t, process.wait()).await {
                Ok(code) => code,
                Err(_) => {
                    process.terminate().await;
                    for r in readers.into_iter().flatten() {
                        r.abort();
                    }
                    return Err(ContainerError::ExecTimedOut {
                        command: cmd,
                        after: t,
                    });
                }
            },
            None => process.wait().await,
        };
        let exit_code = match exited {
            Ok(code) => code,
            // The command never started (it could not be exec'd): what a shell would answer,
            // with the helper's (or runc's) words as its stderr, so that kubelet and crictl
            // show why.
            Err(ContainerError::Exec(ExecError::Refused(why))) => {
                return Ok(ExecOutput {
                    stdout: Vec::new(),
                    stderr: format!("{why}\n").into_bytes(),
                    exit_code: if why.contains("not found") || why.contains("no such file") {
                        127
                    } else {
                        126
                    },
                });
            }
            Err(e) => return Err(e),
        };
        for mut r in readers.into_iter().flatten() {
            if tokio::time::timeout(DRAIN_WINDOW, &mut r).await.is_err() {
                // Held open by a background child: keep what arrived, stop reading.
                r.abort();
            }
        }
        let take = |buf: &Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *buf.lock_recovered());
        Ok(ExecOutput {
            stdout: take(&stdout),
            stderr: take(&stderr),
            exit_code,
        })
    }
}

/// The socket the helper (or runc) sends a TTY's master to. Its path may be longer than a socket
/// path may be, so it is bound and named through a descriptor of its directory.
struct Console {
    listener: tokio::net::UnixListener,
    path_for_helper: String,
    _dir: OwnedFd,
}

impl Console {
    fn bind(dir: &Path, name: &str) -> Result<Console, ContainerError> {
        let err = |e: std::io::Error| ContainerError::Io {
            what: "console socket".into(),
            source: e,
        };
        let dir_fd = rustix::fs::open(
            dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| err(e.into()))?;
        let socket = format!("{name}.sock");
        let here = format!("/proc/self/fd/{}/{socket}", dir_fd.as_raw_fd());
        let listener = tokio::net::UnixListener::bind(&here).map_err(err)?;
        Ok(Console {
            listener,
            path_for_helper: format!(
                "/proc/{}/fd/{}/{socket}",
                std::process::id(),
                dir_fd.as_raw_fd()
            ),
            _dir: dir_fd,
        })
    }

    /// Waits for the connection (or the helper's end) and takes the master it sends.
    async fn receive(self, helper: &mut tokio::process::Child) -> std::io::Result<OwnedFd> {
        let no_terminal = |why: &str| std::io::Error::other(why.to_owned());
        let accepted = tokio::select! {
            a = self.listener.accept() => a,
            _ = helper.wait() => Err(no_terminal("the helper exited before sending the terminal")),
            _ = tokio::time::sleep(CONSOLE_WAIT) => Err(no_terminal("the helper sent no terminal")),
        };
        let (stream, _) = accepted?;
        let stream = stream.into_std()?;
        let master = crate::blocking::run(move || receive_fd(&stream))
            .await
            .map_err(std::io::Error::other)?;
        // The socket file is not needed once the master is here.
        if let Ok(addr) = self.listener.local_addr() {
            if let Some(p) = addr.as_pathname() {
                let _ = std::fs::remove_file(p);
            }
        }
        master
    }
}

fn receive_fd(stream: &std::os::unix::net::UnixStream) -> std::io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    stream.set_nonblocking(false)?;
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(std::io::Error::other(
        "the console message carried no descriptor",
    ))
}

fn io_err_exec(e: std::io::Error) -> ContainerError {
    if e.raw_os_error() == Some(libc::E2BIG) {
        // Each argument was checked at the CRI boundary; together they can still be too many.
        return ContainerError::Invalid(
            "cmd: the arguments together are more than exec takes".into(),
        );
    }
    ContainerError::Io {
        what: "running the exec helper".into(),
        source: e,
    }
}

/// Reads a stream to its end, keeping the first OUTPUT_CAP bytes.
async fn read_capped(mut stream: impl tokio::io::AsyncRead + Unpin, keep: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut kept = keep.lock_recovered();
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Kills `pid` and every process below it; returns the PIDs killed. The tree is first stopped,
/// pass after pass until no new member appears (a stopped process cannot fork, and a child made
/// by a fork in flight shows up in the next pass), so that no child escapes being killed.
fn kill_tree(pid: u32) -> Vec<u32> {
    use rustix::process::{Pid, Signal, kill_process};
    let signal = |p: u32, s: Signal| {
        if let Some(p) = Pid::from_raw(p as i32) {
            let _ = kill_process(p, s);
        }
    };
    let mut tree: Vec<u32> = Vec::new();
    for _ in 0..TREE_PASSES {
        let mut found = vec![pid];
        let mut i = 0;
        while i < found.len() {
            let new: Vec<u32> = children(found[i])
                .into_iter()
                .filter(|c| !found.contains(c))
                .collect();
            found.extend(new);
            i += 1;
        }
        let grew = found.iter().any(|p| !tree.contains(p));
        for p in found {
            if !tree.contains(&p) {
                signal(p, Signal::STOP);
                tree.push(p);
            }
        }
        if !grew {
            break;
        }
    }
    for p in &tree {
        signal(*p, Signal::KILL);
    }
    tree
}

/// Whether `pid` still runs: it exists and is neither a zombie nor dead.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
