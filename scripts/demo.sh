#!/bin/bash
# Installs what ccrun needs, builds it, and runs a real container from a real image:
# a local registry (scripts/local-registry.sh, since test machines have no internet)
# serves a busybox image that `ccrun run` pulls and runs on an overlayfs root, with its
# own hostname, PID namespace, private user namespace and cgroup limits.
# With internet access, the same works against Docker Hub: ccrun run --rm alpine ...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
export PORT=${PORT:-5000}
started=no
if ! scripts/local-registry.sh status >/dev/null 2>&1; then
  started=yes
fi
scripts/local-registry.sh start
if [ "$started" = yes ]; then
  trap 'scripts/local-registry.sh stop' EXIT
fi
set -x
./target/release/ccrun run --rm --hostname demo --memory 64m --cpus 0.5 --pids-limit 64 \
  "127.0.0.1:$PORT/library/busybox" \
  sh -c 'echo "hello from $(hostname)"; id; ps -o pid,user,args; cat /proc/self/uid_map; grep " / " /proc/mounts'
# The same image detached under its monitor: logs, exec, stop, remove.
./target/release/ccrun run -d --name demo-web "127.0.0.1:$PORT/library/busybox" \
  sh -c 'trap "echo bye; exit 0" TERM; while :; do echo tick; sleep 0.2; done'
sleep 1
./target/release/ccrun ps
./target/release/ccrun exec demo-web sh -c 'echo "exec sees PID 1: $(cat /proc/1/comm)"'
./target/release/ccrun stop demo-web
./target/release/ccrun logs --tail 3 demo-web
./target/release/ccrun rm demo-web
