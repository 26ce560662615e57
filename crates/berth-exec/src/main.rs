//! berth-exec: one process in a running container, started by berthd per exec (see the
//! library's docs and `docs/architecture.md`). It leaves the process's PID in the pid file as
//! soon as the process exists, waits for that process alone, and writes how it ended to the
//! result file. berthd runs it from a sealed copy in memory, never from a file a container could
//! reach.

mod args;
mod native;
mod runtime;
mod wait;

use std::process::ExitCode;

use berth_exec::outcome::Outcome;

fn main() -> ExitCode {
    let args = match args::Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("berth-exec: {message}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let outcome = match &args.backend {
        args::Backend::Native { plan } => native::run(plan, &args),
        args::Backend::Runtime {
            runtime,
            runtime_root,
            id,
        } => runtime::run(runtime, runtime_root, id, &args),
    }
    .unwrap_or_else(Outcome::Failed);
    match outcome.write(args.result.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-exec: writing {}: {e}", args.result);
            ExitCode::FAILURE
        }
    }
}
