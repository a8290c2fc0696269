#!/bin/bash
# Regenerates crates/ccrun-cri/src/gen/runtime.v1.rs from crates/ccrun-cri/proto/v1.proto
# (the Kubernetes cri-api runtime/v1 protocol). The output is checked in, so building
# never needs protoc; regenerating does (apt-get install protobuf-compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/out"
cp crates/ccrun-cri/proto/v1.proto "$work/"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "crigen"
version = "0.1.0"
edition = "2021"
publish = false
[workspace]
[dependencies]
tonic-prost-build = "0.14"
TOML
cat > "$work/src/main.rs" <<'RS'
fn main() -> std::io::Result<()> {
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir("out")
        .compile_protos(&["v1.proto"], &["."])
}
RS
(cd "$work" && CARGO_TARGET_DIR="$work/target" cargo run -q)
cp "$work/out/runtime.v1.rs" crates/ccrun-cri/src/gen/runtime.v1.rs
echo "regenerated crates/ccrun-cri/src/gen/runtime.v1.rs"
