//! Builds berth-env-exec (env-exec/main.rs), the static helper that hands a container
//! environment values that are not UTF-8, for berthd to embed. It has no standard library, so it
//! is compiled on its own (with `panic=abort`) rather than as one of the workspace's binaries.
//! Only x86_64 Linux has it; elsewhere berthd refuses such values.

use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = "env-exec/main.rs";
    println!("cargo::rerun-if-changed={source}");
    println!("cargo::rustc-check-cfg=cfg(env_exec)");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH")?;
    let os = std::env::var("CARGO_CFG_TARGET_OS")?;
    if arch != "x86_64" || os != "linux" {
        return Ok(());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?);
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET")?;
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--target",
            &target,
        ])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=2",
            "-C",
            "debuginfo=0",
        ])
        .args(["-C", "strip=symbols", "-C", "relocation-model=static"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args(["-C", "link-arg=-static"])
        .arg("-o")
        .arg(out.join("berth-env-exec"))
        .arg(source)
        .status()?;
    if !status.success() {
        return Err(format!("building berth-env-exec: rustc {status}").into());
    }
    println!("cargo::rustc-cfg=env_exec");
    Ok(())
}
