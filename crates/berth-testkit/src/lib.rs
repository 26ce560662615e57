//! The integration-test kit: a private berthd per test (own root, state dir and socket, so tests run
//! in parallel), CRI clients over its socket, and a teardown that leaves nothing behind even when the
//! test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod audit;
pub mod cgroup;
mod client;
mod cni;
mod container;
mod containerd;
pub mod cri_fuzz;
mod daemon;
mod image;
mod layer;
mod overlay;
mod pod;
mod registry;
mod stream_client;
mod teardown;
mod token_proxy;
pub mod tool;
mod wait;

pub use client::{Clients, channel, connect, spec};
pub use cni::{CNI_BIN_DIR, CniNetwork, in_netns, mounts_under};
pub use container::{CtrConfig, KUBELET_MASKED_PATHS, KUBELET_READONLY_PATHS, Node, log_lines};
pub use containerd::{Containerd, Settings as ContainerdSettings};
pub use daemon::{DaemonBuilder, TestDaemon};
pub use image::{Format, ImageBuilder, Pushed, push_index};
pub use layer::{Applets, Compression, LayerBuilder, compress};
pub use overlay::MergedRoot;
pub use pod::PodConfig;
pub use registry::{Registry, free_port};
pub use stream_client::{Head, Outcome, SpdyClient, WsClient, WsIn, request as stream_request};
pub use token_proxy::{LyingRegistry, StallingServer, TokenProxy};
pub use wait::wait_until;

/// The profile dir of the running executable: a test's (`target/<profile>/deps/<test>-<hash>`)
/// or a workspace binary's (`target/<profile>/<bin>`).
fn profile_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let parent = exe.parent().expect("executable in a dir");
    if parent.ends_with("deps") {
        parent.parent().expect("target/<profile>").to_path_buf()
    } else {
        parent.to_path_buf()
    }
}

/// A binary of this workspace: from `$BERTH_BIN_DIR` when that has it (the binaries an installed
/// package put in /usr/bin, as `make test-node` runs the tests), else of the profile of the
/// running executable.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_BIN_DIR") {
        let installed = std::path::Path::new(&dir).join(name);
        if installed.exists() {
            return installed;
        }
    }
    let bin = profile_dir().join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`)",
        bin.display()
    );
    bin
}

/// A tool `scripts/install-deps.sh test` installs for the tests beside the build, in
/// `target/test-tools/` (clients others wrote, such as a Python gRPC client from PyPI).
pub fn test_tool(path: &str) -> std::path::PathBuf {
    let target = profile_dir();
    let tool = target
        .parent()
        .expect("target dir")
        .join("test-tools")
        .join(path);
    assert!(
        tool.exists(),
        "{} is missing: run `scripts/install-deps.sh test`",
        tool.display()
    );
    tool
}

/// An HTTP client for the kit's own registry calls.
pub(crate) fn http_client() -> reqwest::Client {
    berth_image::registry::install_crypto_provider();
    reqwest::Client::new()
}
