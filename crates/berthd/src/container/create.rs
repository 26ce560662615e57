//! CreateContainer: reserve the name, mount the overlay rootfs on the image's snapshots, write the
//! OCI bundle, start the monitor (which runs `runc create`), persist. Each step registers its undo;
//! a failure undoes them all (mounts, dirs, runc state, monitor, reservation).

use std::path::PathBuf;
use std::sync::Arc;

use k8s_cri::v1 as cri;

use super::record::{ContainerRecord, ContainerState};
use super::{Container, ContainerError, ContainerService, io_err};
use crate::events::EventKind;
use crate::monitor::{self, Launch};
use crate::pod::{PodRecord, PodState};
use crate::rollback::Rollback;
use crate::spec::{self, SpecInput};

impl ContainerService {
    /// Creates a container in a pod, to completion even if the caller goes away.
    pub async fn create(
        self: &Arc<Self>,
        pod_id: &str,
        config: cri::ContainerConfig,
    ) -> Result<String, ContainerError> {
        let pod = self.pods.get(pod_id)?.record();
        if pod.state != PodState::Ready {
            return Err(ContainerError::Precondition(format!(
                "pod sandbox {} is not ready",
                pod.id
            )));
        }
        let meta = config
            .metadata
            .clone()
            .filter(|m| !m.name.is_empty())
            .ok_or_else(|| {
                ContainerError::Invalid("the container config needs metadata with a name".into())
            })?;
        if config.image.as_ref().is_none_or(|i| i.image.is_empty()) {
            return Err(ContainerError::Invalid(
                "the container config names no image".into(),
            ));
        }
        let name = ContainerRecord::name_key(&pod.id, &meta.name, meta.attempt);
        if let Some(id) = self.unclaimed.claim(&name) {
            if self.find(&id)?.is_some() {
                return Ok(id);
            }
        }
        let this = self.clone();
        self.unclaimed
            .run(name, async move { this.create_detached(pod, config).await })
            .await
            .map_err(|_| ContainerError::Task)?
    }

    async fn create_detached(
        self: Arc<Self>,
        pod: PodRecord,
        config: cri::ContainerConfig,
    ) -> Result<String, ContainerError> {
        let mut rb = Rollback::new();
        match self.create_steps(&pod, &config, &mut rb).await {
            Ok(container) => {
                rb.commit();
                let id = container.record().id;
                self.watch_exit(container);
                Ok(id)
            }
            Err(e) => {
                rb.undo(&e).await;
                Err(e)
            }
        }
    }

    async fn create_steps(
        &self,
        pod: &PodRecord,
        config: &cri::ContainerConfig,
        rb: &mut Rollback,
    ) -> Result<Arc<Container>, ContainerError> {
        let meta = config.metadata.clone().unwrap_or_default();
        let id = crate::ids::new_id();
        let name = ContainerRecord::name_key(&pod.id, &meta.name, meta.attempt);
        self.store.reserve_name(&name, &id)?;
        let (store, n, i) = (self.store.clone(), name.clone(), id.clone());
        rb.push("release the container name", move || async move {
            store.release_name(&n, &i);
            Ok(())
        });

        // Until the record exists, image GC must not take the snapshots the rootfs stands on.
        let _lease = self.images.lease().await;
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let image = self
            .images
            .resolve(&image_name)?
            .ok_or_else(|| ContainerError::ImageNotFound(image_name.clone()))?;
        let runtime = self.runtime(&pod.runtime_handler)?.clone();

        let dir = self.container_dir(&id);
        let state_dir = self.state_dir_of(&id);
        let (rootfs, upper, work, bundle) = (
            dir.join("rootfs"),
            dir.join("upper"),
            dir.join("work"),
            dir.join("bundle"),
        );
        for d in [&rootfs, &upper, &work, &bundle, &state_dir] {
            std::fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        let (d, s) = (dir.clone(), state_dir.clone());
        rb.push("remove the container dirs", move || async move {
            let _ = std::fs::remove_dir_all(&s);
            std::fs::remove_dir_all(&d).map_err(|e| e.to_string())
        });
        // A mount waits for the kernel's mount lock, which a burst of creates contends for: not
        // on an async worker.
        let (lowers, u, w, r) = (
            self.images.lower_dirs(&image),
            upper.clone(),
            work.clone(),
            rootfs.clone(),
        );
        tokio::task::spawn_blocking(move || crate::rootfs::mount_overlay(&lowers, &u, &w, &r))
            .await
            .map_err(|_| ContainerError::Task)?
            .map_err(io_err("mounting the container's rootfs"))?;
        let r = rootfs.clone();
        rb.push("unmount the rootfs", move || async move {
            crate::rootfs::unmount(&r).map_err(|e| e.to_string())
        });

        let target_pid = self.target_pid(config)?;
        let (cgroups_path, cgroup) =
            crate::pod::cgroup::container_cgroup(&pod.cgroup_parent, &id, self.systemd_cgroup);
        let built = spec::build(&SpecInput {
            config,
            image: &image,
            pod,
            rootfs: &rootfs,
            target_pid,
            oom_floor: self.oom_floor,
            cgroup_v2: self.cgroup_v2,
            cgroups_path,
        })?;
        let spec_json = serde_json::to_vec_pretty(&built.spec).map_err(|e| ContainerError::Io {
            what: "encoding the OCI spec".into(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(bundle.join("config.json"), spec_json)
            .map_err(io_err("writing config.json"))?;

        let log_path = log_path(pod, config, &state_dir);
        let started = monitor::start(&Launch {
            binary: &self.monitor_binary,
            container_id: &id,
            bundle: &bundle,
            runtime: &runtime,
            state_dir: &state_dir,
            log_path: &log_path,
            tty: config.tty,
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            systemd_cgroup: self.systemd_cgroup,
        })
        .await
        .map_err(ContainerError::Create)?;
        let (rt, i) = (runtime.clone(), id.clone());
        rb.push("delete the runtime's container", move || async move {
            let deleted = rt.delete(&i).await.map_err(|e| e.to_string());
            monitor::wait_exit(started.monitor_pid).await;
            deleted
        });

        let record = ContainerRecord {
            id: id.clone(),
            pod_id: pod.id.clone(),
            name: meta.name.clone(),
            attempt: meta.attempt,
            state: ContainerState::Created,
            created_at: crate::clock::now_nanos(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: image_name,
            image_id: image.id.clone(),
            image_ref: image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.clone()),
            chain_ids: image.chain_ids.clone(),
            labels: config
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            annotations: config
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            log_path,
            tty: config.tty,
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            mounts: built.mounts,
            resources: built.resources,
            user: built.user,
            runtime_handler: pod.runtime_handler.clone(),
            stop_signal: image.defaults.stop_signal.clone(),
            pid: Some(started.container_pid),
            monitor_pid: Some(started.monitor_pid),
            cgroup,
        };
        let written = record.clone();
        self.store
            .off_worker(move |s| s.put_named(&name, &written))
            .await?;
        let container = Container::new(record);
        self.map_mut().insert(id.clone(), container.clone());
        self.events.emit(EventKind::Created, &id, &pod.id);
        tracing::info!(container = %id, pod = %pod.id, name = %meta.name, "container created");
        Ok(container)
    }

    /// The PID of the container a `pid = TARGET` container joins.
    fn target_pid(&self, config: &cri::ContainerConfig) -> Result<Option<u32>, ContainerError> {
        let options = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref());
        match options {
            Some(o) if o.pid == cri::NamespaceMode::Target as i32 => {
                let target = self.get(&o.target_id)?.record();
                if target.state != ContainerState::Running {
                    return Err(ContainerError::Precondition(format!(
                        "target container {} is not running",
                        target.id
                    )));
                }
                Ok(target.pid)
            }
            _ => Ok(None),
        }
    }
}

/// The CRI log: the pod's log directory joined with the container's log path (kubelet gives
/// both); without them, a file in the container's state dir.
fn log_path(
    pod: &PodRecord,
    config: &cri::ContainerConfig,
    state_dir: &std::path::Path,
) -> PathBuf {
    match (pod.log_directory.as_str(), config.log_path.as_str()) {
        (_, "") => state_dir.join("container.log"),
        ("", path) if path.starts_with('/') => PathBuf::from(path),
        ("", path) => state_dir.join(path),
        (dir, path) => PathBuf::from(dir).join(path.trim_start_matches('/')),
    }
}
