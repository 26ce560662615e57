//! The RuntimeService trait: one entry per RPC, each a call into the handler of its group.

use berth_cri::v1 as cri;
use berth_cri::v1::runtime_service_server::RuntimeService;
use tracing::info_span;

use super::Cri;
use super::events::EventStream;
use super::list_stream::ListStream;
use super::rpc::{Gate, cri_service, shown};

/// The pod a RunPodSandbox request names, for its span.
fn pod_name(config: &Option<cri::PodSandboxConfig>) -> &str {
    config
        .as_ref()
        .and_then(|c| c.metadata.as_ref())
        .map(|m| m.name.as_str())
        .unwrap_or_default()
}

/// The container a CreateContainer request names, for its span.
fn container_name(config: &Option<cri::ContainerConfig>) -> &str {
    config
        .as_ref()
        .and_then(|c| c.metadata.as_ref())
        .map(|m| m.name.as_str())
        .unwrap_or_default()
}

cri_service! {
    RuntimeService;
    type GetContainerEventsStream = EventStream;
    type StreamPodSandboxesStream = ListStream<cri::StreamPodSandboxesResponse>;
    type StreamContainersStream = ListStream<cri::StreamContainersResponse>;
    type StreamContainerStatsStream = ListStream<cri::StreamContainerStatsResponse>;
    type StreamPodSandboxStatsStream = ListStream<cri::StreamPodSandboxStatsResponse>;
    type StreamPodSandboxMetricsStream = ListStream<cri::StreamPodSandboxMetricsResponse>;

    fn version(cri::VersionRequest) -> cri::VersionResponse = "Version", Always,
        |r| info_span!("Version") => version_of;
    fn status(cri::StatusRequest) -> cri::StatusResponse = "Status", Always,
        |r| info_span!("Status") => status_of;
    fn runtime_config(cri::RuntimeConfigRequest) -> cri::RuntimeConfigResponse =
        "RuntimeConfig", Always, |r| info_span!("RuntimeConfig") => runtime_config_of;
    fn update_runtime_config(cri::UpdateRuntimeConfigRequest) -> cri::UpdateRuntimeConfigResponse =
        "UpdateRuntimeConfig", WhenReady, |r| info_span!("UpdateRuntimeConfig")
        => update_runtime_config_of;

    fn run_pod_sandbox(cri::RunPodSandboxRequest) -> cri::RunPodSandboxResponse =
        "RunPodSandbox", WhenReady, |r| info_span!("RunPodSandbox", name = %shown(pod_name(&r.config)))
        => run_pod_sandbox_of;
    fn stop_pod_sandbox(cri::StopPodSandboxRequest) -> cri::StopPodSandboxResponse =
        "StopPodSandbox", WhenReady, |r| info_span!("StopPodSandbox", pod = %shown(&r.pod_sandbox_id))
        => stop_pod_sandbox_of;
    fn remove_pod_sandbox(cri::RemovePodSandboxRequest) -> cri::RemovePodSandboxResponse =
        "RemovePodSandbox", WhenReady,
        |r| info_span!("RemovePodSandbox", pod = %shown(&r.pod_sandbox_id)) => remove_pod_sandbox_of;
    fn pod_sandbox_status(cri::PodSandboxStatusRequest) -> cri::PodSandboxStatusResponse =
        "PodSandboxStatus", WhenReady,
        |r| info_span!("PodSandboxStatus", pod = %shown(&r.pod_sandbox_id)) => pod_sandbox_status_of;
    fn list_pod_sandbox(cri::ListPodSandboxRequest) -> cri::ListPodSandboxResponse =
        "ListPodSandbox", WhenReady, |r| info_span!("ListPodSandbox") => list_pod_sandbox_of;
    fn stream_pod_sandboxes(cri::StreamPodSandboxesRequest)
        -> ListStream<cri::StreamPodSandboxesResponse> = "StreamPodSandboxes", WhenReady,
        |r| info_span!("StreamPodSandboxes") => stream_pod_sandboxes_of;
    fn update_pod_sandbox_resources(cri::UpdatePodSandboxResourcesRequest)
        -> cri::UpdatePodSandboxResourcesResponse = "UpdatePodSandboxResources", WhenReady,
        |r| info_span!("UpdatePodSandboxResources", pod = %shown(&r.pod_sandbox_id))
        => update_pod_sandbox_resources_of;

    fn create_container(cri::CreateContainerRequest) -> cri::CreateContainerResponse =
        "CreateContainer", WhenReady,
        |r| info_span!("CreateContainer", pod = %shown(&r.pod_sandbox_id), name = %shown(container_name(&r.config)))
        => create_container_of;
    fn start_container(cri::StartContainerRequest) -> cri::StartContainerResponse =
        "StartContainer", WhenReady,
        |r| info_span!("StartContainer", container = %shown(&r.container_id)) => start_container_of;
    fn stop_container(cri::StopContainerRequest) -> cri::StopContainerResponse =
        "StopContainer", WhenReady,
        |r| info_span!("StopContainer", container = %shown(&r.container_id)) => stop_container_of;
    fn remove_container(cri::RemoveContainerRequest) -> cri::RemoveContainerResponse =
        "RemoveContainer", WhenReady,
        |r| info_span!("RemoveContainer", container = %shown(&r.container_id)) => remove_container_of;
    fn list_containers(cri::ListContainersRequest) -> cri::ListContainersResponse =
        "ListContainers", WhenReady, |r| info_span!("ListContainers") => list_containers_of;
    fn stream_containers(cri::StreamContainersRequest) -> ListStream<cri::StreamContainersResponse> =
        "StreamContainers", WhenReady, |r| info_span!("StreamContainers") => stream_containers_of;
    fn container_status(cri::ContainerStatusRequest) -> cri::ContainerStatusResponse =
        "ContainerStatus", WhenReady,
        |r| info_span!("ContainerStatus", container = %shown(&r.container_id)) => container_status_of;
    fn update_container_resources(cri::UpdateContainerResourcesRequest)
        -> cri::UpdateContainerResourcesResponse = "UpdateContainerResources", WhenReady,
        |r| info_span!("UpdateContainerResources", container = %shown(&r.container_id))
        => update_container_resources_of;
    fn reopen_container_log(cri::ReopenContainerLogRequest) -> cri::ReopenContainerLogResponse =
        "ReopenContainerLog", WhenReady,
        |r| info_span!("ReopenContainerLog", container = %shown(&r.container_id))
        => reopen_container_log_of;
    fn checkpoint_container(cri::CheckpointContainerRequest) -> cri::CheckpointContainerResponse =
        "CheckpointContainer", WhenReady,
        |r| info_span!("CheckpointContainer", container = %shown(&r.container_id))
        => checkpoint_container_of;

    fn exec_sync(cri::ExecSyncRequest) -> cri::ExecSyncResponse = "ExecSync", WhenReady,
        |r| info_span!("ExecSync", container = %shown(&r.container_id)) => exec_sync_of;
    fn exec(cri::ExecRequest) -> cri::ExecResponse = "Exec", WhenReady,
        |r| info_span!("Exec", container = %shown(&r.container_id)) => exec_of;
    fn attach(cri::AttachRequest) -> cri::AttachResponse = "Attach", WhenReady,
        |r| info_span!("Attach", container = %shown(&r.container_id)) => attach_of;
    fn port_forward(cri::PortForwardRequest) -> cri::PortForwardResponse = "PortForward",
        WhenReady, |r| info_span!("PortForward", pod = %shown(&r.pod_sandbox_id)) => port_forward_of;

    fn container_stats(cri::ContainerStatsRequest) -> cri::ContainerStatsResponse =
        "ContainerStats", WhenReady,
        |r| info_span!("ContainerStats", container = %shown(&r.container_id)) => container_stats_of;
    fn list_container_stats(cri::ListContainerStatsRequest) -> cri::ListContainerStatsResponse =
        "ListContainerStats", WhenReady, |r| info_span!("ListContainerStats")
        => list_container_stats_of;
    fn stream_container_stats(cri::StreamContainerStatsRequest)
        -> ListStream<cri::StreamContainerStatsResponse> = "StreamContainerStats", WhenReady,
        |r| info_span!("StreamContainerStats") => stream_container_stats_of;
    fn pod_sandbox_stats(cri::PodSandboxStatsRequest) -> cri::PodSandboxStatsResponse =
        "PodSandboxStats", WhenReady,
        |r| info_span!("PodSandboxStats", pod = %shown(&r.pod_sandbox_id)) => pod_sandbox_stats_of;
    fn list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest) -> cri::ListPodSandboxStatsResponse =
        "ListPodSandboxStats", WhenReady, |r| info_span!("ListPodSandboxStats")
        => list_pod_sandbox_stats_of;
    fn stream_pod_sandbox_stats(cri::StreamPodSandboxStatsRequest)
        -> ListStream<cri::StreamPodSandboxStatsResponse> = "StreamPodSandboxStats", WhenReady,
        |r| info_span!("StreamPodSandboxStats") => stream_pod_sandbox_stats_of;
    fn list_metric_descriptors(cri::ListMetricDescriptorsRequest)
        -> cri::ListMetricDescriptorsResponse = "ListMetricDescriptors", Always,
        |r| info_span!("ListMetricDescriptors") => list_metric_descriptors_of;
    fn list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest)
        -> cri::ListPodSandboxMetricsResponse = "ListPodSandboxMetrics", WhenReady,
        |r| info_span!("ListPodSandboxMetrics") => list_pod_sandbox_metrics_of;
    fn stream_pod_sandbox_metrics(cri::StreamPodSandboxMetricsRequest)
        -> ListStream<cri::StreamPodSandboxMetricsResponse> = "StreamPodSandboxMetrics",
        WhenReady, |r| info_span!("StreamPodSandboxMetrics") => stream_pod_sandbox_metrics_of;
    fn get_container_events(cri::GetEventsRequest) -> EventStream = "GetContainerEvents", Always,
        |r| info_span!("GetContainerEvents") => get_container_events_of;
}
