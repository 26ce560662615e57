//! Signal names and numbers as runc, images and the CRI spell them.

/// Linux's signal numbers 1–31 (index 0 is no signal), then its real-time range.
pub const SIGNAL_NAMES: [&str; 32] = [
    "",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];
/// The real-time signals as glibc numbers them (the kernel's 32 and 33 are its own).
pub const SIGRTMIN: usize = 34;
pub const SIGRTMAX: usize = 64;

/// The number of a standard signal named as runc takes it (`SIGTERM`, `TERM`, `15`); None for
/// the real-time ones and for names it does not know.
pub fn standard_number(name: &str) -> Option<i32> {
    let name = name.trim();
    if let Ok(n) = name.parse::<usize>() {
        return (1..SIGNAL_NAMES.len()).contains(&n).then_some(n as i32);
    }
    let name = name.strip_prefix("SIG").unwrap_or(name);
    SIGNAL_NAMES
        .iter()
        .position(|full| !full.is_empty() && full[3..].eq_ignore_ascii_case(name))
        .map(|n| n as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_signals_in_every_spelling_and_no_others() {
        for name in ["SIGTERM", "TERM", "term", "15", " 15 "] {
            assert_eq!(standard_number(name), Some(15), "{name}");
        }
        assert_eq!(standard_number("KILL"), Some(9));
        assert_eq!(standard_number("SIGSYS"), Some(31));
        for name in ["", "0", "32", "36", "SIGRTMIN", "SIGRTMIN+3", "NOPE"] {
            assert_eq!(standard_number(name), None, "{name}");
        }
    }
}
