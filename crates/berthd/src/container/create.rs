//! CreateContainer: claim the name, mount the overlay rootfs on the image's snapshots and the
//! image volumes, write the OCI bundle, start the monitor (which runs `runc create`), persist. Each step registers its undo;
//! a failure undoes them all (mounts, dirs, runc state, monitor, reservation).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_image::Digest;
use berth_image::snapshots::Lease;

use super::id_view::IdView;
use super::record::{ContainerRecord, ContainerState};
use super::spec::{ContainerSpec, UserNamespaceRequest};
use super::{Container, ContainerError, ContainerService, io_err, new_container};
use crate::events::EventKind;
use crate::image::ImageRecord;
use crate::monitor::{self, Launch, Started};
use crate::oci::OciRuntime;
use crate::pod::{NsMode, Pod, PodRecord, PodState};
use crate::rollback::Rollback;
use crate::spec::{self, Built, SpecInput};

/// The directories of one container.
struct Dirs {
    /// `<root>/containers/<id>`: rootfs, upper, work and bundle.
    dir: PathBuf,
    /// `<state_dir>/containers/<id>`: the monitor's files.
    state: PathBuf,
    rootfs: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    bundle: PathBuf,
}

impl ContainerService {
    /// Creates a container in a pod, to completion even if the caller goes away.
    pub async fn create(
        self: &Arc<Self>,
        pod_id: &str,
        spec: ContainerSpec,
    ) -> Result<String, ContainerError> {
        let pod = self.pods.get(pod_id)?;
        let name = ContainerRecord::name_key(&pod.with(|r| r.id.clone()), &spec.name, spec.attempt);
        let this = self.clone();
        self.containers
            .create(name, async move { this.create_detached(pod, spec).await })
            .await
    }

    async fn create_detached(
        self: Arc<Self>,
        pod: Arc<Pod>,
        spec: ContainerSpec,
    ) -> Result<String, ContainerError> {
        // Until the record is written: a pod stop or removal waits, and then sees this container.
        let _admitted = pod.extra.enter().await;
        let pod = pod.record();
        if pod.state != PodState::Ready {
            return Err(ContainerError::PodNotReady(pod.id));
        }
        let mut rb = Rollback::new();
        match self.create_steps(&pod, &spec, &mut rb).await {
            Ok(container) => {
                rb.commit();
                let id = container.with(|r| r.id.clone());
                self.watch_exit(container);
                Ok(id)
            }
            Err(e) => {
                rb.undo(&e).await;
                Err(e)
            }
        }
    }

    /// The create, as its steps.
    async fn create_steps(
        &self,
        pod: &PodRecord,
        spec: &ContainerSpec,
        rb: &mut Rollback,
    ) -> Result<Arc<Container>, ContainerError> {
        let id = crate::ids::new_id();
        let name = self.claim_name(pod, spec, &id, rb)?;
        let image = self
            .images
            .resolve(&spec.image)?
            .ok_or_else(|| ContainerError::ImageNotFound(spec.image.clone()))?;
        // Until the record names them, image GC must not take the snapshots the rootfs uses.
        let _lease = self
            .images
            .lease(&image)
            .ok_or_else(|| ContainerError::ImageNotFound(spec.image.clone()))?;
        let runtime = self.runtime(&pod.runtime_handler)?.clone();
        self.check_features(spec, &runtime).await?;
        check_user_namespace(spec, pod)?;
        let dirs = self.make_dirs(&id, rb)?;
        crate::failpoint::reached("container-create-after-dirs");
        let (with_volumes, volume_chain_ids, _volume_leases) =
            self.mount_filesystems(pod, spec, &image, &dirs).await?;
        let (cgroups_path, cgroup) =
            crate::pod::cgroup::container_cgroup(&pod.cgroup_parent, &id, self.systemd_cgroup);
        let built = self
            .build_spec(pod, with_volumes, &image, &dirs, cgroups_path)
            .await?;
        write_bundle(&dirs.bundle, &built)?;
        crate::failpoint::reached("container-create-after-mounts");
        let log = LogPlace::of(pod, spec, &dirs.state);
        let started = self
            .start_monitor(&id, spec, &runtime, &dirs, &log, rb)
            .await?;
        crate::failpoint::reached("container-create-after-runc-create");
        let record = ContainerRecord {
            id: id.clone(),
            pod_id: pod.id.clone(),
            name: spec.name.clone(),
            attempt: spec.attempt,
            state: ContainerState::Created,
            created_at: crate::clock::now_nanos(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: spec.image.clone(),
            image_id: image.id.clone(),
            image_ref: image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.clone()),
            chain_ids: image.chain_ids.clone(),
            volume_chain_ids,
            labels: spec.labels.clone(),
            annotations: spec.annotations.clone(),
            log_path: log.path(),
            tty: spec.tty,
            stdin: spec.stdin,
            stdin_once: spec.stdin_once,
            mounts: built.mounts,
            resources: spec.resources.clone(),
            user: built.user,
            runtime_handler: pod.runtime_handler.clone(),
            stop_signal: spec
                .stop_signal
                .clone()
                .unwrap_or_else(|| image.defaults.stop_signal.clone()),
            pid: Some(started.container_pid),
            monitor_pid: Some(started.monitor_pid),
            cgroup,
        };
        self.persist(&name, record).await
    }

    /// What the container asks of its handler, the handler can give.
    async fn check_features(
        &self,
        spec: &ContainerSpec,
        runtime: &OciRuntime,
    ) -> Result<(), ContainerError> {
        let features = self.handler_features(runtime).await;
        if let Some(m) = spec.mounts.iter().find(|m| m.recursive_read_only) {
            if !features.recursive_read_only {
                return Err(ContainerError::Invalid(format!(
                    "mount {}: runtime handler {} cannot make recursive read-only mounts",
                    m.container_path, runtime.handler
                )));
            }
        }
        Ok(())
    }

    /// berth-env-exec on the node (written out the first time) if the container's environment
    /// has values the OCI spec cannot hold and this berthd has the helper.
    async fn env_exec_for(&self, spec: &ContainerSpec) -> Result<Option<PathBuf>, ContainerError> {
        let needed = spec
            .env
            .iter()
            .any(|(_, v)| std::str::from_utf8(v).is_err());
        if !needed || !crate::env_exec::available() {
            return Ok(None);
        }
        let path = self.paths.env_exec();
        let installed = path.clone();
        self.env_exec_installed
            .get_or_try_init(|| async move {
                crate::blocking::run(move || crate::env_exec::install(&installed))
                    .await?
                    .map_err(io_err("writing berth-env-exec"))
            })
            .await?;
        Ok(Some(path))
    }

    /// Claims the name `container/<pod>/<name>_<attempt>` for the new ID.
    fn claim_name(
        &self,
        pod: &PodRecord,
        spec: &ContainerSpec,
        id: &str,
        rb: &mut Rollback,
    ) -> Result<String, ContainerError> {
        let name = ContainerRecord::name_key(&pod.id, &spec.name, spec.attempt);
        self.store.reserve_name_undoable(&name, id, rb)?;
        Ok(name)
    }

    fn make_dirs(&self, id: &str, rb: &mut Rollback) -> Result<Dirs, ContainerError> {
        let dir = self.paths.container(id);
        let dirs = Dirs {
            rootfs: dir.join("rootfs"),
            upper: dir.join("upper"),
            work: dir.join("work"),
            bundle: self.paths.container_bundle(id),
            state: self.paths.container_state(id),
            dir,
        };
        for d in [&dirs.dir, &dirs.state, &dirs.bundle] {
            crate::layout::make_object_dir(d)
                .map_err(io_err(format!("creating {}", d.display())))?;
        }
        for d in [&dirs.rootfs, &dirs.upper, &dirs.work] {
            std::fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        let (dir, state) = (dirs.dir.clone(), dirs.state.clone());
        // Everything the create mounts (rootfs, idmapped views, image volumes) is below `dir`.
        rb.push(
            "unmount and remove the container dirs",
            move || async move {
                crate::blocking::run(move || {
                    crate::rootfs::unmount_all_under(&dir)?;
                    let _ = std::fs::remove_dir_all(&state);
                    std::fs::remove_dir_all(&dir)
                })
                .await??;
                Ok(())
            },
        );
        Ok(dirs)
    }

    /// The OCI spec, off the async workers: it reads the image's account files and the node's
    /// devices and profiles, and makes mounts shared.
    async fn build_spec(
        &self,
        pod: &PodRecord,
        container: ContainerSpec,
        image: &ImageRecord,
        dirs: &Dirs,
        cgroups_path: String,
    ) -> Result<Built, ContainerError> {
        let env_exec = self.env_exec_for(&container).await?;
        let target_pid = self.target_pid(&container)?;
        let (pod, image, rootfs) = (pod.clone(), image.clone(), dirs.rootfs.clone());
        let (oom_floor, cgroups) = (self.oom_floor, self.cgroups);
        let apparmor = self.apparmor.clone();
        let built = crate::blocking::run(move || {
            spec::build(&SpecInput {
                container: &container,
                image: &image,
                pod: &pod,
                rootfs: &rootfs,
                target_pid,
                oom_floor,
                cgroups,
                cgroups_path,
                env_exec: env_exec.as_deref(),
                apparmor: &apparmor,
            })
        })
        .await??;
        Ok(built)
    }

    /// The rootfs and what the CRI mounts need, seen through the pod's user namespace when it
    /// has one; the spec with its mounts' sources, and the snapshots its image volumes use with
    /// their leases.
    async fn mount_filesystems(
        &self,
        pod: &PodRecord,
        spec: &ContainerSpec,
        image: &ImageRecord,
        dirs: &Dirs,
    ) -> Result<(ContainerSpec, Vec<Digest>, Vec<Lease>), ContainerError> {
        let view =
            IdView::of(pod, &dirs.dir).map_err(io_err("opening the pod's user namespace"))?;
        self.mount_rootfs(image, dirs, &view).await?;
        let prepared = self.prepare_mounts(&spec.mounts, &view, &dirs.dir).await?;
        let with_sources = ContainerSpec {
            mounts: prepared.mounts,
            ..spec.clone()
        };
        Ok((with_sources, prepared.chain_ids, prepared.leases))
    }

    /// The overlay rootfs on the image's snapshots (seen through `view`). A mount waits for the
    /// kernel's mount lock, which a burst of creates contends for: not on an async worker.
    async fn mount_rootfs(
        &self,
        image: &ImageRecord,
        dirs: &Dirs,
        view: &IdView,
    ) -> Result<(), ContainerError> {
        let (lowers, upper, work, rootfs, view) = (
            self.images.lower_dirs(image),
            dirs.upper.clone(),
            dirs.work.clone(),
            dirs.rootfs.clone(),
            view.clone(),
        );
        let container_dir = dirs.dir.clone();
        crate::blocking::run(move || {
            view.let_root_pass(&container_dir)?;
            let lowers = view.layers(lowers, "rootfs")?;
            view.give_to_root(&upper)?;
            crate::rootfs::mount_overlay(&lowers, &upper, &work, &rootfs)
        })
        .await?
        .map_err(io_err("mounting the container's rootfs"))?;
        Ok(())
    }

    /// The monitor, which runs `runc create` and holds the container's stdio and log.
    async fn start_monitor(
        &self,
        id: &str,
        spec: &ContainerSpec,
        runtime: &OciRuntime,
        dirs: &Dirs,
        log: &LogPlace,
        rb: &mut Rollback,
    ) -> Result<Started, ContainerError> {
        let started = monitor::start(&Launch {
            binary: &self.monitor_binary,
            container_id: id,
            bundle: &dirs.bundle,
            runtime,
            state_dir: &dirs.state,
            log_dir: &log.dir,
            log_file: &log.file,
            tty: spec.tty,
            stdin: spec.stdin,
            stdin_once: spec.stdin_once,
            systemd_cgroup: self.systemd_cgroup,
        })
        .await
        .map_err(ContainerError::Create)?;
        let (runtime, id) = (runtime.clone(), id.to_owned());
        rb.push("delete the runtime's container", move || async move {
            let deleted = runtime.delete(&id).await;
            monitor::wait_exit(started.monitor_pid).await;
            Ok(deleted?)
        });
        Ok(started)
    }

    /// The record and its name in one commit; then the container is live.
    async fn persist(
        &self,
        name: &str,
        record: ContainerRecord,
    ) -> Result<Arc<Container>, ContainerError> {
        let (written, name) = (record.clone(), name.to_owned());
        self.store
            .off_worker(move |s| s.put_named(&name, &written))
            .await?;
        let (id, pod_id) = (record.id.clone(), record.pod_id.clone());
        tracing::info!(container = %id, pod = %pod_id, name = %record.name, "container created");
        let container = new_container(record);
        self.containers.insert(id.clone(), container.clone());
        self.events.emit(EventKind::Created, &id, &pod_id);
        Ok(container)
    }

    /// The PID of the container a `pid = TARGET` container joins.
    fn target_pid(&self, spec: &ContainerSpec) -> Result<Option<u32>, ContainerError> {
        if spec.security.pid_mode != Some(NsMode::Target) {
            return Ok(None);
        }
        let target = self.get(&spec.security.target_id)?.record();
        if target.state != ContainerState::Running {
            return Err(ContainerError::WrongState {
                id: target.id,
                state: target.state,
                wanted: "running (the target of a PID namespace)",
            });
        }
        Ok(target.pid)
    }
}

/// A container lives in its pod's user namespace: what it names must be that one.
fn check_user_namespace(spec: &ContainerSpec, pod: &PodRecord) -> Result<(), ContainerError> {
    let fits = match spec.security.user_namespace {
        UserNamespaceRequest::Unsaid => true,
        UserNamespaceRequest::Node => pod.user_namespace.is_none(),
        UserNamespaceRequest::Pod(m) => pod.user_namespace == Some(m),
    };
    if fits {
        return Ok(());
    }
    Err(ContainerError::Invalid(format!(
        "the container's userns_options are not its pod's, which has {}",
        match pod.user_namespace {
            Some(_) => "a user namespace of its own with other mappings",
            None => "the node's user namespace",
        }
    )))
}

fn write_bundle(bundle: &Path, built: &Built) -> Result<(), ContainerError> {
    let spec_json = serde_json::to_vec_pretty(&built.spec).map_err(|e| ContainerError::Io {
        what: "encoding the OCI spec".into(),
        source: std::io::Error::other(e),
    })?;
    // The environment in it may hold the pod's secrets.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::layout::PRIVATE_FILE)
        .open(bundle.join("config.json"))
        .and_then(|mut f| f.write_all(&spec_json))
        .map_err(io_err("writing config.json"))
}

/// Where the CRI log goes: the pod's log directory and the container's log path in it (kubelet
/// gives both; the CRI layer has checked the path stays inside); without them, the container's
/// state dir and a file of its own.
struct LogPlace {
    dir: PathBuf,
    file: PathBuf,
}

impl LogPlace {
    fn of(pod: &PodRecord, spec: &ContainerSpec, state_dir: &Path) -> LogPlace {
        let dir = match pod.log_directory.as_str() {
            "" => state_dir.to_path_buf(),
            dir => PathBuf::from(dir),
        };
        let file = match spec.log_path.as_str() {
            "" => PathBuf::from("container.log"),
            path => PathBuf::from(path),
        };
        LogPlace { dir, file }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }
}
