//! Start-up recovery of pods: load every record; a READY pod whose namespaces or infra process are
//! gone (a reboot cleared the state dir, say) turns NOTREADY; a pod directory without a record is
//! what a crash in the middle of RunPodSandbox left, and is torn down (its network with the
//! attachment written before its CNI ADD).

use std::path::{Path, PathBuf};

use berth_net::cni::{Attachment, NetworkList};
use berth_net::netns::{self, Pinned};
use serde::{Deserialize, Serialize};

use super::infra::InfraProcess;
use super::record::{NsMode, PodRecord, PodState};
use super::{Admission, Pod, PodError, PodService, io_err, ns_pool};
use crate::events::EventKind;
use crate::procs::Process;

const PENDING_NETWORK: &str = "network.json";

#[derive(Serialize, Deserialize)]
struct PendingNetwork {
    list: NetworkList,
    attachment: Attachment,
}

pub fn write_pending_network(
    dir: &Path,
    list: &NetworkList,
    att: &Attachment,
) -> Result<(), PodError> {
    let pending = PendingNetwork {
        list: list.clone(),
        attachment: att.clone(),
    };
    let text = serde_json::to_vec(&pending).map_err(|e| PodError::Io {
        what: "encode the pending network".into(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(dir.join(PENDING_NETWORK), text).map_err(io_err("write the pending network"))
}

impl PodService {
    /// In this order: CNI plugins a crashed berthd left running are killed; the records are
    /// loaded and checked; pod dirs no record names are torn down (their CNI DEL runs while
    /// their namespaces are still pinned, so the veth goes with it, not later with the netns);
    /// infra processes no record owns are killed; spare namespace sets no pod owns are unpinned.
    pub async fn recover(&self) -> Result<(), PodError> {
        let mut records = self.store.list::<PodRecord>()?;
        for record in &mut records {
            if let Some(pid) = record.legacy_infra_pid.take() {
                record.infra = InfraProcess::adopt(pid);
            }
        }
        let state_dir = self.settings.paths.state_dir.clone();
        crate::blocking::run(move || kill_orphan_cni_plugins(&state_dir)).await?;
        let known: std::collections::HashSet<String> =
            records.iter().map(|r| r.id.clone()).collect();
        let owned_sets = records
            .iter()
            .filter_map(|r| ns_pool::set_dir(&r.pinned).map(Path::to_path_buf))
            .collect();
        let (pods_dir, owned_infra): (PathBuf, Vec<(PathBuf, u32)>) = (
            self.settings.paths.pods(),
            records
                .iter()
                .filter_map(|r| r.infra.map(|i| (r.dir.clone(), i.pid)))
                .collect(),
        );
        for record in records {
            let pod = Pod::new(record.clone(), Admission::default());
            if record.state == PodState::Ready && !still_alive(&record) {
                tracing::warn!(pod = %record.id, "pod sandbox lost its namespaces or infra process; marking it NOTREADY");
                pod.update(&self.store, |r| r.state = PodState::NotReady)
                    .await?;
                self.emit(EventKind::Stopped, &record.id);
            }
            self.pods.insert(record.id.clone(), pod);
        }
        let entries = match std::fs::read_dir(&pods_dir) {
            Ok(e) => e.flatten().collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("read the pods dir")(e)),
        };
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) && crate::ids::is_valid(&name) {
                tracing::warn!(pod = %name, "removing a pod sandbox half made before a crash");
                self.tear_down_orphan(&name, &entry.path()).await;
            }
        }
        let pool = self.ns_pool.clone();
        crate::blocking::run(move || {
            kill_orphan_infra(&pods_dir, &owned_infra);
            pool.reset(&owned_sets);
        })
        .await?;
        Ok(())
    }

    async fn tear_down_orphan(&self, id: &str, dir: &Path) {
        if let Ok(text) = std::fs::read(dir.join(PENDING_NETWORK)) {
            if let Ok(p) = serde_json::from_slice::<PendingNetwork>(&text) {
                if let Err(e) = self.cni.del(&p.list, &p.attachment, None).await {
                    tracing::warn!("tearing down the network of {}: {e}", dir.display());
                }
            }
        }
        let pinned = Pinned::all_in(&dir.join("ns"));
        let (dir, shm) = (dir.to_path_buf(), dir.join("shm"));
        let cleaned = crate::blocking::run(move || -> Result<(), PodError> {
            netns::remove(&pinned)?;
            netns::unmount_shm(&shm).map_err(io_err("unmount its /dev/shm"))?;
            crate::dirs::remove_all(&dir).map_err(io_err(format!("remove {}", dir.display())))
        })
        .await;
        if let Ok(Err(e)) = cleaned {
            tracing::warn!("removing a half-made pod sandbox: {e}");
        }
        // The cgroup berth would have made for it (absent if the pod named a parent).
        if let Ok((cgroup, true)) = super::cgroup::pod_cgroup(
            "",
            id,
            self.settings.cgroups.is_systemd(),
            &self.settings.own_cgroups,
        ) {
            if let Err(e) = self.settings.cgroups.remove(&cgroup).await {
                tracing::warn!("removing the cgroup {cgroup} of a half-made pod sandbox: {e}");
            }
        }
    }
}

/// Kills CNI plugins an earlier berthd started (their `CNI_NETNS` is one of its pods'): no
/// call of this daemon's is in flight yet, and one that finished after the DEL below would
/// leave its veth and IP behind. Blocking.
fn kill_orphan_cni_plugins(state_dir: &Path) {
    for process in Process::all() {
        let netns = process.env("CNI_NETNS").map(PathBuf::from);
        if netns.is_some_and(|n| n.starts_with(state_dir)) {
            tracing::warn!(
                pid = process.0,
                "killing a CNI plugin a crashed berthd started"
            );
            process.kill();
        }
    }
}

/// Kills the berth-infra processes of this daemon's pods that no record owns: a crash came
/// between starting one and committing its pod. Blocking.
fn kill_orphan_infra(pods_dir: &Path, owned: &[(PathBuf, u32)]) {
    for process in Process::all() {
        if process.comm().as_deref() != Some("berth-infra") {
            continue;
        }
        let Some(owner) = process.env(super::infra::OWNER_ENV).map(PathBuf::from) else {
            continue;
        };
        if owner.parent() != Some(pods_dir) {
            continue;
        }
        if !owned
            .iter()
            .any(|(dir, pid)| *dir == owner && *pid == process.0)
        {
            tracing::warn!(pid = process.0, owner = %owner.display(), "killing the infra process of a pod half made before a crash");
            process.kill();
        }
    }
}

fn still_alive(record: &PodRecord) -> bool {
    let p = &record.pinned;
    let pinned_ok = [&p.net, &p.ipc, &p.uts, &p.user]
        .into_iter()
        .flatten()
        .all(|p| netns::is_pinned(p));
    let infra_ok = match (record.namespaces.pid, record.infra) {
        (NsMode::Pod, Some(infra)) => infra.is_alive(),
        _ => true,
    };
    pinned_ok && infra_ok
}
