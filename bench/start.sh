#!/bin/bash
# Container start benchmark: `ccrun run --rootfs <busybox> true` against `crun run`
# on an equivalent bundle, in one run, with hyperfine. Prints medians and ratios.
#
# Both runtimes run inside one private mount namespace where the hybrid host's
# /sys/fs/cgroup/unified is unmounted, because Debian's crun refuses a cgroup2 mount
# that lists controllers (hugetlb here); ccrun then uses the same v1 controllers.
#
#   bench/start.sh [RUNS]        (as root; default 200 runs each)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
if [[ ${CCRUN_BENCH_INNER:-} != 1 ]]; then
  scripts/deps.sh
  cargo build --release --locked -q
  exec unshare -m --propagation private env CCRUN_BENCH_INNER=1 bash -c \
    'umount -l /sys/fs/cgroup/unified 2>/dev/null || true; exec "$0" "$@"' "$0" "$@"
fi

work=$(mktemp -d /tmp/ccrun-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 711 "$work"  # the user namespace's root must reach the rootfs
rootfs=$(scripts/make-busybox-rootfs.sh "$work/rootfs")
ccrun=$PWD/target/release/ccrun
state=$work/state

# crun's default spec: new pid, net, ipc, uts, mount namespaces, no user namespace.
mkdir -p "$work/bundle" "$work/bundle-userns"
(cd "$work/bundle" && crun spec && jq --arg r "$rootfs" \
  '.root.path=$r | .process.terminal=false | .process.args=["true"]' config.json >c && mv c config.json)
# The same with a user namespace mapping 0-65535 to 100000+, like ccrun's default.
jq '.linux.namespaces += [{"type":"user"}]
    | .linux.uidMappings=[{"containerID":0,"hostID":100000,"size":65536}]
    | .linux.gidMappings=[{"containerID":0,"hostID":100000,"size":65536}]
    | .mounts |= map(if .destination=="/sys" then {"destination":"/sys","type":"bind","source":"/sys","options":["rbind","nosuid","noexec","nodev","ro"]} else . end)' \
  "$work/bundle/config.json" >"$work/bundle-userns/config.json"

hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/result.json" \
  -n "ccrun (no userns)" "$ccrun --state $state run --rootfs $rootfs --userns host --network none true" \
  -n "crun (no userns)" "crun --root $state-crun run --bundle $work/bundle bench-crun" \
  -n "ccrun (private userns, idmapped rootfs)" "$ccrun --state $state run --rootfs $rootfs --network none true" \
  -n "crun (userns)" "crun --root $state-crun run --bundle $work/bundle-userns bench-crun-u" \
  >"$work/hyperfine.txt" 2>&1 || { cat "$work/hyperfine.txt"; exit 1; }

python3 - "$work/result.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
def med(name): return res[name]["median"] * 1000
print(f"{'command':45} {'median ms':>10} {'mean ms':>9}")
for name, r in res.items():
    print(f"{name:45} {r['median']*1000:10.2f} {r['mean']*1000:9.2f}")
print()
print(f"ratio ccrun/crun, no userns:      {med('ccrun (no userns)')/med('crun (no userns)'):.2f}x")
print(f"ratio ccrun/crun, with userns:    {med('ccrun (private userns, idmapped rootfs)')/med('crun (userns)'):.2f}x")
PY
