//! ListImages, ImageStatus, PullImage, RemoveImage and ImageFsInfo.

use std::collections::HashMap;
use std::path::Path;

use berth_cri::v1 as cri;
use berth_image::registry::Credentials;
use tonic::Status;

use super::Cri;
use crate::image::{FsInfo, ImageRecord, ImageUser, Usage};

impl Cri {
    pub(super) async fn list_images_of(
        &self,
        req: cri::ListImagesRequest,
    ) -> Result<cri::ListImagesResponse, Status> {
        let wanted = req
            .filter
            .and_then(|f| f.image)
            .map(|spec| spec.image)
            .filter(|i| !i.is_empty());
        let images = match wanted {
            Some(text) => self.svc.images.resolve(&text)?.into_iter().collect(),
            None => self.svc.images.list(),
        };
        Ok(cri::ListImagesResponse {
            images: images.iter().map(to_cri_image).collect(),
        })
    }

    pub(super) async fn image_status_of(
        &self,
        req: cri::ImageStatusRequest,
    ) -> Result<cri::ImageStatusResponse, Status> {
        let text = self.image_name(req.image)?;
        // An unknown image is an empty answer, not an error (CRI API comment on ImageStatus).
        let Some(image) = self.svc.images.resolve(&text)? else {
            return Ok(cri::ImageStatusResponse::default());
        };
        let mut info = HashMap::new();
        if req.verbose {
            let spec = self
                .svc
                .images
                .config_json(&image)
                .and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok())
                .unwrap_or(serde_json::Value::Null);
            let verbose = serde_json::json!({
                "id": image.id,
                "chainIDs": image.chain_ids,
                "imageSpec": spec,
            });
            info.insert("info".to_owned(), verbose.to_string());
        }
        Ok(cri::ImageStatusResponse {
            image: Some(to_cri_image(&image)),
            info,
        })
    }

    pub(super) async fn pull_image_of(
        &self,
        req: cri::PullImageRequest,
    ) -> Result<cri::PullImageResponse, Status> {
        let text = self.image_name(req.image)?;
        let credentials = match req.auth {
            Some(a) => Credentials::from_parts(
                &a.username,
                &a.password,
                &a.auth,
                &a.identity_token,
                &a.registry_token,
            )
            .map_err(|e| Status::invalid_argument(format!("PullImage auth: {e}")))?,
            None => None,
        };
        let started = std::time::Instant::now();
        let pulled = self.svc.images.pull(&text, credentials).await;
        self.svc.telemetry.record_pull(
            pulled.as_ref().ok().map(|(_, downloaded)| *downloaded),
            started.elapsed(),
        );
        let (image, _) = pulled?;
        Ok(cri::PullImageResponse {
            image_ref: image.id,
        })
    }

    pub(super) async fn remove_image_of(
        &self,
        req: cri::RemoveImageRequest,
    ) -> Result<cri::RemoveImageResponse, Status> {
        let text = self.image_name(req.image)?;
        self.svc.images.remove(&text)?;
        Ok(cri::RemoveImageResponse {})
    }

    pub(super) async fn image_fs_info_of(
        &self,
        _req: cri::ImageFsInfoRequest,
    ) -> Result<cri::ImageFsInfoResponse, Status> {
        let images = &self.svc.images;
        let info: FsInfo = images.fs_info().await?;
        let usage = |dir: &Path, u: Usage| cri::FilesystemUsage {
            timestamp: crate::clock::nanos(info.taken_at),
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: dir.display().to_string(),
            }),
            used_bytes: Some(cri::UInt64Value { value: u.bytes }),
            inodes_used: Some(cri::UInt64Value { value: u.inodes }),
        };
        Ok(cri::ImageFsInfoResponse {
            image_filesystems: vec![usage(images.images_dir(), info.images)],
            container_filesystems: vec![usage(images.containers_dir(), info.containers)],
        })
    }
}

impl Cri {
    /// The image an ImageSpec names; one store serves every runtime handler, but a handler the
    /// spec names must be one berth has (the CRI API's comment on ImageSpec.runtime_handler).
    fn image_name(&self, spec: Option<cri::ImageSpec>) -> Result<String, Status> {
        let spec = spec.unwrap_or_default();
        if !spec.runtime_handler.is_empty()
            && !self.svc.runtimes.contains_key(&spec.runtime_handler)
        {
            return Err(Status::invalid_argument(format!(
                "ImageSpec.runtime_handler `{}` is not a configured runtime handler",
                spec.runtime_handler
            )));
        }
        if spec.image.is_empty() {
            return Err(Status::invalid_argument(
                "no image given (ImageSpec.image is empty)",
            ));
        }
        Ok(spec.image)
    }
}

fn to_cri_image(image: &ImageRecord) -> cri::Image {
    let (uid, username) = match image.user() {
        ImageUser::None => (None, String::new()),
        ImageUser::Uid(uid) => (Some(cri::Int64Value { value: uid }), String::new()),
        ImageUser::Name(name) => (None, name),
    };
    cri::Image {
        id: image.id.clone(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        size: image.size,
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: image.id.clone(),
            ..cri::ImageSpec::default()
        }),
        pinned: false,
    }
}
