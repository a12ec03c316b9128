//! Compiles `proto/**/*.proto` (a link to the workspace root's `proto/`) without a system `protoc`:
//! `protox` parses the schema into a `FileDescriptorSet`, `tonic-prost-build`
//! emits prost messages plus tonic client/server stubs, and `pbjson-build`
//! emits proto3-JSON `serde` impls for the same types.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

/// Protobuf package we own and generate code for.
const PACKAGE: &str = "photon.imessage.v1";

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    // `proto` here is a link to the workspace's `proto/`, so a packaged crate carries the files.
    let proto_root = manifest_dir.join("proto");
    let proto_root = proto_root.canonicalize().unwrap_or(proto_root);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    if files.is_empty() {
        return Err(format!("no .proto files found under {}", proto_root.display()).into());
    }

    // protox ships the google/protobuf well-known types itself.
    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;
    let fds_bytes = compiler.encode_file_descriptor_set();
    let fds = compiler.file_descriptor_set();
    fs::write(out_dir.join("imgroups_descriptor.bin"), &fds_bytes)?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Stop prost from mapping the well-known types to `prost_types`
        // itself, so the extern path below (with serde impls) takes effect.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&fds_bytes)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .ignore_unknown_fields()
        .build(&[format!(".{PACKAGE}")])?;

    Ok(())
}

/// Recursively gathers every `*.proto` file below `dir`.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
