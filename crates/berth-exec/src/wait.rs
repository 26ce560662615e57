//! Waiting for the exec'd process, which is the helper's child.

use rustix::process::{Pid, WaitId, WaitIdOptions};

/// Its exit code once it has exited; 128 + the signal's number when a signal ended it, as a
/// shell reports it.
pub fn exit_code(pid: Pid) -> Result<i32, String> {
    loop {
        match rustix::process::waitid(WaitId::Pid(pid), WaitIdOptions::EXITED) {
            Ok(Some(s)) if s.exited() => return Ok(s.exit_status().unwrap_or(0)),
            Ok(Some(s)) if s.killed() => return Ok(128 + s.terminating_signal().unwrap_or(0)),
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("waiting for the exec'd process: {e}")),
        }
    }
}
