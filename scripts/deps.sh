#!/bin/bash
# Installs the Debian packages ccrun's demo, tests and benchmarks need (idempotent).
set -euo pipefail
packages=(
  busybox-static   # test and demo root filesystems
  docker-registry  # the real CNCF registry the image tests pull from
  skopeo umoci     # push test images / compare
  crun runc podman containerd  # peers for benchmarks and OCI runtime tests
  containernetworking-plugins  # CNI bridge/host-local for the CRI test's pods
  iproute2 iptables nftables   # network tests inspect what ccrun set up
  iperf3                       # bench/net.sh: throughput over the bridge and a plain veth
  hyperfine jq uidmap openssl strace curl
  debootstrap                  # builds the nginx/redis/postgres images of the app tests
  libseccomp-dev               # the runtime compiles seccomp profiles with libseccomp
  passt fuse-overlayfs         # rootless: pasta networking, overlay fallback (uidmap above)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
