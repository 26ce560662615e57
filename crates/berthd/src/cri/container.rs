//! CreateContainer, StartContainer, StopContainer, RemoveContainer, ListContainers,
//! ContainerStatus, UpdateContainerResources, ReopenContainerLog and ExecSync.

use std::collections::HashMap;
use std::time::Duration;

use berth_cri::v1 as cri;
use tonic::Status;

use super::Cri;
use super::enums::{container_state, ns_mode, propagation, propagation_to_cri};
use super::fields::{c_string, env_var, process_args};
use super::filter::{Filter, to_hash};
use super::resources::resource_limits;
use crate::container::{
    AppArmorProfile, CapabilityRequest, ContainerRecord, ContainerSpec, DeviceRequest, ImageVolume,
    MountRequest, SeccompProfile, SecuritySpec, UserNamespaceRequest, UserRequest,
};
use crate::signals::{SIGNAL_NAMES, SIGRTMAX, SIGRTMIN};
use crate::spec::{Propagation, ResourceLimits};

impl Cri {
    pub(super) async fn create_container_of(
        &self,
        req: cri::CreateContainerRequest,
    ) -> Result<cri::CreateContainerResponse, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("CreateContainer needs a config"))?;
        let spec = container_spec(config)?;
        let container_id = self
            .svc
            .containers
            .create(&req.pod_sandbox_id, spec)
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
        Ok(cri::RemoveContainerResponse {})
    }

    pub(super) async fn list_containers_of(
        &self,
        req: cri::ListContainersRequest,
    ) -> Result<cri::ListContainersResponse, Status> {
        let filter = req.filter.unwrap_or_default();
        let wanted = Filter {
            id: &filter.id,
            pod_id: &filter.pod_sandbox_id,
            state: filter.state.as_ref().map(|s| s.state),
            labels: &filter.label_selector,
        };
        let containers = self.svc.containers.scan(|r| {
            let state = container_state(r.state) as i32;
            let wanted = wanted.matches(&r.id, &r.pod_id, state, &r.labels);
            wanted.then(|| cri::Container {
                id: r.id.clone(),
                pod_sandbox_id: r.pod_id.clone(),
                metadata: Some(metadata(r)),
                image: Some(image_spec(r)),
                image_ref: r.image_ref.clone(),
                state,
                created_at: r.created_at,
                labels: to_hash(&r.labels),
                annotations: to_hash(&r.annotations),
                image_id: r.image_id.clone(),
            })
        });
        Ok(cri::ListContainersResponse { containers })
    }

    pub(super) async fn container_status_of(
        &self,
        req: cri::ContainerStatusRequest,
    ) -> Result<cri::ContainerStatusResponse, Status> {
        let record = self.svc.containers.get(&req.container_id)?.record();
        let mut info = HashMap::new();
        if req.verbose {
            let spec = self
                .svc
                .paths
                .container(&record.id)
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
            .update_resources(&req.container_id, resource_limits(&linux)?)
            .await?;
        Ok(cri::UpdateContainerResourcesResponse {})
    }

    pub(super) async fn checkpoint_container_of(
        &self,
        req: cri::CheckpointContainerRequest,
    ) -> Result<cri::CheckpointContainerResponse, Status> {
        if req.location.is_empty() {
            return Err(Status::invalid_argument(
                "location: the path of the archive is wanted",
            ));
        }
        c_string("location", &req.location)?;
        let timeout = u64::try_from(req.timeout)
            .ok()
            .filter(|t| *t > 0)
            .map(Duration::from_secs);
        self.svc
            .containers
            .checkpoint(
                &req.container_id,
                std::path::Path::new(&req.location),
                timeout,
            )
            .await?;
        Ok(cri::CheckpointContainerResponse {})
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
        if req.cmd.is_empty() {
            return Err(Status::invalid_argument(
                "ExecSync needs a command (cmd is empty)",
            ));
        }
        let timeout = (req.timeout > 0).then(|| Duration::from_secs(req.timeout as u64));
        let mut out = self
            .svc
            .containers
            .exec_sync(&req.container_id, process_args("cmd", req.cmd)?, timeout)
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
        image_ref: r.image_ref.clone(),
        ..cri::ImageSpec::default()
    }
}

pub(super) fn status(r: &ContainerRecord) -> cri::ContainerStatus {
    cri::ContainerStatus {
        id: r.id.clone(),
        metadata: Some(metadata(r)),
        state: container_state(r.state) as i32,
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
                recursive_read_only: m.recursive_read_only,
                propagation: propagation_to_cri(m.propagation) as i32,
                image: m.image.as_ref().map(|v| cri::ImageSpec {
                    image: v.image.clone(),
                    image_ref: v.image_id.clone(),
                    ..cri::ImageSpec::default()
                }),
                image_sub_path: m
                    .image
                    .as_ref()
                    .map(|v| v.sub_path.clone())
                    .unwrap_or_default(),
                ..cri::Mount::default()
            })
            .collect(),
        log_path: r.log_path.display().to_string(),
        resources: Some(cri::ContainerResources {
            linux: Some(resources_to_cri(&r.resources)),
            windows: None,
        }),
        image_id: r.image_id.clone(),
        stop_signal: stop_signal_to_cri(&r.stop_signal) as i32,
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

/// The request as berth's own [`ContainerSpec`], with what can be checked without the node.
fn container_spec(config: cri::ContainerConfig) -> Result<ContainerSpec, Status> {
    let meta = config
        .metadata
        .filter(|m| !m.name.is_empty())
        .ok_or_else(|| {
            Status::invalid_argument("the container config needs metadata with a name")
        })?;
    let image = config
        .image
        .map(|i| i.image)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Status::invalid_argument("the container config names no image"))?;
    let linux = config.linux.unwrap_or_default();
    Ok(ContainerSpec {
        name: meta.name,
        attempt: meta.attempt,
        image,
        command: process_args("command", config.command)?,
        args: process_args("args", config.args)?,
        working_dir: working_dir(config.working_dir)?,
        env: config
            .envs
            .into_iter()
            .map(env_var)
            .collect::<Result<_, _>>()?,
        mounts: config
            .mounts
            .into_iter()
            .map(mount_request)
            .collect::<Result<_, _>>()?,
        devices: config
            .devices
            .into_iter()
            .map(|d| DeviceRequest {
                host_path: d.host_path,
                container_path: d.container_path,
                permissions: d.permissions,
            })
            .collect(),
        labels: config.labels.into_iter().collect(),
        annotations: config.annotations.into_iter().collect(),
        log_path: log_path(config.log_path)?,
        tty: config.tty,
        stdin: config.stdin,
        stdin_once: config.stdin_once,
        resources: resource_limits(&linux.resources.unwrap_or_default())?,
        security: security_spec(linux.security_context.unwrap_or_default())?,
        stop_signal: match cri::Signal::try_from(config.stop_signal) {
            Ok(cri::Signal::RuntimeDefault) => None,
            Ok(signal) => Some(signal_for_runtime(signal)),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "stop_signal {} is no signal",
                    config.stop_signal
                )));
            }
        },
    })
}

/// A CRI signal as `runc kill` takes it: the name of a standard one, the number of a real-time
/// one (the CRI names those `SIGRTMINPLUS3`, `SIGRTMAXMINUS2`, which runc does not know).
fn signal_for_runtime(signal: cri::Signal) -> String {
    let name = signal.as_str_name();
    let realtime = if let Some(n) = name.strip_prefix("SIGRTMINPLUS") {
        n.parse::<usize>().ok().map(|n| SIGRTMIN + n)
    } else if let Some(n) = name.strip_prefix("SIGRTMAXMINUS") {
        n.parse::<usize>().ok().map(|n| SIGRTMAX - n)
    } else {
        match name {
            "SIGRTMIN" => Some(SIGRTMIN),
            "SIGRTMAX" => Some(SIGRTMAX),
            _ => None,
        }
    };
    realtime.map_or_else(|| name.to_owned(), |n| n.to_string())
}

/// A stop signal as an image or the CRI names it (`SIGTERM`, `TERM`, `15`) in the CRI's enum;
/// RUNTIME_DEFAULT when unset or unknown.
fn stop_signal_to_cri(name: &str) -> cri::Signal {
    let name = name.trim();
    let full = if name.starts_with("SIG") {
        name.to_owned()
    } else if let Ok(n) = name.parse::<usize>() {
        match SIGNAL_NAMES.get(n) {
            Some(name) => (*name).to_owned(),
            None if n == SIGRTMIN => "SIGRTMIN".to_owned(),
            None if n == SIGRTMAX => "SIGRTMAX".to_owned(),
            None if n < SIGRTMIN + 16 => format!("SIGRTMINPLUS{}", n - SIGRTMIN),
            None if n < SIGRTMAX => format!("SIGRTMAXMINUS{}", SIGRTMAX - n),
            None => String::new(),
        }
    } else {
        format!("SIG{name}")
    };
    cri::Signal::from_str_name(&full).unwrap_or(cri::Signal::RuntimeDefault)
}

fn mount_request(m: cri::Mount) -> Result<MountRequest, Status> {
    let image = image_volume(&m)?;
    let propagation = propagation(m.propagation);
    if m.recursive_read_only && !m.readonly {
        return Err(Status::invalid_argument(format!(
            "mount {}: recursive_read_only needs readonly",
            m.container_path
        )));
    }
    if m.recursive_read_only && propagation != Propagation::Private {
        return Err(Status::invalid_argument(format!(
            "mount {}: recursive_read_only needs private propagation, not {propagation:?}",
            m.container_path
        )));
    }
    let id_mappings = (!m.uid_mappings.is_empty() || !m.gid_mappings.is_empty())
        .then(|| {
            super::userns::mappings(
                &m.uid_mappings,
                &m.gid_mappings,
                &format!("mount {}", m.container_path),
            )
        })
        .transpose()?;
    Ok(MountRequest {
        container_path: m.container_path,
        host_path: m.host_path,
        image,
        source: None,
        id_mappings,
        readonly: m.readonly,
        recursive_read_only: m.recursive_read_only,
        propagation,
    })
}

/// The process's working dir: absolute (runc refuses a relative one only once everything is
/// made), or empty for the image's.
fn working_dir(dir: String) -> Result<String, Status> {
    if dir.is_empty() || dir.starts_with('/') {
        Ok(dir)
    } else {
        Err(Status::invalid_argument(format!(
            "working_dir `{dir}` is not an absolute path"
        )))
    }
}

/// `log_path`, which the CRI makes relative to the pod's `log_directory`: berth keeps it there
/// (the monitor writes it as root).
fn log_path(path: String) -> Result<String, Status> {
    let climbs = std::path::Path::new(&path).components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if climbs {
        return Err(Status::invalid_argument(format!(
            "log_path `{path}` must be relative to the pod's log_directory, without `..`"
        )));
    }
    Ok(path)
}

/// The image of an image volume: one named, and no host path beside it.
fn image_volume(m: &cri::Mount) -> Result<Option<ImageVolume>, Status> {
    let Some(image) = m.image.as_ref().filter(|i| !i.image.is_empty()) else {
        if !m.image_sub_path.is_empty() {
            return Err(Status::invalid_argument(format!(
                "mount {}: image_sub_path without an image",
                m.container_path
            )));
        }
        return Ok(None);
    };
    if !m.host_path.is_empty() {
        return Err(Status::invalid_argument(format!(
            "mount {}: host_path and image are exclusive",
            m.container_path
        )));
    }
    Ok(Some(ImageVolume {
        image: image.image.clone(),
        sub_path: m.image_sub_path.clone(),
        image_id: String::new(),
    }))
}

/// A user or group ID as Linux has them.
fn id(value: i64, field: &str) -> Result<u32, Status> {
    u32::try_from(value)
        .map_err(|_| Status::invalid_argument(format!("{field} {value} is not a valid id")))
}

#[allow(deprecated)] // Older kubelets send the deprecated string fields only.
fn security_spec(sc: cri::LinuxContainerSecurityContext) -> Result<SecuritySpec, Status> {
    if sc.run_as_group.is_some() && sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
        return Err(Status::invalid_argument(
            "run_as_group is set without run_as_user or run_as_username",
        ));
    }
    let user = UserRequest {
        run_as_user: sc
            .run_as_user
            .map(|v| id(v.value, "run_as_user"))
            .transpose()?,
        run_as_username: sc.run_as_username,
        run_as_group: sc
            .run_as_group
            .map(|v| id(v.value, "run_as_group"))
            .transpose()?,
        supplemental_groups: sc
            .supplemental_groups
            .iter()
            .map(|g| id(*g, "supplemental group"))
            .collect::<Result<_, _>>()?,
        strict_groups: sc.supplemental_groups_policy
            == cri::SupplementalGroupsPolicy::Strict as i32,
    };
    let caps = sc.capabilities.unwrap_or_default();
    let (pid_mode, target_id, user_namespace) = match sc.namespace_options {
        Some(o) => {
            let user_namespace = match &o.userns_options {
                None => UserNamespaceRequest::Unsaid,
                Some(u) => match super::userns::user_namespace(Some(u))? {
                    None => UserNamespaceRequest::Node,
                    Some(m) => UserNamespaceRequest::Pod(m),
                },
            };
            (Some(ns_mode(o.pid)), o.target_id, user_namespace)
        }
        None => (None, String::new(), UserNamespaceRequest::Unsaid),
    };
    Ok(SecuritySpec {
        privileged: sc.privileged,
        user,
        capabilities: CapabilityRequest {
            add: caps.add_capabilities,
            drop: caps.drop_capabilities,
            add_ambient: caps.add_ambient_capabilities,
        },
        no_new_privs: sc.no_new_privs,
        readonly_rootfs: sc.readonly_rootfs,
        masked_paths: sc.masked_paths,
        readonly_paths: sc.readonly_paths,
        seccomp: seccomp_profile(sc.seccomp, &sc.seccomp_profile_path),
        apparmor: apparmor_profile(sc.apparmor, &sc.apparmor_profile),
        pid_mode,
        target_id,
        user_namespace,
    })
}

fn seccomp_profile(profile: Option<cri::SecurityProfile>, path: &str) -> SeccompProfile {
    use cri::security_profile::ProfileType;
    match profile {
        Some(p) => match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => SeccompProfile::RuntimeDefault,
            Ok(ProfileType::Localhost) => SeccompProfile::Localhost(p.localhost_ref),
            Ok(ProfileType::Unconfined) | Err(_) => SeccompProfile::Unconfined,
        },
        None => match path {
            "runtime/default" | "docker/default" => SeccompProfile::RuntimeDefault,
            path if path.starts_with("localhost/") => {
                SeccompProfile::Localhost(path["localhost/".len()..].to_owned())
            }
            // The CRI's default is unconfined.
            _ => SeccompProfile::Unconfined,
        },
    }
}

fn apparmor_profile(profile: Option<cri::SecurityProfile>, name: &str) -> AppArmorProfile {
    use cri::security_profile::ProfileType;
    match profile {
        Some(p) => match ProfileType::try_from(p.profile_type) {
            // kubelet and critest send the ref with the deprecated field's prefix.
            Ok(ProfileType::Localhost) => AppArmorProfile::Localhost(
                p.localhost_ref
                    .strip_prefix("localhost/")
                    .unwrap_or(&p.localhost_ref)
                    .to_owned(),
            ),
            Ok(ProfileType::Unconfined) => AppArmorProfile::Unconfined,
            Ok(ProfileType::RuntimeDefault) | Err(_) => AppArmorProfile::Default,
        },
        None => match name {
            "unconfined" => AppArmorProfile::Unconfined,
            name if name.starts_with("localhost/") => {
                AppArmorProfile::Localhost(name["localhost/".len()..].to_owned())
            }
            _ => AppArmorProfile::Default,
        },
    }
}

fn resources_to_cri(r: &ResourceLimits) -> cri::LinuxContainerResources {
    cri::LinuxContainerResources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        hugepage_limits: r
            .hugepage_limits
            .iter()
            .map(|(page_size, limit)| cri::HugepageLimit {
                page_size: page_size.clone(),
                limit: *limit,
            })
            .collect(),
        unified: to_hash(&r.unified),
        memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_in_every_spelling() {
        for (name, want) in [
            ("SIGQUIT", cri::Signal::Sigquit),
            ("TERM", cri::Signal::Sigterm),
            ("9", cri::Signal::Sigkill),
            ("36", cri::Signal::Sigrtminplus2),
            ("63", cri::Signal::Sigrtmaxminus1),
            ("", cri::Signal::RuntimeDefault),
            ("BOGUS", cri::Signal::RuntimeDefault),
        ] {
            assert_eq!(stop_signal_to_cri(name), want, "{name}");
        }
        for signal in [
            cri::Signal::Sigquit,
            cri::Signal::Sigrtminplus2,
            cri::Signal::Sigrtmax,
        ] {
            assert_eq!(stop_signal_to_cri(&signal_for_runtime(signal)), signal);
        }
        assert_eq!(signal_for_runtime(cri::Signal::Sigrtminplus2), "36");
    }

    #[test]
    fn a_group_without_a_user_is_refused_naming_the_field() {
        let sc = cri::LinuxContainerSecurityContext {
            run_as_group: Some(cri::Int64Value { value: 7 }),
            ..Default::default()
        };
        let err = security_spec(sc).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("run_as_group"), "{err:?}");
        let sc = cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: -1 }),
            ..Default::default()
        };
        assert!(
            security_spec(sc)
                .unwrap_err()
                .message()
                .contains("run_as_user")
        );
    }

    #[test]
    fn exec_output_fits_the_message_limit() {
        let (mut out, mut err) = (vec![1u8; 16 << 20], vec![2u8; 1000]);
        fit_in_message(&mut out, &mut err);
        assert_eq!(err.len(), 1000);
        assert_eq!(out.len() + err.len(), super::super::MAX_MESSAGE_BYTES - 32);
        let (mut small, mut also) = (vec![0u8; 10], vec![0u8; 10]);
        fit_in_message(&mut small, &mut also);
        assert_eq!((small.len(), also.len()), (10, 10));
    }
}
