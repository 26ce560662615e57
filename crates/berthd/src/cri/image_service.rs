//! The ImageService trait: one line per RPC, each a call into the image handlers.

use berth_cri::v1 as cri;
use berth_cri::v1::image_service_server::ImageService;
use tracing::info_span;

use super::Cri;
use super::list_stream::ListStream;
use super::rpc::{Gate, cri_service, shown};

/// The image a request names, for its span.
fn image_of(spec: &Option<cri::ImageSpec>) -> &str {
    spec.as_ref().map(|i| i.image.as_str()).unwrap_or_default()
}

cri_service! {
    ImageService;
    type StreamImagesStream = ListStream<cri::StreamImagesResponse>;
    fn list_images(cri::ListImagesRequest) -> cri::ListImagesResponse = "ListImages", WhenReady,
        |r| info_span!("ListImages") => list_images_of;
    fn stream_images(cri::StreamImagesRequest) -> ListStream<cri::StreamImagesResponse> =
        "StreamImages", WhenReady, |r| info_span!("StreamImages") => stream_images_of;
    fn image_status(cri::ImageStatusRequest) -> cri::ImageStatusResponse = "ImageStatus",
        WhenReady, |r| info_span!("ImageStatus", image = %shown(image_of(&r.image))) => image_status_of;
    fn pull_image(cri::PullImageRequest) -> cri::PullImageResponse = "PullImage", WhenReady,
        |r| info_span!("PullImage", image = %shown(image_of(&r.image))) => pull_image_of;
    fn remove_image(cri::RemoveImageRequest) -> cri::RemoveImageResponse = "RemoveImage",
        WhenReady, |r| info_span!("RemoveImage", image = %shown(image_of(&r.image))) => remove_image_of;
    fn image_fs_info(cri::ImageFsInfoRequest) -> cri::ImageFsInfoResponse = "ImageFsInfo",
        WhenReady, |r| info_span!("ImageFsInfo") => image_fs_info_of;
}
