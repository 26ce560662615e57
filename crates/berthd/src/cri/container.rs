//! CreateContainer, StartContainer, StopContainer, RemoveContainer, ListContainers,
//! ContainerStatus, UpdateContainerResources, ReopenContainerLog and ExecSync.

use std::collections::HashMap;
use std::time::Duration;

use k8s_cri::v1 as cri;
use tonic::Status;

use super::Cri;
use super::pod::{labels_match, to_hash};
use crate::container::ContainerRecord;

impl Cri {
    pub(super) async fn create_container_of(
        &self,
        req: cri::CreateContainerRequest,
    ) -> Result<cri::CreateContainerResponse, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("CreateContainer needs a config"))?;
        let container_id = self
            .svc
            .containers
            .create(&req.pod_sandbox_id, config)
            .await?;
        Ok(cri::CreateContainerResponse { container_id })
    }

    pub(super) async fn start_container_of(
        &self,
        req: cri::StartContainerRequest,
    ) -> Result<cri::StartContainerResponse, Status> {
        self.svc.containers.start(&req.container_id).await?;
        Ok(cri::StartContainerResponse {})
    }

    pub(super) async fn stop_container_of(
        &self,
        req: cri::StopContainerRequest,
    ) -> Result<cri::StopContainerResponse, Status> {
        let timeout = Duration::from_secs(req.timeout.max(0) as u64);
        self.svc.containers.stop(&req.container_id, timeout).await?;
        Ok(cri::StopContainerResponse {})
    }

    pub(super) async fn remove_container_of(
        &self,
        req: cri::RemoveContainerRequest,
    ) -> Result<cri::RemoveContainerResponse, Status> {
        self.svc.containers.remove(&req.container_id).await?;
        let svc = self.svc.clone();
        // An image removed while this container used it can give its snapshots back now.
        tokio::spawn(async move { svc.collect_image_garbage().await });
        Ok(cri::RemoveContainerResponse {})
    }

    pub(super) fn list_containers_of(
        &self,
        req: cri::ListContainersRequest,
    ) -> Result<cri::ListContainersResponse, Status> {
        let filter = req.filter.unwrap_or_default();
        let containers = self.svc.containers.scan(|r| {
            let wanted = (filter.id.is_empty() || r.id.starts_with(&filter.id))
                && (filter.pod_sandbox_id.is_empty()
                    || r.pod_id.starts_with(&filter.pod_sandbox_id))
                && filter
                    .state
                    .as_ref()
                    .is_none_or(|s| s.state == r.state.to_cri())
                && labels_match(&r.labels, &filter.label_selector);
            wanted.then(|| cri::Container {
                id: r.id.clone(),
                pod_sandbox_id: r.pod_id.clone(),
                metadata: Some(metadata(r)),
                image: Some(image_spec(r)),
                image_ref: r.image_ref.clone(),
                state: r.state.to_cri(),
                created_at: r.created_at,
                labels: to_hash(&r.labels),
                annotations: to_hash(&r.annotations),
                image_id: r.image_id.clone(),
            })
        });
        Ok(cri::ListContainersResponse { containers })
    }

    pub(super) fn container_status_of(
        &self,
        req: cri::ContainerStatusRequest,
    ) -> Result<cri::ContainerStatusResponse, Status> {
        let record = self.svc.containers.get(&req.container_id)?.record();
        let mut info = HashMap::new();
        if req.verbose {
            let spec = self
                .svc
                .paths
                .root
                .join("containers")
                .join(&record.id)
                .join("bundle/config.json");
            let spec: serde_json::Value = std::fs::read(spec)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(serde_json::Value::Null);
            let verbose = serde_json::json!({
                "pid": record.pid,
                "monitorPid": record.monitor_pid,
                "sandboxID": record.pod_id,
                "runtimeHandler": record.runtime_handler,
                "runtimeSpec": spec,
            });
            info.insert("info".to_owned(), verbose.to_string());
        }
        Ok(cri::ContainerStatusResponse {
            status: Some(status(&record)),
            info,
        })
    }

    pub(super) async fn update_container_resources_of(
        &self,
        req: cri::UpdateContainerResourcesRequest,
    ) -> Result<cri::UpdateContainerResourcesResponse, Status> {
        let linux = req.linux.ok_or_else(|| {
            Status::invalid_argument("UpdateContainerResources needs linux resources")
        })?;
        self.svc
            .containers
            .update_resources(&req.container_id, &linux)
            .await?;
        Ok(cri::UpdateContainerResourcesResponse {})
    }

    pub(super) async fn reopen_container_log_of(
        &self,
        req: cri::ReopenContainerLogRequest,
    ) -> Result<cri::ReopenContainerLogResponse, Status> {
        self.svc.containers.reopen_log(&req.container_id).await?;
        Ok(cri::ReopenContainerLogResponse {})
    }

    pub(super) async fn exec_sync_of(
        &self,
        req: cri::ExecSyncRequest,
    ) -> Result<cri::ExecSyncResponse, Status> {
        let timeout = (req.timeout > 0).then(|| Duration::from_secs(req.timeout as u64));
        let mut out = self
            .svc
            .containers
            .exec_sync(&req.container_id, req.cmd, timeout)
            .await?;
        fit_in_message(&mut out.stdout, &mut out.stderr);
        Ok(cri::ExecSyncResponse {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.exit_code,
        })
    }
}

/// Each stream is capped at 16 MiB, and the whole answer must fit the 16 MiB message limit too
/// (kubelet's own): the longer stream gives way, its start kept.
fn fit_in_message(stdout: &mut Vec<u8>, stderr: &mut Vec<u8>) {
    // Room for the field tags, lengths and the exit code.
    const BUDGET: usize = super::MAX_MESSAGE_BYTES - 32;
    while stdout.len() + stderr.len() > BUDGET {
        let excess = stdout.len() + stderr.len() - BUDGET;
        let longer = if stdout.len() >= stderr.len() {
            &mut *stdout
        } else {
            &mut *stderr
        };
        let keep = longer.len().saturating_sub(excess);
        longer.truncate(keep);
    }
}

pub(super) fn metadata(r: &ContainerRecord) -> cri::ContainerMetadata {
    cri::ContainerMetadata {
        name: r.name.clone(),
        attempt: r.attempt,
    }
}

fn image_spec(r: &ContainerRecord) -> cri::ImageSpec {
    cri::ImageSpec {
        image: r.image.clone(),
        ..cri::ImageSpec::default()
    }
}

pub(super) fn status(r: &ContainerRecord) -> cri::ContainerStatus {
    cri::ContainerStatus {
        id: r.id.clone(),
        metadata: Some(metadata(r)),
        state: r.state.to_cri(),
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        exit_code: r.exit_code,
        image: Some(image_spec(r)),
        image_ref: r.image_ref.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: to_hash(&r.labels),
        annotations: to_hash(&r.annotations),
        mounts: r
            .mounts
            .iter()
            .map(|m| cri::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.display().to_string(),
                readonly: m.readonly,
                propagation: m.propagation.to_cri(),
                ..cri::Mount::default()
            })
            .collect(),
        log_path: r.log_path.display().to_string(),
        resources: Some(cri::ContainerResources {
            linux: Some(r.resources.to_cri()),
            windows: None,
        }),
        image_id: r.image_id.clone(),
        user: Some(cri::ContainerUser {
            linux: Some(cri::LinuxContainerUser {
                uid: r.user.uid.into(),
                gid: r.user.gid.into(),
                supplemental_groups: r
                    .user
                    .additional_gids
                    .iter()
                    .map(|g| i64::from(*g))
                    .collect(),
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exec_output_fits_the_message_limit() {
        let (mut out, mut err) = (vec![1u8; 16 << 20], vec![2u8; 1000]);
        super::fit_in_message(&mut out, &mut err);
        assert_eq!(err.len(), 1000);
        assert_eq!(out.len() + err.len(), super::super::MAX_MESSAGE_BYTES - 32);
        let (mut small, mut also) = (vec![0u8; 10], vec![0u8; 10]);
        super::fit_in_message(&mut small, &mut also);
        assert_eq!((small.len(), also.len()), (10, 10));
    }
}
