#!/bin/bash
# Container start benchmark: `ccrun run --rootfs <busybox> true` against `crun run`
# on an equivalent bundle, in one run, with hyperfine. Prints medians and ratios.
#
#   bench/start.sh [RUNS]        (as root; default 200 runs each)
#
# Environment:
#   CCRUN=PATH   the ccrun binary; when unset, `cargo build --release -p ccrun` runs first
#                and ${CARGO_TARGET_DIR:-target}/release/ccrun is used
#
# Everything it creates (work dir under /tmp, crun's containers, the cgroups crun
# leaves) is removed by an EXIT trap, also on failure or ^C.
#
# Quirks of the host this was written on (Debian 12, hybrid cgroups), the same as
# bench/run-image.sh and bench/exec.sh:
# - Debian's crun 1.8 refuses the hybrid layout because the cgroup2 mount at
#   /sys/fs/cgroup/unified lists a controller (hugetlb). Both runtimes run inside one
#   private mount namespace with that mount lazily unmounted, so ccrun uses the same
#   v1 controllers as crun. The host's own mounts are not touched.
# - With that mount gone, /sys/fs/cgroup/unified is a plain directory of the
#   /sys/fs/cgroup tmpfs, and crun still "joins" it: it creates <cgroupsPath>/ there
#   with a regular file cgroup.procs, which its own rmdir at exit cannot remove. That
#   tmpfs is the host's (hidden under its cgroup2 mount), so every such directory would
#   stay behind. Without a cgroupsPath crun uses /<container id> (the same for every
#   run), so the bundles get cgroupsPath /ccrun-bench-crun-<pid>/bench-crun[-u], and
#   cleanup removes exactly those: real cgroups with rmdir, the tmpfs ones with rm.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
runs=$(bench_runs "${1:-}" 200)

if [[ ${CCRUN_BENCH_INNER:-} != 1 ]]; then
  bench_outer_checks
  if [[ -z ${CCRUN:-} ]]; then
    echo "== building ccrun (release)"
    cargo build --release --locked -q -p ccrun
    CCRUN=${CARGO_TARGET_DIR:-$repo/target}/release/ccrun
  fi
  CCRUN=$(realpath "$CCRUN")
  export CCRUN
  bench_reexec_private -- "$@"
fi

ccrun=$CCRUN
if [[ ! -x $ccrun ]]; then
  echo "no ccrun binary at $ccrun (set CCRUN=...)" >&2
  exit 1
fi
require_tools hyperfine crun jq python3

work=$(mktemp -d /tmp/ccrun-bench.XXXXXX)
crun_cg=/ccrun-bench-crun-$$
state=$work/state
crun_base=(crun --root "$state-crun")

cleanup() {
  local rc=$? id d
  trap - EXIT INT TERM
  set +e
  # `crun run` deletes its container when it exits; one cut short by ^C may be left.
  for id in bench-crun bench-crun-u; do
    if [[ -e $state-crun/$id ]]; then "${crun_base[@]}" delete -f "$id" >/dev/null 2>&1; fi
  done
  # The cgroups crun made under the parent named for this run: real ones go with rmdir,
  # the directories in the bare /sys/fs/cgroup/unified (tmpfs here, see above) with rm.
  remove_run_cgroups "$crun_cg"
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

chmod 711 "$work"  # the user namespace's root must reach the rootfs
rootfs=$(scripts/make-busybox-rootfs.sh "$work/rootfs")

# crun's default spec: new pid, net, ipc, uts, mount namespaces, no user namespace.
mkdir -p "$work/bundle" "$work/bundle-userns"
(cd "$work/bundle" && crun spec && jq --arg r "$rootfs" --arg cg "$crun_cg/bench-crun" \
  '.root.path=$r | .process.terminal=false | .process.args=["true"] | .linux.cgroupsPath=$cg' \
  config.json >c && mv c config.json)
# The same with a user namespace mapping 0-65535 to 100000+, like ccrun's default.
jq --arg cg "$crun_cg/bench-crun-u" '.linux.cgroupsPath=$cg | .linux.namespaces += [{"type":"user"}]
    | .linux.uidMappings=[{"containerID":0,"hostID":100000,"size":65536}]
    | .linux.gidMappings=[{"containerID":0,"hostID":100000,"size":65536}]
    | .mounts |= map(if .destination=="/sys" then {"destination":"/sys","type":"bind","source":"/sys","options":["rbind","nosuid","noexec","nodev","ro"]} else . end)' \
  "$work/bundle/config.json" >"$work/bundle-userns/config.json"

hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/result.json" \
  -n "ccrun (no userns)" "$ccrun --state $state run --rootfs $rootfs --userns host --network none true" \
  -n "crun (no userns)" "${crun_base[*]} run --bundle $work/bundle bench-crun" \
  -n "ccrun (private userns, idmapped rootfs)" "$ccrun --state $state run --rootfs $rootfs --network none true" \
  -n "crun (userns)" "${crun_base[*]} run --bundle $work/bundle-userns bench-crun-u" \
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
from results import record
n = len(res['crun (no userns)']['times'])
record("start", "run --rootfs DIR true, no userns", "ccrun", med('ccrun (no userns)'), "crun", med('crun (no userns)'), runs=n)
record("start", "run --rootfs DIR true, userns", "ccrun", med('ccrun (private userns, idmapped rootfs)'), "crun", med('crun (userns)'), runs=n)
PY
