#!/bin/bash
# Benchmark (not a test): the time to run a container from a stored image, warm (the
# image is pulled beforehand), in one run with hyperfine. Prints medians and ratios.
#
#   ccrun   ccrun --root <tmp> run --rm --network host IMAGE true
#           once with --userns host (no user namespace, as podman and crun below) and
#           once with ccrun's default private user namespace (idmapped overlay rootfs)
#   podman  podman --root <tmp> ... run --rm --network host IMAGE true   (runtime crun)
#   crun    crun run on a prepared bundle: the same busybox rootfs as a plain directory,
#           `crun spec` config with args ["true"], no terminal, writable root, no
#           network namespace; no image store, no overlay mount: a floor for the others
#
# IMAGE is 127.0.0.1:<free port>/library/busybox:latest, from a docker-registry this
# script starts with scripts/local-registry.sh (its own PORT, storage under the work
# dir). Each tool pulls it into its own temporary store first; then the registry is
# stopped (by the PID in its pidfile), so every measured run is warm, and one that went
# to the network anyway would fail instead of being timed. All traffic stays on
# 127.0.0.1. All three share the host network and use the pull policy "missing".
#
#   bench/run-image.sh [RUNS]     (as root; default 50 runs of each, after 3 warm-ups)
#
# Environment:
#   CCRUN=PATH     the ccrun binary; when unset, `cargo build --release -p ccrun` runs first
#                  and ${CARGO_TARGET_DIR:-target}/release/ccrun is used
#   SKIP_CCRUN=1   measure only podman and crun (e.g. with a ccrun that cannot run images yet)
#
# Everything it creates (work dir under /var/tmp, registry, podman storage and mounts,
# the cgroups podman and crun leave) is removed by an EXIT trap, also on failure or ^C.
#
# Quirks of the host this was written on (Debian 12, hybrid cgroups, root in a sandbox):
# - Debian's crun 1.8 refuses the hybrid layout because the cgroup2 mount at
#   /sys/fs/cgroup/unified lists a controller (hugetlb). Like bench/start.sh, the script
#   re-executes itself in a private mount namespace with that mount lazily unmounted, so
#   crun, podman (which runs crun) and ccrun all see the same pure v1 layout. The host's
#   own mounts are not touched.
# - With that mount gone, /sys/fs/cgroup/unified is a plain directory of the
#   /sys/fs/cgroup tmpfs, and crun (also under podman) still "joins" it: it creates
#   <cgroupsPath>/ there with a regular file cgroup.procs, which its own rmdir cannot
#   remove. That tmpfs is the host's (hidden under its cgroup2 mount), so cleanup
#   removes exactly those directories of this run with rm, as rmdir cannot.
# - As root, podman 4.3 writes global state even for `podman info`
#   (/var/lib/containers/storage, /run/containers/storage). It gets its own
#   storage.conf and containers.conf (CONTAINERS_STORAGE_CONF, CONTAINERS_CONF) plus
#   --root, --runroot and --tmpdir in the work dir; events go to a file (no journald),
#   logs to k8s-file, network configs to the work dir; --cgroup-manager cgroupfs.
# - podman's pulls (and skopeo's push) still write c/image's blob-info cache
#   /var/lib/containers/cache/blob-info-cache-v1.boltdb whatever --root says, so an
#   empty directory is bind-mounted over /var/lib/containers/cache in the private
#   mount namespace.
# - With cgroupfs, podman leaves <parent>/conmon behind in every v1 hierarchy (default
#   parent /libpod_parent). It runs with --cgroup-parent /ccrun-bench-podman-<pid>, and
#   crun with cgroupsPath /ccrun-bench-crun-<pid>/bench, so cleanup removes exactly
#   the cgroups this run made (and crun's directories for them in the bare unified
#   directory, see above).
# - podman 4.3 as root asks crun for RLIMIT_NOFILE 1048576 (and RLIMIT_NPROC 1048576 as
#   soon as nofile is given); `--ulimit host` and `-1` do the same. Without
#   CAP_SYS_RESOURCE and with lower hard limits (20000 here) crun fails with
#   "setrlimit `RLIMIT_NOFILE`: Operation not permitted". podman also lowers its own
#   RLIMIT_NPROC to kernel.pid_max (32768 here) before starting conmon. So it gets
#   --ulimit nofile=<hard -n> and nproc=min(<hard -u>, pid_max), the most it can have.
# - ccrun's private user namespace needs every directory above its store to be
#   searchable by others, so the work dir and ccrun's directory in it are mode 711.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
runs=$(bench_runs "${1:-}" 50)

if [[ ${CCRUN_BENCH_INNER:-} != 1 ]]; then
  bench_outer_checks
  if [[ ${SKIP_CCRUN:-} != 1 && -z ${CCRUN:-} ]]; then
    echo "== building ccrun (release)"
    cargo build --release -q -p ccrun
    CCRUN=${CARGO_TARGET_DIR:-$repo/target}/release/ccrun
  fi
  export CCRUN=${CCRUN:-}
  bench_reexec_private -- "$@"
fi

skip_ccrun=${SKIP_CCRUN:-0}
ccrun=${CCRUN:-$repo/target/release/ccrun}
if [[ $skip_ccrun != 1 && ! -x $ccrun ]]; then
  echo "no ccrun binary at $ccrun (set CCRUN=..., or SKIP_CCRUN=1)" >&2
  exit 1
fi
require_tools hyperfine podman crun jq python3 skopeo docker-registry

work=$(mktemp -d /var/tmp/ccrun-bench-run.XXXXXX)
chmod 711 "$work" # a private user namespace's root must reach the stores below
reg_port=
cache_mount=
podman_cg=/ccrun-bench-podman-$$
crun_cg=/ccrun-bench-crun-$$
podman_flags=(--root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
  --storage-driver overlay --cgroup-manager cgroupfs --runtime crun --events-backend file)

cleanup() {
  local rc=$? mnt d
  trap - EXIT INT TERM
  set +e
  if [[ -n $reg_port ]]; then
    PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh stop >/dev/null
  fi
  if [[ -d $work/podman/root ]]; then
    podman "${podman_flags[@]}" system reset -f >/dev/null 2>&1
  fi
  # Whatever is still mounted under the work dir (this mount namespace only), deepest first.
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null
  done < <(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  # The cgroups podman (conmon) and crun left under the parents named for this run.
  # Real cgroups go with rmdir; the directories crun made in the bare
  # /sys/fs/cgroup/unified (tmpfs here, see above) with rm.
  remove_run_cgroups "$podman_cg" "$crun_cg"
  if [[ -n $cache_mount ]]; then umount -l "$cache_mount" 2>/dev/null; fi
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# skopeo (pushing the image) and podman (pulling it) get a blob-info cache of their own.
private_blob_cache

echo "== local registry with the busybox image"
reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh start | sed 's/^/   /'
image=127.0.0.1:$reg_port/library/busybox:latest

commands=()
if [[ $skip_ccrun != 1 ]]; then
  echo "== ccrun: pull, then one run of each variant"
  mkdir -m 711 "$work/ccrun" # the container's root (host uid 100000+) must pass through
  ccrun_base="$ccrun --root $work/ccrun/root --state $work/ccrun/state"
  $ccrun_base pull -q "$image" >/dev/null
  ccrun_host="$ccrun_base run --rm --userns host --network host $image true"
  ccrun_priv="$ccrun_base run --rm --network host $image true"
  for c in "$ccrun_host" "$ccrun_priv"; do
    # shellcheck disable=SC2086 # split as hyperfine -N does
    if ! out=$($c 2>&1); then
      echo "ccrun failed: $c" >&2
      echo "$out" >&2
      echo "(SKIP_CCRUN=1 measures only podman and crun)" >&2
      exit 1
    fi
  done
  commands+=(-n "ccrun --userns host" "$ccrun_host" -n "ccrun (default: private userns)" "$ccrun_priv")
fi

echo "== podman: private storage and config, pull, one run"
podman_private_config
podman "${podman_flags[@]}" pull -q --tls-verify=false "$image" >/dev/null
podman_run="podman ${podman_flags[*]} run --rm --network host --cgroup-parent $podman_cg"
podman_run+=" --ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc $image true"
# shellcheck disable=SC2086
if ! out=$($podman_run 2>&1); then
  echo "podman failed: $podman_run" >&2
  echo "$out" >&2
  exit 1
fi
commands+=(-n "podman (crun)" "$podman_run")

echo "== crun: bundle"
scripts/make-busybox-rootfs.sh "$work/bundle/rootfs" >/dev/null
(cd "$work/bundle" && crun spec)
jq --arg cg "$crun_cg/bench" '.root.readonly = false | .process.terminal = false
    | .process.args = ["true"] | .linux.cgroupsPath = $cg
    | .linux.namespaces |= map(select(.type != "network"))' \
  "$work/bundle/config.json" >"$work/bundle/config.json.new"
mv "$work/bundle/config.json.new" "$work/bundle/config.json"
crun_run="crun --root $work/crun-state run --bundle $work/bundle ccrun-bench-crun"
# shellcheck disable=SC2086
if ! out=$($crun_run 2>&1); then
  echo "crun failed: $crun_run" >&2
  echo "$out" >&2
  exit 1
fi
commands+=(-n "crun (bundle, no image)" "$crun_run")

# Every image is in its store now; with the registry gone, a run that went to the
# network anyway would fail instead of being measured.
PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh stop >/dev/null
reg_port=

echo "== hyperfine: $runs runs each (after 3 warm-ups; registry stopped, so all runs are warm)"
if ! hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/result.json" "${commands[@]}" \
  >"$work/hyperfine.txt" 2>&1; then
  cat "$work/hyperfine.txt" >&2
  exit 1
fi

python3 - "$work/result.json" <<'PY'
import json, statistics, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {n: statistics.median(r["times"]) * 1000 for n, r in res.items()}
print(f"\n{'':34} {'median ms':>10} {'mean ms':>9} {'stddev':>7}")
for n, r in res.items():
    print(f"{n:34} {med[n]:10.2f} {r['mean']*1000:9.2f} {r['stddev']*1000:7.2f}")
host, priv = "ccrun --userns host", "ccrun (default: private userns)"
podman, crun = "podman (crun)", "crun (bundle, no image)"
print()
if host in med:
    print(f"podman / ccrun --userns host      {med[podman] / med[host]:6.2f}x  (same isolation: no userns)")
    print(f"podman / ccrun default            {med[podman] / med[priv]:6.2f}x  (ccrun also sets up a userns)")
    print(f"ccrun --userns host / crun        {med[host] / med[crun]:6.2f}x")
    print(f"ccrun default / crun              {med[priv] / med[crun]:6.2f}x")
print(f"podman / crun                     {med[podman] / med[crun]:6.2f}x")
from results import record
n = len(res[crun]["times"])
record("run-image", "run --rm IMAGE true, default userns", "ccrun", med[priv], "podman (crun)", med[podman], runs=n)
record("run-image", "run --rm IMAGE true, default userns", "ccrun", med[priv], "crun (bundle)", med[crun], runs=n)
if host in med:
    record("run-image", "run --rm IMAGE true, --userns host", "ccrun", med[host], "crun (bundle)", med[crun], runs=n)
PY
