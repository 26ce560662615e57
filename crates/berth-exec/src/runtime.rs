//! The runtime's own exec, for handlers whose state berthd cannot read. `runc exec` (not
//! detached) only returns once every process it started is gone, background children included;
//! so the helper becomes a child subreaper, runs `<runtime> exec --detach`, and once the runtime
//! has handed the process over (it is then the helper's child) waits for that process alone.
//! With a console socket, the runtime gives the process a TTY and sends its master there.

use std::process::{Command, Stdio};

use berth_monitor::runc_log::runc_error_in;
use rustix::process::Pid;

use berth_exec::outcome::Outcome;

pub fn run(
    runtime: &str,
    runtime_root: &str,
    id: &str,
    args: &crate::args::Args,
) -> Result<Outcome, String> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| format!("cannot become a subreaper: {e}"))?;
    let runtime_log = format!("{}.log", args.pid_file);
    let mut exec = Command::new(runtime);
    exec.arg("--root").arg(runtime_root).args([
        "--log",
        &runtime_log,
        "--log-format",
        "json",
        "exec",
        "--detach",
        "--pid-file",
        &args.pid_file,
    ]);
    match &args.console_socket {
        Some(socket) => {
            exec.args(["--tty", "--console-socket", socket])
                .stdin(Stdio::null());
        }
        // The process gets the helper's stdio (the pipes berthd holds), stdin too when berthd
        // gave one.
        None => {
            exec.stdin(Stdio::inherit());
        }
    }
    let status = exec
        .arg(id)
        .args(&args.command)
        .status()
        .map_err(|e| format!("cannot run {runtime}: {e}"))?;
    let log_error = runc_error_in(&runtime_log);
    let _ = std::fs::remove_file(&runtime_log);
    if !status.success() {
        return Ok(Outcome::Failed(log_error.unwrap_or_else(|| {
            format!("{runtime} exec exited with {status}")
        })));
    }
    let pid: i32 = std::fs::read_to_string(&args.pid_file)
        .map_err(|e| format!("the runtime's pid file: {e}"))?
        .trim()
        .parse()
        .map_err(|_| "the runtime wrote no pid".to_owned())?;
    let pid = Pid::from_raw(pid).ok_or("the runtime wrote pid 0")?;
    crate::wait::exit_code(pid).map(Outcome::Exited)
}
