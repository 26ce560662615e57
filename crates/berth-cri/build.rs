//! Generates the CRI v1 messages, clients and servers from `proto/api.proto` (needs `protoc`,
//! Debian's protobuf-compiler), and keeps the compiled descriptors for tools that read the API
//! by reflection (the test kit's request fuzzer).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("cri_descriptors.bin"))
        .compile_protos(&["proto/api.proto"], &["proto/"])?;
    Ok(())
}
