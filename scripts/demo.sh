#!/bin/bash
# Installs what ccrun needs, builds it, and runs a real container: a busybox root
# filesystem with its own hostname, PID namespace, private user namespace and limits.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
rootfs=$(scripts/make-busybox-rootfs.sh)
trap 'rm -rf "$rootfs"' EXIT
set -x
./target/release/ccrun run --rootfs "$rootfs" --hostname demo --memory 64m --cpus 0.5 --pids-limit 64 \
  sh -c 'echo "hello from $(hostname)"; id; ps -o pid,user,args; cat /proc/self/uid_map'
