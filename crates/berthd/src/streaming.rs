//! The streaming server's runtime side: exec through the monitor's exec helper, attach through the
//! container's monitor socket, port-forward dials inside the pod's network namespace (from a
//! thread that entered it, never a tokio worker).

use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use berth_monitor::proto::{self, FrameReader, Request as MonitorRequest};
use berth_stream::{Backend, BoxFuture, Connection, Exit, ProcessIo, StreamOpts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::container::{ContainerService, ContainerState};
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
    ) -> BoxFuture<'_, Result<ProcessIo, String>> {
        Box::pin(async move {
            let mut process = self
                .containers
                .start_exec(&container_id, &cmd, opts.tty, opts.stdin)
                .await
                .map_err(|e| e.to_string())?;
            let mut io = ProcessIo {
                stdin: None,
                stdout: None,
                stderr: None,
                resize: None,
                exit: Box::pin(async { Exit::Failed("not started".into()) }),
            };
            if let Some(master) = process.pty.take() {
                let pty = crate::pty::Pty::new(master).map_err(|e| format!("the terminal: {e}"))?;
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
    ) -> BoxFuture<'_, Result<ProcessIo, String>> {
        Box::pin(async move {
            let container = self
                .containers
                .get(&container_id)
                .map_err(|e| e.to_string())?;
            let record = container.record();
            if record.state != ContainerState::Running {
                return Err(format!("container {} is not running", record.id));
            }
            let request = MonitorRequest::Attach {
                stdin: opts.stdin && record.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
            };
            let socket =
                crate::monitor::request(&self.containers.state_dir_of(&record.id), request).await?;
            Ok(attach_io(socket, opts, record.stdin_once))
        })
    }

    fn dial(&self, pod_sandbox_id: String, port: u16) -> BoxFuture<'_, Result<Connection, String>> {
        Box::pin(async move {
            let record = self
                .pods
                .get(&pod_sandbox_id)
                .map_err(|e| e.to_string())?
                .record();
            let netns = record.pinned.net.clone();
            let stream = tokio::task::spawn_blocking(move || match &netns {
                Some(path) => berth_net::netns::in_netns(path, move || dial_loopback(port))
                    .map_err(|e| {
                        format!("failed to execute portforward in network namespace {path:?}: {e}")
                    }),
                // A pod on the node's network: its ports are the node's.
                None => dial_loopback(port).map_err(|e| e.to_string()),
            })
            .await
            .map_err(|e| e.to_string())??;
            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
            tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())
        })
    }
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

/// The client's side of an attach: the monitor's output frames split into stdout and stderr,
/// stdin and resizes framed back to it; the session ends when the monitor closes (the container
/// exited) or the client detaches. When the client's stdin ends, the container's stdin closes
/// only if the container is `stdin_once`; otherwise only this client's input stops.
fn attach_io(socket: tokio::net::UnixStream, opts: StreamOpts, stdin_once: bool) -> ProcessIo {
    let (mut from_monitor, to_monitor) = socket.into_split();
    let to_monitor = Arc::new(tokio::sync::Mutex::new(to_monitor));
    let (stdout_w, stdout_r) = tokio::io::duplex(64 * 1024);
    let (stderr_w, stderr_r) = tokio::io::duplex(64 * 1024);
    let (stdin_w, mut stdin_r) = tokio::io::duplex(64 * 1024);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut out, mut err) = (stdout_w, stderr_w);
        let mut frames = FrameReader::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_monitor.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => frames.push(&buf[..n]),
            }
            while let Ok(Some((kind, payload))) = frames.next_frame() {
                let target = if kind == proto::STDERR {
                    &mut err
                } else {
                    &mut out
                };
                let _ = target.write_all(&payload).await;
            }
        }
        let _ = done_tx.send(());
    });
    let writer = to_monitor.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin_r.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    if stdin_once {
                        let _ = writer
                            .lock()
                            .await
                            .write_all(&proto::frame(proto::STDIN_CLOSE, &[]))
                            .await;
                    }
                    return;
                }
                Ok(n) => {
                    if writer
                        .lock()
                        .await
                        .write_all(&proto::frame(proto::STDIN, &buf[..n]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    let resize = move |cols: u16, rows: u16| {
        let writer = to_monitor.clone();
        tokio::spawn(async move {
            let _ = writer
                .lock()
                .await
                .write_all(&proto::resize_frame(rows, cols))
                .await;
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
