#!/bin/bash
# shellcheck disable=SC2154,SC2034 # `work` comes from, and nofile/nproc go to, the caller
# Shared by the benchmark scripts (sourced, not run): arguments, the re-exec into a
# private mount namespace, cleanup of the cgroups a run made, tracking the processes a run
# starts so cleanup can see them gone, and podman's private storage and configuration.
# Expects the caller to define `work` (the run's work dir) and the array `owned`.

# The start time (clock ticks since boot, field 22 of /proc/PID/stat) of process $1.
starttime() {
  local stat
  { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $stat
  echo "${20}"
}

# Remembers process $1 (by PID and start time) as one this run has to see gone.
own() {
  local st
  [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0)) || return 0
  st=$(starttime "$1") || return 0
  owned+=("$1:$st")
}

# Whether remembered process "PID:STARTTIME" $1 is still that process (and no zombie).
still_alive() {
  local pid=${1%%:*} st=${1#*:} state
  [[ $(starttime "$pid" 2>/dev/null) == "$st" ]] || return 1
  state=$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
  [[ -n $state && $state != Z ]]
}

# Waits up to $1 tenths of a second for every remembered process to be gone.
wait_owned() {
  local tries=$1 p busy
  while ((tries-- > 0)); do
    busy=0
    for p in "${owned[@]}"; do
      if still_alive "$p"; then busy=1; break; fi
    done
    ((busy)) || return 0
    sleep 0.1
  done
  return 1
}

# The command line of process $1, words separated by spaces (empty if it is gone).
cmdline_of() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true; }

# Processes whose command line names the work dir (ccrun's monitors and their
# container-cleanup, podman's `container cleanup` that conmon leaves), except this shell.
work_pids() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    ((pid == $$ || pid == BASHPID)) && continue
    if cmdline_of "$pid" | grep -qF -- "$work/"; then echo "$pid"; fi
  done
}

# Cleanup: lets the remembered processes and the work dir's processes end (up to 10 s
# each), then SIGKILLs, by PID, whatever is still running.
end_owned_and_work_pids() {
  local p n
  if ! wait_owned 100; then
    for p in "${owned[@]}"; do
      if still_alive "$p"; then
        echo "   still running: $(cmdline_of "${p%%:*}"); killing ${p%%:*}" >&2
        kill -KILL "${p%%:*}"
      fi
    done
    wait_owned 50
  fi
  for ((n = 0; n < 100; n++)); do
    [[ -z $(work_pids) ]] && break
    sleep 0.1
  done
  for p in $(work_pids); do
    echo "   still running: $(cmdline_of "$p"); killing $p" >&2
    kill -KILL "$p"
  done
}

# skopeo and podman 4.3 as root both write c/image's blob-info cache under
# /var/lib/containers/cache, whatever --root says. Binds an empty one from the work dir
# over it in this (private) mount namespace, invisible to the host; sets cache_mount,
# which cleanup unmounts.
private_blob_cache() {
  cache_mount=
  mkdir -p "$work/blob-info-cache"
  if [[ -d /var/lib/containers/cache ]]; then
    cache_mount=/var/lib/containers/cache
  elif [[ -d /var/lib/containers ]]; then
    cache_mount=/var/lib/containers
  fi
  if [[ -n $cache_mount ]]; then mount --bind "$work/blob-info-cache" "$cache_mount"; fi
}

# Gives podman (4.3, as root) storage and configuration of its own under
# $work/podman, so it writes no global state; exports CONTAINERS_STORAGE_CONF and
# CONTAINERS_CONF, and sets `nofile`/`nproc` to the most --ulimit can ask for without
# CAP_SYS_RESOURCE (podman lowers its own nproc to kernel.pid_max).
podman_private_config() {
  mkdir -p "$work/podman/networks"
  cat >"$work/podman/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/podman/root"
runroot = "$work/podman/run"
EOF
  cat >"$work/podman/containers.conf" <<EOF
[containers]
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/podman/events.log"
runtime = "crun"
tmp_dir = "$work/podman/tmp"
volume_path = "$work/podman/volumes"
[network]
network_config_dir = "$work/podman/networks"
EOF
  export CONTAINERS_STORAGE_CONF=$work/podman/storage.conf CONTAINERS_CONF=$work/podman/containers.conf
  local pid_max
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  pid_max=$(</proc/sys/kernel/pid_max)
  if [[ $nproc == unlimited ]] || ((nproc > pid_max)); then nproc=$pid_max; fi
}

# The RUNS argument $1 (default $2) when it is a number of at least 2; a usage line
# and exit 2 otherwise. Use as `runs=$(bench_runs "${1:-}" 100)`.
bench_runs() {
  local runs=${1:-$2}
  if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 2)); then
    echo "usage: $0 [RUNS>=2]" >&2
    exit 2
  fi
  echo "$runs"
}

# Before the re-exec: root only, and the packages of scripts/deps.sh installed.
bench_outer_checks() {
  ((EUID == 0)) || { echo "run as root" >&2; exit 1; }
  scripts/deps.sh
}

# Runs the calling script again with its arguments ($@ after `--`), as
# CCRUN_BENCH_INNER=1, in a private mount namespace without the cgroup2 mount at
# /sys/fs/cgroup/unified (Debian's crun refuses the hybrid layout with it). Arguments
# before `--` are more unshare flags (e.g. --pid --fork --mount-proc).
bench_reexec_private() {
  local -a flags=()
  while (($#)) && [[ $1 != -- ]]; do
    flags+=("$1")
    shift
  done
  shift
  # shellcheck disable=SC2016 # expanded by the inner shell
  exec unshare -m --propagation private "${flags[@]}" env CCRUN_BENCH_INNER=1 bash -c \
    'if mountpoint -q /sys/fs/cgroup/unified; then umount -l /sys/fs/cgroup/unified; fi; exec "$0" "$@"' \
    "$0" "$@"
}

# Fails with one line naming the first of the commands $@ that is not installed.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (scripts/deps.sh installs it)" >&2; exit 1; }
  done
}

# Removes the cgroups under the parents $@ (absolute cgroup paths named for this run),
# deepest first, in every hierarchy: real cgroups with rmdir, and the directories crun
# makes in the bare /sys/fs/cgroup/unified (a tmpfs once its cgroup2 mount is
# unmounted) with rm.
remove_run_cgroups() {
  local -a match=()
  local parent d
  for parent in "$@"; do
    ((${#match[@]})) && match+=(-o)
    match+=(-path "*$parent" -o -path "*$parent/*")
  done
  while read -r d; do
    if [[ $(stat -f -c %T "$d") == tmpfs ]]; then
      rm -rf --one-file-system "$d"
    else
      rmdir "$d" 2>/dev/null
    fi
  done < <(find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d \( "${match[@]}" \) 2>/dev/null | sort -r)
}

# The benchmarks' Python summaries import bench/results.py.
export PYTHONPATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)${PYTHONPATH:+:$PYTHONPATH}"

# Records one ccrun-against-peer comparison for bench/report.sh (see bench/results.py):
#   bench_record BENCHMARK WHAT CCRUN_LABEL CCRUN_VALUE PEER_LABEL PEER_VALUE UNIT RUNS [lower|higher]
bench_record() {
  python3 "$(dirname "${BASH_SOURCE[0]}")/results.py" "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "${9:-lower}"
}
