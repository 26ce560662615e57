//! Lifecycle events of pods and containers as they happen: the source of GetContainerEvents.
//! Sending never waits: a receiver that falls behind loses events (and learns it did).

use tokio::sync::broadcast;

/// Events kept for the slowest receiver before it starts losing them.
const BACKLOG: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub kind: EventKind,
    /// The container's ID, or the pod's for an event of the pod sandbox itself.
    pub id: String,
    pub pod_id: String,
    /// Nanoseconds since the epoch.
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct Events {
    sender: broadcast::Sender<LifecycleEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Events {
    pub fn emit(&self, kind: EventKind, id: &str, pod_id: &str) {
        // No receiver is not an error: nobody is listening.
        let _ = self.sender.send(LifecycleEvent {
            kind,
            id: id.to_owned(),
            pod_id: pod_id.to_owned(),
            at: crate::clock::now_nanos(),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LifecycleEvent> {
        self.sender.subscribe()
    }
}
