#!/bin/bash
# Benchmark (not a test): what the engine adds to its runtime. `ccrun run --rm IMAGE
# true` against `ccrun-oci run` of the equivalent bundle (the `config.json` ccrun
# writes for that container, replayed on a plain copy of the image's rootfs), and
# against `crun run` of the same bundle; medians over interleaved rounds.
#
#   engine  ccrun run --rm --network none IMAGE true      (default: --userns auto)
#   oci     ccrun-oci run --bundle B                         (ccrun's config.json)
#   crun    crun run --bundle B                              (the same bundle)
#   host    ccrun run --rm --network none --userns host IMAGE true
#   oci-h   ccrun-oci run of that container's config.json
#   bridge  ccrun run --rm IMAGE true                        (default bridge network)
#   none-ns ccrun run --rm --network none IMAGE true, entered the same way as bridge
#
# The bridge variant (and none-ns, to compare with) runs inside a network namespace
# the script makes (`ip netns add`, entered with nsenter) and removes, so the host's
# network is never touched. IMAGE is 127.0.0.1:<free port>/library/busybox from
# scripts/local-registry.sh, pulled first;
# the registry is stopped before timing, so every run is warm.
#
#   bench/engine.sh [RUNS]     (as root; default 40 runs of each, in rounds of 10)
#
# Environment:
#   CCRUN=PATH   the ccrun binary (ccrun-oci and ccrun-monitor next to it); when
#                unset, `cargo build --release` runs first
#   ENGINE_JSON=FILE   also write the medians as JSON (bench/report.sh uses it)
#   CCRUN_BASELINE=PATH   another ccrun binary (an older build, say) timed as well,
#                `ccrun run --rm (baseline)`, on the same store, interleaved with the
#                others: before/after figures taken under the same load
#
# Like bench/start.sh it runs in a private mount namespace without the cgroup2 mount
# at /sys/fs/cgroup/unified (crun refuses the hybrid layout with it), so all three
# use the same v1 controllers. Everything it makes (work dir, registry, containers,
# cgroups of this run, the network namespace) is removed by an EXIT trap.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
runs=$(bench_runs "${1:-}" 40)

if [[ ${CCRUN_BENCH_INNER:-} != 1 ]]; then
  bench_outer_checks
  if [[ -z ${CCRUN:-} ]]; then
    echo "== building ccrun, ccrun-oci, ccrun-monitor (release)"
    cargo build --release -q -p ccrun -p ccrun-oci -p ccrun-monitor
    CCRUN=${CARGO_TARGET_DIR:-$repo/target}/release/ccrun
  fi
  CCRUN=$(realpath "$CCRUN")
  export CCRUN
  if [[ -n ${CCRUN_BASELINE:-} ]]; then
    CCRUN_BASELINE=$(realpath "$CCRUN_BASELINE")
    export CCRUN_BASELINE
  fi
  bench_reexec_private -- "$@"
fi

ccrun=$CCRUN
oci=$(dirname "$ccrun")/ccrun-oci
[[ -x $ccrun && -x $oci ]] || { echo "no ccrun/ccrun-oci at $(dirname "$ccrun")" >&2; exit 1; }
require_tools hyperfine crun jq python3 ip docker-registry

work=$(mktemp -d /var/tmp/ccrun-bench-engine.XXXXXX)
chmod 711 "$work"
cg=/ccrun-bench-engine-$$
netns=ccrun-bench-engine-$$
reg_port=
owned=()
ccrun_base=("$ccrun" --root "$work/ccrun" --state "$work/ccrun-state")

cleanup() {
  local rc=$? mnt
  trap - EXIT INT TERM
  set +e
  if [[ -n $reg_port ]]; then
    PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh stop >/dev/null
  fi
  "${ccrun_base[@]}" rm -f spec-auto spec-host >/dev/null 2>&1
  for r in oci crun; do
    for id in bench-a bench-h; do
      [[ -d $work/state-$r/$id ]] && { [[ $r == oci ]] && "$oci" --root "$work/state-$r" delete -f "$id" || crun --root "$work/state-$r" delete -f "$id"; } >/dev/null 2>&1
    done
  done
  ip netns exec "$netns" "${ccrun_base[@]}" network rm bridge >/dev/null 2>&1
  ip netns del "$netns" 2>/dev/null
  end_owned_and_work_pids
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null
  done < <(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  remove_run_cgroups "$cg"
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== local registry with the busybox image"
reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh start | sed 's/^/   /'
image=127.0.0.1:$reg_port/library/busybox:latest
"${ccrun_base[@]}" pull -q "$image" >/dev/null
PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh stop >/dev/null
reg_port=

echo "== bundles from ccrun's own config.json"
rootfs=$(scripts/make-busybox-rootfs.sh "$work/rootfs")
# One bundle per user namespace mode, from a created (never started) container: its
# spec with the rootfs swapped for the plain copy (idmapped by the runtime, as the
# engine's overlay layers are), its /etc files copied, its own cgroup path.
bundle_from() {
  local name=$1 bundle=$2 id dir
  id=$("${ccrun_base[@]}" create -q --name "$name" --network none "${@:3}" "$image" true)
  dir=$work/ccrun/containers/$id
  mkdir -p "$bundle"
  cp "$dir"/{hostname,hosts,resolv.conf} "$bundle/"
  jq --arg r "$rootfs" --arg dir "$dir" --arg b "$bundle" --arg cg "$cg/$name" '
      .root.path = $r
      | .linux.cgroupsPath = $cg
      | .annotations["io.ccrun.rootfs.idmap"] = (if (.linux.uidMappings // []) != [] then "true" else "false" end)
      | .mounts |= map(if (.source // "" | startswith($dir)) then .source = ($b + (.source | ltrimstr($dir))) else . end)' \
    "$dir/config.json" >"$bundle/config.json"
}
bundle_from spec-auto "$work/bundle-auto"
bundle_from spec-host "$work/bundle-host" --userns host
# The created containers keep their id ranges, so no timed run takes the bundle's.
mkdir -p "$work/state-oci" "$work/state-crun"

for variant in auto host; do
  b=$work/bundle-$variant
  "$oci" --root "$work/state-oci" run --bundle "$b" bench-check >/dev/null || { echo "ccrun-oci cannot run $b" >&2; exit 1; }
done

ip netns add "$netns"
ip netns exec "$netns" ip link set lo up

commands=(
  -n "ccrun run --rm (auto userns)" "${ccrun_base[*]} run --rm --network none $image true"
  -n "ccrun-oci run (same spec)" "$oci --root $work/state-oci run --bundle $work/bundle-auto bench-a"
  -n "ccrun run --rm --userns host" "${ccrun_base[*]} run --rm --network none --userns host $image true"
  -n "ccrun-oci run (host spec)" "$oci --root $work/state-oci run --bundle $work/bundle-host bench-h"
  -n "ccrun run --rm (bridge, netns)" "nsenter --net=/run/netns/$netns ${ccrun_base[*]} run --rm $image true"
  -n "ccrun run --rm (none, netns)" "nsenter --net=/run/netns/$netns ${ccrun_base[*]} run --rm --network none $image true"
)
if [[ -n ${CCRUN_BASELINE:-} ]]; then
  commands+=(-n "ccrun run --rm (baseline)" "$CCRUN_BASELINE --root $work/ccrun --state $work/ccrun-state run --rm --network none $image true")
fi
if crun --root "$work/state-crun" run --bundle "$work/bundle-host" bench-h >/dev/null 2>&1; then
  commands+=(-n "crun run (host spec)" "crun --root $work/state-crun run --bundle $work/bundle-host bench-h")
fi

chunk=10
rounds=$(((runs + chunk - 1) / chunk))
echo "== hyperfine: $runs runs each in $rounds interleaved rounds"
for ((round = 1; round <= rounds; round++)); do
  n=$((runs / rounds + (round <= runs % rounds ? 1 : 0)))
  warmup=1
  ((round == 1)) && warmup=3
  if ! hyperfine -N --warmup "$warmup" --runs "$n" --export-json "$work/result-$round.json" \
    "${commands[@]}" >"$work/hyperfine.txt" 2>&1; then
    cat "$work/hyperfine.txt" >&2
    exit 1
  fi
  echo "   round $round: $n runs each, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done

python3 - "${ENGINE_JSON:-}" "$work"/result-*.json <<'PY'
import json, statistics, sys
out, files = sys.argv[1], sys.argv[2:]
times = {}
for f in files:
    for r in json.load(open(f))["results"]:
        times.setdefault(r["command"], []).extend(x * 1000 for x in r["times"])
med = {n: statistics.median(t) for n, t in times.items()}
print(f"\n{'':34} {'runs':>5} {'median ms':>10} {'min':>7} {'max':>7}")
for n, t in times.items():
    print(f"{n:34} {len(t):5} {med[n]:10.2f} {min(t):7.2f} {max(t):7.2f}")
print()
auto, oci = "ccrun run --rm (auto userns)", "ccrun-oci run (same spec)"
host, ocih = "ccrun run --rm --userns host", "ccrun-oci run (host spec)"
bridge, none_ns = "ccrun run --rm (bridge, netns)", "ccrun run --rm (none, netns)"
print(f"engine - runtime, auto userns:   {med[auto] - med[oci]:+6.2f} ms  (target <= 5)")
print(f"engine - runtime, --userns host: {med[host] - med[ocih]:+6.2f} ms")
# Both through nsenter into the same namespace, so its cost cancels out.
print(f"bridge - none:                   {med[bridge] - med[none_ns]:+6.2f} ms  (target <= 5)")
base = "ccrun run --rm (baseline)"
if base in med:
    print(f"this build - baseline:           {med[auto] - med[base]:+6.2f} ms")
if out:
    json.dump(med, open(out, "w"), indent=1)
from results import record
n = len(times[oci])
record("engine", "run --rm IMAGE true vs the runtime on its spec", "ccrun run --rm", med[auto], "ccrun-oci run", med[oci], runs=n)
record("engine", "run --rm --userns host IMAGE true vs the runtime on its spec", "ccrun run --rm", med[host], "ccrun-oci run", med[ocih], runs=n)
if "crun run (host spec)" in med:
    record("engine", "run --rm --userns host IMAGE true vs the runtime on its spec", "ccrun run --rm", med[host], "crun run", med["crun run (host spec)"], runs=n)
PY
