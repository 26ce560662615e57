//! The OCI runtime spec of a container, from its CRI config, its image's config and its pod.

mod args;
mod caps;
mod devices;
mod mounts;
pub mod oci;
mod resources;
mod seccomp;
mod user;

use std::collections::BTreeMap;
use std::path::Path;

use k8s_cri::v1 as cri;

pub use mounts::{BindMount, Propagation};
pub use resources::{ResourceLimits, oom_score_adj};
pub use user::ResolvedUser;

use crate::image::ImageRecord;
use crate::pod::{NsMode, PodRecord};
use oci::{Capabilities, Linux, Namespace, Process, Root, Spec, User};

/// Paths /proc and /sys files a container may not read (or see changing), as containerd masks them.
const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The request asks for something impossible or malformed.
    #[error("{0}")]
    Invalid(String),
    /// The request is fine but the node cannot give it now (a missing profile, a dead infra).
    #[error("{0}")]
    Unavailable(String),
}

/// Everything the spec is made from.
#[derive(Debug)]
pub struct SpecInput<'a> {
    pub config: &'a cri::ContainerConfig,
    pub image: &'a ImageRecord,
    pub pod: &'a PodRecord,
    /// The mounted overlay root.
    pub rootfs: &'a Path,
    /// The PID of the container a `pid = TARGET` container joins.
    pub target_pid: Option<u32>,
    /// The lowest OOM score this node lets berth give (None: any).
    pub oom_floor: Option<i64>,
    pub cgroup_v2: bool,
    /// The OCI cgroupsPath.
    pub cgroups_path: String,
}

/// The spec and what the container record keeps of it.
#[derive(Debug)]
pub struct Built {
    pub spec: Spec,
    pub user: ResolvedUser,
    pub mounts: Vec<BindMount>,
    pub resources: ResourceLimits,
}

pub fn build(input: &SpecInput<'_>) -> Result<Built, SpecError> {
    let invalid = SpecError::Invalid;
    let config = input.config;
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.unwrap_or_default();
    let privileged = sc.privileged;
    if privileged && !input.pod.privileged {
        return Err(invalid(
            "a privileged container needs a privileged pod sandbox".into(),
        ));
    }
    let defaults = &input.image.defaults;
    let args = args::process_args(&config.command, &config.args, defaults).map_err(invalid)?;
    let envs: Vec<(String, String)> = config
        .envs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    let env = args::environment(defaults, &envs, &input.pod.hostname);
    let cwd = [config.working_dir.as_str(), defaults.working_dir.as_str()]
        .into_iter()
        .find(|d| !d.is_empty())
        .unwrap_or("/")
        .to_owned();

    let user_request = user::UserRequest {
        run_as_user: sc.run_as_user.map(|v| v.value),
        run_as_username: sc.run_as_username.clone(),
        run_as_group: sc.run_as_group.map(|v| v.value),
        supplemental_groups: sc.supplemental_groups.clone(),
        strict_groups: sc.supplemental_groups_policy
            == cri::SupplementalGroupsPolicy::Strict as i32,
    };
    let user = user::resolve(input.rootfs, &user_request, &defaults.user).map_err(invalid)?;

    let capability_config = sc.capabilities.clone().unwrap_or_default();
    let caps = caps::compute(
        &capability_config.add_capabilities,
        &capability_config.drop_capabilities,
        privileged,
        caps::available(),
    )
    .map_err(invalid)?;
    let ambient: Vec<String> = capability_config
        .add_ambient_capabilities
        .iter()
        .map(|c| caps::normalize(c))
        .collect::<Result<_, _>>()
        .map_err(invalid)?;
    let mut permitted = caps.clone();
    for a in &ambient {
        if !permitted.contains(a) {
            permitted.push(a.clone());
        }
    }

    check_apparmor(&sc).map_err(invalid)?;
    let seccomp = if privileged {
        None
    } else {
        seccomp_profile(&sc, &permitted)?
    };

    let resources = ResourceLimits::from(&linux.resources.unwrap_or_default());
    let mut oci_resources = resources.to_oci(input.cgroup_v2);
    let Mounts {
        oci: mounts,
        binds,
        rootfs_propagation,
    } = all_mounts(input, privileged)?;
    let mut devices = Vec::new();
    if privileged {
        devices = devices::host_devices();
        oci_resources.devices = devices::allow_all();
    } else {
        oci_resources.devices = devices::default_rules();
        for d in &config.devices {
            let (dev, rule) = devices::device(&d.host_path, &d.container_path, &d.permissions)
                .map_err(invalid)?;
            devices.push(dev);
            oci_resources.devices.push(rule);
        }
    }
    let (masked_paths, readonly_paths) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        let or_default = |given: &[String], default: &[&str]| {
            if given.is_empty() {
                default.iter().map(|p| p.to_string()).collect()
            } else {
                given.to_vec()
            }
        };
        (
            or_default(&sc.masked_paths, &MASKED_PATHS),
            or_default(&sc.readonly_paths, &READONLY_PATHS),
        )
    };

    let spec = Spec {
        oci_version: oci::OCI_VERSION.into(),
        process: Process {
            terminal: config.tty,
            user: User {
                uid: user.uid,
                gid: user.gid,
                additional_gids: user.additional_gids.clone(),
            },
            args,
            env,
            cwd,
            capabilities: Some(Capabilities {
                bounding: permitted.clone(),
                effective: caps.clone(),
                permitted,
                inheritable: ambient.clone(),
                ambient,
            }),
            no_new_privileges: sc.no_new_privs,
            oom_score_adj: Some(oom_score_adj(resources.oom_score_adj, input.oom_floor)),
        },
        root: Root {
            path: input.rootfs.display().to_string(),
            readonly: sc.readonly_rootfs,
        },
        hostname: String::new(),
        mounts,
        linux: Linux {
            namespaces: namespaces(input, &sc)?,
            resources: Some(oci_resources),
            cgroups_path: input.cgroups_path.clone(),
            sysctl: pod_sysctls(input.pod),
            devices,
            seccomp,
            masked_paths,
            readonly_paths,
            rootfs_propagation,
        },
        annotations: BTreeMap::from([
            (
                "io.kubernetes.cri.container-type".to_owned(),
                "container".to_owned(),
            ),
            (
                "io.kubernetes.cri.sandbox-id".to_owned(),
                input.pod.id.clone(),
            ),
            (
                "io.kubernetes.cri.container-name".to_owned(),
                config
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
            ),
        ]),
    };
    Ok(Built {
        spec,
        user,
        mounts: binds,
        resources,
    })
}

/// The namespaces: the pod's pinned network, IPC and UTS ones (unless it shares the node's), a
/// PID namespace by the container's mode, a new mount namespace, and a cgroup one on v2.
fn namespaces(
    input: &SpecInput<'_>,
    sc: &cri::LinuxContainerSecurityContext,
) -> Result<Vec<Namespace>, SpecError> {
    let ns = |kind: &str, path: String| Namespace {
        kind: kind.into(),
        path,
    };
    let pod = input.pod;
    let mut out = vec![ns("mount", String::new())];
    for (kind, pinned) in [
        ("network", &pod.pinned.net),
        ("ipc", &pod.pinned.ipc),
        ("uts", &pod.pinned.uts),
    ] {
        if let Some(path) = pinned {
            out.push(ns(kind, path.display().to_string()));
        }
    }
    let mode = sc
        .namespace_options
        .as_ref()
        .map(|o| NsMode::from_cri(o.pid))
        .unwrap_or(pod.namespaces.pid);
    match mode {
        NsMode::Node => {}
        NsMode::Container => out.push(ns("pid", String::new())),
        NsMode::Pod => {
            let pid = pod.infra_pid.ok_or_else(|| {
                SpecError::Unavailable("the pod shares no PID namespace to join".into())
            })?;
            out.push(ns("pid", format!("/proc/{pid}/ns/pid")));
        }
        NsMode::Target => {
            let pid = input.target_pid.ok_or_else(|| {
                SpecError::Unavailable("the target container is not running".into())
            })?;
            out.push(ns("pid", format!("/proc/{pid}/ns/pid")));
        }
    }
    if input.cgroup_v2 {
        out.push(ns("cgroup", String::new()));
    }
    Ok(out)
}

/// Every mount of the spec, and what the record keeps of them.
struct Mounts {
    oci: Vec<oci::Mount>,
    /// The CRI mounts as made.
    binds: Vec<BindMount>,
    /// What the CRI mounts' propagation needs of the rootfs (`rslave`, `rshared` or empty).
    rootfs_propagation: String,
}

/// System mounts, the pod's files and shm, then the CRI mounts (parents before children).
fn all_mounts(input: &SpecInput<'_>, privileged: bool) -> Result<Mounts, SpecError> {
    let mut binds = Vec::new();
    for m in &input.config.mounts {
        if m.image.is_some() {
            return Err(SpecError::Invalid(
                "image volume mounts are not supported".into(),
            ));
        }
        binds.push(
            mounts::cri_mount(
                &m.container_path,
                &m.host_path,
                m.readonly,
                Propagation::from_cri(m.propagation),
            )
            .map_err(SpecError::Invalid)?,
        );
    }
    binds.sort_by_key(|b| Path::new(&b.container_path).components().count());
    let taken = |dest: &str| binds.iter().any(|b| b.container_path == dest);
    let mut all = mounts::system_mounts(privileged);
    let pod = input.pod;
    for (dest, file) in [
        ("/etc/hostname", pod.hostname_file()),
        ("/etc/hosts", pod.hosts_file()),
        ("/etc/resolv.conf", pod.resolv_conf()),
    ] {
        if !taken(dest) {
            all.push(mounts::bind(&file, dest, false, Propagation::Private));
        }
    }
    if !taken("/dev/shm") {
        let shm = pod.shm.clone().unwrap_or_else(|| "/dev/shm".into());
        all.push(mounts::bind(&shm, "/dev/shm", false, Propagation::Private));
    }
    for b in &binds {
        all.push(mounts::bind(
            &b.host_path,
            &b.container_path,
            b.readonly,
            b.propagation,
        ));
    }
    let has = |p: Propagation| binds.iter().any(|b| b.propagation == p);
    let rootfs_propagation = if has(Propagation::Bidirectional) {
        "rshared"
    } else if has(Propagation::HostToContainer) {
        "rslave"
    } else {
        ""
    }
    .to_owned();
    Ok(Mounts {
        oci: all,
        binds,
        rootfs_propagation,
    })
}

/// The pod's sysctls live in namespaces the container joins; runc sets them again there.
fn pod_sysctls(pod: &PodRecord) -> BTreeMap<String, String> {
    pod.sysctls.clone()
}

/// The node has no AppArmor: a named profile cannot be honoured; the runtime default and
/// unconfined both mean none. Older kubelets send only the deprecated string field.
#[allow(deprecated)]
fn check_apparmor(sc: &cri::LinuxContainerSecurityContext) -> Result<(), String> {
    let named = match &sc.apparmor {
        Some(p) => (p.profile_type == cri::security_profile::ProfileType::Localhost as i32)
            .then(|| p.localhost_ref.clone()),
        None => sc
            .apparmor_profile
            .strip_prefix("localhost/")
            .map(str::to_owned),
    };
    match named {
        Some(profile) => Err(format!(
            "AppArmor profile `{profile}` cannot be applied: this node has no AppArmor"
        )),
        None => Ok(()),
    }
}

/// The profile the security context asks for (older kubelets send only the deprecated path).
#[allow(deprecated)]
fn seccomp_profile(
    sc: &cri::LinuxContainerSecurityContext,
    caps: &[String],
) -> Result<Option<serde_json::Value>, SpecError> {
    use cri::security_profile::ProfileType;
    let (kind, localhost) = match &sc.seccomp {
        Some(p) => (p.profile_type, p.localhost_ref.clone()),
        None => match sc.seccomp_profile_path.as_str() {
            "runtime/default" | "docker/default" => {
                (ProfileType::RuntimeDefault as i32, String::new())
            }
            path if path.starts_with("localhost/") => (
                ProfileType::Localhost as i32,
                path["localhost/".len()..].to_owned(),
            ),
            // The CRI's default is unconfined.
            _ => (ProfileType::Unconfined as i32, String::new()),
        },
    };
    if kind == ProfileType::RuntimeDefault as i32 {
        Ok(Some(seccomp::runtime_default(caps)))
    } else if kind == ProfileType::Localhost as i32 {
        seccomp::localhost(&localhost)
            .map(Some)
            .map_err(SpecError::Unavailable)
    } else {
        Ok(None)
    }
}
