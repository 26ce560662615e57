//! berth's image layer: image references, the registry client, the content store, safe layer
//! unpacking and the snapshot directories. It knows nothing of CRI.

pub mod content;
pub mod digest;
mod layer_stream;
pub mod limits;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod snapshots;
pub mod unpack;

#[cfg(test)]
mod fuzz_tests;

pub use digest::Digest;
pub use reference::Reference;
