//! berth's pod network layer: namespaces created and pinned by bind mounts, and the CNI plugin
//! invoker (ADD, DEL, CHECK, STATUS, VERSION), and the interfaces' traffic counters. It knows
//! nothing of CRI.

pub mod cni;
pub mod counters;
pub mod netns;

#[cfg(test)]
mod fuzz_tests;
