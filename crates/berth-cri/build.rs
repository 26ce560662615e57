//! Generates the CRI v1 messages, clients and servers from `proto/api.proto` (needs `protoc`,
//! Debian's protobuf-compiler).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    tonic_prost_build::configure().compile_protos(&["proto/api.proto"], &["proto/"])?;
    Ok(())
}
