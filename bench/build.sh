#!/bin/bash
# `ccrun build` against `podman build` of the same multi-stage Dockerfile from the same
# local registry: cold (no cache; the base image already pulled by both) and warm
# (everything cached), RUNS times each; prints medians and the ratios ccrun/podman.
# Targets: cold <= 0.5x podman's time, warm <= 0.2x. Then the push of a ~30 MB image,
# ccrun push against skopeo copy (bench/push.sh, same RUNS; target <= 1.2x).
#
#   bench/build.sh [RUNS]     (default 5; as root)
#
# podman runs with storage and configuration of its own in the work dir (vfs is not
# used: overlay, as podman is normally run), runc as its runtime (Debian's crun refuses
# this host's hybrid cgroup layout), --network none like ccrun. Everything this creates
# (work dir, registry, podman storage, cgroups under this run's parent) is removed by
# an EXIT trap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
runs=$(bench_runs "${1:-}" 5)
require_tools podman runc docker-registry skopeo python3
ccrun=${CCRUN:-$here/../target/release/ccrun}
[[ -x $ccrun ]] || { echo "build ccrun first: cargo build --release" >&2; exit 2; }

work=$(mktemp -d /var/tmp/ccrun-bench-build.XXXXXX)
owned=()
podman_cg=/ccrun-bench-build-podman-$$
podman_flags=(--root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
  --storage-driver overlay --cgroup-manager cgroupfs --runtime runc --events-backend file)
cleanup() {
  set +e
  [[ -n ${reg_pid:-} ]] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
  if [[ -d $work/podman/root ]]; then podman "${podman_flags[@]}" system reset -f >/dev/null 2>&1; fi
  "$ccrun" --root "$work/ccrun" system prune -a -f >/dev/null 2>&1
  remove_run_cgroups "$podman_cg"
  rm -rf "$work"
}
trap cleanup EXIT
podman_private_config

# A registry with a busybox base image.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
storage: {filesystem: {rootdirectory: $work/registry/data}}
http: {addr: 127.0.0.1:$port}
log: {level: error}
EOF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
reg_pid=$!
own "$reg_pid"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for a in sh cat echo mkdir rm cp ls sort sha256sum seq wc; do ln -s busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/base.tar" .
podman "${podman_flags[@]}" import -q "$work/base.tar" localhost/bench-base:1 >/dev/null
podman "${podman_flags[@]}" push -q --tls-verify=false localhost/bench-base:1 "docker://127.0.0.1:$port/bench/base:1"
base=127.0.0.1:$port/bench/base:1

# The context: a multi-stage Dockerfile with RUN, COPY and COPY --from.
ctx=$work/context
mkdir -p "$ctx/src"
for i in $(seq 200); do echo "file $i" >"$ctx/src/f$i.txt"; done
cat >"$ctx/Dockerfile" <<EOF
FROM $base AS build
COPY src/ /src/
RUN mkdir -p /out && for f in /src/*.txt; do cat "\$f" >> /out/all; done && sha256sum /out/all > /out/sum
RUN seq 1 2000 > /out/numbers && wc -l /out/numbers > /out/count
FROM $base AS tools
RUN mkdir -p /tools && echo tool > /tools/t && rm -f /tmp/x
FROM $base
COPY --from=build /out/ /app/
COPY --from=tools /tools/ /tools/
RUN cat /app/sum /app/count > /app/report
CMD ["cat", "/app/report"]
EOF

ccrun_build() { "$ccrun" --root "$work/ccrun" --state "$work/ccrun-state" build -q --network none "$@" "$ctx" >/dev/null; }
podman_build() {
  podman "${podman_flags[@]}" build -q --network none --tls-verify=false --cgroup-parent "$podman_cg" \
    "$@" "$ctx" >/dev/null
}
# Base images pulled beforehand: neither measurement includes the pull.
"$ccrun" --root "$work/ccrun" pull -q "$base" >/dev/null
podman "${podman_flags[@]}" pull -q --tls-verify=false "$base" >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_of() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
measure() { # NAME COMMAND... → median seconds over $runs
  local i t=()
  for ((i = 0; i < runs; i++)); do t+=("$(time_of "$@")"); done
  printf '%s\n' "${t[@]}" | median
}

ccrun_build -t bench:warm # fills the cache
podman_build -t bench:warm
ccrun_cold=$(measure ccrun_build --no-cache)
podman_cold=$(measure podman_build --no-cache)
ccrun_warm=$(measure ccrun_build)
podman_warm=$(measure podman_build)
printf '%-6s %10s %10s %8s %s\n' case ccrun podman ratio target
printf '%-6s %9.3fs %9.3fs %8.3f %s\n' cold "$ccrun_cold" "$podman_cold" "$(echo "$ccrun_cold / $podman_cold" | bc -l)" "<= 0.5"
printf '%-6s %9.3fs %9.3fs %8.3f %s\n' warm "$ccrun_warm" "$podman_warm" "$(echo "$ccrun_warm / $podman_warm" | bc -l)" "<= 0.2"
bench_record build "multi-stage build, cold (--no-cache)" "ccrun build" "$ccrun_cold" "podman build" "$podman_cold" s "$runs"
bench_record build "multi-stage build, warm (cached)" "ccrun build" "$ccrun_warm" "podman build" "$podman_warm" s "$runs"

# The issue's build benchmark includes the push of a ~30 MB image by ccrun and by
# skopeo copy: bench/push.sh, with the same binary and number of runs.
# bench/report.sh runs push.sh on its own.
if [[ -z ${CCRUN_BENCH_RESULTS:-} ]]; then
  echo
  echo "== push: ccrun push against skopeo copy (bench/push.sh)"
  CCRUN=$(realpath "$ccrun") "$here/push.sh" "$runs"
fi
