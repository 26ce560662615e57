//! systemd's readiness protocol (`Type=notify`): when systemd started berthd it names a datagram
//! socket in `NOTIFY_SOCKET`; berthd says `READY=1` there once start-up recovery is done and the
//! CRI answers every call, and `STOPPING=1` when it begins to shut down. Without the variable
//! (not under systemd) nothing is sent.
//!
//! The variable is taken out of berthd's environment at start: every process berthd starts
//! would inherit it otherwise, and runc, finding it, makes a notify socket for the container
//! (whose path in berth's state dir is too long to bind: `runc start` fails).

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable systemd sets for a `Type=notify` service.
const SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Where systemd listens, if it started berthd.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// Takes `NOTIFY_SOCKET` out of the environment. Call it while berthd has one thread.
    #[allow(unsafe_code)]
    pub fn take_from_env() -> Notifier {
        let socket = std::env::var_os(SOCKET_ENV).map(|s| s.to_string_lossy().into_owned());
        if socket.is_some() {
            // SAFETY: called at the start of `daemon::run`, before the async runtime or any
            // other thread exists, so nothing reads the environment while it changes.
            unsafe { std::env::remove_var(SOCKET_ENV) };
        }
        Notifier { socket }
    }

    /// Start-up is done: the CRI answers every call.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving CRI v1");
    }

    /// Shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, state: &str) {
        let Some(path) = &self.socket else {
            return;
        };
        if let Err(e) = send_to(path, state) {
            tracing::warn!("telling systemd {state:?} through {path}: {e}");
        }
    }
}

fn send_to(path: &str, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    // `@name` is an abstract socket; anything else a path.
    let addr = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn states_reach_a_path_or_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::send_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("berth-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abstract_listener = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        super::send_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = abstract_listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
