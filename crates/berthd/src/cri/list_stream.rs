//! The six Stream* RPCs of cri-api v0.36 (kubelet's CRIListStreaming): each List RPC's answer,
//! cut into messages of at least one item and at most `MESSAGE_BYTES` encoded, every item in
//! exactly one message, then the end of the stream. An empty list is a stream with no message.

use std::pin::Pin;

use berth_cri::prost::Message;
use berth_cri::v1 as cri;
use tonic::Status;

use super::Cri;

/// What one message of a stream holds at most, well inside kubelet's 16 MiB.
const MESSAGE_BYTES: usize = 4 * 1024 * 1024;

pub type ListStream<T> =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// `items` as messages made by `wrap`, each at least one item, at most `MESSAGE_BYTES` of them
/// (an item larger than that goes alone).
fn chunked<I, T>(items: Vec<I>, wrap: impl Fn(Vec<I>) -> T) -> ListStream<T>
where
    I: Message,
    T: Send + 'static,
{
    let mut messages = Vec::new();
    let (mut chunk, mut bytes) = (Vec::new(), 0);
    for item in items {
        let size = item.encoded_len();
        if !chunk.is_empty() && bytes + size > MESSAGE_BYTES {
            messages.push(Ok(wrap(std::mem::take(&mut chunk))));
            bytes = 0;
        }
        bytes += size;
        chunk.push(item);
    }
    if !chunk.is_empty() {
        messages.push(Ok(wrap(chunk)));
    }
    Box::pin(tokio_stream::iter(messages))
}

impl Cri {
    pub(super) async fn stream_pod_sandboxes_of(
        &self,
        req: cri::StreamPodSandboxesRequest,
    ) -> Result<ListStream<cri::StreamPodSandboxesResponse>, Status> {
        let list = cri::ListPodSandboxRequest { filter: req.filter };
        let items = self.list_pod_sandbox_of(list).await?.items;
        Ok(chunked(items, |pod_sandboxes| {
            cri::StreamPodSandboxesResponse { pod_sandboxes }
        }))
    }

    pub(super) async fn stream_containers_of(
        &self,
        req: cri::StreamContainersRequest,
    ) -> Result<ListStream<cri::StreamContainersResponse>, Status> {
        let list = cri::ListContainersRequest { filter: req.filter };
        let items = self.list_containers_of(list).await?.containers;
        Ok(chunked(items, |containers| cri::StreamContainersResponse {
            containers,
        }))
    }

    pub(super) async fn stream_container_stats_of(
        &self,
        req: cri::StreamContainerStatsRequest,
    ) -> Result<ListStream<cri::StreamContainerStatsResponse>, Status> {
        let list = cri::ListContainerStatsRequest { filter: req.filter };
        let items = self.list_container_stats_of(list).await?.stats;
        Ok(chunked(items, |container_stats| {
            cri::StreamContainerStatsResponse { container_stats }
        }))
    }

    pub(super) async fn stream_pod_sandbox_stats_of(
        &self,
        req: cri::StreamPodSandboxStatsRequest,
    ) -> Result<ListStream<cri::StreamPodSandboxStatsResponse>, Status> {
        let list = cri::ListPodSandboxStatsRequest { filter: req.filter };
        let items = self.list_pod_sandbox_stats_of(list).await?.stats;
        Ok(chunked(items, |pod_sandbox_stats| {
            cri::StreamPodSandboxStatsResponse { pod_sandbox_stats }
        }))
    }

    pub(super) async fn stream_pod_sandbox_metrics_of(
        &self,
        _req: cri::StreamPodSandboxMetricsRequest,
    ) -> Result<ListStream<cri::StreamPodSandboxMetricsResponse>, Status> {
        let list = cri::ListPodSandboxMetricsRequest {};
        let items = self.list_pod_sandbox_metrics_of(list).await?.pod_metrics;
        Ok(chunked(items, |pod_sandbox_metrics| {
            cri::StreamPodSandboxMetricsResponse {
                pod_sandbox_metrics,
            }
        }))
    }

    pub(super) async fn stream_images_of(
        &self,
        req: cri::StreamImagesRequest,
    ) -> Result<ListStream<cri::StreamImagesResponse>, Status> {
        let list = cri::ListImagesRequest { filter: req.filter };
        let items = self.list_images_of(list).await?.images;
        Ok(chunked(items, |images| cri::StreamImagesResponse {
            images,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn every_item_once_at_least_one_per_message_and_the_big_ones_split() {
        let image = |n: usize| cri::Image {
            id: format!("{n}{}", "x".repeat(1024 * 1024)),
            ..Default::default()
        };
        let items: Vec<cri::Image> = (0..10).map(image).collect();
        let messages: Vec<cri::StreamImagesResponse> =
            chunked(items.clone(), |images| cri::StreamImagesResponse { images })
                .map(|m| m.unwrap())
                .collect()
                .await;
        assert!(messages.len() > 1, "10 MiB of items need several messages");
        assert!(messages.iter().all(|m| !m.images.is_empty()));
        assert!(
            messages
                .iter()
                .all(|m| m.encoded_len() <= MESSAGE_BYTES + 1024 * 1024 + 64)
        );
        let all: Vec<cri::Image> = messages.into_iter().flat_map(|m| m.images).collect();
        assert_eq!(all, items);
        let none: Vec<cri::StreamImagesResponse> = chunked(Vec::<cri::Image>::new(), |images| {
            cri::StreamImagesResponse { images }
        })
        .map(|m| m.unwrap())
        .collect()
        .await;
        assert!(none.is_empty(), "an empty list is an empty stream");
    }
}
