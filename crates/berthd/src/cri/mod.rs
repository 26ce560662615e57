//! The CRI v1 gRPC services. Handlers are thin: validate the request, call a service, convert the
//! answer. Every handler runs inside [`rpc`] (one span, one failure log line, the readiness gate),
//! and [`status`] holds the only mapping from berth's errors to gRPC codes.

mod authority;
mod container;
mod enums;
mod events;
mod fields;
mod filter;
mod hpack;
mod image;
mod image_service;
mod list_stream;
mod metrics;
mod pod;
mod resources;
mod rpc;
mod runtime_info;
mod runtime_service;
mod stats;
mod status;
mod streaming;
mod userns;

use std::future::Future;
use std::sync::Arc;

use berth_cri::v1::image_service_server::ImageServiceServer;
use berth_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;

use crate::services::Services;

/// Largest gRPC message accepted or sent, each way (kubelet uses the same limit).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The tonic service implementation shared by RuntimeService and ImageService.
#[derive(Debug, Clone)]
pub struct Cri {
    svc: Arc<Services>,
    /// GetContainerEvents subscribes here.
    events: tokio::sync::broadcast::Sender<berth_cri::v1::ContainerEventResponse>,
}

/// Serves both CRI services on `listener` until `shutdown` resolves, then lets in-flight calls end.
pub async fn serve(
    svc: Arc<Services>,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let events = events::start_feed(svc.clone());
    let cri = Cri { svc, events };
    let runtime = RuntimeServiceServer::new(cri.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let image = ImageServiceServer::new(cri)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(runtime)
        .add_service(image)
        .serve_with_incoming_shutdown(
            UnixListenerStream::new(listener).map(|conn| conn.map(authority::AuthorityFilter::new)),
            shutdown,
        )
        .await
}
