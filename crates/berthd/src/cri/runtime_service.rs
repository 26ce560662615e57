//! The RuntimeService trait: one method per RPC, each a call into the handler of its group.

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tonic::{Request, Response, Status};
use tracing::info_span;

use super::Cri;
use super::rpc::{Gate, unimplemented};

use super::events::EventStream;

#[tonic::async_trait]
impl RuntimeService for Cri {
    type GetContainerEventsStream = EventStream;

    async fn version(
        &self,
        req: Request<cri::VersionRequest>,
    ) -> Result<Response<cri::VersionResponse>, Status> {
        self.rpc(
            req.metadata(),
            "Version",
            Gate::Always,
            info_span!("Version"),
            async { Ok(self.version_of()) },
        )
        .await
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<cri::RunPodSandboxRequest>,
    ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("RunPodSandbox", pod = tracing::field::Empty, name = %req.config.as_ref().and_then(|c| c.metadata.as_ref()).map(|m| m.name.as_str()).unwrap_or_default());
        self.rpc(
            &metadata,
            "RunPodSandbox",
            Gate::WhenReady,
            span,
            self.run_pod_sandbox_of(req),
        )
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<cri::StopPodSandboxRequest>,
    ) -> Result<Response<cri::StopPodSandboxResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("StopPodSandbox", pod = %req.pod_sandbox_id);
        self.rpc(
            &metadata,
            "StopPodSandbox",
            Gate::WhenReady,
            span,
            self.stop_pod_sandbox_of(req),
        )
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<cri::RemovePodSandboxRequest>,
    ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("RemovePodSandbox", pod = %req.pod_sandbox_id);
        self.rpc(
            &metadata,
            "RemovePodSandbox",
            Gate::WhenReady,
            span,
            self.remove_pod_sandbox_of(req),
        )
        .await
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("PodSandboxStatus", pod = %req.pod_sandbox_id);
        self.rpc(
            &metadata,
            "PodSandboxStatus",
            Gate::WhenReady,
            span,
            async { self.pod_sandbox_status_of(req) },
        )
        .await
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<cri::ListPodSandboxRequest>,
    ) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("ListPodSandbox");
        self.rpc(&metadata, "ListPodSandbox", Gate::WhenReady, span, async {
            self.list_pod_sandbox_of(req)
        })
        .await
    }

    async fn create_container(
        &self,
        req: Request<cri::CreateContainerRequest>,
    ) -> Result<Response<cri::CreateContainerResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("CreateContainer", pod = %req.pod_sandbox_id, name = %req.config.as_ref().and_then(|c| c.metadata.as_ref()).map(|m| m.name.as_str()).unwrap_or_default());
        self.rpc(
            &metadata,
            "CreateContainer",
            Gate::WhenReady,
            span,
            self.create_container_of(req),
        )
        .await
    }

    async fn start_container(
        &self,
        req: Request<cri::StartContainerRequest>,
    ) -> Result<Response<cri::StartContainerResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("StartContainer", container = %req.container_id);
        self.rpc(
            &metadata,
            "StartContainer",
            Gate::WhenReady,
            span,
            self.start_container_of(req),
        )
        .await
    }

    async fn stop_container(
        &self,
        req: Request<cri::StopContainerRequest>,
    ) -> Result<Response<cri::StopContainerResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("StopContainer", container = %req.container_id);
        self.rpc(
            &metadata,
            "StopContainer",
            Gate::WhenReady,
            span,
            self.stop_container_of(req),
        )
        .await
    }

    async fn remove_container(
        &self,
        req: Request<cri::RemoveContainerRequest>,
    ) -> Result<Response<cri::RemoveContainerResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("RemoveContainer", container = %req.container_id);
        self.rpc(
            &metadata,
            "RemoveContainer",
            Gate::WhenReady,
            span,
            self.remove_container_of(req),
        )
        .await
    }

    async fn list_containers(
        &self,
        req: Request<cri::ListContainersRequest>,
    ) -> Result<Response<cri::ListContainersResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("ListContainers");
        self.rpc(&metadata, "ListContainers", Gate::WhenReady, span, async {
            self.list_containers_of(req)
        })
        .await
    }

    async fn container_status(
        &self,
        req: Request<cri::ContainerStatusRequest>,
    ) -> Result<Response<cri::ContainerStatusResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("ContainerStatus", container = %req.container_id);
        self.rpc(&metadata, "ContainerStatus", Gate::WhenReady, span, async {
            self.container_status_of(req)
        })
        .await
    }

    async fn update_container_resources(
        &self,
        req: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Result<Response<cri::UpdateContainerResourcesResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("UpdateContainerResources", container = %req.container_id);
        self.rpc(
            &metadata,
            "UpdateContainerResources",
            Gate::WhenReady,
            span,
            self.update_container_resources_of(req),
        )
        .await
    }

    async fn reopen_container_log(
        &self,
        req: Request<cri::ReopenContainerLogRequest>,
    ) -> Result<Response<cri::ReopenContainerLogResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("ReopenContainerLog", container = %req.container_id);
        self.rpc(
            &metadata,
            "ReopenContainerLog",
            Gate::WhenReady,
            span,
            self.reopen_container_log_of(req),
        )
        .await
    }

    async fn exec_sync(
        &self,
        req: Request<cri::ExecSyncRequest>,
    ) -> Result<Response<cri::ExecSyncResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("ExecSync", container = %req.container_id);
        self.rpc(
            &metadata,
            "ExecSync",
            Gate::WhenReady,
            span,
            self.exec_sync_of(req),
        )
        .await
    }

    async fn exec(
        &self,
        req: Request<cri::ExecRequest>,
    ) -> Result<Response<cri::ExecResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("Exec", container = %req.container_id);
        self.rpc(&metadata, "Exec", Gate::WhenReady, span, async {
            self.exec_of(req)
        })
        .await
    }

    async fn attach(
        &self,
        req: Request<cri::AttachRequest>,
    ) -> Result<Response<cri::AttachResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("Attach", container = %req.container_id);
        self.rpc(&metadata, "Attach", Gate::WhenReady, span, async {
            self.attach_of(req)
        })
        .await
    }

    async fn port_forward(
        &self,
        req: Request<cri::PortForwardRequest>,
    ) -> Result<Response<cri::PortForwardResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("PortForward", pod = %req.pod_sandbox_id);
        self.rpc(&metadata, "PortForward", Gate::WhenReady, span, async {
            self.port_forward_of(req)
        })
        .await
    }

    async fn container_stats(
        &self,
        req: Request<cri::ContainerStatsRequest>,
    ) -> Result<Response<cri::ContainerStatsResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("ContainerStats", container = %req.container_id);
        self.rpc(
            &metadata,
            "ContainerStats",
            Gate::WhenReady,
            span,
            self.container_stats_of(req),
        )
        .await
    }

    async fn list_container_stats(
        &self,
        req: Request<cri::ListContainerStatsRequest>,
    ) -> Result<Response<cri::ListContainerStatsResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        self.rpc(
            &metadata,
            "ListContainerStats",
            Gate::WhenReady,
            info_span!("ListContainerStats"),
            self.list_container_stats_of(req),
        )
        .await
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<cri::PodSandboxStatsRequest>,
    ) -> Result<Response<cri::PodSandboxStatsResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("PodSandboxStats", pod = %req.pod_sandbox_id);
        self.rpc(
            &metadata,
            "PodSandboxStats",
            Gate::WhenReady,
            span,
            self.pod_sandbox_stats_of(req),
        )
        .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Result<Response<cri::ListPodSandboxStatsResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        self.rpc(
            &metadata,
            "ListPodSandboxStats",
            Gate::WhenReady,
            info_span!("ListPodSandboxStats"),
            self.list_pod_sandbox_stats_of(req),
        )
        .await
    }

    async fn update_runtime_config(
        &self,
        req: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<cri::UpdateRuntimeConfigResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        let span = info_span!("UpdateRuntimeConfig");
        self.rpc(
            &metadata,
            "UpdateRuntimeConfig",
            Gate::WhenReady,
            span,
            self.update_runtime_config_of(req),
        )
        .await
    }

    async fn status(
        &self,
        req: Request<cri::StatusRequest>,
    ) -> Result<Response<cri::StatusResponse>, Status> {
        let (metadata, _, req) = req.into_parts();
        self.rpc(
            &metadata,
            "Status",
            Gate::Always,
            info_span!("Status"),
            self.status_of(req),
        )
        .await
    }

    async fn checkpoint_container(
        &self,
        _req: Request<cri::CheckpointContainerRequest>,
    ) -> Result<Response<cri::CheckpointContainerResponse>, Status> {
        unimplemented("CheckpointContainer")
    }

    async fn get_container_events(
        &self,
        req: Request<cri::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        // Subscribing needs no recovered state: events from here on are what the caller gets.
        self.rpc(
            req.metadata(),
            "GetContainerEvents",
            Gate::Always,
            info_span!("GetContainerEvents"),
            async { Ok(self.get_container_events_of()) },
        )
        .await
    }

    async fn list_metric_descriptors(
        &self,
        req: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Result<Response<cri::ListMetricDescriptorsResponse>, Status> {
        self.rpc(
            req.metadata(),
            "ListMetricDescriptors",
            Gate::Always,
            info_span!("ListMetricDescriptors"),
            async { Ok(self.list_metric_descriptors_of()) },
        )
        .await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        req: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<cri::ListPodSandboxMetricsResponse>, Status> {
        self.rpc(
            req.metadata(),
            "ListPodSandboxMetrics",
            Gate::WhenReady,
            info_span!("ListPodSandboxMetrics"),
            self.list_pod_sandbox_metrics_of(),
        )
        .await
    }

    async fn runtime_config(
        &self,
        req: Request<cri::RuntimeConfigRequest>,
    ) -> Result<Response<cri::RuntimeConfigResponse>, Status> {
        self.rpc(
            req.metadata(),
            "RuntimeConfig",
            Gate::Always,
            info_span!("RuntimeConfig"),
            async { Ok(self.runtime_config_of()) },
        )
        .await
    }
}
