#!/bin/bash
# The whole test suite: formatting, lints, unit and integration tests (run as root:
# the integration tests use real namespaces, mounts, cgroups and a local registry).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "scripts/test.sh must run as root (namespaces, mounts, cgroups)" >&2
  exit 1
fi
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
