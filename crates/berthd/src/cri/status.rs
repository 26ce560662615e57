//! The only mapping from berth's errors to gRPC status codes.

use berth_image::pull::PullError;
use berth_image::registry::RegistryError;
use tonic::{Code, Status};

use crate::container::ContainerError;
use crate::image::ImageError;
use crate::monitor::MonitorError;
use crate::oci::OciError;
use crate::pod::PodError;
use crate::sandbox::SandboxError;
use crate::store::StoreError;

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        match e {
            StoreError::NameReserved { .. } => Status::already_exists(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }
}

impl From<ImageError> for Status {
    fn from(e: ImageError) -> Status {
        let code = match &e {
            ImageError::BadReference(_)
            | ImageError::Ambiguous(_)
            | ImageError::BadCredentials(_) => Code::InvalidArgument,
            ImageError::Pull { source, .. } => pull_code(source),
            ImageError::Store(_)
            | ImageError::Io { .. }
            | ImageError::Registry(_)
            | ImageError::Task(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

fn pull_code(e: &PullError) -> Code {
    match e {
        PullError::Resolve { failures, .. } => {
            let codes: Vec<Code> = failures.iter().map(registry_code).collect();
            // A refusal of credentials anywhere is the most telling answer; otherwise the
            // registry host's own (the last endpoint tried) decides between NotFound and
            // Unavailable, whatever its mirrors said.
            [Code::Unauthenticated, Code::PermissionDenied]
                .into_iter()
                .find(|c| codes.contains(c))
                .or(codes.last().copied())
                .unwrap_or(Code::Unavailable)
        }
        PullError::Registry(r) => registry_code(r),
        PullError::Manifest(berth_image::manifest::ManifestError::NoPlatform { .. }) => {
            Code::NotFound
        }
        PullError::Manifest(_) | PullError::Invalid(_) => Code::FailedPrecondition,
        PullError::DigestMismatch { .. } => Code::DataLoss,
        // What the layer holds (entries that climb out, a corrupt archive, one beyond the
        // limits) is the image's fault; a file the node could not write is the node's.
        PullError::Layer { source, .. } => match source {
            berth_image::pull::LayerStreamError::Unpack(e) if !e.is_the_layers_fault() => {
                Code::Internal
            }
            _ => Code::FailedPrecondition,
        },
        PullError::Io { .. } | PullError::LowerFailed(_) => Code::Internal,
    }
}

fn registry_code(e: &RegistryError) -> Code {
    match e {
        RegistryError::Unauthorized { .. } => Code::Unauthenticated,
        RegistryError::Forbidden { .. } => Code::PermissionDenied,
        RegistryError::NotFound { .. } => Code::NotFound,
        RegistryError::Http { .. }
        | RegistryError::Stalled { .. }
        | RegistryError::Transport { .. } => Code::Unavailable,
        RegistryError::Client(_) => Code::Internal,
    }
}

impl From<PodError> for Status {
    fn from(e: PodError) -> Status {
        Status::new(pod_code(&e), e.to_string())
    }
}

fn pod_code(e: &PodError) -> Code {
    match e {
        PodError::Invalid(_)
        | PodError::CgroupParent(_)
        | PodError::Ambiguous(_)
        | PodError::LimitRefused(_) => Code::InvalidArgument,
        PodError::Systemd(s) if s.refused_a_value() => Code::InvalidArgument,
        PodError::NotFound(_) => Code::NotFound,
        PodError::NameReserved { .. } => Code::AlreadyExists,
        PodError::NetworkNotReady(_) => Code::FailedPrecondition,
        PodError::Network(_)
        | PodError::Namespaces(_)
        | PodError::Infra(_)
        | PodError::Io { .. }
        | PodError::Systemd(_)
        | PodError::Store(_)
        | PodError::Task(_) => Code::Internal,
    }
}

impl From<ContainerError> for Status {
    fn from(e: ContainerError) -> Status {
        Status::new(container_code(&e), e.to_string())
    }
}

fn container_code(e: &ContainerError) -> Code {
    match e {
        ContainerError::Invalid(_)
        | ContainerError::Ambiguous(_)
        | ContainerError::UnknownHandler(_) => Code::InvalidArgument,
        ContainerError::Spec(s) if s.is_invalid() => Code::InvalidArgument,
        ContainerError::Create(m) if m.is_unrunnable_process() => Code::InvalidArgument,
        ContainerError::NotFound(_) | ContainerError::ImageNotFound(_) => Code::NotFound,
        ContainerError::NameReserved { .. } => Code::AlreadyExists,
        ContainerError::WrongState { .. }
        | ContainerError::LimitsRefused(_)
        // The node's files are in the way (a symlink planted where the log goes).
        | ContainerError::Create(MonitorError::LogRefused(_))
        | ContainerError::PodNotReady(_)
        | ContainerError::Spec(_) => Code::FailedPrecondition,
        ContainerError::ExecTimedOut { .. }
        | ContainerError::KillTimedOut { .. }
        | ContainerError::Create(MonitorError::CreateTimeout(_)) => Code::DeadlineExceeded,
        // The log could not be reopened: the container is there, its log is not.
        ContainerError::ReopenLog(_) => Code::FailedPrecondition,
        ContainerError::Pod(p) => pod_code(p),
        // kubelet answers "not supported" to a checkpoint the node cannot make.
        ContainerError::Runtime(OciError::NoCriu) => Code::Unimplemented,
        ContainerError::Image(_)
        | ContainerError::Runtime(_)
        | ContainerError::Create(_)
        | ContainerError::Exec(_)
        | ContainerError::Io { .. }
        | ContainerError::Store(_)
        | ContainerError::Task(_) => Code::Internal,
    }
}

impl From<SandboxError> for Status {
    fn from(e: SandboxError) -> Status {
        match e {
            SandboxError::Pod(p) => p.into(),
            SandboxError::Container(c) => c.into(),
        }
    }
}
