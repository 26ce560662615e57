//! GetContainerEvents: every lifecycle event of a container or pod sandbox, with the pod's status
//! and its containers' statuses as they were when it happened. One task turns each event into its
//! CRI message as soon as it is emitted; every subscriber gets its own stream of those. A
//! subscriber that falls `BACKLOG` events behind is dropped with ResourceExhausted rather than
//! holding anything up; it subscribes again and relists, as kubelet does.

use std::sync::Arc;

use berth_cri::v1 as cri;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tonic::Status;

use super::Cri;
use super::container::status;
use super::pod::pod_status;
use crate::events::{EventKind, LifecycleEvent};
use crate::services::Services;

/// Messages kept for the slowest subscriber.
const BACKLOG: usize = 1024;

pub(super) type EventStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>,
>;

/// Starts the task that turns lifecycle events into CRI messages; the sender subscribers
/// subscribe to.
pub(super) fn start_feed(svc: Arc<Services>) -> broadcast::Sender<cri::ContainerEventResponse> {
    let (feed, _) = broadcast::channel(BACKLOG);
    let sender = feed.clone();
    let mut events = svc.events.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    // No subscriber: nobody to tell.
                    let _ = sender.send(to_message(&svc, &event));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("the event feed fell behind and lost {n} events");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    feed
}

fn to_message(svc: &Services, event: &LifecycleEvent) -> cri::ContainerEventResponse {
    let pod = svc
        .pods
        .find(&event.pod_id)
        .ok()
        .flatten()
        .map(|p| p.record());
    let containers_statuses = svc
        .containers
        .scan(|c| (c.pod_id == event.pod_id).then(|| status(c)));
    let kind = match event.kind {
        EventKind::Created => cri::ContainerEventType::ContainerCreatedEvent,
        EventKind::Started => cri::ContainerEventType::ContainerStartedEvent,
        EventKind::Stopped => cri::ContainerEventType::ContainerStoppedEvent,
        EventKind::Deleted => cri::ContainerEventType::ContainerDeletedEvent,
    };
    cri::ContainerEventResponse {
        container_id: event.id.clone(),
        container_event_type: kind as i32,
        created_at: event.at,
        pod_sandbox_status: pod.as_ref().map(pod_status),
        containers_statuses,
    }
}

impl Cri {
    pub(super) async fn get_container_events_of(
        &self,
        _req: cri::GetEventsRequest,
    ) -> Result<EventStream, Status> {
        Ok(subscriber_stream(self.events.subscribe()))
    }
}

/// One subscriber's messages; a subscriber that lagged gets ResourceExhausted, which ends its
/// call.
fn subscriber_stream(receiver: broadcast::Receiver<cri::ContainerEventResponse>) -> EventStream {
    let stream = BroadcastStream::new(receiver).map(|item| {
        item.map_err(|BroadcastStreamRecvError::Lagged(n)| {
            Status::resource_exhausted(format!(
                "this subscriber fell {n} events behind and was dropped; subscribe again and relist"
            ))
        })
    });
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_without_holding_up_the_feed() {
        let (feed, _) = broadcast::channel(2);
        let mut slow = subscriber_stream(feed.subscribe());
        let mut prompt = subscriber_stream(feed.subscribe());
        for n in 0..5 {
            let message = cri::ContainerEventResponse {
                container_id: n.to_string(),
                ..Default::default()
            };
            // Sending never waits for anyone.
            feed.send(message).unwrap();
            let got = prompt.next().await.unwrap().unwrap();
            assert_eq!(got.container_id, n.to_string());
        }
        let dropped = slow.next().await.unwrap().unwrap_err();
        assert_eq!(dropped.code(), tonic::Code::ResourceExhausted);
    }
}
