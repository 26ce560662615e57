//! The Kubernetes Container Runtime Interface, v1, as of cri-api v0.36.4 (Kubernetes 1.36):
//! messages, the RuntimeService and ImageService servers and clients, generated at build time
//! from `proto/api.proto` with tonic and prost.

/// The protobuf runtime the messages are made with (their `encoded_len`, `encode`…).
pub use prost;

/// Package `runtime.v1`.
#[allow(
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant,
    missing_docs,
    unused_qualifications
)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

/// The API's compiled `FileDescriptorSet`: every service, method, message and field, for callers
/// that build requests by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cri_descriptors.bin"));
