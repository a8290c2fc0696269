#!/bin/bash
# OCI runtime lifecycle benchmark: create + start + wait + delete of a /bin/true bundle,
# RUNS times sequentially, with ccrun-oci, crun and runc (Debian's) in the same run, as
# a container manager drives them (one runtime process per step). Also `run` (all four
# steps in one runtime process). Prints medians and the ratios ccrun-oci/crun and
# ccrun-oci/runc.
#
#   bench/oci.sh [RUNS]        (as root; default 100)
#
# Environment:
#   CCRUN_OCI=PATH   the ccrun-oci binary; when unset, `cargo build --release -p
#                    ccrun-oci` runs first and ${CARGO_TARGET_DIR:-target}/release/ccrun-oci
#                    is used
#
# How "wait" works: `create` exits leaving the container's init to the caller's
# subreaper, as under conmon or containerd's shim. The script runs as PID 1 of a new
# PID namespace (unshare --pid --fork), so bash reaps the inits, and waits until the
# init's pid (from --pid-file) is gone, polling /proc every 0.2 ms without forking.
#
# Quirks of this host (Debian 12, hybrid cgroups), as in bench/start.sh: crun refuses
# the hybrid layout, so all three runtimes run in one private mount namespace with the
# cgroup2 mount at /sys/fs/cgroup/unified lazily unmounted; crun then leaves
# <cgroupsPath>/ directories in the bare unified directory (the host's hidden tmpfs),
# so every bundle gets cgroupsPath /ccrun-bench-oci-<pid>/<runtime> and cleanup removes
# exactly those (rmdir for real cgroups, rm for the tmpfs ones), plus the work dir.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
runs=$(bench_runs "${1:-}" 100)

if [[ ${CCRUN_BENCH_INNER:-} != 1 ]]; then
  bench_outer_checks
  if [[ -z ${CCRUN_OCI:-} ]]; then
    echo "== building ccrun-oci (release)"
    cargo build --release -q -p ccrun-oci
    CCRUN_OCI=${CARGO_TARGET_DIR:-$repo/target}/release/ccrun-oci
  fi
  CCRUN_OCI=$(realpath "$CCRUN_OCI")
  export CCRUN_OCI
  bench_reexec_private --pid --fork --mount-proc -- "$@"
fi

require_tools crun runc jq python3
[[ -x $CCRUN_OCI ]] || { echo "no ccrun-oci binary at $CCRUN_OCI" >&2; exit 1; }

work=$(mktemp -d /tmp/ccrun-bench-oci.XXXXXX)
cg=/ccrun-bench-oci-$$
runtimes=(ccrun-oci crun runc)
declare -A bin=([ccrun-oci]=$CCRUN_OCI [crun]=crun [runc]=runc)

cleanup() {
  local rc=$? r d
  trap - EXIT INT TERM
  set +e
  for r in "${runtimes[@]}"; do
    for d in "$work/state-$r"/*/; do
      [[ -d $d ]] && "${bin[$r]}" --root "$work/state-$r" delete -f "$(basename "$d")" >/dev/null 2>&1
    done
  done
  remove_run_cgroups "$cg"
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rootfs=$(scripts/make-busybox-rootfs.sh "$work/rootfs")
mkfifo "$work/tick"
exec {tick}<>"$work/tick"

# runc's default spec (pid, net, ipc, uts, mount namespaces; no user namespace), the
# same file for all three, each with its own cgroup.
for r in "${runtimes[@]}"; do
  mkdir -p "$work/bundle-$r" "$work/state-$r"
  (cd "$work/bundle-$r" && runc spec && jq --arg root "$rootfs" --arg cg "$cg/$r" \
    '.root.path=$root | .process.terminal=false | .process.args=["true"] | .linux.cgroupsPath=$cg' \
    config.json >c && mv c config.json)
done

# One lifecycle as separate runtime calls; prints its duration in microseconds.
lifecycle() {
  local r=$1 id=$2 b=${bin[$1]} st=$work/state-$1 t0 t1 pid
  t0=$EPOCHREALTIME
  "$b" --root "$st" create --bundle "$work/bundle-$r" --pid-file "$work/pid-$r" "$id" >/dev/null
  "$b" --root "$st" start "$id"
  pid=$(<"$work/pid-$r")
  while [[ -e /proc/$pid ]]; do read -r -t 0.0002 -u "$tick" || true; done
  "$b" --root "$st" delete "$id"
  t1=$EPOCHREALTIME
  echo $(((${t1/./} - ${t0/./})))
}

# `run` in one runtime process; prints its duration in microseconds.
run_once() {
  local r=$1 id=$2 t0 t1
  t0=$EPOCHREALTIME
  "${bin[$r]}" --root "$work/state-$r" run --bundle "$work/bundle-$r" "$id" >/dev/null
  t1=$EPOCHREALTIME
  echo $(((${t1/./} - ${t0/./})))
}

echo "== $runs x create+start+wait+delete and $runs x run, interleaved per round"
for r in "${runtimes[@]}"; do
  # Warm-up (page cache, first cgroup creation).
  for i in 1 2 3; do lifecycle "$r" "warm-$i" >/dev/null; done
done
for ((i = 0; i < runs; i++)); do
  for r in "${runtimes[@]}"; do
    lifecycle "$r" "b$i" >>"$work/lifecycle-$r"
    run_once "$r" "r$i" >>"$work/run-$r"
  done
done

python3 - "$work" "${runtimes[@]}" <<'PY'
import statistics, sys
work, runtimes = sys.argv[1], sys.argv[2:]
def med(kind, r):
    with open(f"{work}/{kind}-{r}") as f:
        return statistics.median(int(x) for x in f) / 1000
print(f"{'runtime':10} {'create+start+wait+delete ms':>28} {'run ms':>8}")
for r in runtimes:
    print(f"{r:10} {med('lifecycle', r):28.2f} {med('run', r):8.2f}")
print()
for kind in ("lifecycle", "run"):
    for peer in ("crun", "runc"):
        print(f"ratio ccrun-oci/{peer:4} ({kind}): {med(kind, 'ccrun-oci') / med(kind, peer):.2f}x")
from results import record
n = sum(1 for _ in open(f"{work}/run-ccrun-oci"))
for kind, what in (("lifecycle", "create+start+wait+delete"), ("run", "run")):
    for peer in ("crun", "runc"):
        if peer in runtimes:
            record("oci", what, "ccrun-oci", med(kind, "ccrun-oci"), peer, med(kind, peer), runs=n)
PY
