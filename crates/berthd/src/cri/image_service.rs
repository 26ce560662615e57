//! The ImageService trait: one method per RPC, each a call into the image handlers.

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use tonic::{Request, Response, Status};
use tracing::info_span;

use super::Cri;
use super::rpc::Gate;

#[tonic::async_trait]
impl ImageService for Cri {
    async fn list_images(
        &self,
        req: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("ListImages");
        self.rpc(&metadata, "ListImages", Gate::WhenReady, span, async {
            self.list_images_of(req)
        })
        .await
    }

    async fn image_status(
        &self,
        req: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let image = req
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let span = info_span!("ImageStatus", %image);
        self.rpc(&metadata, "ImageStatus", Gate::WhenReady, span, async {
            self.image_status_of(req)
        })
        .await
    }

    async fn pull_image(
        &self,
        req: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let image = req
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let span = info_span!("PullImage", %image);
        self.rpc(
            &metadata,
            "PullImage",
            Gate::WhenReady,
            span,
            self.pull_image_of(req),
        )
        .await
    }

    async fn remove_image(
        &self,
        req: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let image = req
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let span = info_span!("RemoveImage", %image);
        self.rpc(
            &metadata,
            "RemoveImage",
            Gate::WhenReady,
            span,
            self.remove_image_of(req),
        )
        .await
    }

    async fn image_fs_info(
        &self,
        req: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let span = info_span!("ImageFsInfo");
        self.rpc(
            req.metadata(),
            "ImageFsInfo",
            Gate::WhenReady,
            span,
            self.image_fs_info_of(),
        )
        .await
    }
}
