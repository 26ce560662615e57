//! StopPodSandbox of the pod itself (its containers are killed before, by the sandbox flow in
//! `crate::sandbox`): kill its infra process and tear down its network (CNI DEL, which releases
//! its IPs) side by side, then mark it NOTREADY. Idempotent: an unknown or already stopped pod is
//! a success.

use std::future::Future;
use std::sync::Arc;

use super::record::{PodRecord, PodState};
use super::{Pod, PodError, PodService};
use crate::events::EventKind;

impl PodService {
    pub async fn stop(&self, id: &str) -> Result<(), PodError> {
        self.stop_beside(id, std::future::ready(())).await
    }

    /// Stops the pod with `beside` (the recording of its dead containers' exits) running
    /// alongside the teardown; the pod turns NOTREADY only once both are done, so that its event
    /// follows theirs. What `beside` gives is handed back.
    pub async fn stop_beside<T>(
        &self,
        id: &str,
        beside: impl Future<Output = T>,
    ) -> Result<T, PodError> {
        let Some(pod) = self.find(id)? else {
            return Ok(beside.await);
        };
        let _op = pod.op.lock().await;
        self.stop_locked(&pod, beside).await
    }

    /// Stops a pod whose operation lock the caller holds.
    pub(super) async fn stop_locked<T>(
        &self,
        pod: &Arc<Pod>,
        beside: impl Future<Output = T>,
    ) -> Result<T, PodError> {
        let record = pod.record();
        let (given, torn_down) = tokio::join!(beside, self.tear_down(&record));
        torn_down?;
        if record.state != PodState::NotReady || record.network.attached || record.infra.is_some() {
            pod.update(&self.store, |r| {
                r.state = PodState::NotReady;
                r.network.attached = false;
                r.infra = None;
            })
            .await?;
            self.emit(EventKind::Stopped, &record.id);
            tracing::info!(pod = %record.id, "pod sandbox stopped");
        }
        Ok(given)
    }

    /// Kills the infra process and runs CNI DEL, at once: neither needs the other.
    async fn tear_down(&self, record: &PodRecord) -> Result<(), PodError> {
        let infra = async {
            if let Some(infra) = record.infra {
                infra.kill().await?;
                crate::failpoint::reached("pod-stop-after-infra");
            }
            Ok::<(), PodError>(())
        };
        let network = async {
            if record.network.attached {
                if let (Some(list), Some(netns_path)) = (&record.network.list, &record.pinned.net) {
                    let att = self.attachment(record, netns_path.clone());
                    self.cni
                        .del(list, &att, record.network.result.as_ref())
                        .await?;
                    crate::failpoint::reached("pod-stop-after-cni-del");
                }
            }
            Ok::<(), PodError>(())
        };
        let (infra, network) = tokio::join!(infra, network);
        infra.and(network)
    }
}
