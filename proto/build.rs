//! Compiles every `.proto` under `ocop/` with protox (pure Rust, no system `protoc`)
//! and keeps the encoded descriptor set for gRPC server reflection.

use std::path::{Path, PathBuf};

fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            proto_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=ocop");
    let mut files = Vec::new();
    proto_files(&root.join("ocop"), &mut files);

    let fds = protox::compile(&files, [root]).expect("compile protos");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out_dir.join("ocop_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )
    .expect("write descriptor set");

    // Type names give every message `prost::Name`, whose full name is the event's
    // `ce_type` (e.g. `ocop.catalog.v1.ProductSnapshot`).
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        // A request that does not decode is the caller's error (src/codec.rs).
        .codec_path("crate::codec::OcopCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(fds, config)
        .expect("generate rust from protos");
}
