//! `berth-monitor exec`: one exec'd process of a running container. `runc exec` (not detached)
//! only returns once every process it started is gone, background children included; so instead
//! this helper becomes a child subreaper, runs `runc exec --detach`, and once runc has handed the
//! process over (it is then our child) waits for that process alone. Its exit code, or runc's
//! error, goes to the result file (`exit <code>` or `error <message>`). With `--console-socket`,
//! the process gets a TTY whose master runc sends to that socket.

use std::process::{Command, ExitCode, Stdio};

use rustix::process::{Pid, WaitId, WaitIdOptions};

#[derive(Debug, Default)]
struct ExecArgs {
    runtime: String,
    runtime_root: String,
    id: String,
    pid_file: String,
    result: String,
    /// A TTY: runc sends the pty master to this socket (and the process gets the pty as stdio).
    console_socket: Option<String>,
    command: Vec<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<ExecArgs, String> {
    let mut a = ExecArgs::default();
    while let Some(flag) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--runtime" => a.runtime = value("--runtime")?,
            "--runtime-root" => a.runtime_root = value("--runtime-root")?,
            "--id" => a.id = value("--id")?,
            "--pid-file" => a.pid_file = value("--pid-file")?,
            "--result" => a.result = value("--result")?,
            "--console-socket" => a.console_socket = Some(value("--console-socket")?),
            "--" => {
                a.command = argv.collect();
                break;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.runtime.is_empty()
        || a.id.is_empty()
        || a.pid_file.is_empty()
        || a.result.is_empty()
        || a.command.is_empty()
    {
        return Err(
            "exec needs --runtime, --runtime-root, --id, --pid-file, --result and a command".into(),
        );
    }
    Ok(a)
}

pub fn main(argv: impl Iterator<Item = String>) -> ExitCode {
    let args = match parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-monitor exec: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = run(&args);
    let line = match &outcome {
        Ok(code) => format!("exit {code}\n"),
        Err(message) => format!("error {}\n", message.replace('\n', " ")),
    };
    let temp = format!("{}.tmp", args.result);
    if std::fs::write(&temp, line)
        .and_then(|()| std::fs::rename(&temp, &args.result))
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run(args: &ExecArgs) -> Result<i32, String> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| format!("cannot become a subreaper: {e}"))?;
    let runc_log = format!("{}.log", args.pid_file);
    let mut runc = Command::new(&args.runtime);
    runc.arg("--root").arg(&args.runtime_root).args([
        "--log",
        &runc_log,
        "--log-format",
        "json",
        "exec",
        "--detach",
        "--pid-file",
        &args.pid_file,
    ]);
    match &args.console_socket {
        Some(socket) => {
            runc.args(["--tty", "--console-socket", socket])
                .stdin(Stdio::null());
        }
        // The process gets our stdio (the pipes berthd holds), stdin too when berthd gave one.
        None => {
            runc.stdin(Stdio::inherit());
        }
    }
    let status = runc
        .arg(&args.id)
        .args(&args.command)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", args.runtime))?;
    let log_error = crate::runc::runc_error_in(&runc_log);
    let _ = std::fs::remove_file(&runc_log);
    if !status.success() {
        return Err(log_error.unwrap_or_else(|| format!("runc exec exited with {status}")));
    }
    let pid: i32 = std::fs::read_to_string(&args.pid_file)
        .map_err(|e| format!("runc's pid file: {e}"))?
        .trim()
        .parse()
        .map_err(|_| "runc wrote no pid".to_owned())?;
    let pid = Pid::from_raw(pid).ok_or("runc wrote pid 0")?;
    loop {
        match rustix::process::waitid(WaitId::Pid(pid), WaitIdOptions::EXITED) {
            Ok(Some(s)) if s.exited() => return Ok(s.exit_status().unwrap_or(0)),
            Ok(Some(s)) if s.killed() => return Ok(128 + s.terminating_signal().unwrap_or(0)),
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("waiting for the exec'd process: {e}")),
        }
    }
}
