#!/bin/bash
# Benchmark (not a test): `exec CONTAINER true` into an already running container, in
# one run with hyperfine (medians and ratios), plus the memory of the process each
# engine keeps alive per detached container. Targets (issue "container lifecycle"):
# `ccrun exec` within 1.5x of `crun exec` on the same kind of container, and
# ccrun-monitor under 2 MB RSS.
#
# Containers (all run `sleep 1000`, share the host network, no terminal):
#   ccrun   ccrun --root W/ccrun --state W/ccrun-state run -d --network host IMAGE sleep 1000
#           twice: "bench-host" with --userns host (no user namespace, like podman and
#           crun below) and "bench-priv" with ccrun's default private user namespace
#           (idmapped overlay rootfs)
#   podman  podman --root W/podman/root ... run -d --network host IMAGE sleep 1000
#           (runtime crun, cgroupfs; conmon stays as its monitor)
#   crun    crun run -d on prepared bundles: the same busybox rootfs as a plain
#           directory, `crun spec` config with args ["sleep","1000"], no terminal,
#           writable root, no network namespace; "bench" without and "bench-userns"
#           with a user namespace (0-65535 -> 100000+, as ccrun's default). No image
#           store, no overlay, no monitor process: the floor for the others.
# Measured with hyperfine -N, in rounds of about 10 runs of each command in turn (so
# that load from elsewhere on a shared machine hits all of them alike), 3 warm-ups:
#   ccrun ... exec bench-host true      ccrun ... exec bench-priv true
#   podman ... exec bench true          crun --root W/crun-state exec bench[-userns] true
# Memory: VmRSS (/proc/PID/status) and PSS and private (USS) memory
# (/proc/PID/smaps_rollup) of each ccrun container's ccrun-monitor (its pid is
# `monitor_pid` in W/ccrun/containers/<id>/container.json; the id is what `run -d`
# prints) and of podman's conmon (`podman inspect --format {{.State.ConmonPid}}`),
# right after start and again after all the execs.
#
# IMAGE is 127.0.0.1:<free port>/library/busybox:latest, from a docker-registry started
# with scripts/local-registry.sh (its own port, storage under the work dir). ccrun and
# podman pull it into their own temporary stores, start their containers, and then the
# registry is stopped (by the PID in its pidfile). All traffic stays on 127.0.0.1.
#
#   bench/exec.sh [RUNS]     (as root; default 50 runs of each)
#
# Environment:
#   CCRUN=PATH   the ccrun binary, with ccrun-monitor next to it (or CCRUN_MONITOR=PATH);
#                when unset, `cargo build --release -p ccrun -p ccrun-monitor` runs first
#                and ${CARGO_TARGET_DIR:-target}/release/ccrun is used
#
# Everything it creates (work dir under /var/tmp, registry, containers and their
# monitors, podman storage and mounts, the cgroups podman, crun and ccrun leave) is
# removed by an EXIT trap, also on failure or ^C; processes are found by recorded PID
# (checked against their start time), never by name.
#
# Quirks of the host this was written on (Debian 12, hybrid cgroups, root in a sandbox),
# the same as bench/run-image.sh:
# - Debian's crun 1.8 refuses the hybrid layout because the cgroup2 mount at
#   /sys/fs/cgroup/unified lists a controller (hugetlb). The script re-executes itself
#   in a private mount namespace with that mount lazily unmounted, so crun, podman
#   (which runs crun) and ccrun all see the same pure v1 layout. The host's own mounts
#   are not touched.
# - With that mount gone, /sys/fs/cgroup/unified is a plain directory of the
#   /sys/fs/cgroup tmpfs, and crun still "joins" it: it creates <cgroupsPath>/ there
#   with a regular file cgroup.procs. That tmpfs is the host's (hidden under its cgroup2
#   mount), so cleanup removes exactly those directories of this run with rm, as rmdir
#   cannot.
# - As root, podman 4.3 writes global state even for `podman info`. It gets its own
#   storage.conf and containers.conf (CONTAINERS_STORAGE_CONF, CONTAINERS_CONF) plus
#   --root, --runroot and --tmpdir in the work dir; events go to a file (no journald),
#   logs to k8s-file, network configs to the work dir; --cgroup-manager cgroupfs.
# - podman's pulls (and skopeo's push) write c/image's blob-info cache under
#   /var/lib/containers/cache whatever --root says, so an empty directory is
#   bind-mounted over it in the private mount namespace.
# - podman runs with --cgroup-parent /ccrun-bench-podman-<pid> (it leaves <parent>/conmon
#   behind) and crun with cgroupsPath /ccrun-bench-crun-<pid>/..., so cleanup removes
#   exactly the cgroups this run made. ccrun uses /ccrun/<id>; `ccrun rm` removes it
#   (and /ccrun once empty); whatever of it is left for this run's ids goes too.
# - podman 4.3 as root asks crun for RLIMIT_NOFILE and RLIMIT_NPROC 1048576, which fails
#   without CAP_SYS_RESOURCE and lower hard limits, so it gets --ulimit
#   nofile=<hard -n> and nproc=min(<hard -u>, pid_max).
# - ccrun's private user namespace needs every directory above its store to be
#   searchable by others, so the work dir and ccrun's directory in it are mode 711.
# - ccrun (like Docker) wants container names of at least two characters, hence
#   "bench-host"/"bench-priv" rather than "b".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
runs=$(bench_runs "${1:-}" 50)

if [[ ${CCRUN_BENCH_INNER:-} != 1 ]]; then
  bench_outer_checks
  if [[ -z ${CCRUN:-} ]]; then
    echo "== building ccrun and ccrun-monitor (release)"
    cargo build --release -q -p ccrun -p ccrun-monitor
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
if [[ -z ${CCRUN_MONITOR:-} && ! -x $(dirname "$ccrun")/ccrun-monitor ]]; then
  echo "no ccrun-monitor next to $ccrun (build it: cargo build --release -p ccrun-monitor)" >&2
  exit 1
fi
require_tools hyperfine podman crun conmon jq python3 skopeo docker-registry curl

work=$(mktemp -d /var/tmp/ccrun-bench-exec.XXXXXX)
chmod 711 "$work" # a private user namespace's root must reach the stores below
reg_port=
cache_mount=
podman_cg=/ccrun-bench-podman-$$
crun_cg=/ccrun-bench-crun-$$
podman_flags=(--root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
  --storage-driver overlay --cgroup-manager cgroupfs --runtime crun --events-backend file)
ccrun_base=("$ccrun" --root "$work/ccrun" --state "$work/ccrun-state")
crun_base=(crun --root "$work/crun-state")
ccrun_ids=()   # containers ccrun created (full ids)
crun_ids=()    # containers crun created
podman_made=0  # whether podman storage exists
owned=()       # "PID:STARTTIME" of every long-lived process this run started
# The v1 hierarchies' /ccrun directories that existed before (ccrun's shared parent).
ccrun_parents_before=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -name ccrun -type d 2>/dev/null | sort)

cleanup() {
  local rc=$? mnt d p id n
  trap - EXIT INT TERM
  set +e
  echo "== cleanup"
  if [[ -n $reg_port ]]; then
    PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh stop >/dev/null
  fi
  for id in "${ccrun_ids[@]}"; do
    "${ccrun_base[@]}" rm -f "$id" >/dev/null
  done
  if ((podman_made)); then
    podman "${podman_flags[@]}" rm -f -t 0 bench >/dev/null 2>&1
  fi
  for id in "${crun_ids[@]}"; do
    "${crun_base[@]}" delete -f "$id"
  done
  # Monitors and conmon run their exit commands once their container is gone; let them.
  end_owned_and_work_pids
  if ((podman_made)); then
    podman "${podman_flags[@]}" system reset -f >/dev/null 2>&1
  fi
  # Whatever is still mounted under the work dir (this mount namespace only), deepest first.
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null
  done < <(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  # The cgroups podman (conmon) and crun left under the parents named for this run, and
  # ccrun's for this run's containers. Real cgroups go with rmdir; the directories crun
  # made in the bare /sys/fs/cgroup/unified (tmpfs here, see above) with rm.
  while read -r d; do
    if [[ $(stat -f -c %T "$d") == tmpfs ]]; then
      rm -rf --one-file-system "$d"
    else
      rmdir "$d" 2>/dev/null
    fi
  done < <(
    {
      find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d \
        \( -path "*$podman_cg" -o -path "*$podman_cg/*" -o -path "*$crun_cg" -o -path "*$crun_cg/*" \) \
        2>/dev/null
      for id in "${ccrun_ids[@]}"; do
        find /sys/fs/cgroup -mindepth 3 -maxdepth 3 -type d -path "*/ccrun/$id" 2>/dev/null
      done
    } | sort -r
  )
  # ccrun's shared parent /ccrun, where this run created it and it is empty now.
  while read -r d; do
    grep -qxF -- "$d" <<<"$ccrun_parents_before" || rmdir "$d" 2>/dev/null
  done < <(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -name ccrun -type d 2>/dev/null)
  if [[ -n $cache_mount ]]; then umount -l "$cache_mount" 2>/dev/null; fi
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# skopeo (pushing the image) and podman (pulling it) get a blob-info cache of their own.
private_blob_cache

echo "== $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   $(crun --version | head -1), $(podman --version), $(conmon --version 2>&1 | head -1)"

echo "== local registry with the busybox image"
reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh start | sed 's/^/   /'
image=127.0.0.1:$reg_port/library/busybox:latest

echo "== ccrun: pull, run -d, one exec each"
mkdir -m 711 "$work/ccrun" # the container's root (host uid 100000+) must pass through
"${ccrun_base[@]}" pull -q "$image" >/dev/null
declare -A ccrun_id
for variant in host priv; do
  userns=()
  [[ $variant == host ]] && userns=(--userns host)
  if ! out=$("${ccrun_base[@]}" run -d --name "bench-$variant" "${userns[@]}" --network host \
    "$image" sleep 1000 2>"$work/run-$variant.err"); then
    echo "ccrun run -d failed (bench-$variant):" >&2
    cat "$work/run-$variant.err" >&2
    exit 1
  fi
  id=$(tail -n1 <<<"$out")
  if ! [[ $id =~ ^[0-9a-f]{64}$ ]]; then
    echo "ccrun run -d printed no container id: $out" >&2
    exit 1
  fi
  ccrun_ids+=("$id")
  ccrun_id[$variant]=$id
  record=$work/ccrun/containers/$id/container.json
  own "$(jq -r '.monitor_pid // 0' "$record")"
  own "$(jq -r '.pid // 0' "$record")"
  if ! out=$("${ccrun_base[@]}" exec "bench-$variant" true 2>&1); then
    echo "ccrun exec failed (bench-$variant): $out" >&2
    exit 1
  fi
  echo "   bench-$variant: ${id:0:12}, monitor pid $(jq -r .monitor_pid "$record"), init pid $(jq -r .pid "$record")"
done

echo "== podman: private storage and config, pull, run -d, one exec"
podman_private_config
podman_made=1
podman "${podman_flags[@]}" pull -q --tls-verify=false "$image" >/dev/null
if ! out=$(podman "${podman_flags[@]}" run -d --name bench --network host --cgroup-parent "$podman_cg" \
  --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" "$image" sleep 1000 2>&1); then
  echo "podman run -d failed: $out" >&2
  exit 1
fi
conmon_pid=$(podman "${podman_flags[@]}" inspect --format '{{.State.ConmonPid}}' bench)
own "$conmon_pid"
own "$(podman "${podman_flags[@]}" inspect --format '{{.State.Pid}}' bench)"
if ! out=$(podman "${podman_flags[@]}" exec bench true 2>&1); then
  echo "podman exec failed: $out" >&2
  exit 1
fi
echo "   bench: conmon pid $conmon_pid"

echo "== crun: bundles, run -d, one exec each"
rootfs=$(scripts/make-busybox-rootfs.sh "$work/rootfs")
mkdir -p "$work/bundle" "$work/bundle-userns"
(cd "$work/bundle" && crun spec)
jq --arg r "$rootfs" --arg cg "$crun_cg/bench" '.root.path = $r | .root.readonly = false
    | .process.terminal = false | .process.args = ["sleep", "1000"] | .linux.cgroupsPath = $cg
    | .linux.namespaces |= map(select(.type != "network"))' \
  "$work/bundle/config.json" >"$work/bundle/config.json.new"
mv "$work/bundle/config.json.new" "$work/bundle/config.json"
# The same with a user namespace mapping 0-65535 to 100000+, like ccrun's default (as
# bench/start.sh: /sys bind-mounted, since a userns cannot mount a fresh sysfs here).
jq --arg cg "$crun_cg/bench-userns" '.linux.cgroupsPath = $cg | .linux.namespaces += [{"type": "user"}]
    | .linux.uidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    | .linux.gidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    | .mounts |= map(if .destination == "/sys" then {"destination": "/sys", "type": "bind",
        "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]} else . end)' \
  "$work/bundle/config.json" >"$work/bundle-userns/config.json"
for id in bench bench-userns; do
  bundle=$work/bundle
  [[ $id == bench-userns ]] && bundle=$work/bundle-userns
  crun_ids+=("$id")
  # The container inherits these descriptors: no pipe of ours may stay open in it.
  if ! "${crun_base[@]}" run -d --bundle "$bundle" "$id" </dev/null >"$work/crun-$id.log" 2>&1; then
    echo "crun run -d failed ($id):" >&2
    cat "$work/crun-$id.log" >&2
    exit 1
  fi
  own "$("${crun_base[@]}" state "$id" | jq -r '.pid // 0')"
  if ! out=$("${crun_base[@]}" exec "$id" true 2>&1); then
    echo "crun exec failed ($id): $out" >&2
    exit 1
  fi
done

# Every container runs; with the registry gone nothing can reach the network.
PORT=$reg_port CCRUN_REGISTRY_DIR=$work/registry scripts/local-registry.sh stop >/dev/null
reg_port=

# "VmRSS PSS USS" in kB of process $1.
mem_of() {
  local rss pss uss
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status")
  read -r pss uss < <(awk '/^Pss:/ { p = $2 } /^Private_(Clean|Dirty):/ { u += $2 }
    END { print p, u }' "/proc/$1/smaps_rollup")
  echo "$rss $pss $uss"
}
declare -A mem_before
monitors=()
for variant in host priv; do
  monitors+=("ccrun-monitor (bench-$variant)=$(jq -r .monitor_pid "$work/ccrun/containers/${ccrun_id[$variant]}/container.json")")
done
monitors+=("podman conmon (bench)=$conmon_pid")
for m in "${monitors[@]}"; do mem_before[$m]=$(mem_of "${m#*=}"); done

commands=(
  -n "ccrun exec, --userns host" "${ccrun_base[*]} exec bench-host true"
  -n "ccrun exec, private userns" "${ccrun_base[*]} exec bench-priv true"
  -n "podman exec (crun)" "podman ${podman_flags[*]} exec bench true"
  -n "crun exec" "${crun_base[*]} exec bench true"
  -n "crun exec, userns" "${crun_base[*]} exec bench-userns true"
)
# In rounds of about 10 runs of each command, one command after the other within a
# round: on a shared machine a burst of load then hits every command alike instead of
# whichever one hyperfine happened to be timing. The medians are over all rounds.
chunk=10
rounds=$(((runs + chunk - 1) / chunk))
echo "== hyperfine: $runs runs each in $rounds rounds (3 warm-ups first, 1 per later round)"
for ((round = 1; round <= rounds; round++)); do
  n=$((runs / rounds + (round <= runs % rounds ? 1 : 0))) # balanced, so always >= 2
  warmup=1
  ((round == 1)) && warmup=3
  if ! hyperfine -N --warmup "$warmup" --runs "$n" --export-json "$work/result-$round.json" \
    "${commands[@]}" >"$work/hyperfine.txt" 2>&1; then
    cat "$work/hyperfine.txt" >&2
    exit 1
  fi
  echo "   round $round: $n runs each, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done

python3 - "$work"/result-*.json <<'PY'
import json, statistics, sys
times = {}
for f in sys.argv[1:]:
    for r in json.load(open(f))["results"]:
        times.setdefault(r["command"], []).extend(x * 1000 for x in r["times"])
med = {n: statistics.median(t) for n, t in times.items()}
print(f"\n{'exec CONTAINER true':30} {'runs':>5} {'median ms':>10} {'mean ms':>9} {'stddev':>7} {'min':>7} {'max':>7}")
for n, t in times.items():
    print(f"{n:30} {len(t):5} {med[n]:10.2f} {statistics.mean(t):9.2f} {statistics.stdev(t):7.2f} {min(t):7.2f} {max(t):7.2f}")
host, priv = "ccrun exec, --userns host", "ccrun exec, private userns"
podman, crun, crun_u = "podman exec (crun)", "crun exec", "crun exec, userns"
def ratio(label, a, b, note=""):
    print(f"{label:36} {med[a] / med[b]:6.2f}x  {note}")
print()
ratio("ccrun --userns host / crun", host, crun, "(target <= 1.5x; same kind: no userns)")
ratio("ccrun private userns / crun userns", priv, crun_u, "(target <= 1.5x; same kind: userns)")
ratio("ccrun private userns / crun", priv, crun)
ratio("podman / ccrun --userns host", podman, host, "(same isolation: no userns)")
ratio("podman / ccrun private userns", podman, priv)
ratio("podman / crun", podman, crun)
from results import record
n = len(times[crun])
record("exec", "exec CONTAINER true, no userns", "ccrun", med[host], "crun", med[crun], runs=n)
record("exec", "exec CONTAINER true, userns", "ccrun", med[priv], "crun", med[crun_u], runs=n)
record("exec", "exec CONTAINER true, default", "ccrun", med[priv], "podman (crun)", med[podman], runs=n)
PY

echo
echo "Per-container monitor memory, kB (VmRSS; PSS and private from smaps_rollup)"
printf '%-30s %9s %9s %9s   %9s %9s %9s\n' "" "RSS start" "PSS" "private" "RSS after" "PSS" "private"
for m in "${monitors[@]}"; do
  # shellcheck disable=SC2086,SC2046 # three numbers each
  printf '%-30s %9s %9s %9s   %9s %9s %9s\n' "${m%=*}" ${mem_before[$m]} $(mem_of "${m#*=}")
done
echo "(\"after\": after the $((1 + 3 + (rounds - 1) + runs)) execs into each container; target for ccrun-monitor: RSS < 2048 kB;"
echo " crun run -d keeps no process besides the container's own)"
