//! The streaming server's runtime side: exec through the monitor's exec helper, attach through the
//! container's monitor socket, port-forward dials inside the pod's network namespace (from a
//! thread that entered it, never a tokio worker).

use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use berth_stream::{Backend, BackendError, BoxFuture, Connection, Exit, ProcessIo, StreamOpts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::container::{ContainerError, ContainerService};
use crate::monitor::{Attachment, MonitorClient, OutputStream};
use crate::pod::PodService;

/// Each dial attempt inside the pod.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct RuntimeBackend {
    pub containers: Arc<ContainerService>,
    pub pods: Arc<PodService>,
}

impl Backend for RuntimeBackend {
    fn exec(
        &self,
        container_id: String,
        cmd: Vec<String>,
        opts: StreamOpts,
    ) -> BoxFuture<'_, Result<ProcessIo, BackendError>> {
        Box::pin(async move {
            let mut process = self
                .containers
                .start_exec(&container_id, &cmd, opts.tty, opts.stdin)
                .await?;
            let mut io = ProcessIo {
                stdin: None,
                stdout: None,
                stderr: None,
                resize: None,
                exit: Box::pin(async { Exit::Failed("not started".into()) }),
            };
            if let Some(master) = process.pty.take() {
                let pty = crate::pty::Pty::new(master).map_err(|source| ContainerError::Io {
                    what: "the exec's terminal".into(),
                    source,
                })?;
                io.stdin = opts
                    .stdin
                    .then(|| Box::pin(pty.clone()) as berth_stream::backend::Input);
                io.stdout = Some(Box::pin(pty.clone()));
                io.resize = Some(Box::new(move |cols, rows| pty.resize(cols, rows)));
            } else {
                io.stdin = process
                    .child
                    .stdin
                    .take()
                    .map(|s| Box::pin(s) as berth_stream::backend::Input);
                io.stdout = process
                    .child
                    .stdout
                    .take()
                    .map(|s| Box::pin(s) as berth_stream::backend::Output);
                io.stderr = process
                    .child
                    .stderr
                    .take()
                    .map(|s| Box::pin(s) as berth_stream::backend::Output);
            }
            // The exit future owns the process: dropping it (the client left) kills the process.
            io.exit = Box::pin(async move {
                match process.wait().await {
                    Ok(code) => Exit::Code(code),
                    Err(e) => Exit::Failed(e.to_string()),
                }
            });
            Ok(io)
        })
    }

    fn attach(
        &self,
        container_id: String,
        opts: StreamOpts,
    ) -> BoxFuture<'_, Result<ProcessIo, BackendError>> {
        Box::pin(async move {
            let record = self.containers.get(&container_id)?.record();
            record.must_be_running()?;
            let attachment = MonitorClient::new(&self.containers.state_dir_of(&record.id))
                .attach(opts.stdin && record.stdin, opts.stdout, opts.stderr)
                .await?;
            Ok(attach_io(attachment, opts, record.stdin_once))
        })
    }

    fn dial(
        &self,
        pod_sandbox_id: String,
        port: u16,
    ) -> BoxFuture<'_, Result<Connection, BackendError>> {
        Box::pin(async move {
            let record = self.pods.get(&pod_sandbox_id)?.record();
            let netns = record.pinned.net.clone();
            let stream = crate::blocking::run(move || match &netns {
                Some(path) => berth_net::netns::in_netns(path, move || dial_loopback(port))
                    .map_err(|source| DialError::Namespace {
                        netns: path.display().to_string(),
                        source,
                    }),
                // A pod on the node's network: its ports are the node's.
                None => dial_loopback(port).map_err(DialError::Connect),
            })
            .await??;
            stream.set_nonblocking(true)?;
            Ok(tokio::net::TcpStream::from_std(stream)?)
        })
    }
}

/// Why a port of a pod could not be reached.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("failed to execute portforward in network namespace {netns}: {source}")]
    Namespace {
        netns: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Connect(std::io::Error),
}

/// 127.0.0.1 first, then [::1], one after the other (a racing dial on another thread would be
/// outside the namespace); literal addresses, so that no name is resolved with the node's files.
fn dial_loopback(port: u16) -> std::io::Result<TcpStream> {
    let v4 = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), DIAL_TIMEOUT);
    match v4 {
        Ok(s) => Ok(s),
        Err(e4) => {
            TcpStream::connect_timeout(&SocketAddr::from((Ipv6Addr::LOCALHOST, port)), DIAL_TIMEOUT)
                .map_err(|e6| std::io::Error::other(format!("IPv4: {e4} IPv6: {e6}")))
        }
    }
}

/// The client's side of an attach: the monitor's output split into stdout and stderr, stdin and
/// resizes sent back to it; the session ends when the monitor closes (the container exited) or
/// the client detaches. When the client's stdin ends, the container's stdin closes only if the
/// container is `stdin_once`; otherwise only this client's input stops.
fn attach_io(attachment: Attachment, opts: StreamOpts, stdin_once: bool) -> ProcessIo {
    let Attachment { mut output, input } = attachment;
    let input = Arc::new(tokio::sync::Mutex::new(input));
    let (stdout_w, stdout_r) = tokio::io::duplex(64 * 1024);
    let (stderr_w, stderr_r) = tokio::io::duplex(64 * 1024);
    let (stdin_w, mut stdin_r) = tokio::io::duplex(64 * 1024);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut out, mut err) = (stdout_w, stderr_w);
        while let Some((stream, payload)) = output.next().await {
            let target = match stream {
                OutputStream::Stderr => &mut err,
                OutputStream::Stdout => &mut out,
            };
            let _ = target.write_all(&payload).await;
        }
        let _ = done_tx.send(());
    });
    let writer = input.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin_r.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    if stdin_once {
                        let _ = writer.lock().await.close_stdin().await;
                    }
                    return;
                }
                Ok(n) => {
                    if writer.lock().await.stdin(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let resize = move |cols: u16, rows: u16| {
        let writer = input.clone();
        tokio::spawn(async move {
            let _ = writer.lock().await.resize(cols, rows).await;
        });
    };
    ProcessIo {
        stdin: opts
            .stdin
            .then(|| Box::pin(stdin_w) as berth_stream::backend::Input),
        stdout: opts
            .stdout
            .then(|| Box::pin(stdout_r) as berth_stream::backend::Output),
        stderr: (opts.stderr && !opts.tty)
            .then(|| Box::pin(stderr_r) as berth_stream::backend::Output),
        resize: opts
            .tty
            .then(|| Box::new(resize) as Box<dyn Fn(u16, u16) + Send + Sync>),
        exit: Box::pin(async move {
            let _ = done_rx.await;
            Exit::Detached
        }),
    }
}
