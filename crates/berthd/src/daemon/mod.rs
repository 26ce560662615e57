//! Wiring, start-up and graceful shutdown.
//!
//! Start: take the locks (root, state dir, socket), open the store, bind the socket, recover, serve.
//! SIGTERM or SIGINT: stop accepting, give in-flight calls `shutdown_timeout` to finish, close the
//! store and exit 0. Stopping the daemon never stops a container: containers belong to their
//! monitors, which outlive the daemon.

mod lock;
mod notify;
mod socket;

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::paths::Paths;
use crate::services::Services;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Images(#[from] crate::image::ImageError),
    #[error(transparent)]
    Recover(#[from] crate::services::RecoverError),
    #[error("cannot create {}: {source}", path.display())]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {address}: {source}")]
    Metrics {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Streaming(#[from] berth_stream::ServerError),
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Async workers per core. Creates do short blocking work on their worker (a metadata commit
/// waits for the disk, mounts and cgroup writes wait for the kernel); with one worker per core a
/// burst of creates could hold every worker at once, and a relist would wait behind them.
const WORKERS_PER_CORE: usize = 2;

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let notifier = notify::Notifier::take_from_env();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads((cores * WORKERS_PER_CORE).max(4))
        .enable_all()
        .thread_name("berthd")
        .build()
        .map_err(DaemonError::Runtime)?;
    let result = runtime.block_on(serve(config, notifier));
    // Tasks left behind (a stalled stream, say) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn serve(config: Config, notifier: notify::Notifier) -> Result<(), DaemonError> {
    let paths = Paths::new(&config);
    // The locks live in these two; the rest of the layout is made once the locks are held.
    for dir in [&paths.root, &paths.state_dir] {
        crate::layout::ensure_dir(dir, crate::layout::TRAVERSABLE).map_err(|source| {
            DaemonError::Dir {
                path: dir.to_path_buf(),
                source,
            }
        })?;
    }
    let _locks = lock::acquire(&paths.lock_files())?;
    let store = Store::open(&paths.metadata_db())?;
    crate::layout::apply(&paths).map_err(|source| DaemonError::Dir {
        path: paths.root.clone(),
        source,
    })?;
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let listener = socket::bind(&paths.socket)?;
    let shutdown_timeout = config.shutdown_timeout.get();
    let svc = Arc::new(Services::new(config, paths.clone(), store)?);
    let streaming = svc.start_streaming().await?;
    if let Some(address) = svc.config.metrics.address {
        let bound = crate::telemetry::server::start(address, {
            let svc = svc.clone();
            Arc::new(move || svc.scrape())
        })
        .await
        .map_err(|source| DaemonError::Metrics { address, source })?;
        tracing::info!(address = %bound, "serving Prometheus metrics on /metrics");
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::cri::serve(svc.clone(), listener, async {
        let _ = stop_rx.await;
    }));
    tracing::info!(
        socket = %paths.socket.display(),
        root = %paths.root.display(),
        state_dir = %paths.state_dir.display(),
        %streaming,
        version = env!("CARGO_PKG_VERSION"),
        "berthd serving CRI v1"
    );
    // What a crash left behind (half-made pods, snapshots of a pull that never got its record)
    // is cleared first; until then, RPCs that touch pods, containers or images answer
    // Unavailable while Version and Status already answer.
    let recovery = async {
        svc.recover().await?;
        svc.set_ready();
        tracing::info!("start-up recovery done");
        notifier.ready();
        std::future::pending::<Result<(), DaemonError>>().await
    };
    let signal_name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
        failed = recovery => {
            let _ = stop_tx.send(());
            return failed;
        }
    };
    tracing::info!(
        "{signal_name}: no new calls; waiting up to {shutdown_timeout:?} for calls in flight"
    );
    notifier.stopping();
    let _ = stop_tx.send(());
    match tokio::time::timeout(shutdown_timeout, server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => tracing::error!("gRPC server task failed: {join}"),
        Err(_) => {
            tracing::warn!("calls still in flight after {shutdown_timeout:?}; closing anyway")
        }
    }
    // The store closes when the last handle drops; a handler task cut short may still hold one,
    // and redb's file stays consistent either way (every write is a committed transaction).
    drop(svc);
    if let Err(e) = std::fs::remove_file(&paths.socket) {
        tracing::warn!("cannot remove {}: {e}", paths.socket.display());
    }
    tracing::info!("berthd stopped");
    Ok(())
}
