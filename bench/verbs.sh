#!/bin/bash
# Benchmark (not a test): the engine's other verbs against podman's, in one run with
# hyperfine; prints medians and ratios.
#
#   stop      `stop` of a running container whose process exits on SIGTERM
#             (`sh -c 'trap "exit 0" TERM; sleep 1000 & wait'`), started before each
#             run (hyperfine --prepare, not timed)
#   rm        `rm` of a container that ran `true` and exited (made before each run)
#   ps -a     `ps -a` with 100 containers (created, never started)
#   inspect   `inspect` of one of them
#
# ccrun runs with --network none (the others' networks are not what is measured),
# podman likewise; both from the same busybox image of a local registry, pulled first.
# The runtime's own part of `stop` is `crun kill` + `crun delete` on a bundle.
#
#   bench/verbs.sh [RUNS]     (as root; default 20 runs of each)
#
# Environment:
#   CCRUN=PATH   the ccrun binary; when unset, `cargo build --release -p ccrun` runs first
#
# Like bench/run-image.sh it runs in a private mount namespace without the cgroup2
# mount at /sys/fs/cgroup/unified (Debian's crun, under podman, refuses the hybrid
# layout), with podman's storage, configuration and blob cache private to the run.
# Everything it creates is removed by an EXIT trap, also on failure or ^C.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
runs=$(bench_runs "${1:-}" 20)

if [[ ${CCRUN_BENCH_INNER:-} != 1 ]]; then
  bench_outer_checks
  if [[ -z ${CCRUN:-} ]]; then
    echo "== building ccrun (release)"
    cargo build --release -q -p ccrun -p ccrun-monitor
    CCRUN=${CARGO_TARGET_DIR:-$repo/target}/release/ccrun
  fi
  export CCRUN
  bench_reexec_private -- "$@"
fi

require_tools hyperfine podman crun jq python3 skopeo docker-registry
work=$(mktemp -d /var/tmp/ccrun-bench-verbs.XXXXXX)
chmod 711 "$work"
reg_port=
podman_cg=/ccrun-bench-podman-$$
podman_flags=(--root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
  --storage-driver overlay --cgroup-manager cgroupfs --runtime crun --events-backend file)

cleanup() {
  local rc=$? mnt
  trap - EXIT INT TERM
  set +e
  if [[ -n $reg_port ]]; then
    PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh stop >/dev/null
  fi
  if [[ -d $work/ccrun ]]; then
    $cc rm -f $($cc ps -aq 2>/dev/null) >/dev/null 2>&1
  fi
  if [[ -d $work/podman/root ]]; then
    podman "${podman_flags[@]}" rm -f -a >/dev/null 2>&1
    podman "${podman_flags[@]}" system reset -f >/dev/null 2>&1
  fi
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null
  done < <(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  remove_run_cgroups "$podman_cg"
  rm -rf --one-file-system "$work"
  exit "$rc"
}
cc="$CCRUN --root $work/ccrun/root --state $work/ccrun/state"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

private_blob_cache
echo "== local registry with the busybox image"
reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh start | sed 's/^/   /'
image=127.0.0.1:$reg_port/library/busybox:latest

mkdir -m 711 "$work/ccrun"
$cc pull -q "$image" >/dev/null
podman_private_config
pm="podman ${podman_flags[*]}"
$pm pull -q --tls-verify=false "$image" >/dev/null
PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh stop >/dev/null
reg_port=
pm_run="$pm run --network none --cgroup-parent $podman_cg --ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"

echo "== 100 created containers each"
for i in $(seq 100); do
  $cc create -q --network none --name "c$i" "$image" true >/dev/null
  $pm create --network none --name "c$i" "$image" true >/dev/null
done

term='trap "exit 0" TERM; sleep 1000 & wait'
echo "== hyperfine: $runs runs of each"
# One --prepare per command, in order (hyperfine 1.15); through the shell, whose
# start hyperfine measures and subtracts.
hyperfine --warmup 2 --runs "$runs" --export-json "$work/result.json" \
  --prepare "$cc rm -f st >/dev/null 2>&1; $cc run -d --network none --name st $image sh -c '$term'" \
  --prepare "$pm rm -f st >/dev/null 2>&1; $pm_run -d --name st $image sh -c '$term'" \
  --prepare "$cc run --network none --name gone $image true" \
  --prepare "$pm_run --name gone $image true" \
  --prepare true --prepare true --prepare true --prepare true \
  -n "ccrun stop" "$cc stop st" \
  -n "podman stop" "$pm stop st" \
  -n "ccrun rm" "$cc rm gone" \
  -n "podman rm" "$pm rm gone" \
  -n "ccrun ps -a (100)" "$cc ps -a" \
  -n "podman ps -a (100)" "$pm ps -a" \
  -n "ccrun inspect" "$cc inspect c1" \
  -n "podman inspect" "$pm inspect c1" \
  >"$work/hyperfine.txt" 2>&1 || { cat "$work/hyperfine.txt" >&2; exit 1; }

python3 - "$work/result.json" <<'PY'
import json, statistics, sys
from results import record
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {n: statistics.median(r["times"]) * 1000 for n, r in res.items()}
print(f"\n{'':22} {'median ms':>10} {'min':>7} {'max':>7}")
for n, r in res.items():
    print(f"{n:22} {med[n]:10.2f} {min(r['times'])*1000:7.2f} {max(r['times'])*1000:7.2f}")
print()
for verb in ("stop", "rm", "ps -a (100)", "inspect"):
    c, p = med[f"ccrun {verb}"], med[f"podman {verb}"]
    print(f"ccrun / podman, {verb:12} {c / p:6.2f}x")
    record("verbs", verb, f"ccrun {verb}", c, f"podman {verb}", p,
           runs=len(res[f"ccrun {verb}"]["times"]))
PY
