//! berthd: a Kubernetes CRI runtime daemon. See docs/architecture.md for the map of these modules.

pub mod async_fd;
pub mod cgroups;
pub mod cli;
pub mod clock;
pub mod config;
pub mod container;
pub mod cri;
pub mod daemon;
pub mod detach;
pub mod health;
pub mod helpers;
pub mod ids;
pub mod image;
pub mod logging;
pub mod monitor;
pub mod oci;
pub mod paths;
pub mod pod;
pub mod pty;
pub mod rollback;
pub mod rootfs;
pub mod services;
pub mod spec;
pub mod store;
pub mod streaming;
