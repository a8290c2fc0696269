#!/bin/bash
# Installs what ccrun needs, builds it, and runs a real container from a real image:
# a local registry (scripts/local-registry.sh, since test machines have no internet)
# serves a busybox image that `ccrun run` pulls and runs on an overlayfs root, with its
# own hostname, PID namespace, private user namespace and cgroup limits; then the same
# image runs detached on ccrun's bridge network with a published port.
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
# Network traffic stays inside a throw-away network namespace made here: ccrun's
# bridge, veths and NAT rules are created in it, never in the host's own.
netns=ccrun-demo-$$
ip netns add "$netns"
ip -n "$netns" link set lo up
cleanup() {
  nsenter --net="/run/netns/$netns" ./target/release/ccrun rm -f demo-web >/dev/null 2>&1 || true
  ip netns del "$netns" 2>/dev/null || true
  if [ "$started" = yes ]; then scripts/local-registry.sh stop; fi
}
trap cleanup EXIT
in_netns() { nsenter --net="/run/netns/$netns" "$@"; }
image=127.0.0.1:$PORT/library/busybox
set -x
# Pulled from the local registry (on the host's loopback), then run with its own
# hostname, PID namespace, private user namespace, cgroup limits and loopback only.
./target/release/ccrun run --rm --network none --hostname demo --memory 64m --cpus 0.5 \
  --pids-limit 64 "$image" \
  sh -c 'echo "hello from $(hostname)"; id; ps -o pid,user,args; cat /proc/self/uid_map; grep " / " /proc/mounts'
# Detached under its monitor, on the default bridge with a published port: logs, exec,
# a request through the port, stop, remove.
in_netns ./target/release/ccrun run -d --pull never --name demo-web -p 8080:80 "$image" \
  sh -c 'echo "<h1>hello from $(hostname)</h1>" > /tmp/index.html; exec httpd -f -v -p 80 -h /tmp'
in_netns ./target/release/ccrun ps
in_netns ./target/release/ccrun exec demo-web sh -c 'echo "exec sees PID 1: $(cat /proc/1/comm)"; ip -4 addr show eth0'
in_netns busybox wget -qO- http://127.0.0.1:8080/
in_netns ./target/release/ccrun stop -t 1 demo-web
in_netns ./target/release/ccrun logs --tail 3 demo-web
in_netns ./target/release/ccrun rm demo-web
