//! berth-monitor: one per container, started by berthd in the container's state dir. It runs
//! `runc create` as the container's child subreaper, reports the result on its stdout, then holds
//! the container's stdio: it writes the CRI log, serves attach and log reopen on `monitor.sock`,
//! waits for the exit through a pidfd, writes the exit record atomically, and exits. It outlives
//! any berthd: its own session, no threads, no async runtime; SIGPIPE is ignored (Rust's default),
//! so a vanished client or berthd is only a failed write.

#![forbid(unsafe_code)]

mod args;
mod cri_log;
mod event_loop;
mod exit;
mod oom;
mod runc;

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::process::ExitCode;

use berth_monitor::proto::SOCKET;

fn main() -> ExitCode {
    let args = match args::Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    // Our own session: berthd's process group, its terminal and its signals never reach us.
    let _ = rustix::process::setsid();
    // Orphans of the container (runc's children, the container itself once runc exits) are
    // ours to wait for.
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        return report_error(&format!("cannot become a subreaper: {e}"));
    }
    let listener = {
        let _ = std::fs::remove_file(SOCKET);
        match UnixListener::bind(SOCKET) {
            Ok(l) => l,
            Err(e) => return report_error(&format!("cannot listen on {SOCKET}: {e}")),
        }
    };
    let log = match cri_log::CriLog::open(args.log_dir.clone().into(), args.log.clone().into()) {
        Ok(l) => l,
        Err(e) => {
            report(&format!("log cannot open the log {}: {e}", args.log));
            return ExitCode::FAILURE;
        }
    };
    let (pid, stdio) = match runc::create(&args) {
        Ok(created) => created,
        Err(runc::CreateError::Failed(e)) => return report_error(&e),
        Err(runc::CreateError::TimedOut(after)) => {
            report(&format!("timeout {}", after.as_millis()));
            return ExitCode::FAILURE;
        }
    };
    let monitor = match event_loop::Monitor::new(pid, stdio, args.stdin_once, log, listener) {
        Ok(m) => m,
        Err(e) => return report_error(&format!("cannot watch the container: {e}")),
    };
    report(&format!("ok {pid}"));
    match monitor.run().and_then(|record| exit::write(&record)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The one line berthd waits for; then stdout points nowhere, so berthd sees its end.
fn report(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

fn report_error(message: &str) -> ExitCode {
    report(&format!("error {}", message.replace('\n', " ")));
    ExitCode::FAILURE
}
