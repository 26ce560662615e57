//! The native path: the helper starts the process itself, as `runc exec` would, without a
//! runtime process (two Go runtime starts) per exec.
//!
//! The helper stays on the node's side: it reads the plan, opens the container's init through
//! its `/proc` directory (told from any later holder of its PID by its start time), opens that
//! process's namespaces, joins its PID (and time) namespace for its children, and forks. The
//! child (`enter`) joins the container's cgroups and the rest of its namespaces, takes the
//! process settings of the plan and execs the command; the helper writes the child's PID to the
//! pid file, learns from a close-on-exec pipe whether the exec happened (or why not), and waits
//! for the child.
//!
//! What keeps the container away from the node: the helper is made non-dumpable first, so the
//! child is born non-dumpable and no process of the container can ptrace it or open its `/proc`
//! entries before it execs (that needs CAP_SYS_PTRACE in the node's user namespace); berthd runs
//! the helper from a sealed in-memory copy, so `/proc/<child>/exe` leads to nothing a container
//! could write; every descriptor but stdio is close-on-exec; the files the child reads after
//! entering the container (its passwd for HOME, its `/dev/ptmx`) are read as the container's
//! own, and everything the node's files decide (cgroups, OOM score) is done before.

mod enter;
mod environment;
mod init_process;
mod sys;
mod tty;

use std::io::Read;
use std::os::unix::net::UnixStream;

use berth_exec::outcome::Outcome;
use berth_exec::plan::{self, ExecPlan};
use rustix::process::DumpableBehavior;

use crate::args::Args;
use init_process::InitProcess;

pub fn run(plan_path: &str, args: &Args) -> Result<Outcome, String> {
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(|e| format!("cannot make the helper non-dumpable: {e}"))?;
    let plan = load(plan_path)?;
    let seccomp = match &plan.seccomp {
        Some(s) => Some((s.instructions().map_err(|e| e.to_string())?, s.flags)),
        None => None,
    };
    let init = InitProcess::open(&plan.init)?;
    // Taken on by the child at its fork; raising a hard limit needs the node's privilege.
    for (resource, limit) in init.limits()? {
        rustix::process::setrlimit(resource, limit)
            .map_err(|e| format!("setting the container's {resource:?} limit: {e}"))?;
    }
    let namespaces = init.namespaces()?;
    namespaces.enter_for_children()?;
    let console = args
        .console_socket
        .as_deref()
        .map(|path| UnixStream::connect(path).map_err(|e| format!("console socket {path}: {e}")))
        .transpose()?;
    let command = enter::Command::new(&args.command)?;
    let (report_read, report_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {e}"))?;
    let Some(child) = sys::fork().map_err(|e| format!("fork: {e}"))? else {
        drop(report_read);
        enter::run(enter::Setup {
            plan: &plan,
            namespaces,
            seccomp,
            console,
            command,
            report: report_write,
        })
    };
    drop(report_write);
    drop(console);
    std::fs::write(&args.pid_file, child.as_raw_nonzero().to_string())
        .map_err(|e| format!("writing the pid file: {e}"))?;
    // The child's end closes when it execs; before, it holds why it could not.
    let mut refused = String::new();
    let _ = std::fs::File::from(report_read).read_to_string(&mut refused);
    let code = crate::wait::exit_code(child)?;
    Ok(if refused.is_empty() {
        Outcome::Exited(code)
    } else {
        Outcome::Failed(refused)
    })
}

fn load(path: &str) -> Result<ExecPlan, String> {
    let text = std::fs::read(path).map_err(|e| format!("exec plan {path}: {e}"))?;
    let plan: ExecPlan =
        serde_json::from_slice(&text).map_err(|e| format!("exec plan {path}: {e}"))?;
    if plan.version != plan::VERSION {
        return Err(format!(
            "exec plan {path} is version {}, this helper reads {}",
            plan.version,
            plan::VERSION
        ));
    }
    Ok(plan)
}
