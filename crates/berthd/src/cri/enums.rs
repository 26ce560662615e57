//! The CRI's enums and berth's own types, both ways: the one place that knows their numbers.

use berth_cri::v1 as cri;

use crate::container::ContainerState;
use crate::pod::{NsMode, PodState};
use crate::spec::Propagation;

pub fn container_state(s: ContainerState) -> cri::ContainerState {
    match s {
        ContainerState::Created => cri::ContainerState::ContainerCreated,
        ContainerState::Running => cri::ContainerState::ContainerRunning,
        ContainerState::Exited => cri::ContainerState::ContainerExited,
        ContainerState::Unknown => cri::ContainerState::ContainerUnknown,
    }
}

pub fn pod_state(s: PodState) -> cri::PodSandboxState {
    match s {
        PodState::Ready => cri::PodSandboxState::SandboxReady,
        PodState::NotReady => cri::PodSandboxState::SandboxNotready,
    }
}

/// A namespace mode as sent; an unknown value is the default (POD), as the CRI's proto3 enums
/// read unknown numbers.
pub fn ns_mode(mode: i32) -> NsMode {
    match cri::NamespaceMode::try_from(mode) {
        Ok(cri::NamespaceMode::Container) => NsMode::Container,
        Ok(cri::NamespaceMode::Node) => NsMode::Node,
        Ok(cri::NamespaceMode::Target) => NsMode::Target,
        Ok(cri::NamespaceMode::Pod) | Err(_) => NsMode::Pod,
    }
}

pub fn ns_mode_to_cri(mode: NsMode) -> cri::NamespaceMode {
    match mode {
        NsMode::Pod => cri::NamespaceMode::Pod,
        NsMode::Container => cri::NamespaceMode::Container,
        NsMode::Node => cri::NamespaceMode::Node,
        NsMode::Target => cri::NamespaceMode::Target,
    }
}

pub fn propagation(value: i32) -> Propagation {
    match cri::MountPropagation::try_from(value) {
        Ok(cri::MountPropagation::PropagationHostToContainer) => Propagation::HostToContainer,
        Ok(cri::MountPropagation::PropagationBidirectional) => Propagation::Bidirectional,
        Ok(cri::MountPropagation::PropagationPrivate) | Err(_) => Propagation::Private,
    }
}

pub fn propagation_to_cri(p: Propagation) -> cri::MountPropagation {
    match p {
        Propagation::Private => cri::MountPropagation::PropagationPrivate,
        Propagation::HostToContainer => cri::MountPropagation::PropagationHostToContainer,
        Propagation::Bidirectional => cri::MountPropagation::PropagationBidirectional,
    }
}
