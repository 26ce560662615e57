//! CRI clients over a unix socket.

use std::path::{Path, PathBuf};

use berth_cri::v1::image_service_client::ImageServiceClient;
use berth_cri::v1::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

/// Both CRI clients on one connection.
#[derive(Debug, Clone)]
pub struct Clients {
    pub runtime: RuntimeServiceClient<Channel>,
    pub image: ImageServiceClient<Channel>,
}

const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Connects to the CRI socket at `path`.
pub async fn connect(path: &Path) -> Result<Clients, tonic::transport::Error> {
    let channel = channel(path).await?;
    Ok(Clients {
        runtime: RuntimeServiceClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        image: ImageServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    })
}

/// A gRPC channel to the socket at `path`, for clients of any kind.
pub async fn channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by tonic but unused: the connector dials the socket.
    Endpoint::from_static("http://berth.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
}

/// Shorthands for the calls tests make most.
impl Clients {
    /// PullImage; the image ID on success.
    pub async fn pull(&mut self, image: &str) -> Result<String, tonic::Status> {
        self.pull_with(image, None).await
    }

    pub async fn pull_with(
        &mut self,
        image: &str,
        auth: Option<berth_cri::v1::AuthConfig>,
    ) -> Result<String, tonic::Status> {
        self.image
            .pull_image(berth_cri::v1::PullImageRequest {
                image: Some(spec(image)),
                auth,
                sandbox_config: None,
            })
            .await
            .map(|r| r.into_inner().image_ref)
    }

    /// ImageStatus (verbose); None for an unknown image.
    pub async fn image_status(
        &mut self,
        image: &str,
    ) -> Option<(berth_cri::v1::Image, serde_json::Value)> {
        let r = self
            .image
            .image_status(berth_cri::v1::ImageStatusRequest {
                image: Some(spec(image)),
                verbose: true,
            })
            .await
            .expect("ImageStatus")
            .into_inner();
        let info = r
            .info
            .get("info")
            .map(|i| serde_json::from_str(i).expect("verbose info is JSON"))
            .unwrap_or(serde_json::Value::Null);
        r.image.map(|i| (i, info))
    }

    pub async fn list_images(&mut self) -> Vec<berth_cri::v1::Image> {
        self.image
            .list_images(berth_cri::v1::ListImagesRequest::default())
            .await
            .expect("ListImages")
            .into_inner()
            .images
    }

    pub async fn remove_image(&mut self, image: &str) -> Result<(), tonic::Status> {
        self.image
            .remove_image(berth_cri::v1::RemoveImageRequest {
                image: Some(spec(image)),
            })
            .await
            .map(|_| ())
    }
}

pub fn spec(image: &str) -> berth_cri::v1::ImageSpec {
    berth_cri::v1::ImageSpec {
        image: image.to_owned(),
        ..berth_cri::v1::ImageSpec::default()
    }
}
