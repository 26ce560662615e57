//! berthd: a Kubernetes CRI runtime daemon. See docs/architecture.md for the map of these modules.

pub mod cli;
pub mod config;
pub mod cri;
pub mod daemon;
pub mod health;
pub mod image;
pub mod logging;
pub mod oci;
pub mod paths;
pub mod services;
pub mod store;
