//! What the streaming server asks of the runtime, and the requests it keeps under tokens.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the runtime could not exec, attach or dial: its own error, shown to the client as it
/// reads (the server knows nothing of what failed, only that it did).
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// A request the Exec, Attach or PortForward RPC stored under a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Exec {
        container_id: String,
        cmd: Vec<String>,
        opts: StreamOpts,
    },
    Attach {
        container_id: String,
        opts: StreamOpts,
    },
    PortForward {
        pod_sandbox_id: String,
        /// Only the WebSocket port-forward uses these (SPDY names ports per stream).
        ports: Vec<u16>,
    },
}

impl Request {
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Exec { .. } => "exec",
            Request::Attach { .. } => "attach",
            Request::PortForward { .. } => "portforward",
        }
    }
}

/// Which standard streams a session has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOpts {
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// How a process session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The exec'd process exited with this code (128 + signal when killed).
    Code(i32),
    /// An attach session ended (the container's output closed, or the client detached).
    Detached,
    /// The runtime could not run it.
    Failed(String),
}

pub type Input = Pin<Box<dyn AsyncWrite + Send>>;
pub type Output = Pin<Box<dyn AsyncRead + Send>>;

/// A process's side of a session, as the runtime hands it over.
pub struct ProcessIo {
    pub stdin: Option<Input>,
    pub stdout: Option<Output>,
    pub stderr: Option<Output>,
    /// Applies a terminal size (columns, rows); TTY sessions only.
    pub resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
    /// Resolves when the process ends. Dropping it first ends the process (the client left); an
    /// attach's exit ends only the attachment.
    pub exit: BoxFuture<'static, Exit>,
}

impl std::fmt::Debug for ProcessIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish()
    }
}

/// A connection to a pod's port, made inside its network namespace.
pub type Connection = tokio::net::TcpStream;

/// The runtime side: processes to exec or attach to, ports to dial.
pub trait Backend: Send + Sync + 'static {
    fn exec(
        &self,
        container_id: String,
        cmd: Vec<String>,
        opts: StreamOpts,
    ) -> BoxFuture<'_, Result<ProcessIo, BackendError>>;
    fn attach(
        &self,
        container_id: String,
        opts: StreamOpts,
    ) -> BoxFuture<'_, Result<ProcessIo, BackendError>>;
    fn dial(
        &self,
        pod_sandbox_id: String,
        port: u16,
    ) -> BoxFuture<'_, Result<Connection, BackendError>>;
}
